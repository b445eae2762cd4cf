"""Where an mlpx training epoch spends its time: every backend op timed, the rest is Python overhead.

    MLPX_DATA_DIR=... flock /tmp/mlpx-cpu.lock .venv/bin/python -m bench.profile_step --threads 2

Each public method of the model's ops object is wrapped with a timer that records *exclusive* time (an op that
calls another op is charged only for its own part); matrix products are split by kind (forward ``a W``, weight
gradient ``a^T delta``, input gradient ``delta W^T``). The BLAS floor's products are timed the same way in the same
process, so "gemm in mlpx" and "gemm alone" can be compared shape for shape. What the ops do not cover (the loop,
argument checks, indexing, Python calls) is reported as the remainder.
"""
from __future__ import annotations

import argparse
import functools
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .common import BATCH, LAYERS, load_data, pin_threads
from .floor import BlasFloor


class OpTimer:
    """Wraps the methods of one ops object; collects exclusive seconds and call counts per op name.
    ``clock`` is ``time.perf_counter``; tests pass a fake one to check the bookkeeping without timing."""

    def __init__(self, ops, clock=time.perf_counter):
        self.ops, self.seconds, self.calls, self.clock = ops, defaultdict(float), defaultdict(int), clock
        self._stack: list[float] = []     # children's time of each open call
        self._names = [n for n in dir(ops) if not n.startswith("_") and callable(getattr(ops, n))]

    @staticmethod
    def gemm_kind(kwargs) -> str:
        if kwargs.get("trans_a"):
            return "gemm weight-grad a^T delta"
        if kwargs.get("trans_b"):
            return "gemm input-grad delta W^T"
        return "gemm forward a W"

    def _wrap(self, name, method):
        @functools.wraps(method)
        def timed(*args, **kwargs):
            # gemm_accumulate is the weight-gradient product with plain SGD's update folded in (beta = 1)
            label = self.gemm_kind(kwargs) if name in ("gemm", "gemm_accumulate") else name
            self._stack.append(0.0)
            start = self.clock()
            try:
                return method(*args, **kwargs)
            finally:
                elapsed = self.clock() - start
                children = self._stack.pop()
                self.seconds[label] += elapsed - children
                self.calls[label] += 1
                if self._stack:
                    self._stack[-1] += elapsed
        return timed

    def __enter__(self):
        for name in self._names:
            setattr(self.ops, name, self._wrap(name, getattr(self.ops, name)))
        return self

    def __exit__(self, *exc):
        for name in self._names:
            delattr(self.ops, name)        # back to the class's methods


def wrapper_cost(calls: int = 20000) -> float:
    """Seconds one timed call adds (two perf_counter reads and the wrapper), to subtract from the remainder."""
    class Dummy:
        def nothing(self):
            return None
    plain, wrapped = Dummy(), Dummy()
    timer = OpTimer(wrapped)
    timer.__enter__()
    costs = []
    for target in (plain, wrapped):
        start = time.perf_counter()
        for _ in range(calls):
            target.nothing()
        costs.append(time.perf_counter() - start)
    return max(0.0, (costs[1] - costs[0]) / calls)


def profile_mlpx(data, optimizer: str, threads: int, epochs: int = 1, batch: int = BATCH) -> dict:
    import mlpx

    opt = mlpx.optim.SGD(lr=0.01) if optimizer == "sgd" else mlpx.optim.Adam(lr=0.001)
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend="numpy")
    model.compile(loss="cross_entropy", optimizer=opt)
    limiter = pin_threads(threads)  # noqa: F841 (again: the backend may have loaded Numba's thread pool)
    model.fit(data.x_train, data.y_train, epochs=1, batch_size=batch, verbose=0)     # warm-up
    with OpTimer(model.ops) as timer:
        start = time.perf_counter()
        model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch, verbose=0)
        total = (time.perf_counter() - start) / epochs
    return _summary(timer, total, epochs, len(data.x_train), batch)


FLOOR_KINDS = {"forward": "gemm forward a W", "weight_grad": "gemm weight-grad a^T delta",
               "input_grad": "gemm input-grad delta W^T"}


