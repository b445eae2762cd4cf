"""How busy the rest of the machine was while we timed: CPU time used by processes other than ours.

On a shared machine a second busy process slows multi-threaded BLAS several times over, so every timed round
records the average number of cores that *other* processes kept busy (all CPU time in /proc/stat minus the CPU time
of the runner and its workers). Near 0 means the numbers are clean; near 1 on a 2-core machine means they are not.
Linux only; elsewhere it reports None.
"""
from __future__ import annotations

import os
import time


def _machine_busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)      # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _process_seconds(pids) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])            # utime + stime (this process, all threads)
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class ForeignLoad:
    """Measure foreign load over a stretch of time: ``start()``, then ``cores()`` (average busy cores not ours)."""

    def __init__(self, pids):
        self.pids = [os.getpid(), *pids]

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._busy0 = _machine_busy_seconds()
        self._ours0 = _process_seconds(self.pids)

    def cores(self) -> float | None:
        busy = _machine_busy_seconds()
        if busy is None or self._busy0 is None:
            return None
        wall = time.perf_counter() - self._t0
        foreign = (busy - self._busy0) - (_process_seconds(self.pids) - self._ours0)
        if wall <= 0:
            return None
        # /proc/stat counts in 10 ms ticks: over a short stretch the quotient can stray past the core count
        return min(float(os.cpu_count() or 1), max(0.0, foreign / wall))
