"""Atomic writes (mlpx/_io.py): the file gets the mode open() would give it, and the process umask is never
changed to do so (changing it, even briefly, lets other threads create world-writable files)."""
import os
import stat

import pytest

from mlpx import _io


def test_atomic_write_never_touches_the_umask(tmp_path, monkeypatch):
    def refuse(*args):
        raise AssertionError("os.umask called after import")

    monkeypatch.setattr(os, "umask", refuse)
    path = _io.atomic_write(tmp_path / "a.bin", lambda f: f.write(b"abc"))
    assert path.read_bytes() == b"abc"
    _io.atomic_write_text(tmp_path / "b.txt", "text")
    assert (tmp_path / "b.txt").read_text() == "text"


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_atomic_write_gives_the_mode_open_would(tmp_path):
    mask = os.umask(0o022)  # the test reads the umask the usual way (nothing else writes files meanwhile)
    os.umask(mask)
    assert _io._umask() == mask
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    _io.atomic_write(tmp_path / "atomic", lambda f: f.write(b"x"))
    _io.atomic_write(tmp_path / "atomic", lambda f: f.write(b"y"))  # replacing keeps the mode
    mode = stat.S_IMODE((tmp_path / "atomic").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~mask
    assert not mode & stat.S_IWOTH


def test_umask_read_without_proc(monkeypatch):
    """Where /proc/self/status is missing the umask is read by setting it and back, once, at import."""
    import builtins

    real_open = builtins.open

    def no_proc(name, *args, **kwargs):
        if str(name).startswith("/proc/"):
            raise FileNotFoundError(name)
        return real_open(name, *args, **kwargs)

    mask = os.umask(0o022)
    os.umask(mask)
    monkeypatch.setattr(builtins, "open", no_proc)
    assert _io._read_umask() == mask
    assert os.umask(mask) == mask  # left as it was