class TimedFloor(BlasFloor):
    """The BLAS floor with each product timed by kind."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seconds = defaultdict(float)

    def product(self, kind, a, b, out):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        self.seconds[FLOOR_KINDS[kind]] += time.perf_counter() - start


def profile_floor(n_samples: int, batch: int = BATCH) -> dict:
    floor = TimedFloor(LAYERS, batch, n_samples)
    floor.epoch()                       # warm-up
    floor.seconds.clear()
    start = time.perf_counter()
    floor.epoch()
    total = time.perf_counter() - start
    return {"epoch_seconds": total, "ops": {k: {"seconds": v} for k, v in floor.seconds.items()}}


def gemm_libraries(threads: int, batches=(64, 1024, 4096), repeat: int = 10) -> list[dict]:
    """The forward products of the reference network through NumPy's BLAS and through PyTorch's (MKL on x86),
    same shapes, same threads, preallocated outputs: which library multiplies faster at which batch size."""
    try:
        import torch
    except ImportError:
        return []
    torch.set_num_threads(threads)
    rows = []
    for batch in batches:
        for fan_in, fan_out in zip(LAYERS[:-2], LAYERS[1:-1]):
            a = np.random.default_rng(0).random((batch, fan_in), dtype=np.float32)
            w = np.random.default_rng(1).random((fan_in, fan_out), dtype=np.float32)
            out = np.empty((batch, fan_out), np.float32)
            ta, tw, tout = torch.from_numpy(a), torch.from_numpy(w), torch.from_numpy(out)
            timings = {}
            calls = (("numpy", lambda: np.matmul(a, w, out=out)), ("torch", lambda: torch.mm(ta, tw, out=tout)))
            for name, fn in calls:
                fn()
                best = []
                for _ in range(3):
                    start = time.perf_counter()
                    for _ in range(repeat):
                        fn()
                    best.append((time.perf_counter() - start) / repeat)
                timings[name] = min(best)
            rows.append({"shape": f"({batch}x{fan_in}) @ ({fan_in}x{fan_out})", "numpy_us": 1e6 * timings["numpy"],
                         "torch_us": 1e6 * timings["torch"]})
    return rows


def _summary(timer: OpTimer, total: float, epochs: int, n: int, batch: int) -> dict:
    steps = -(-n // batch) * epochs
    wrapper = wrapper_cost() * sum(timer.calls.values()) / epochs
    ops = {name: {"seconds": s / epochs, "calls_per_step": timer.calls[name] / steps,
                  "us_per_call": 1e6 * s / timer.calls[name]} for name, s in timer.seconds.items()}
    covered = sum(v["seconds"] for v in ops.values())
    return {"epoch_seconds": total, "ops": ops, "remainder_seconds": total - covered - wrapper,
            "wrapper_seconds": wrapper, "steps_per_epoch": steps // epochs}


def without_first_layer(prof: dict, floor_seconds: float) -> tuple[float, float]:
    """(seconds, ratio to the floor) of the epoch minus the sparse first layer's ops (``sparse_*``): what the step
    would take if that layer cost nothing, the bound on any further first-layer speed-up (0 s and ratio 0 on the
    dense path, which has no such ops)."""
    sparse = sum(v["seconds"] for name, v in prof["ops"].items() if name.startswith("sparse_"))
    if sparse == 0:
        return 0.0, 0.0
    rest = prof["epoch_seconds"] - sparse
    return rest, rest / floor_seconds


def markdown(results: dict) -> str:
    floor = results["floor"]
    lines = [f"Epoch of {'-'.join(map(str, LAYERS))} at batch {results['batch']}, {results['threads']} threads, "
             f"{results['data']}; backend 'numpy' = {results['ops_class']}; ops timed by wrapping each of its "
             f"methods (exclusive time).", ""]
    for opt in ("sgd", "adam"):
        prof = results[opt]
        total = prof["epoch_seconds"]
        lines += [f"### {opt.upper()}: {total:.3f} s per epoch (with timers), "
                  f"BLAS floor {floor['epoch_seconds']:.3f} s",
                  "", "| op | calls/step | s/epoch | % of epoch | us/call | floor s/epoch |",
                  "|---|---:|---:|---:|---:|---:|"]
        for name, v in sorted(prof["ops"].items(), key=lambda kv: -kv[1]["seconds"]):
            floor_s = floor["ops"].get(name, {}).get("seconds")
            lines.append(f"| {name} | {v['calls_per_step']:.2f} | {v['seconds']:.3f} | "
                         f"{100 * v['seconds'] / total:.1f} | {v['us_per_call']:.1f} | "
                         f"{'' if floor_s is None else f'{floor_s:.3f}'} |")
        lines += [f"| Python and everything outside the ops | | {prof['remainder_seconds']:.3f} | "
                  f"{100 * prof['remainder_seconds'] / total:.1f} | | |",
                  f"| (timer overhead, subtracted) | | {prof['wrapper_seconds']:.3f} | | | |", ""]
        rest, ratio = without_first_layer(prof, floor["epoch_seconds"])
        if rest:
            lines += [f"Without the sparse first layer's ops (a first layer that cost nothing): {rest:.3f} s, "
                      f"{ratio:.2f}x the floor: no first-layer kernel alone can bring the epoch below that.", ""]
    if results.get("gemm_libraries"):
        lines += ["### The same products through NumPy's BLAS and PyTorch's (best of 3 x 10 calls)", "",
                  "| product | NumPy us | PyTorch us | NumPy / PyTorch |", "|---|---:|---:|---:|"]
        lines += [f"| {r['shape']} | {r['numpy_us']:.1f} | {r['torch_us']:.1f} | {r['numpy_us'] / r['torch_us']:.2f} |"
                  for r in results["gemm_libraries"]]
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--batch", type=int, default=BATCH, help=f"batch size (default {BATCH})")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--out", default=None, help="folder for profile.md and profile.json (default: print)")
    args = parser.parse_args(argv)
    limiter = pin_threads(args.threads)  # noqa: F841 (keep the limit alive)
    data = load_data(args.samples, args.synthetic)
    results = {"threads": args.threads, "batch": args.batch, "data": data.source,
               "floor": profile_floor(len(data.x_train), args.batch),
               "sgd": profile_mlpx(data, "sgd", args.threads, batch=args.batch),
               "adam": profile_mlpx(data, "adam", args.threads, batch=args.batch),
               "ops_class": type(__import__("mlpx").get_ops("numpy")).__name__,
               "gemm_libraries": gemm_libraries(args.threads)}
    text = markdown(results)
    if args.out:
        from mlpx._io import atomic_write_text

        atomic_write_text(Path(args.out) / "profile.md", "# Where an mlpx epoch spends its time\n\n" + text)
        atomic_write_text(Path(args.out) / "profile.json", json.dumps(results, indent=1))
    print(text)
    return results


if __name__ == "__main__":
    main()
