"""The GPU acceptance run: one command on a GPU machine, offline, data from MLPX_DATA_DIR, a Markdown report.

    python -m bench.gpu_acceptance --out DIR                      # on a GPU (<= 8 minutes on one GPU)
    python -m bench.gpu_acceptance --out DIR --backend emulated   # the same script on the CPU (reduced sizes)

Steps, each recorded (passed / failed / skipped, with the reason) in DIR/report.md and DIR/results.json:

1. ``mlpx info --kernels``: every kernel compiled through CuPy's NVRTC (for the device; for sm_80/sm_90 without one).
2. the ``gpu``-marked tests (``pytest -m gpu``): the CuPy backend against NumPy, op by op and in training.
3. launches, host synchronizations, uploads and allocations per training step of 784-500-250-100-10 at batch 64,
   counted on the device (host reads of device arrays included), against the budget (<= 24 launches, 0 syncs).
4. the step time, measured with CUDA events around 200 steps (perf_counter on the emulated device), set against
   the paper model of docs/benchmarks/gpu.md: launches x host cost per launch, so the real cost per launch reads off.
5. epoch times side by side (``bench.compare``): mlpx-cupy, and torch-cuda / torch-cuda-graphs when a CUDA build of
   PyTorch is present, with the CPU rows (mlpx-numpy, torch-eager) beside them.
6. one 15-epoch reference run (SGD lr 0.01, batch 64, seed 0) on the device: test accuracy and seconds.

With ``--backend emulated`` every step runs over the CPU emulation of the kernels with reduced sizes (fewer steps,
a data subset, 1 epoch), so CI proves the script end to end and on a GPU only the device differs.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from .common import BATCH, LAYERS

PAPER_HOST_US = (5.0, 10.0, 20.0)      # the host costs per launch the paper model of docs/benchmarks/gpu.md uses
ROOT = Path(__file__).resolve().parent.parent


def _sizes(emulated: bool) -> dict:
    """Full sizes on a GPU; on the emulated device, small enough for CI (about half a minute on 2 cores)."""
    if emulated:
        return {"timed_steps": 10, "train_samples": 1024, "epochs": 1, "compare": False, "count_cases": 2}
    return {"timed_steps": 200, "train_samples": None, "epochs": 15, "compare": True, "count_cases": 5}


def _run(cmd: list[str], timeout: float) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as err:
        return {"status": "failed", "reason": f"timed out after {timeout:.0f} s", "command": " ".join(cmd),
                "output": (err.stdout or "")[-3000:] if isinstance(err.stdout, str) else ""}
    output = (done.stdout + done.stderr)[-6000:]
    return {"status": "passed" if done.returncode == 0 else "failed", "returncode": done.returncode,
            "seconds": round(time.perf_counter() - start, 2), "command": " ".join(cmd), "output": output}


def step_kernels() -> dict:
    try:
        import cupy  # noqa: F401
    except ImportError as err:
        return {"status": "skipped", "reason": f"CuPy is not installed ({err})"}
    return _run([sys.executable, "-m", "mlpx", "info", "--kernels"], timeout=300)


def step_gpu_tests(emulated: bool) -> dict:
    target = ["tests/test_cupy_gpu.py"] if emulated else ["tests"]
    result = _run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", *target],
                  timeout=300)
    tail = [line for line in result.get("output", "").splitlines() if line.strip()][-1:] or [""]
    result["summary"] = tail[0]
    if result["status"] == "failed" and result.get("returncode") == 5:      # nothing ran (no gpu tests collected)
        result["status"] = "skipped"
    elif result["status"] == "passed" and " passed" not in tail[0]:
        result["status"] = "skipped"
        result["reason"] = "every gpu test skipped: " + tail[0]
    return result


def _ops(backend: str):
    from mlpx.backend.cupy_ops import make_cupy_ops, make_emulated_ops

    return make_cupy_ops(count_host_reads=True) if backend == "cupy" else make_emulated_ops()


def step_counts(backend: str, cases: int) -> dict:
    from mlpx.backend import step_counts as sc

    rows = sc.reference_counts(backend, BATCH, LAYERS, cases=sc.CASES[:cases])
    ok = all(r["launches"] <= 24 and r["syncs"] == 0 and r["uploads"] == 0 and r["allocations"] == 0 for r in rows)
    return {"status": "passed" if ok else "failed", "rows": rows,
            "reason": None if ok else "over the budget (<= 24 launches, 0 syncs, uploads, allocations per step)"}


def step_time(backend: str, steps: int) -> dict:
    """Seconds per training step: CUDA events around ``steps`` steps on the GPU, perf_counter on the emulation."""
    import mlpx
    from mlpx.policy import training_policy

    ops = _ops(backend)
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=ops).compile(optimizer="sgd")
    rng = np.random.default_rng(0)
    x, y = model.to_backend(rng.random((BATCH * 8, LAYERS[0]), dtype=np.float32),
                            rng.integers(0, 10, BATCH * 8))
    order = ops.asarray(np.arange(BATCH * 8, dtype=np.int64))
    stats = ops.zeros(2, np.float64)
    policy = training_policy(model)          # once, as fit decides it: not part of a step's host cost

    def one(step):
        index = order[(step % 8) * BATCH:][:BATCH]
        model._train_batch(x, y, index, stats, policy=policy)

    for step in range(3):                                  # warm-up: compile, allocate, start cuBLAS
        one(step)
    ops.synchronize()
    before = ops.counters.snapshot()
    if backend == "cupy":
        import cupy

        start_event, stop_event = cupy.cuda.Event(), cupy.cuda.Event()
        host_start = time.perf_counter()
        start_event.record()
        for step in range(steps):
            one(step)
        stop_event.record()
        host_seconds = time.perf_counter() - host_start   # issuing only: the host never waited inside the loop
        stop_event.synchronize()
        seconds = cupy.cuda.get_elapsed_time(start_event, stop_event) / 1000.0
        clock = "CUDA events"
    else:
        host_start = time.perf_counter()
        for step in range(steps):
            one(step)
        seconds = host_seconds = time.perf_counter() - host_start
        clock = "perf_counter (emulated device: the kernels run on the CPU)"
    counts = ops.counters.since(before)
    launches = counts["launches"] / steps
    step_us = seconds / steps * 1e6
    model_rows = [{"host_us_per_launch": h, "model_step_us": launches * h} for h in PAPER_HOST_US]
    return {"status": "passed", "clock": clock, "steps": steps, "step_us": round(step_us, 1),
            "host_issue_us": round(host_seconds / steps * 1e6, 1), "launches_per_step": launches,
            "syncs_in_loop": counts["syncs"], "implied_us_per_launch": round(step_us / launches, 2),
            "paper_model": model_rows, "epoch_seconds_938_steps": round(seconds / steps * 938, 3)}


def step_compare(emulated: bool, out: Path, timeout: float = 240) -> dict:
    if emulated:
        return {"status": "skipped", "reason": "--backend emulated: bench.compare times real devices only "
                                               "(the emulated epoch is in the reference-run step)"}
    systems = ["mlpx-numpy", "mlpx-cupy", "torch-eager"]
    try:
        import torch

        if torch.cuda.is_available():
            systems += ["torch-cuda", "torch-cuda-graphs"]
    except ImportError:
        pass
    result = _run([sys.executable, "-m", "bench.compare", "--systems", ",".join(systems), "--rounds", "3",
                   "--out", str(out / "compare")], timeout=timeout)
    result["systems"] = systems
    table = out / "compare" / "compare.md"
    if table.is_file():
        result["table"] = table.read_text()
    return result


def step_reference_run(backend: str, sizes: dict) -> dict:
    import mlpx

    data = mlpx.datasets.load_mnist(download=False)
    n = sizes["train_samples"]
    x, y = (data.x_train[:n], data.y_train[:n]) if n else (data.x_train, data.y_train)
    x_test, y_test = (data.x_test[:n], data.y_test[:n]) if n else (data.x_test, data.y_test)
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=_ops(backend))
    model.compile(loss="cross_entropy", optimizer=mlpx.optim.SGD(lr=0.01))
    start = time.perf_counter()
    model.fit(x, y, epochs=sizes["epochs"], batch_size=BATCH, verbose=0)
    model.ops.synchronize()
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(model.predict(x_test) == y_test))
    return {"status": "passed", "epochs": sizes["epochs"], "train_samples": int(x.shape[0]),
            "test_samples": int(x_test.shape[0]), "test_accuracy": round(accuracy, 4), "seconds": round(seconds, 2),
            "source": str(data.source)}


def _guard(name: str, fn, *args) -> dict:
    start = time.perf_counter()
    try:
        result = fn(*args)
    except Exception as err:  # noqa: BLE001  (one failing step must not hide the others)
        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
    result.setdefault("seconds", round(time.perf_counter() - start, 2))
    print(f"gpu_acceptance: {name}: {result['status']} ({result['seconds']} s)", file=sys.stderr, flush=True)
    return result


def markdown(results: dict) -> str:
    lines = [f"# mlpx GPU acceptance run ({results['backend']})", "",
             f"{results['when']}, {results['device']}, mlpx {results['mlpx']}, total {results['seconds']} s.", "",
             "| step | status | seconds | note |", "|---|---|---:|---|"]
    for name, step in results["steps"].items():
        note = step.get("reason") or step.get("summary") or ""
        lines.append(f"| {name} | {step['status']} | {step.get('seconds', '')} | {str(note)[:160]} |")
    counts = results["steps"].get("counts", {})
    if counts.get("rows"):
        lines += ["", "## Per training step (784-500-250-100-10, batch 64)", "",
                  "| activation | loss | optimizer | launches | gemms | host syncs | uploads | allocations |",
                  "|---|---|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['activation']} | {r['loss']} | {r['optimizer']} | {r['launches']:g} | {r['gemms']:g} | "
                  f"{r['syncs']:g} | {r['uploads']:g} | {r['allocations']:g} |" for r in counts["rows"]]
    timing = results["steps"].get("step_time", {})
    if timing.get("status") == "passed":
        lines += ["", "## Step time against the paper model", "",
                  f"Measured ({timing['clock']}, {timing['steps']} steps): {timing['step_us']} us per step "
                  f"({timing['launches_per_step']:g} launches, {timing['syncs_in_loop']} host syncs in the loop; "
                  f"the host took {timing['host_issue_us']} us per step to issue them): "
                  f"{timing['implied_us_per_launch']} us per launch, about {timing['epoch_seconds_938_steps']} s "
                  f"per 938-step epoch.", "", "| host cost per launch (model) | model step |", "|---:|---:|"]
        lines += [f"| {r['host_us_per_launch']:g} us | {r['model_step_us']:.0f} us |" for r in timing["paper_model"]]
    ref = results["steps"].get("reference_run", {})
    if ref.get("status") == "passed":
        lines += ["", "## Reference run", "",
                  f"{ref['epochs']} epoch(s), {ref['train_samples']} training images, SGD lr 0.01, batch 64, "
                  f"seed 0: test accuracy {ref['test_accuracy']} on {ref['test_samples']} images in "
                  f"{ref['seconds']} s ({ref['source']})."]
    compare = results["steps"].get("compare", {})
    if compare.get("table"):
        lines += ["", "## Epoch times side by side", "", compare["table"]]
    failed = [n for n, s in results["steps"].items() if s["status"] == "failed"]
    lines += ["", f"**{'FAILED: ' + ', '.join(failed) if failed else 'No step failed.'}**", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for report.md and results.json")
    parser.add_argument("--backend", default="cupy", choices=["cupy", "emulated"])
    parser.add_argument("--skip", default="", help="comma-separated steps to leave out (e.g. gpu_tests,compare)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emulated = args.backend == "emulated"
    sizes = _sizes(emulated)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    import mlpx

    if not emulated:
        mlpx.require_gpu()                 # says why not, before spending minutes
    device = _ops(args.backend).device.describe()
    start = time.perf_counter()
    plan = {"kernels": (step_kernels,), "gpu_tests": (step_gpu_tests, emulated),
            "counts": (step_counts, args.backend, sizes["count_cases"]),
            "step_time": (step_time, args.backend, sizes["timed_steps"]),
            "compare": (step_compare, emulated, out), "reference_run": (step_reference_run, args.backend, sizes)}
    steps = {}
    for name, (fn, *fn_args) in plan.items():
        steps[name] = ({"status": "skipped", "reason": "--skip", "seconds": 0} if name in skip
                       else _guard(name, fn, *fn_args))
    results = {"backend": args.backend, "device": device, "mlpx": mlpx.__version__, "sizes": sizes,
               "when": time.strftime("%Y-%m-%d %H:%M:%S"), "seconds": round(time.perf_counter() - start, 1),
               "steps": steps}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "report.md").write_text(markdown(results))
    print(f"gpu_acceptance: report in {out / 'report.md'}")
    return 1 if any(s["status"] == "failed" for s in steps.values()) else 0


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.exit(main())
