"""Side by side: one training epoch of 784-500-250-100-10 (float32, batch 64, SGD lr 0.01, MNIST) in every system.

    MLPX_DATA_DIR=... flock /tmp/mlpx-cpu.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        .venv/bin/python -m bench.compare --threads 2 --rounds 5

Method: each system runs in its own worker process, all pinned to the same BLAS/OpenMP thread count; one warm-up
epoch each (not timed: JIT compilation, first allocations); then rounds in which every system times one epoch in
turn (the order rotates each round), so a disturbance on the machine hits all systems alike; median and spread
over the rounds. Slow systems may time a fraction of the epoch (``--course-samples``), scaled to a full epoch and
marked in the table. Writes docs/benchmarks/compare.{md,json}, epoch_bar.png and, with the studies,
scaling.png and the time-to-accuracy table.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .client import WorkerClient, WorkerError
from .common import BATCH, BLAS_ENV_VARS, LAYERS, LR
from .interference import ForeignLoad


@dataclass
class Row:
    """One line of the table: a system with an optimizer; ``samples`` < the data set means a scaled fraction."""

    name: str
    system: str
    label: str
    optimizer: dict = field(default_factory=lambda: {"name": "sgd", "lr": LR})
    samples: int | None = None


def default_rows(course_samples: int) -> list[Row]:
    return [
        Row("mlpx-numpy", "mlpx-numpy", "mlpx NumPy (input_sparsity auto)"),
        Row("mlpx-numpy-dense", "mlpx-numpy-dense", "mlpx NumPy, dense first layer (input_sparsity dense)"),
        Row("mlpx-numpy-adam", "mlpx-numpy", "mlpx NumPy, Adam (lr 0.001)", {"name": "adam", "lr": 0.001}),
        Row("mlpx-numpy-momentum", "mlpx-numpy", "mlpx NumPy, momentum 0.9", {"name": "sgd", "lr": LR, "momentum": 0.9}),
        Row("mlpx-numpy-rmsprop", "mlpx-numpy", "mlpx NumPy, RMSProp (lr 0.001)", {"name": "rmsprop", "lr": 0.001}),
        Row("mlpx-numpy-reference", "mlpx-numpy-reference", "mlpx NumPy, plain NumpyOps (no fused CPU ops)"),
        Row("mlpx-cupy", "mlpx-cupy", "mlpx CuPy (GPU)"),
        Row("torch-eager", "torch-eager", "PyTorch eager (CPU)"),
        Row("torch-compile", "torch-compile", "PyTorch torch.compile (CPU)"),
        Row("torch-cuda", "torch-cuda", "PyTorch eager (CUDA)"),
        Row("torch-cuda-graphs", "torch-cuda-graphs", "PyTorch compile, CUDA graphs (CUDA)"),
        Row("sklearn", "sklearn", "scikit-learn MLPClassifier"),
        Row("jax-jit", "jax-jit", "JAX jit (CPU)"),
        Row("course-numpy", "course-numpy", "from-scratch course code (einsum, float64)", samples=course_samples),
        Row("blas-floor", "blas-floor", "BLAS floor (the products only)"),
    ]


def progress(message: str) -> None:
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def start_rows(rows: list[Row], args) -> tuple[dict, dict]:
    """Start and build one worker per row; returns (live clients, per-row build reports incl. the unavailable)."""
    clients, built = {}, {}
    for row in rows:
        progress(f"starting {row.name}")
        client = WorkerClient(row.name, args.threads, args.samples, args.synthetic, dataset=args.dataset)
        try:
            reply = client.request("build", system=row.system, layers=list(LAYERS), batch=BATCH,
                                   optimizer=row.optimizer, samples=row.samples)
        except WorkerError as err:
            reply = {"failed": str(err).splitlines()[0], "stderr": client.stderr_tail(800)}
        reply["label"] = row.label
        built[row.name] = reply
        if reply.get("ok"):
            clients[row.name] = client
        else:
            progress(f"  {row.name} not run: {reply.get('unavailable') or reply.get('failed')}")
            client.close()
    return clients, built


def time_rows(clients: dict, built: dict, rounds: int, warmup: int) -> tuple[dict, list]:
    """Warm-up epochs, then ``rounds`` interleaved timed epochs; returns per-row lists of epoch seconds and the
    foreign load (cores kept busy by other processes) of each round."""
    times = {name: [] for name in clients}
    for name, client in list(clients.items()):
        progress(f"warm-up {name}")
        start = time.perf_counter()
        try:
            for _ in range(warmup):
                client.request("epoch")
        except WorkerError as err:
            built[name].update(failed=f"warm-up: {str(err).splitlines()[0]}", stderr=client.stderr_tail(800))
            built[name].pop("ok", None)
            clients.pop(name).close()
            times.pop(name)
            continue
        built[name]["warmup_seconds"] = time.perf_counter() - start
    names = list(clients)
    load, foreign = ForeignLoad([c.proc.pid for c in clients.values()]), []
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        load.start()
        for name in order:
            times[name].append(clients[name].request("epoch")["epoch_seconds"])
        foreign.append(load.cores())
        progress(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names)
                 + f"; other processes kept {foreign[-1] or 0:.2f} cores busy")
    return times, foreign


def summarize(times: dict, built: dict, n_train: int) -> list[dict]:
    """Median, spread and ratios per row (ratio to mlpx NumPy SGD and to the BLAS floor; the paired ratio is the
    median over rounds of epoch / floor in the same round, which cancels the machine's slow drift)."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    base, floor = medians.get("mlpx-numpy"), medians.get("blas-floor")
    floor_rounds = times.get("blas-floor")
    table = []
    for name, report in built.items():
        entry = {"name": name, **{k: v for k, v in report.items() if k not in ("ok",)}}
        if name in medians:
            t, med = times[name], medians[name]
            entry.update(rounds=t, median_s=med, min_s=min(t), max_s=max(t), spread=(max(t) - min(t)) / med,
                         samples_per_s=n_train / med, ratio_to_mlpx=med / base if base else None,
                         ratio_to_floor=med / floor if floor else None,
                         ratio_to_floor_paired=(statistics.median(a / b for a, b in zip(t, floor_rounds))
                                                if floor_rounds else None),
                         scaled=report.get("samples", n_train) < n_train)
        table.append(entry)
    return table


def git_commit() -> str:
    """The short commit hash, with "-dirty" when tracked files differ from it (the numbers then belong to no commit)."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent).stdout.strip()
    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + ("-dirty" if commit and git("status", "--porcelain", "--untracked-files=no") else "")
    except OSError:
        return "unknown"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="BLAS/OpenMP threads for all")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--systems", default="", help="comma-separated row names (default: all)")
    parser.add_argument("--course-samples", type=int, default=3000,
                        help="samples the course implementation times per round (scaled to a full epoch)")
    parser.add_argument("--samples", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--synthetic", action="store_true", help="random data of MNIST's shape (timing only)")
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"],
                        help="the training data (from MLPX_DATA_DIR)")
    parser.add_argument("--scaling", action="store_true", help="also run the batch-size and width study")
    parser.add_argument("--scaling-rounds", type=int, default=3)
    parser.add_argument("--tta", action="store_true", help="also time training to 97%% test accuracy")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "docs" / "benchmarks"))
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    from . import report, studies

    args = parse_args(argv)
    rows = default_rows(args.course_samples)
    if args.systems:
        wanted = args.systems.split(",")
        unknown = set(wanted) - {r.name for r in rows}
        if unknown:
            raise SystemExit(f"unknown systems {sorted(unknown)}; expected some of {[r.name for r in rows]}")
        rows = [r for r in rows if r.name in wanted]
    started = time.perf_counter()
    clients, built = start_rows(rows, args)
    try:
        describe = next(iter(clients.values())).request("describe") if clients else {}
        n_train = describe.get("train_samples", 60000)
        times, foreign = time_rows(clients, built, args.rounds, args.warmup)
        results = {
            "command": " ".join([Path(sys.executable).name, "-m", "bench.compare", *(argv or sys.argv[1:])]),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": git_commit(), "threads": args.threads, "rounds": args.rounds, "warmup": args.warmup,
            "network": list(LAYERS), "batch": BATCH, "lr": LR, "data": describe.get("data"),
            "train_samples": n_train, "machine": describe.get("machine"),
            "env_unset": [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k not in os.environ],
            "env_set": {k: os.environ[k] for k in BLAS_ENV_VARS if k in os.environ},
            "table": summarize(times, built, n_train), "foreign_cores_per_round": foreign,
        }
        if args.tta:
            results["time_to_accuracy"] = studies.time_to_accuracy(clients)
        if args.scaling:
            results["scaling"] = studies.scaling(clients, args.scaling_rounds)
    finally:
        for client in clients.values():
            client.close()
    results["total_seconds"] = time.perf_counter() - started
    paths = report.write_all(results, Path(args.out))
    progress("wrote " + ", ".join(str(p) for p in paths))
    print(report.table_markdown(results))
    return results


if __name__ == "__main__":
    main()
