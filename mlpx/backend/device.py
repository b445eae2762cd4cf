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


class CupyDevice(Device):
    """The GPU through CuPy. Kernels are compiled by NVRTC on first use, all in one module, and cached on disk by
    CuPy (``CUPY_CACHE_DIR``, default ``~/.cupy/kernel_cache``); matrix products go to cuBLAS."""

    name = "cupy"
    # NVRTC options: no fused multiply-add contraction, so the kernels round exactly as the NumPy reference does.
    NVRTC_OPTIONS = ("--fmad=false",)

    def __init__(self):
        super().__init__()
        import cupy
        import cupy.cublas

        self.cupy = cupy
        self.xp = cupy
        self._gemm_impl = cupy.cublas.gemm
        self._module = None
        self._functions: dict = {}
        self.compile_seconds: float | None = None

    # ---- arrays -----------------------------------------------------------------------------------------------
    def is_device_array(self, array) -> bool:
        return isinstance(array, self.cupy.ndarray)

    def empty(self, shape, dtype):
        self.counters.allocations += 1
        return self.cupy.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        self.counters.allocations += 1
        return self.cupy.zeros(shape, dtype=dtype)

    def asarray(self, array, dtype=None):
        if isinstance(array, self.cupy.ndarray):
            return self.cupy.ascontiguousarray(array, dtype=dtype)
        self.counters.uploads += 1
        self.counters.allocations += 1
        return self.cupy.asarray(np.ascontiguousarray(array, dtype=dtype))

    def to_host(self, array) -> np.ndarray:
        if not isinstance(array, self.cupy.ndarray):
            return np.asarray(array)
        self.counters.syncs += 1
        return self.cupy.asnumpy(array)

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
