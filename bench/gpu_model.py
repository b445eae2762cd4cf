"""GPU on paper: launches per training step, counted without a GPU, and a model of the step time they imply.

    .venv/bin/python -m bench.gpu_model --out docs/benchmarks      # writes gpu_counts.json (gpu.md cites it)

* mlpx: the CuPy backend's own orchestration runs over the emulated device (the same kernels compiled by g++),
  whose counters see every kernel launch, matrix product and host synchronization. Per-step figures are the
  difference between an epoch of 2N and of N steps, divided by N, so per-epoch work (shuffle upload, the
  read-back at the end) is reported apart.
* PyTorch eager: the same step (forward, cross-entropy, backward, SGD, plus the loss/accuracy accumulation that
  mlpx's step also does) under the PyTorch profiler on the CPU. Every outermost ATen op that computes something
  is one CUDA kernel launch or more: ops that only make views, allocate or read host scalars launch nothing,
  composite ops (linear, cross_entropy_loss, ...) are counted through what they call, and what a computing op
  calls inside (addmm's bias copy, sum's fill on the CPU) is part of it. The count is a lower bound: on CUDA some
  ops launch two kernels (nll_loss_backward zero-fills first). torch.optim uses its foreach implementation on
  CUDA, so it is profiled with ``foreach=True`` (one ``_foreach_*`` op per update stage for all parameters).
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from .common import BATCH, LAYERS

# ATen ops that only create views, reshape metadata or allocate: no kernel on CUDA.
NO_KERNEL = {"aten::view", "aten::t", "aten::transpose", "aten::as_strided", "aten::detach", "aten::detach_",
             "aten::expand", "aten::reshape", "aten::_reshape_alias", "aten::unsqueeze", "aten::squeeze",
             "aten::permute", "aten::empty", "aten::empty_strided", "aten::empty_like", "aten::resolve_conj",
             "aten::resolve_neg", "aten::alias", "aten::lift_fresh", "aten::select", "aten::slice",
             "aten::_unsafe_view", "aten::result_type", "aten::numpy_T", "aten::contiguous", "aten::to",
             "aten::_to_copy", "aten::is_nonzero", "aten::_local_scalar_dense", "aten::item", "detach"}
# Composite ops: they only call other ops, which are counted instead.
COMPOSITE = {"aten::linear", "aten::relu", "aten::cross_entropy_loss", "aten::log_softmax", "aten::nll_loss_nd",
             "aten::nll_loss", "aten::ones_like", "aten::zeros_like"}


def count_mlpx(optimizer: str, steps: int = 4) -> dict:
    """Launches, products and syncs per step of the CuPy backend's code, over the emulated device."""
    import mlpx
    from mlpx.backend.cupy_ops import make_emulated_ops

    ops = make_emulated_ops()
    names = Counter()
    launch = ops.device.launch

    def named_launch(spec, *args, **kwargs):
        names[spec.name] += 1
        return launch(spec, *args, **kwargs)

    ops.device.launch = named_launch
    rng = np.random.default_rng(0)
    x = rng.random((2 * steps * BATCH, LAYERS[0]), dtype=np.float32)
    y = rng.integers(0, LAYERS[-1], len(x))
    opt = mlpx.optim.SGD(lr=0.01) if optimizer == "sgd" else mlpx.optim.Adam(lr=0.001)
    model = mlpx.MLP(list(LAYERS), activation="relu", seed=0, backend=ops)
    model.compile(loss="cross_entropy", optimizer=opt)
    x_dev, y_dev = ops.asarray(x), ops.asarray(y)
    model.fit(x_dev[:BATCH], y_dev[:BATCH], epochs=1, batch_size=BATCH, verbose=0)   # first-use allocations
    counts = []
    for n in (steps, 2 * steps):
        names.clear()
        before = ops.counters.snapshot()
        model.fit(x_dev[:n * BATCH], y_dev[:n * BATCH], epochs=1, batch_size=BATCH, verbose=0)
        counts.append((ops.counters.since(before), Counter(names)))
    (small, small_names), (large, large_names) = counts
    per_step = {k: (large[k] - small[k]) / steps for k in large}
    per_epoch = {k: small[k] - steps * per_step[k] for k in small}
    kernels = {k: (large_names[k] - small_names[k]) / steps for k in large_names}
    return {"per_step": per_step, "per_epoch_fixed": per_epoch, "kernels_per_step": kernels}


