"""Checks on the command line's output locations, made before any training (``mlpx train``, ``mlpx evaluate``,
``mlpx experiment``)."""
from __future__ import annotations

import tempfile
from pathlib import Path


def check_writable(path: Path, option: str, folder: bool = True) -> None:
    """Fail before training, not after it: ``path`` (a folder, or with ``folder=False`` a file) must be creatable.
    Tried with a temporary file in the nearest existing folder (permission bits say nothing to root); nothing is
    left behind, so a run that fails later leaves no empty folder."""
    path = Path(path)
    if not folder and path.is_dir():
        raise ValueError(f"{option} {path}: is a folder; expected a file name such as {path / 'model.npz'}")
    target = path if folder else path.parent
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder; expected a folder to write into")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"{option} {path}: cannot write into {existing}: {err.strerror or err}") from None
