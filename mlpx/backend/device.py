"""The thin device interface under CupyOps: arrays, kernel launches, matrix products, copies, with counters.

CupyOps decides everything (buffer layout, kernel arguments, grid sizes, launch order); a Device only carries it
out. Two devices implement it: :class:`CupyDevice` (the GPU, through CuPy: NVRTC-compiled kernels and cuBLAS) and
``EmulatedDevice`` (mlpx/backend/emulated.py: NumPy arrays and the same kernels compiled by g++), so the whole GPU
orchestration runs, and is counted, in CI without a GPU.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .kernel_sources import KernelSpec, combined_source, instantiations


@dataclass
class Counters:
    """What a device did: ``launches`` counts kernels and matrix products (each a GPU launch), ``syncs`` the times
    the host waited for the device (reading a value back, synchronize), ``uploads`` host-to-device copies,
    ``allocations`` new device buffers."""

    launches: int = 0
    gemms: int = 0
    syncs: int = 0
    uploads: int = 0
    allocations: int = 0

    def snapshot(self) -> dict:
        return asdict(self)

    def since(self, before: dict) -> dict:
        """Counts since an earlier :meth:`snapshot`."""
        return {k: v - before[k] for k, v in asdict(self).items()}


class Device:
    """Base class: the counters and the launch-configuration check that the real GPU would enforce."""

    name = "device"
    xp = np
    MAX_BLOCK = 1024
    MAX_GRID = 2 ** 31 - 1

    def __init__(self):
        self.counters = Counters()

    def launch(self, spec: KernelSpec, type_name: str, grid: int, block: int, args: tuple) -> None:
        """Run kernel ``spec`` instantiated for ``type_name`` on ``grid`` blocks of ``block`` threads."""
        if not (1 <= block <= self.MAX_BLOCK and 1 <= grid <= self.MAX_GRID):
            raise ValueError(f"kernel {spec.name}: invalid launch configuration grid={grid}, block={block}")
        converted = spec.convert_args(type_name, args, self.is_device_array)
        self.counters.launches += 1
        self._launch(spec, type_name, int(grid), int(block), converted)

    def gemm(self, a, b, out, trans_a: bool, trans_b: bool) -> None:
        """out = op(a) @ op(b) with op = transpose where asked; a, b, out C-contiguous device arrays."""
        for what, array in (("a", a), ("b", b), ("out", out)):
            if not self.is_device_array(array):
                raise TypeError(f"gemm: {what} must be a device array, got {type(array).__name__}")
            if array.ndim != 2 or not array.flags.c_contiguous:
                raise ValueError(f"gemm: {what} must be a C-contiguous matrix, got shape {array.shape}")
        rows, inner = (a.shape[1], a.shape[0]) if trans_a else a.shape
        inner_b, cols = (b.shape[1], b.shape[0]) if trans_b else b.shape
        if inner != inner_b or out.shape != (rows, cols) or not (a.dtype == b.dtype == out.dtype):
            raise ValueError(f"gemm: shapes {a.shape}{'^T' if trans_a else ''} @ {b.shape}{'^T' if trans_b else ''}"
                             f" -> {out.shape} (dtypes {a.dtype}, {b.dtype}, {out.dtype}) do not fit")
        self.counters.launches += 1
        self.counters.gemms += 1
        self._gemm(a, b, out, trans_a, trans_b)

    # Implemented by each device.
    def is_device_array(self, array) -> bool:
        raise NotImplementedError

    def _launch(self, spec, type_name, grid, block, args) -> None:
        raise NotImplementedError

    def _gemm(self, a, b, out, trans_a, trans_b) -> None:
        raise NotImplementedError


# What reads a device array's values on the host (each waits for the device: a host synchronization). Reading a
# shape, dtype or pointer does not. CuPy's own ``cupyx.allow_synchronize`` is deprecated, and in CuPy 14.2 no
# compiled module calls its hook any more, so it detects nothing: mlpx counts these reads itself.
HOST_READS = ("__float__", "__int__", "__index__", "__bool__", "__complex__", "item", "tolist", "get", "__array__",
              "tobytes", "tofile", "__repr__", "__str__", "__format__")


class _ReadDepth:
    depth = 0   # >0 while a counted read runs: a read made inside another (tolist calling get) is not counted again


def _counted_read(base, name):
    method = getattr(base, name)

    def read(self, *args, **kwargs):
        counters = getattr(self, "_counters", None)
        if counters is not None and _ReadDepth.depth == 0:
            counters.syncs += 1
        _ReadDepth.depth += 1
        try:
            return method(self, *args, **kwargs)
        finally:
            _ReadDepth.depth -= 1

    read.__name__ = name
    return read


def counting_array_class(base):
    """A subclass of the array class ``base`` (``cupy.ndarray``) whose host reads (:data:`HOST_READS`) count one
    host synchronization each on the counters it carries (``_counters``, inherited by views and copies)."""
    def __array_finalize__(self, obj):
        self._counters = getattr(obj, "_counters", None)

    namespace = {"__array_finalize__": __array_finalize__, "__module__": __name__,
                 "__doc__": f"{base.__module__}.{base.__name__} whose host reads count as synchronizations"}
    for name in HOST_READS:
        if hasattr(base, name):
            namespace[name] = _counted_read(base, name)
    return type(f"Counted{base.__name__.capitalize()}", (base,), namespace)


class CupyDevice(Device):
    """The GPU through CuPy. Kernels are compiled by NVRTC on first use, all in one module, and cached on disk by
    CuPy (``CUPY_CACHE_DIR``, default ``~/.cupy/kernel_cache``); matrix products go to cuBLAS."""

    name = "cupy"
    # NVRTC options: no fused multiply-add contraction, so the kernels round exactly as the NumPy reference does.
    NVRTC_OPTIONS = ("--fmad=false",)

    def __init__(self, count_host_reads: bool = False):
        super().__init__()
        import cupy
        import cupy.cublas

        self.cupy = cupy
        self.xp = cupy
        self._gemm_impl = cupy.cublas.gemm
        self._module = None
        self._functions: dict = {}
        self.compile_seconds: float | None = None
        # With count_host_reads, arrays are a counting subclass of cupy.ndarray (float(a), a.item(), a.get(), ...
        # count as host synchronizations, as on the emulated device): for step counts and the acceptance run.
        self._array_class = counting_array_class(cupy.ndarray) if count_host_reads else None

    def _own(self, array):
        """Mark a new device array as this device's (a counting view when host reads are counted)."""
        if self._array_class is None:
            return array
        counted = array.view(type=self._array_class)
        counted._counters = self.counters
        return counted

    # ---- arrays -----------------------------------------------------------------------------------------------
    def is_device_array(self, array) -> bool:
        return isinstance(array, self.cupy.ndarray)

    def empty(self, shape, dtype):
        self.counters.allocations += 1
        return self._own(self.cupy.empty(shape, dtype=dtype))

    def zeros(self, shape, dtype):
        self.counters.allocations += 1
        return self._own(self.cupy.zeros(shape, dtype=dtype))

    def asarray(self, array, dtype=None):
        if isinstance(array, self.cupy.ndarray):
            result = self.cupy.ascontiguousarray(array, dtype=dtype)
            return result if result is array else self._own(result)
        self.counters.uploads += 1
        self.counters.allocations += 1
        return self._own(self.cupy.asarray(np.ascontiguousarray(array, dtype=dtype)))

    def to_host(self, array) -> np.ndarray:
        if not isinstance(array, self.cupy.ndarray):
            return np.asarray(array)
        self.counters.syncs += 1
        return self.cupy.ndarray.get(array)   # the base class's read: counted once, here

    def synchronize(self) -> None:
        self.counters.syncs += 1
        self.cupy.cuda.get_current_stream().synchronize()

    # ---- kernels ----------------------------------------------------------------------------------------------
    def _function(self, spec: KernelSpec, type_name: str):
        key = (spec.name, type_name)
        function = self._functions.get(key)
        if function is None:
            if self._module is None:
                self._module = self.cupy.RawModule(code=combined_source(), options=self.NVRTC_OPTIONS,
                                                   name_expressions=[s.expression(t) for s, t in instantiations()])
            function = self._functions[key] = self._module.get_function(spec.expression(type_name))
        return function

    def _launch(self, spec, type_name, grid, block, args) -> None:
        self._function(spec, type_name)((grid,), (block,), args)

    def _gemm(self, a, b, out, trans_a, trans_b) -> None:
        self._gemm_impl("T" if trans_a else "N", "T" if trans_b else "N", a, b, out=out)

    def compile_all(self) -> float:
        """Compile (or load from CuPy's disk cache) every kernel and start cuBLAS; returns the seconds it took."""
        start = time.perf_counter()
        for spec, type_name in instantiations():
            self._function(spec, type_name)
        for dtype in (np.float32, np.float64):
            one = self.cupy.ones((1, 1), dtype=dtype)
            self._gemm_impl("N", "N", one, one, out=self.cupy.empty((1, 1), dtype=dtype))
        self.cupy.cuda.get_current_stream().synchronize()
        seconds = time.perf_counter() - start
        if self.compile_seconds is None:
            self.compile_seconds = seconds
        return seconds

    @staticmethod
    def cache_dir() -> Path:
        """Where CuPy keeps compiled kernels between processes."""
        return Path(os.environ.get("CUPY_CACHE_DIR") or Path.home() / ".cupy" / "kernel_cache")

    def describe(self) -> str:
        props = self.cupy.cuda.runtime.getDeviceProperties(self.cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        return f"{name} (compute capability {props['major']}.{props['minor']})"


# ---- checking the GPU build without a GPU ------------------------------------------------------------------------
# CuPy >= 14.1 keeps kernels compiled with name_expressions in its disk cache; 13.x-14.0.x recompiled them in every
# process (CuPy issue 9667), so the extras require 14.1.
CUPY_CACHE_MIN_VERSION = (14, 1)
# The architectures mlpx is built and checked for when no device names one (A100 and H100 class).
CHECK_ARCHS = ("80", "90")


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def cupy_cache_note(cupy_version: str, cache: Path | None = None) -> str:
    """Where CuPy keeps mlpx's compiled kernels, and whether that cache is used at all by this CuPy version."""
    cache = cache or CupyDevice.cache_dir()
    if _version_tuple(cupy_version) >= CUPY_CACHE_MIN_VERSION:
        return f"{cache} (CuPy {cupy_version} keeps compiled kernels there between processes)"
    return (f"{cache} (not used: CuPy {cupy_version} bypasses its disk cache for kernels compiled with name "
            f"expressions, so every process recompiles all of them (~1 s); CuPy >= 14.1 fixes it)")


def _arch_lookup_without_device(compiler, arch: str):
    """CuPy's ``_get_arch_for_options_for_nvrtc`` asks the current device even when given an architecture; this is
    the same rule (cubin when NVRTC knows the architecture, else PTX) without asking."""
    def lookup(requested=None):
        wanted = str(requested or arch)
        if not getattr(compiler, "_use_ptx", False) and int(wanted) <= int(compiler._get_max_compute_capability()):
            return f"-arch=sm_{wanted}", "cubin"
        return f"-arch=compute_{wanted}", "ptx"
    return lookup


def nvrtc_compile(arch: str | None = None) -> dict:
    """Compile every kernel instantiation (float, double, int) with CuPy's NVRTC path, as ``RawModule`` does it:
    the same source, mlpx's options plus the ``-ftz=true`` CuPy adds, the same name expressions; checks that every
    name expression was lowered. ``arch`` ("80", "90", ...) compiles for that architecture with no GPU needed;
    ``None`` asks the current device. Nothing is loaded or cached. Raises CuPy's ``CompileException`` (with NVRTC's
    log) when compiling fails. Returns ``{"arch", "kernels", "seconds", "lowered", "nvrtc", "binary_bytes"}``."""
    from cupy.cuda import compiler, nvrtc

    names = [spec.expression(t) for spec, t in instantiations()]
    options = CupyDevice.NVRTC_OPTIONS + ("-ftz=true",)
    patched = arch is not None and hasattr(compiler, "_get_arch_for_options_for_nvrtc")
    original = getattr(compiler, "_get_arch_for_options_for_nvrtc", None)
    start = time.perf_counter()
    if patched:
        compiler._get_arch_for_options_for_nvrtc = _arch_lookup_without_device(compiler, str(arch))
    try:
        binary, lowered = compiler.compile_using_nvrtc(combined_source(), options=options,
                                                       arch=None if arch is None else str(arch),
                                                       name_expressions=names)
    finally:
        if patched:
            compiler._get_arch_for_options_for_nvrtc = original
    seconds = time.perf_counter() - start
    lowered = dict(lowered or {})
    missing = [name for name in names if not lowered.get(name)]
    if missing:
        raise RuntimeError(f"NVRTC compiled the kernels but did not lower {', '.join(missing)}")
    return {"arch": arch, "kernels": len(names), "seconds": seconds, "lowered": lowered,
            "nvrtc": ".".join(map(str, nvrtc.getVersion())), "binary_bytes": len(binary)}
