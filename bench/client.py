"""The runner's side of the worker protocol: start a worker process, send it requests, read its replies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


class WorkerError(RuntimeError):
    """The worker died or answered with an error; the message carries its report and stderr tail."""


class WorkerClient:
    """One benchmark process (``python -m bench.worker``) for one system."""

    def __init__(self, name: str, threads: int, samples: int | None = None, synthetic: bool = False,
                 env: dict | None = None, dataset: str = "mnist"):
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "bench.worker", "--threads", str(threads)]
        if samples:
            cmd += ["--samples", str(samples)]
        if synthetic:
            cmd.append("--synthetic")
        cmd += ["--dataset", dataset]
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(cmd, cwd=root, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log.open("w"), text=True, bufsize=1,
                                     env=env if env is not None else os.environ.copy())
        self._read()                                   # {"ready": true} once the data is loaded

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"worker {self.name} exited (code {self.proc.wait()}); stderr:\n{self.stderr_tail()}")
        return json.loads(line)

    def request(self, cmd: str, **fields) -> dict:
        """Send one command and return the reply; raise WorkerError if the worker reports an error."""
        self.proc.stdin.write(json.dumps({"cmd": cmd, **fields}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if "error" in reply:
            raise WorkerError(f"{self.name}: {reply['error']}\n{reply.get('traceback', '')}")
        return reply

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
