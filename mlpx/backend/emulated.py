"""The emulated GPU: mlpx's CUDA kernels compiled by g++ for the CPU and run through ctypes over NumPy arrays.

``EmulatedDevice`` implements the same device interface as ``CupyDevice`` (mlpx/backend/device.py), so CupyOps runs
its real orchestration (buffers, kernel arguments, grid sizes, launch order) in CI without a GPU, and counts its
launches and host synchronizations. To behave like device memory, its arrays are :class:`EmulatedArray`: kernels
accept nothing else (a host array reaching a kernel is a bug CuPy would also refuse), and reading a value on the
host (``float(a)``, ``a.item()``, ``bool(a)``) counts as a synchronization, as it would on a GPU.

The shared library is built from kernels/*.cu + cpu_compat.h + generated entry points into a cache folder
(``$MLPX_KERNEL_CACHE`` or ``~/.cache/mlpx/cpu-kernels``), named by a hash of the sources and flags: it is rebuilt
whenever a kernel changes, and built atomically, so concurrent test processes never load a half-written file.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from .device import Device
from .kernel_sources import (CPU_COMPAT_HEADER, SOURCE_FILES, cpu_entry_points, instantiations, kernels_dir,
                             source_digest)

CXX_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra")
_CTYPES = {"T": None, "int": ctypes.c_int, "long long": ctypes.c_longlong, "float": ctypes.c_float,
           "double": ctypes.c_double}


def kernel_cache_dir() -> Path:
    env = os.environ.get("MLPX_KERNEL_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlpx" / "cpu-kernels"


def compiler() -> str | None:
    """The C++ compiler used for the emulation (``$CXX`` or g++), or None when there is none."""
    return shutil.which(os.environ.get("CXX", "g++"))


def build_library() -> tuple[Path, float]:
    """Compile the kernels for the CPU unless a build of these exact sources exists; (path, seconds spent)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("the emulated GPU backend needs a C++ compiler: g++ was not found (set $CXX)")
    target = kernel_cache_dir() / f"mlpx_kernels_{source_digest(cxx, *CXX_FLAGS)}.so"
    if target.is_file():
        return target, 0.0
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        unit = Path(tmp) / "mlpx_kernels_cpu.cpp"
        includes = "".join(f'#include "{name}"\n' for name in (CPU_COMPAT_HEADER, *SOURCE_FILES))
        unit.write_text(includes + "\n" + cpu_entry_points())
        built = Path(tmp) / target.name
        result = subprocess.run([cxx, *CXX_FLAGS, f"-I{kernels_dir()}", str(unit), "-o", str(built)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"compiling the kernels for the CPU failed ({cxx}):\n{result.stderr[-4000:]}")
        os.replace(built, target)
    return target, time.perf_counter() - start


class EmulatedArray(np.ndarray):
    """A NumPy array standing in for device memory: host reads of its values count as synchronizations on the
    counters of the device that made it (views and results inherit them)."""

    def __array_finalize__(self, obj):
        self._counters = getattr(obj, "_counters", None)

    def _inherit(self, result):
        result._counters = self._counters
        return result

    # As on CuPy, indexing one entry and reductions give 0-d device arrays, not host scalars.
    def __getitem__(self, key):
        result = super().__getitem__(key)
        return result if isinstance(result, np.ndarray) else self._inherit(np.asarray(result).view(EmulatedArray))

    def __array_wrap__(self, array, context=None, return_scalar=False):
        return self._inherit(super().__array_wrap__(array, context, False))

    def _host(self) -> np.ndarray:
        if self._counters is not None:
            self._counters.syncs += 1
        return self.view(np.ndarray)

    def __float__(self):
        return float(self._host())

    def __int__(self):
        return int(self._host())

    def __index__(self):
        return self._host().__index__()

    def __bool__(self):
        return bool(self._host())

    def item(self, *args):
        return self._host().item(*args)

    def tolist(self):
        return self._host().tolist()

    def __reduce__(self):
        """Pickled as host data, unpickled onto this process's emulated device (as a CuPy array is re-uploaded to
        the current GPU), so its reads are counted there too."""
        return _emulated_array_on_this_device, (self.view(np.ndarray),)


def _emulated_array_on_this_device(host: np.ndarray) -> "EmulatedArray":
    from . import get_ops

    array = np.array(host, order="C", copy=True).view(EmulatedArray)
    array._counters = get_ops("emulated").device.counters
    return array


class EmulatedDevice(Device):
    """A CPU stand-in for the GPU: same interface and checks as CupyDevice, kernels from the same .cu files."""

    name = "emulated"

    def __init__(self, reverse_thread_order: bool = False):
        super().__init__()
        path, self.compile_seconds = build_library()
        self.library_path = path
        self._lib = ctypes.CDLL(str(path))
        self._lib.mx_set_reverse_order(int(reverse_thread_order))
        self._entry = {}
        for spec, type_name in instantiations():
            function = getattr(self._lib, spec.cpu_symbol(type_name))
            function.restype = None
            function.argtypes = [ctypes.c_longlong, ctypes.c_longlong] + [
                ctypes.c_void_p if p.pointer else (_CTYPES[p.c_type] or _CTYPES[type_name]) for p in spec.params]
            self._entry[(spec.name, type_name)] = function

    def set_reverse_thread_order(self, reverse: bool) -> None:
        """Run blocks and threads last to first: results must not change (threads must be independent).
        Process-wide: every EmulatedDevice shares the one loaded library."""
        self._lib.mx_set_reverse_order(int(reverse))

    # ---- arrays -----------------------------------------------------------------------------------------------
    def is_device_array(self, array) -> bool:
        return isinstance(array, EmulatedArray)

    def _device_array(self, host: np.ndarray) -> EmulatedArray:
        self.counters.allocations += 1
        array = host.view(EmulatedArray)
        array._counters = self.counters
        return array

    def empty(self, shape, dtype):
        return self._device_array(np.empty(shape, dtype=dtype))

    def zeros(self, shape, dtype):
        return self._device_array(np.zeros(shape, dtype=dtype))

    def asarray(self, array, dtype=None):
        if hasattr(array, "__cuda_array_interface__"):
            raise TypeError("got a CuPy (GPU) array for the emulated backend, which works on the CPU; pass a NumPy "
                            "array (cupy.asnumpy(x))")
        if isinstance(array, EmulatedArray):
            if (dtype is None or array.dtype == np.dtype(dtype)) and array.flags.c_contiguous:
                return array
            return self._device_array(np.array(array.view(np.ndarray), dtype=dtype, order="C"))
        self.counters.uploads += 1
        return self._device_array(np.array(array, dtype=dtype, order="C", copy=True))

    def to_host(self, array) -> np.ndarray:
        if not isinstance(array, EmulatedArray):
            return np.asarray(array)
        self.counters.syncs += 1
        return np.array(array.view(np.ndarray), copy=True)  # a copy, as a device-to-host transfer makes

    def synchronize(self) -> None:
        self.counters.syncs += 1

    # ---- kernels ----------------------------------------------------------------------------------------------
    def _launch(self, spec, type_name, grid, block, args) -> None:
        values = [a.ctypes.data if isinstance(a, np.ndarray) else a for a in args]
        self._entry[(spec.name, type_name)](grid, block, *values)

    def _gemm(self, a, b, out, trans_a, trans_b) -> None:
        plain = [x.view(np.ndarray) for x in (a, b, out)]
        np.matmul(plain[0].T if trans_a else plain[0], plain[1].T if trans_b else plain[1], out=plain[2])

    def compile_all(self) -> float:
        """The library is built when the device is made; returns the seconds that build took (0 if cached)."""
        return self.compile_seconds

    @staticmethod
    def cache_dir() -> Path:
        return kernel_cache_dir()

    def describe(self) -> str:
        return f"CPU emulation of the CUDA kernels ({self.library_path.name}, built with {compiler()})"