def count_torch(optimizer: str, steps: int = 3) -> dict:
    """Leaf ATen ops per training step of PyTorch eager, as the profiler sees them on the CPU."""
    import torch
    from torch import nn
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    layers = []
    for i, (a, b) in enumerate(zip(LAYERS[:-1], LAYERS[1:])):
        layers += [nn.Linear(a, b)] + ([nn.ReLU()] if i < len(LAYERS) - 2 else [])
    model, loss_fn = nn.Sequential(*layers), nn.CrossEntropyLoss()
    opt = (torch.optim.SGD(model.parameters(), lr=0.01, foreach=True) if optimizer == "sgd"
           else torch.optim.Adam(model.parameters(), lr=0.001, foreach=True))
    x, y = torch.rand(BATCH * (steps + 2), LAYERS[0]), torch.randint(0, LAYERS[-1], (BATCH * (steps + 2),))
    order = torch.randperm(len(x))
    loss_sum, correct = torch.zeros(()), torch.zeros((), dtype=torch.int64)

    def step(i):
        nonlocal loss_sum, correct
        index = order[i * BATCH:(i + 1) * BATCH]
        xb, yb = x[index], y[index]
        logits = model(xb)
        loss = loss_fn(logits, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.detach() * len(yb)
        correct += (logits.detach().argmax(dim=1) == yb).sum()

    step(0), step(1)                                         # warm-up: optimizer state, autograd caches
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(2, 2 + steps):
            step(i)
    leaves = Counter()

    def visit(event):
        name = event.name
        if name.startswith("aten::") and name not in NO_KERNEL and name not in COMPOSITE:
            leaves[name] += 1                            # a computing op: what it calls inside is part of it
            return
        for child in event.cpu_children:
            visit(child)

    for event in prof.events():
        if event.cpu_parent is None:
            visit(event)
    per_step = {k: v / steps for k, v in sorted(leaves.items(), key=lambda kv: -kv[1])}
    return {"per_step_ops": per_step, "launches_per_step": sum(per_step.values()),
            "torch": torch.__version__, "foreach": True}


def step_model(launches: float, host_us: float, kernel_us: float, compute_us: float) -> dict:
    """Step time when the host issues ``launches`` at ``host_us`` each and the GPU needs at least ``kernel_us`` per
    launch or ``compute_us`` of arithmetic in all: the slower of the two pipelines sets the pace."""
    host = launches * host_us
    device = max(launches * kernel_us, compute_us)
    step_us = max(host, device)
    return {"host_us": host, "device_us": device, "step_us": step_us, "samples_per_s": BATCH / step_us * 1e6,
            "epoch_s": 60000 / BATCH * step_us / 1e6, "bound": "host (launch latency)" if host >= device
            else "device"}


HOST_US = (5.0, 10.0, 20.0)     # host cost per launch (Python/C++ dispatch + cudaLaunchKernel), microseconds
KERNEL_US = 2.5                 # shortest launch-to-launch time of a tiny kernel on a recent GPU
GEMM_TFLOPS = 10.0              # what cuBLAS sustains on these small fp32 products (assumed; far below peak)


def step_flops() -> float:
    from .floor import epoch_flops

    return epoch_flops(LAYERS, BATCH)


def gpu_markdown(result: dict) -> str:
    compute_us = step_flops() / (GEMM_TFLOPS * 1e12) * 1e6
    lines = ["# mlpx on the GPU, on paper", "",
             "No GPU was available where this was written, so this page models one training step of "
             f"{'-'.join(map(str, LAYERS))} at batch {BATCH} from counted launches; the real numbers come from "
             "the commands at the end. Counts: `python -m bench.gpu_model --out docs/benchmarks` "
             "(gpu_counts.json): mlpx's CuPy backend code run over the emulated device (its counters see every "
             "kernel launch, cuBLAS product and host synchronization); PyTorch eager's step under the PyTorch "
             f"profiler on the CPU (torch {result['torch_sgd'].get('torch', '?')}, optimizers with "
             "`foreach=True` as on CUDA), counting each computing ATen op once (a lower bound on its launches).",
             "The mlpx counts agree with those the CuPy backend publishes in [docs/kernels.md](../kernels.md) "
             "(`python -m mlpx.backend.step_counts`).", "", "## Launches per training step", "",
             "| | mlpx CuPy, SGD | PyTorch eager, SGD | mlpx CuPy, Adam | PyTorch eager, Adam |",
             "|---|---:|---:|---:|---:|"]
    launches = {k: (result[k]["per_step"]["launches"] if k.startswith("mlpx") else result[k].get("launches_per_step"))
                for k in ("mlpx_sgd", "torch_sgd", "mlpx_adam", "torch_adam")}
    syncs = [result["mlpx_sgd"]["per_step"]["syncs"], result["mlpx_adam"]["per_step"]["syncs"]]
    lines.append("| kernel launches (incl. matrix products) | " + " | ".join(f"{launches[k]:g}" for k in launches)
                 + " |")
    lines.append(f"| of which matrix products | {result['mlpx_sgd']['per_step']['gemms']:g} | 11 (4 addmm + 7 mm) | "
                 f"{result['mlpx_adam']['per_step']['gemms']:g} | 11 |")
    lines.append(f"| host synchronizations | {syncs[0]:g} | 0 | {syncs[1]:g} | 0 |")
    lines += ["", "mlpx kernels per step: " + ", ".join(f"{k} x{v:g}" for k, v in
                                                       result["mlpx_sgd"]["kernels_per_step"].items())
              + f"; per epoch on top: {result['mlpx_sgd']['per_epoch_fixed']}.",
              "PyTorch ops per step (SGD): " + ", ".join(f"{k[6:]} x{v:g}" for k, v in
                                                        result["torch_sgd"]["per_step_ops"].items()) + ".",
              "PyTorch Adam adds `_foreach_lerp_/mul_/addcmul_/sqrt/div_/addcdiv_` and a `_foreach_add_` on the "
              "step counters, which live on the host when `capturable=False` (so Adam's true GPU count is one "
              "lower than shown).", "",
              "## Model of one step", "",
              "The host issues launches one after another; the GPU runs them as they come. A step takes the "
              "longer of the two pipelines: host time = launches x host cost per launch; device time = "
              f"max(launches x {KERNEL_US} us (the shortest launch-to-launch time of a tiny kernel), arithmetic). "
              f"Arithmetic: {step_flops() / 1e6:.0f} MFLOP per step at an assumed {GEMM_TFLOPS:g} TFLOP/s for "
              f"these small fp32 products = {compute_us:.0f} us (elementwise work moves a few MB: about 5 us at "
              "HBM speeds). Data stays on the device (no transfers inside an epoch).", "",
              "| host cost per launch | mlpx SGD step | PyTorch SGD step | mlpx epoch | PyTorch epoch | bound |",
              "|---:|---:|---:|---:|---:|---|"]
    for host in HOST_US:
        ours = step_model(launches["mlpx_sgd"], host, KERNEL_US, compute_us)
        theirs = step_model(launches["torch_sgd"], host, KERNEL_US, compute_us)
        lines.append(f"| {host:g} us | {ours['step_us']:.0f} us | {theirs['step_us']:.0f} us | "
                     f"{ours['epoch_s']:.2f} s | {theirs['epoch_s']:.2f} s | {ours['bound']} |")
    ratio = launches["torch_sgd"] / launches["mlpx_sgd"]
    lines += ["", f"At batch 64 both are bound by launch latency, not arithmetic: the GPU would finish a step's "
              f"arithmetic in about {compute_us:.0f} us. At the same cost per launch mlpx's step is "
              f"{ratio:.2f}x shorter than PyTorch eager's (SGD) and "
              f"{launches['torch_adam'] / launches['mlpx_adam']:.2f}x (Adam), because its fused kernels do in "
              "one launch what PyTorch does in several (bias+activation, activation backward+bias gradient, "
              "softmax+loss+accuracy+gradient, the whole optimizer update). The cost per launch is not the same: "
              "CuPy launches from Python (about 10 us per call, more for cuBLAS through CuPy's wrappers), PyTorch "
              "dispatches from C++ (about 5 us per op, and its backward runs entirely in the C++ autograd engine). "
              "If CuPy's cost per launch is "
              f"{ratio:.1f}x PyTorch's, the two are even. Batch size moves the balance: arithmetic grows with it, "
              "launches do not, so from a few thousand samples per batch both become compute-bound and run at "
              "cuBLAS speed. The way past launch latency at small batches is a CUDA graph of the whole step "
              "(PyTorch: `torch.compile(mode=\"reduce-overhead\")`); CuPy refuses cuBLAS calls during graph "
              "capture, so mlpx cannot do that yet (DESIGN.md).", "",
              "## Real numbers on a GPU machine", "", "```bash",
              "pip install -e \".[dev,gpu,bench]\"     # CuPy for CUDA 12; torch-cuda needs a CUDA build of PyTorch",
              "export MLPX_DATA_DIR=/path/to/mnist",
              "pytest -m gpu                                            # CuPy backend against NumPy, op by op",
              "python -m bench.compare \\",
              "    --systems mlpx-numpy,mlpx-cupy,torch-eager,torch-cuda,torch-cuda-graphs,blas-floor \\",
              "    --rounds 5 --out docs/benchmarks/gpu                 # side by side, epoch times",
              "pytest bench/ --benchmark-only -k cupy --benchmark-autosave   # per-op and epoch benchmarks on the GPU",
              "```", "",
              "`mlpx-cupy` puts the data on the device once and synchronizes at the end of each timed epoch; "
              "`torch-cuda` and `torch-cuda-graphs` read the epoch's loss back at the end (a synchronization). "
              "Compare the measured step time (epoch seconds / 938) with the table above to read off the real "
              "cost per launch."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="folder for gpu_counts.json and gpu.md (default: print)")
    args = parser.parse_args(argv)
    result = {"batch": BATCH, "layers": list(LAYERS)}
    for opt in ("sgd", "adam"):
        result[f"mlpx_{opt}"] = count_mlpx(opt)
        result[f"torch_{opt}"] = count_torch(opt)
    text = gpu_markdown(result)
    if args.out:
        from mlpx._io import atomic_write_text

        atomic_write_text(Path(args.out) / "gpu_counts.json", json.dumps(result, indent=1))
        atomic_write_text(Path(args.out) / "gpu.md", text)
    print(text)
    return result


if __name__ == "__main__":
    main()
