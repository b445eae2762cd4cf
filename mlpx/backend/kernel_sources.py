"""The CUDA kernel sources in kernels/: where they are, their text, and each kernel's signature.

The .cu files are the single source of truth. This module reads them in a fixed order (helpers first), and parses
every ``template <typename T> __global__ void name(...)`` into a :class:`KernelSpec`, from which both devices
work: CuPy compiles the text with NVRTC and instantiates ``name<float>`` / ``name<double>``; the CPU emulation
compiles the same text with g++ and ``cpu_compat.h`` and reaches each instantiation through a generated
``extern "C"`` entry point; the nvcc build test instantiates them all explicitly. Kernel arguments are converted
and checked here, once, for both devices (CuPy maps a Python int to ``long long`` and a float to ``double``, so every
scalar is cast to the exact type the kernel declares).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

# Compilation order: helpers first, then the kernel files (NVRTC gets one text, so no #include between files).
SOURCE_FILES = ("common.cuh", "activations.cu", "losses.cu", "optimizers.cu", "gather.cu")
CPU_COMPAT_HEADER = "cpu_compat.h"
# Element types each kernel is instantiated for (float/double everywhere; gathering labels needs int too).
DEFAULT_TYPES = ("float", "double")
EXTRA_TYPES = {"take_rows": ("int",)}

C_TYPE_OF_DTYPE = {np.dtype(np.float32): "float", np.dtype(np.float64): "double", np.dtype(np.int32): "int",
                   np.dtype(np.int64): "long long"}
DTYPE_OF_C_TYPE = {c: d for d, c in C_TYPE_OF_DTYPE.items()}

_KERNEL_RE = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(([^)]*)\)", re.S)


def kernels_dir() -> Path:
    """The folder with the .cu files: inside the installed package (wheel) or the source checkout's kernels/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "kernels", package.parent / "kernels"):
        if (candidate / SOURCE_FILES[0]).is_file():
            return candidate
    raise FileNotFoundError(f"mlpx's CUDA kernel sources are missing: looked for {SOURCE_FILES[0]} in "
                            f"{package / 'kernels'} (installed wheel) and {package.parent / 'kernels'} (checkout)")


def source_paths() -> list[Path]:
    folder = kernels_dir()
    return [folder / name for name in SOURCE_FILES]


@lru_cache(maxsize=1)
def combined_source() -> str:
    """All kernel files as one text, in compilation order (what NVRTC compiles)."""
    return "\n".join(f"// ---- {p.name} ----\n{p.read_text()}" for p in source_paths())


