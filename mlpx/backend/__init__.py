"""Backend choice: ``"numpy"``, ``"cupy"`` or ``"auto"`` (and ``"emulated"``: the CuPy backend's code over a CPU
emulation of its CUDA kernels, for checking the GPU path without a GPU; slow, not for training).

Order: an explicit ``backend=`` argument, then :func:`set_backend`, then the ``MLPX_BACKEND`` environment variable,
then ``"auto"``. ``"auto"`` picks CuPy only when ``cupy.is_available()`` is true, and always says what it chose and
why (on stderr, once per process): never a silent fallback.
"""
from __future__ import annotations

import os
import sys

from .numpy_ops import NumpyOps

BACKENDS = ("auto", "numpy", "cupy", "emulated")
_default_backend: str | None = None
_reported_auto = False
_ops_cache: dict = {}


def set_backend(name: str) -> None:
    """Set the process-wide default backend used when a model is built with ``backend=None``."""
    global _default_backend
    _default_backend = check_backend_name(name)


def check_backend_name(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return name


def cupy_status() -> tuple[bool, str]:
    """(usable, reason): whether CuPy can run here, and why not when it cannot. Imports CuPy lazily."""
    try:
        import cupy
    except ImportError as err:
        return False, f"CuPy is not installed ({err}); install it with pip install 'mlpx[gpu]'"
    libraries = cuda_libraries_problem(cupy)
    also = f"; and {libraries}" if libraries else ""
    try:
        if not cupy.is_available():
            return False, ("CuPy is installed but reports no usable CUDA device (cupy.is_available() is False): "
                           f"{_cuda_failure(cupy)}{also}")
        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver errors come in many classes
        return False, f"CuPy is installed but CUDA failed: {type(err).__name__}: {err}{also}"
    if libraries:
        return False, f"CuPy found a CUDA device, but {libraries}"
    return True, "CuPy found a CUDA device, and cuBLAS and NVRTC load"


_libraries_checked: dict = {}


def cuda_libraries_problem(cupy) -> str | None:
    """Whether the two CUDA libraries the GPU backend needs load: cuBLAS (matrix products) and NVRTC (compiling
    the kernels). ``cupy.is_available()`` only counts devices, and CuPy's wheels carry neither library, so without
    this check a CuPy missing them would be chosen and fail at the first model or the first step. Needs no device;
    checked once per process. Returns None when both load, else what is missing and how to install it."""
    key = id(cupy)
    if key not in _libraries_checked:
        import importlib

        problems = []
        try:
            importlib.import_module(f"{cupy.__name__}.cublas")
        except Exception as err:  # ImportError "Failure finding libcublasLt.so...", or a loader error
            problems.append(f"cuBLAS does not load ({type(err).__name__}: {str(err).strip()})")
        try:
            cupy.cuda.nvrtc.getVersion()     # loads libnvrtc (cupy_backends.cuda.libs.nvrtc)
        except Exception as err:
            problems.append(f"NVRTC does not load ({type(err).__name__}: {str(err).strip()})")
        _libraries_checked[key] = (None if not problems else
                                   "CuPy cannot load the CUDA libraries mlpx needs: " + "; ".join(problems) +
                                   ". CuPy's wheels do not include them: pip install 'mlpx[gpu]' (CUDA 12) or "
                                   "'mlpx[gpu-cuda13]' brings them, or install a CUDA toolkit")
    return _libraries_checked[key]


def _cuda_failure(cupy) -> str:
    """Why CUDA is unusable, in CUDA's words: no device, no driver, or a driver older than CuPy's CUDA runtime."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:
        cause = f"{type(err).__name__}: {err}"
    else:
        cause = f"{count} CUDA device(s) visible, but none usable"
    try:
        driver, runtime = cupy.cuda.runtime.driverGetVersion(), cupy.cuda.runtime.runtimeGetVersion()
    except Exception:
        return cause
    if driver == 0:
        cause += "; no NVIDIA driver is installed (or no GPU is visible to this process)"
    elif driver < runtime:
        cause += f"; the NVIDIA driver is too old (supports CUDA {driver}, CuPy is built for CUDA {runtime})"
    return cause


def resolve_backend(name: str | None = None) -> tuple[str, str]:
    """Turn a requested backend (or None for the default) into a concrete one: (name, reason)."""
    requested = name or _default_backend or _env_choice("MLPX_BACKEND", BACKENDS) or "auto"
    check_backend_name(requested)
    if requested != "auto":
        return requested, f"backend {requested!r} requested"
    usable, why = cupy_status()
    return ("cupy" if usable else "numpy"), f"backend 'auto' chose {'cupy' if usable else 'numpy'}: {why}"


def get_ops(name=None):
    """The ops object for a backend name (or the default); reports the choice when 'auto' decided.
    An ops object (e.g. ``make_emulated_ops(...)``) is returned as it is."""
    global _reported_auto
    if isinstance(name, NumpyOps):
        return name
    chosen, reason = resolve_backend(name)
    if reason.startswith("backend 'auto'") and not _reported_auto:
        print(f"mlpx: {reason}", file=sys.stderr)
        _reported_auto = True
    if chosen not in _ops_cache:
        if chosen == "numpy":
            _ops_cache[chosen] = cpu_ops()
        elif chosen == "emulated":
            from .cupy_ops import make_emulated_ops

            _ops_cache[chosen] = make_emulated_ops()
        else:
            from .cupy_ops import make_cupy_ops

            _ops_cache[chosen] = make_cupy_ops()
    return _ops_cache[chosen]


def _env_choice(variable: str, accepted) -> str | None:
    """An environment variable's value (None when unset or empty), refused unless one of ``accepted``: a typo
    there must not silently select something else."""
    value = os.environ.get(variable) or None
    if value is not None and value not in accepted:
        raise ValueError(f"the environment variable {variable} is {value!r}; expected one of "
                         f"{', '.join(accepted)} (or leave it unset)")
    return value


def cpu_ops() -> NumpyOps:
    """The CPU backend: NumbaOps (fused kernels) when Numba imports and MLPX_NUMBA is not "0", else NumpyOps."""
    if _env_choice("MLPX_NUMBA", ("0", "1")) != "0":
        try:
            from .numba_ops import NumbaOps
        except ImportError as err:
            print(f"mlpx: Numba unavailable ({err}); using the plain NumPy CPU backend (slower)", file=sys.stderr)
        else:
            return NumbaOps()
    return NumpyOps()


def _kernels_cannot_run(err: Exception) -> str:
    """The cause when CuPy sees a GPU but building or compiling mlpx's kernels fails (missing cuBLAS or NVRTC,
    a compile error)."""
    return f"CuPy sees a GPU but mlpx's kernels cannot run: {type(err).__name__}: {err}"


def require_gpu() -> None:
    """Fail loudly, with the cause, unless the CuPy backend can run here (its kernels are compiled to be sure)."""
    usable, why = cupy_status()
    if not usable:
        raise RuntimeError(f"mlpx.require_gpu(): no GPU backend: {why}")
    try:
        get_ops("cupy").warmup()
    except Exception as err:  # missing cuBLAS/NVRTC libraries, compile errors: say which
        raise RuntimeError(f"mlpx.require_gpu(): {_kernels_cannot_run(err)}") from err


def warmup(backend=None) -> dict:
    """Compile every kernel of ``backend`` (default: the usual choice) now, not at the first training step.

    Returns ``{"backend": name, "seconds": compile or cache-load time}``; the NumPy backend has nothing to compile.
    """
    ops = get_ops(backend)
    seconds = ops.warmup() if hasattr(ops, "warmup") else 0.0
    return {"backend": ops.name, "seconds": seconds}


def _thread_sharing(fused: bool) -> str:
    if not fused:
        return "no (NumpyOps has no parallel kernels)"
    from .blas_pool import unavailable_reason

    why_not = unavailable_reason()
    if why_not is None:
        return ("yes: fit with momentum, RMSProp or Adam, and any optimizer (plain SGD too) on the sparse first-layer "
                "path, runs OpenBLAS's jobs and the parallel optimizer and sparse-layer kernels on Numba's threads "
                "(mlpx.policy.share_blas_threads, mlpx.backend.blas_pool)")
    return f"no, the optimizer pass runs on one core: {why_not}"


def backend_report() -> dict:
    """What ``mlpx info`` prints about backends: which can run here and why not, the default choice, the GPU,
    where compiled kernels are cached and how long compiling them took (this compiles them when CuPy can run)."""
    from .emulated import compiler, kernel_cache_dir
    from .kernel_sources import kernels_dir

    usable, why = cupy_status()
    chosen, reason = resolve_backend(None)
    fused = type(get_ops("numpy")).__name__ == "NumbaOps"  # (by name: importing numba_ops fails without Numba)
    cpu_kind = ("fused Numba CPU kernels (NumbaOps)" if fused
                else "plain NumPy reference (NumpyOps; Numba unavailable or MLPX_NUMBA=0)")
    report = {"numpy": f"available: {cpu_kind}", "cupy": "available" if usable else f"unavailable: {why}",
              "emulated": (f"available (C++ compiler {compiler()})" if compiler() else
                           "unavailable: no C++ compiler (g++) for the CPU emulation of the kernels"),
              "default": f"{chosen} ({reason})", "kernel_sources": str(kernels_dir()),
              "blas_thread_sharing": _thread_sharing(fused),
              "emulated_kernel_cache": str(kernel_cache_dir())}
    try:
        import cupy
    except ImportError:
        return report
    from .device import cupy_cache_note

    report["cupy_kernel_cache"] = cupy_cache_note(getattr(cupy, "__version__", "0"))
    if usable:
        try:
            ops = get_ops("cupy")
            report["gpu"] = ops.device.describe()
            seconds = ops.warmup()
        except Exception as err:  # a library or a compile that fails only now: report it, never a traceback
            report["cupy"] = f"unavailable: {_kernels_cannot_run(err)}"
            return report
        report["kernel_compile_seconds"] = round(ops.device.compile_seconds if ops.device.compile_seconds
                                                 is not None else seconds, 3)
    return report
