"""``mlpx info``: what this installation can use: versions, backends, the device ``auto`` picks, the BLAS."""
from __future__ import annotations

import platform
import sys
from importlib import metadata


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def info_lines() -> list[str]:
    """The lines ``mlpx info`` prints (importing no optional package except CuPy's availability probe)."""
    import numpy

    from .. import __version__, backend, threads

    lines = [f"mlpx {__version__} (Python {platform.python_version()}, {platform.system()} {platform.machine()})",
             f"numpy {numpy.__version__}"]
    for package in ("cupy-cuda12x", "cupy-cuda13x", "cupy", "matplotlib", "scikit-learn", "distributed", "torch",
                    "threadpoolctl", "tqdm"):
        version = _version(package)
        if version != "not installed" or not package.startswith("cupy-"):
            lines.append(f"{package} {version}")
    for lib in threads.blas_info():
        lines.append(f"BLAS: {lib.get('internal_api')} {lib.get('version')}, {lib.get('num_threads')} threads, "
                     f"threading {lib.get('threading_layer')}, CPU kernel {lib.get('architecture')} "
                     f"({lib.get('filepath')})")
    report = backend.backend_report()
    lines.append(f"chosen backend: {report.pop('default')}")
    lines += ["backends:"] + [f"  {k}: {v}" for k, v in report.items()]
    lines.append(_input_sparsity_line())
    return lines


def _input_sparsity_line() -> str:
    """Whether the sparse first layer can run here, and the density at which MLP(input_sparsity='auto') takes it."""
    from ..backend import get_ops

    ops = get_ops("numpy")
    if not ops.sparse_input:
        return (f"input sparsity: dense only ({type(ops).__name__} has no sparse-input kernels; they need Numba): "
                f"input_sparsity='auto' and 'sparse' train dense")
    from ..backend.sparse_input import CROSSOVER_DENSITY

    return (f"input sparsity: sparse first-layer kernels available ({type(ops).__name__}); input_sparsity='auto' "
            f"takes them when at most {CROSSOVER_DENSITY:.0%} of the training inputs are nonzero (measured "
            f"crossover; MNIST 19%: sparse, Fashion-MNIST 50% and standardized data: dense); the GPU backends "
            f"train dense")


def info() -> int:
    print("\n".join(info_lines()))
    sys.stdout.flush()
    return 0


def info_kernels(arch_spec: str | None = None) -> int:
    """``mlpx info --kernels``: compile every CUDA kernel through CuPy's NVRTC and say how it went.

    With a usable GPU and no ``--arch``: compiled for that device and loaded, exactly as training does (and kept in
    CuPy's disk cache). Otherwise (no GPU, or ``--arch`` given): compiled for each architecture (default sm_80 and
    sm_90) without loading, which needs no GPU, only CuPy and NVRTC. Exit 1 with the compiler's message on failure.
    """
    try:
        import cupy
    except ImportError as err:
        print(f"mlpx info --kernels: CuPy is not installed ({err}); pip install 'mlpx[gpu]' (CUDA 12) or "
              f"'mlpx[gpu-cuda13]'", file=sys.stderr)
        return 1
    from ..backend import cupy_status, get_ops
    from ..backend.device import CHECK_ARCHS, CupyDevice, cupy_cache_note, nvrtc_compile
    from ..backend.kernel_sources import instantiations, kernels_dir

    archs = ([a.strip().lower().removeprefix("sm_") for a in arch_spec.split(",") if a.strip()]
             if arch_spec else None)
    if archs is not None and not all(a.isdigit() for a in archs):
        print(f"mlpx info --kernels: --arch expects architectures like 80,90 (sm_80, sm_90), got {arch_spec!r}",
              file=sys.stderr)
        return 1
    usable, why = cupy_status()
    cache = CupyDevice.cache_dir()
    print(f"kernels: {len(instantiations())} instantiations from {kernels_dir()}, CuPy {cupy.__version__}, "
          f"options {' '.join(CupyDevice.NVRTC_OPTIONS)} (+ CuPy's -ftz=true)")
    try:
        if archs is None and usable:
            before = _count_files(cache)
            ops = get_ops("cupy")
            seconds = ops.warmup()
            print(f"device: {ops.device.describe()}: {len(instantiations())} kernels compiled (or loaded from the "
                  f"cache) and loaded in {seconds:.2f} s, and cuBLAS started")
            print(f"cache: {cupy_cache_note(cupy.__version__, cache)}; {_count_files(cache) - before} new files")
            return 0
        if archs is None:
            archs = list(CHECK_ARCHS)
            print(f"no GPU here, so compiling for {', '.join('sm_' + a for a in archs)} without loading ({why})")
        for arch in archs:
            result = nvrtc_compile(arch)
            print(f"sm_{arch}: {result['kernels']} kernels compiled by NVRTC {result['nvrtc']}, every name "
                  f"expression lowered, in {result['seconds']:.2f} s ({result['binary_bytes']} bytes of cubin)")
        print(f"cache: {cache} is not used by this check (compiled, not loaded); on a GPU, training keeps the "
              f"kernels there: {cupy_cache_note(cupy.__version__, cache)}")
        return 0
    except Exception as err:  # CompileException carries NVRTC's log; a missing library says which
        print(f"mlpx info --kernels: compiling the kernels failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1


def _count_files(folder) -> int:
    try:
        return sum(1 for p in folder.rglob("*") if p.is_file())
    except OSError:
        return 0