def source_digest(*extra: str) -> str:
    """A hash of the kernel sources, the CPU compatibility header and ``extra`` (flags): a build cache key."""
    digest = hashlib.sha256(combined_source().encode())
    digest.update((kernels_dir() / CPU_COMPAT_HEADER).read_bytes())
    for item in extra:
        digest.update(item.encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Param:
    name: str
    c_type: str          # "T", "int", "long long", "float" or "double"
    pointer: bool
    const: bool

    def concrete(self, t: str) -> str:
        """The C type with T replaced by ``t`` (for declarations)."""
        base = t if self.c_type == "T" else self.c_type
        return f"{'const ' if self.const else ''}{base}{'*' if self.pointer else ''}"


@dataclass(frozen=True)
class KernelSpec:
    name: str
    params: tuple[Param, ...]
    types: tuple[str, ...]

    def expression(self, t: str) -> str:
        """The template instantiation's name, as CuPy's name_expressions want it: ``name<float>``."""
        return f"{self.name}<{t}>"

    def cpu_symbol(self, t: str) -> str:
        """The extern "C" entry point of the CPU emulation for this instantiation."""
        return f"mx_{self.name}__{t.replace(' ', '_')}"

    def convert_args(self, t: str, args: tuple, is_device_array) -> tuple:
        """Check array arguments (device arrays, C-contiguous, exact dtype) and cast scalars to their C types."""
        if len(args) != len(self.params):
            raise TypeError(f"kernel {self.name}: expected {len(self.params)} arguments "
                            f"({', '.join(p.name for p in self.params)}), got {len(args)}")
        converted = []
        for param, value in zip(self.params, args):
            c_type = t if param.c_type == "T" else param.c_type
            dtype = DTYPE_OF_C_TYPE[c_type]
            if param.pointer:
                if not is_device_array(value):
                    raise TypeError(f"kernel {self.name}: argument {param.name} must be a device array, got "
                                    f"{type(value).__module__}.{type(value).__name__}")
                if value.dtype != dtype:
                    raise TypeError(f"kernel {self.name}<{t}>: argument {param.name} must have dtype {dtype}, "
                                    f"got {value.dtype}")
                if not value.flags.c_contiguous:
                    raise ValueError(f"kernel {self.name}: argument {param.name} must be C-contiguous")
                converted.append(value)
            else:
                converted.append(dtype.type(value))
        return tuple(converted)


def _parse_param(text: str, kernel: str) -> Param:
    words = text.replace("*", " * ").split()
    if len(words) < 2:
        raise ValueError(f"kernel {kernel}: cannot parse parameter {text!r}")
    name = words[-1]
    pointer = "*" in words
    const = "const" in words
    c_type = " ".join(w for w in words[:-1] if w not in ("const", "*", "__restrict__"))
    if c_type not in ("T", "int", "long long", "float", "double"):
        raise ValueError(f"kernel {kernel}: parameter {name} has unsupported type {c_type!r}")
    return Param(name, c_type, pointer, const)


@lru_cache(maxsize=1)
def kernel_specs() -> dict[str, KernelSpec]:
    """Every kernel in the sources, by name, with its parameters and the element types it is instantiated for."""
    specs = {}
    for match in _KERNEL_RE.finditer(combined_source()):
        name, params_text = match.group(1), match.group(2)
        params = tuple(_parse_param(p.strip(), name) for p in params_text.split(",") if p.strip())
        specs[name] = KernelSpec(name, params, DEFAULT_TYPES + EXTRA_TYPES.get(name, ()))
    return specs


def instantiations() -> list[tuple[KernelSpec, str]]:
    return [(spec, t) for spec in kernel_specs().values() for t in spec.types]


def explicit_instantiations() -> str:
    """C++ explicit instantiations of every kernel (for the nvcc build, which has no name_expressions)."""
    lines = []
    for spec, t in instantiations():
        params = ", ".join(p.concrete(t) for p in spec.params)
        lines.append(f"template __global__ void {spec.name}<{t}>({params});")
    return "\n".join(lines) + "\n"


def cpu_entry_points() -> str:
    """C++ source of the CPU emulation's entry points: ``mx_<kernel>__<type>(grid, block, args...)`` runs every
    thread of every block in turn (in reverse order when asked, to expose threads that depend on each other)."""
    out = ["static int mx_reverse = 0;",
           'extern "C" void mx_set_reverse_order(int reverse) { mx_reverse = reverse; }', ""]
    for spec, t in instantiations():
        params = ", ".join(f"{p.concrete(t)} {p.name}" for p in spec.params)
        names = ", ".join(p.name for p in spec.params)
        out += [f'extern "C" void {spec.cpu_symbol(t)}(long long grid, long long block, {params}) {{',
                "    gridDim.x = (unsigned)grid; blockDim.x = (unsigned)block;",
                "    for (long long mx_b = 0; mx_b < grid; ++mx_b) {",
                "        blockIdx.x = (unsigned)(mx_reverse ? grid - 1 - mx_b : mx_b);",
                "        for (long long mx_t = 0; mx_t < block; ++mx_t) {",
                "            threadIdx.x = (unsigned)(mx_reverse ? block - 1 - mx_t : mx_t);",
                f"            {spec.name}<{t}>({names});",
                "        }",
                "    }",
                "}", ""]
    return "\n".join(out)


def activation_codes_in_source() -> dict[str, int]:
    """The ``#define MX_<ACTIVATION> <code>`` values, to check them against mlpx.activations.ACTIVATIONS."""
    return {m.group(1).lower(): int(m.group(2))
            for m in re.finditer(r"#define MX_(SIGMOID|TANH|RELU|LEAKY_RELU|IDENTITY)\s+(\d+)", combined_source())}
