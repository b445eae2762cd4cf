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

    from . import __version__, backend, threads

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
    return lines


def info() -> int:
    print("\n".join(info_lines()))
    sys.stdout.flush()
    return 0
