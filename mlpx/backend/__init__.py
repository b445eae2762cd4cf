"""Backend choice: ``"numpy"``, ``"cupy"`` or ``"auto"``.

Order: an explicit ``backend=`` argument, then :func:`set_backend`, then the ``MLPX_BACKEND`` environment variable,
then ``"auto"``. ``"auto"`` picks CuPy only when ``cupy.is_available()`` is true, and always says what it chose and
why (on stderr, once per process): never a silent fallback.
"""
from __future__ import annotations

import os
import sys

from .numpy_ops import NumpyOps

BACKENDS = ("auto", "numpy", "cupy")
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
    try:
        if not cupy.is_available():
            return False, "CuPy is installed but reports no usable CUDA device (cupy.is_available() is False)"
        cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # CUDA driver errors come in many classes
        return False, f"CuPy is installed but CUDA failed: {type(err).__name__}: {err}"
    return True, "CuPy found a CUDA device"


def resolve_backend(name: str | None = None) -> tuple[str, str]:
    """Turn a requested backend (or None for the default) into a concrete one: (name, reason)."""
    requested = name or _default_backend or os.environ.get("MLPX_BACKEND") or "auto"
    check_backend_name(requested)
    if requested != "auto":
        return requested, f"backend {requested!r} requested"
    usable, why = cupy_status()
    return ("cupy" if usable else "numpy"), f"backend 'auto' chose {'cupy' if usable else 'numpy'}: {why}"


def get_ops(name: str | None = None):
    """The ops object for a backend name (or the default); reports the choice when 'auto' decided."""
    global _reported_auto
    chosen, reason = resolve_backend(name)
    if reason.startswith("backend 'auto'") and not _reported_auto:
        print(f"mlpx: {reason}", file=sys.stderr)
        _reported_auto = True
    if chosen not in _ops_cache:
        if chosen == "numpy":
            _ops_cache[chosen] = NumpyOps()
        else:
            from .cupy_ops import make_cupy_ops

            _ops_cache[chosen] = make_cupy_ops()
    return _ops_cache[chosen]


def require_gpu() -> None:
    """Fail loudly, with the cause, unless the CuPy backend can run here."""
    usable, why = cupy_status()
    if not usable:
        raise RuntimeError(f"mlpx.require_gpu(): no GPU backend: {why}")
