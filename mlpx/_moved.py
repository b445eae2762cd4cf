"""Older import paths of the modules that moved into the study application (``mlpx.study``).

``mlpx.cli``, ``mlpx.report``, ``mlpx.experiments`` ... are thin modules that make their name an alias of the moved
module: ``import mlpx.cli`` gives the very module ``mlpx.study.cli`` (same object, so patching one patches the
other), and ``mlpx.cli:main`` stays the console entry point.
"""
from __future__ import annotations

import importlib
import sys


def alias(name: str, target: str, submodules: tuple[str, ...] = ()):
    """Make module ``name`` (being imported) the module ``target``, and ``name.sub`` the module ``target.sub``."""
    module = importlib.import_module(target)
    sys.modules[name] = module
    for sub in submodules:
        sys.modules[f"{name}.{sub}"] = importlib.import_module(f"{target}.{sub}")
    return module
