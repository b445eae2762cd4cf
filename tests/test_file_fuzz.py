"""Damaged model files and checkpoints: every array entry reshaped, truncated, retyped or made non-finite must be
refused at load time with a ValueError naming the file and the entry, on every backend; never a crash.

The fused kernels trust their buffers' lengths, so a state array that slipped through would corrupt memory during
``fit`` (issue 11: `munmap_chunk(): invalid pointer`, segfaults, weights like -8.17e33). The cases that load and
then train run in a child process, so that a crash shows up as an exit status instead of killing pytest.
"""
import inspect
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import mlpx
from mlpx.backend.numpy_ops import NumpyOps
from mlpx.callbacks import EarlyStopping
from mlpx.checkpoint import load_checkpoint
from mlpx.optim import SGD, Adam, RMSProp
from mlpx.training import fit

from conftest import needs_gxx

try:
    import numba  # noqa: F401
except ImportError:  # pragma: no cover
    numba = None

OPTIMIZERS = {"sgd": SGD(lr=0.1), "momentum": SGD(lr=0.1, momentum=0.9),
              "rmsprop": RMSProp(momentum=0.5, centered=True), "adam": Adam()}
BACKENDS = [pytest.param("reference", id="numpy-reference"),
            pytest.param("numba", id="numba", marks=pytest.mark.skipif(numba is None, reason="Numba not installed")),
            pytest.param("emulated", id="emulated", marks=needs_gxx)]


def _entries(path) -> dict:
    """Every entry of an .npz file, read with NumPy itself (not the loader under test), to damage and write back."""
    with np.load(path) as saved:
        return {key: saved[key] for key in saved.files}


def ops_for(name):
    """The backend of a BACKENDS id (the child processes get this function's source)."""
    if name == "reference":
        from mlpx.backend.numpy_ops import NumpyOps
        return NumpyOps()
    if name == "numba":
        from mlpx.backend.numba_ops import NumbaOps
        return NumbaOps()
    from mlpx.backend import get_ops
    return get_ops("emulated")


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 4)).astype(np.float32), rng.integers(0, 3, n)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained small model file for each optimizer, and a momentum checkpoint with EarlyStopping's best weights."""
    folder = tmp_path_factory.mktemp("files")
    x, y = data()
    paths = {}
    for name, optimizer in OPTIMIZERS.items():
        model = mlpx.MLP([4, 5, 3], seed=0, backend=NumpyOps()).compile(optimizer=optimizer)
        model.fit(x, y, epochs=1, batch_size=16, verbose=0)
        paths[name] = folder / f"{name}.npz"
        model.save(paths[name])
    model = mlpx.MLP([4, 5, 3], seed=0, backend=NumpyOps()).compile(optimizer=SGD(lr=0.1, momentum=0.9))
    paths["checkpoint"] = folder / "checkpoint.npz"
    fit(model, x, y, epochs=2, batch_size=16, validation_data=data(20, 1), verbose=0,
        callbacks=[EarlyStopping(patience=3)], checkpoint=paths["checkpoint"])
    return paths


def variants(value: np.ndarray) -> dict:
    """Damaged versions of one entry: reshaped, truncated, retyped and (for floats) non-finite."""
    flat = value.reshape(-1)
    numeric = value.dtype.kind in "fiub"
    out = {"reshaped": value.reshape(1) if value.ndim == 0 else flat.reshape(-1, 1) if value.ndim == 1 else flat,
           "truncated": flat[:-1] if flat.size > 1 else flat[:0],
           "float16": value.astype(np.float16) if numeric else np.array(1.5, np.float16),
           "complex": value.astype(np.complex128) if numeric else np.array(1j),
           "object": np.array(flat.tolist() + [None], dtype=object),
           "string": np.array("garbage")}
    if value.dtype.kind not in "iu":
        out["int"] = value.astype(np.int64) if numeric else np.array(1)
    else:
        out["negative"] = np.array(-1, value.dtype)
    if value.dtype.kind == "f":
        for name, bad in (("nan", np.nan), ("inf", np.inf), ("-inf", -np.inf)):
            out[name] = value.copy()
            out[name].reshape(-1)[0] = bad
        if value.dtype == np.float32:  # 1e40 is inf in float32; as float64 it is the wrong dtype
            out["1e40"] = value.astype(np.float64)
            out["1e40"].reshape(-1)[-1] = 1e40
    return out


def damaged_files(path, folder):
    """(entry, variant name, damaged file) for every entry of ``path`` and every variant."""
    arrays = _entries(path)
    for key, value in arrays.items():
        for name, bad in variants(value).items():
            target = folder / f"{path.stem}-{key.replace('/', '_')}-{name}.npz"
            np.savez(target, **{**arrays, key: bad})  # object arrays are written pickled, as an attacker would
            yield key, name, target


@pytest.fixture(scope="module")
def damaged(files, tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged")
    return {kind: list(damaged_files(path, folder)) for kind, path in files.items()}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", [*OPTIMIZERS, "checkpoint"])
def test_every_damaged_entry_is_refused_naming_file_and_entry(damaged, files, kind, backend):
    ops = ops_for(backend)
    loader = load_checkpoint if kind == "checkpoint" else mlpx.load
    loader(files[kind], backend=ops)  # the intact file loads: the refusals below are about the damage
    keys = {key for key, _, _ in damaged[kind]}
    assert {"W1", "b2", "optimizer/step_count"} <= keys
    assert kind == "sgd" or len([k for k in keys if k.startswith("optimizer/")]) >= 2
    if kind == "checkpoint":
        assert {"checkpoint", "callback0/best_params", "optimizer/velocity"} <= keys
    wrong = []
    for key, name, path in damaged[kind]:
        try:
            loader(path, backend=ops)
        except ValueError as err:
            message = str(err)
            named = key in message or (key == "mlpx_format" and "not an mlpx model file" in message)
            if str(path) not in message or not named or "allow_pickle" in message:
                wrong.append(f"{key} {name}: unclear message: {message}")
        except Exception as err:  # noqa: BLE001 - the point: anything but a ValueError is a failure
            wrong.append(f"{key} {name}: {type(err).__name__}: {err}")
        else:
            wrong.append(f"{key} {name}: loaded without complaint")
    assert not wrong, "\n".join(wrong)


def test_the_messages_say_what_was_expected_and_what_came(files, tmp_path):
    arrays = _entries(files["adam"])
    size = arrays["optimizer/exp_avg"].size
    np.savez(tmp_path / "m.npz", **{**arrays, "optimizer/exp_avg": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match=rf"m.npz: entry optimizer/exp_avg: expected shape \({size},\) float32, "
                                         r"got shape \(5,\) float32"):
        mlpx.load(tmp_path / "m.npz")
    np.savez(tmp_path / "nan.npz", **{**arrays, "W1": np.full((4, 5), np.nan, np.float32)})
    with pytest.raises(ValueError, match=r"nan.npz: entry W1: expected finite values, found 20 NaN"):
        mlpx.load(tmp_path / "nan.npz")
    del arrays["b2"]
    np.savez(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match=r"missing.npz: entry b2 missing: expected shape \(3,\) float32"):
        mlpx.load(tmp_path / "missing.npz")


def test_garbage_files_say_what_is_wrong_and_never_suggest_unsafe_loading(files, tmp_path, capsys):
    from mlpx.study.cli import main

    garbage = tmp_path / "bad.npz"
    garbage.write_bytes(b"garbage")
    assert main(["evaluate", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert "bad.npz: not a readable mlpx model file (.npz): not a zip archive" in err and "allow_pickle" not in err
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros(3))  # an .npy, not an .npz: np.load would return an array
    with pytest.raises(ValueError, match="not a zip archive"):
        mlpx.load(npy)
    zipped = tmp_path / "zipped.npz"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(ValueError, match="entry notes.txt: not a NumPy array"):
        mlpx.load(zipped)
    arrays = _entries(files["sgd"])
    np.savez(tmp_path / "pickled.npz", **{**arrays, "config": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError) as info:
        mlpx.load(tmp_path / "pickled.npz")
    assert "entry config: holds Python objects; object arrays are refused" in str(info.value)
    assert "allow_pickle" not in str(info.value)
    np.savez(tmp_path / "foreign.npz", weights=np.zeros(3))
    with pytest.raises(ValueError, match="not an mlpx model file"):
        mlpx.load(tmp_path / "foreign.npz")


CHILD = inspect.getsource(ops_for) + """
import sys
import numpy as np
import mlpx
from mlpx.checkpoint import load_checkpoint
from mlpx.training import fit

backend, path, mode = sys.argv[1:4]
ops = ops_for(backend)
rng = np.random.default_rng(0)
x, y = rng.random((40, 4)).astype(np.float32), rng.integers(0, 3, 40)
try:
    if mode == "model":
        model = mlpx.load(path, backend=ops)
    elif mode == "checkpoint":
        model = load_checkpoint(path, backend=ops).model
    else:  # a state buffer swapped behind load's back: the kernels' entry points must refuse it
        model = mlpx.load(path, backend=ops)
        key = model.optimizer.state_names[0]
        model.optimizer.state[key] = ops.zeros(5, model.dtype)
    fit(model, x, y, epochs=2, batch_size=16, verbose=0)
except ValueError as err:
    print("REFUSED:", err)
    sys.exit(0)
print("TRAINED:", model.get_weights()[0].ravel()[:3])
"""


def run_child(backend, path, mode):
    result = subprocess.run([sys.executable, "-c", CHILD, backend, str(path), mode], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, f"child crashed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_loading_then_training_a_damaged_state_never_crashes(files, tmp_path, backend):
    """The issue's cases, end to end in a child process: Adam's exp_avg as np.zeros(5) in a model file, a shortened
    velocity in a momentum checkpoint, and a short state buffer put in after loading (the kernels' own check)."""
    arrays = _entries(files["adam"])
    np.savez(tmp_path / "adam.npz", **{**arrays, "optimizer/exp_avg": np.zeros(5, np.float32)})
    out = run_child(backend, tmp_path / "adam.npz", "model")
    assert "REFUSED:" in out and "adam.npz: entry optimizer/exp_avg: expected shape" in out
    arrays = _entries(files["checkpoint"])
    np.savez(tmp_path / "ckpt.npz", **{**arrays, "optimizer/velocity": arrays["optimizer/velocity"][:7]})
    out = run_child(backend, tmp_path / "ckpt.npz", "checkpoint")
    assert "REFUSED:" in out and "ckpt.npz: entry optimizer/velocity: expected shape" in out
    for name in ("momentum", "rmsprop", "adam"):
        out = run_child(backend, files[name], "swapped")
        assert "REFUSED:" in out, out
        if backend != "reference":  # NumPy itself refuses to broadcast; the fused kernels check their lengths
            assert "_update:" in out and "expected the parameters' shape" in out, out


CLI_CHILD = """
import sys
from mlpx import datasets
from mlpx.study.cli import main

def no_network(*args, **kwargs):
    raise OSError("no network in tests")

datasets.download_dataset = no_network
sys.exit(main(sys.argv[1:]))
"""


def test_train_resume_refuses_a_damaged_checkpoint(tmp_path):
    """``mlpx train --resume`` with a shortened velocity: exit 2 and the message, before any training (a child
    process, so that a crash would be seen, not suffered)."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    env = {**os.environ, "MLPX_DATA_DIR": str(empty), "XDG_CACHE_HOME": str(empty)}
    run = tmp_path / "run"

    def cli(*argv):
        return subprocess.run([sys.executable, "-c", CLI_CHILD, *argv], capture_output=True, text=True,
                              timeout=300, env=env, cwd=tmp_path)

    first = cli("train", "--hidden", "8", "--epochs", "1", "--optimizer", "momentum", "--quiet", "--out", str(run))
    assert first.returncode == 0, first.stderr
    checkpoint = run / "checkpoint.npz"
    arrays = _entries(checkpoint)
    np.savez(checkpoint, **{**arrays, "optimizer/velocity": arrays["optimizer/velocity"][:100]})
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    resumed = cli("train", "--resume", str(run), "--epochs", "2", "--quiet")
    assert resumed.returncode == 2, resumed.stdout + resumed.stderr
    assert "checkpoint.npz: entry optimizer/velocity: expected shape" in resumed.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before  # nothing written


# ---- members that lie about their size, damaged compressed members, configs that claim huge layers ---------------
def npy_header(shape, descr="<f4") -> bytes:
    """An .npy version 1.0 header written by hand (what np.save writes before the data), for any shape."""
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(10 + len(text) + 1) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode("latin1")


def rezip(source, target, replace: dict, compression=zipfile.ZIP_STORED):
    """``source`` (.npz) copied to ``target`` with the members in ``replace`` (name -> bytes) swapped in."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", compression) as new:
        for info in old.infolist():
            new.writestr(info.filename, replace.get(info.filename, old.read(info)), compression)


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"])
@pytest.mark.parametrize("shape", [(10**12,), (4, 10**11), (4, 6)])
def test_a_member_declaring_more_than_it_holds_is_refused_before_allocating(files, tmp_path, compression, shape,
                                                                            capsys):
    """A few hundred bytes whose .npy header says (10**12,): NumPy would allocate terabytes before reading (a
    MemoryError); (4, 6) for a (4, 5) array is a small lie that would read past the member's data."""
    from mlpx.study.cli import main

    forged = tmp_path / "forged.npz"
    rezip(files["sgd"], forged, {"W1.npy": npy_header(shape) + np.zeros(20, np.float32).tobytes()}, compression)
    for loader in (mlpx.load, load_checkpoint):
        with pytest.raises(ValueError) as info:
            loader(forged)
        message = str(info.value)
        assert f"{forged}: not a readable mlpx model file (.npz): entry W1: its .npy header declares shape" in message
        assert "damaged or forged header" in message
    assert main(["evaluate", str(forged)]) == 2
    assert "entry W1: its .npy header declares shape" in capsys.readouterr().err


def test_honest_compressed_and_stored_files_still_load(files, tmp_path):
    arrays = _entries(files["adam"])
    np.savez_compressed(tmp_path / "c.npz", **arrays)
    rezip(files["adam"], tmp_path / "s.npz", {})
    for name in ("c.npz", "s.npz"):
        loaded = mlpx.load(tmp_path / name)
        for got, want in zip(loaded.get_weights(), [arrays[f"{k}{i}"] for i in (1, 2) for k in "Wb"]):
            np.testing.assert_array_equal(got, want)


def test_a_damaged_compressed_member_is_named(files, tmp_path):
    """np.savez_compressed's members are deflated: damaged data raises zlib.error inside NumPy's read, which must
    come out as the usual ValueError naming the file and the entry."""
    arrays = _entries(files["sgd"])
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, **arrays)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("W1.npy")
    raw = bytearray(path.read_bytes())
    name_len, extra_len = (int.from_bytes(raw[info.header_offset + i:info.header_offset + i + 2], "little")
                           for i in (26, 28))
    start = info.header_offset + 30 + name_len + extra_len
    raw[start] = 0xFF  # the first deflate block's header: final block of reserved type 3, "invalid block type"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"{path}: not a readable mlpx model file \(\.npz\): entry W1: error"):
        mlpx.load(path)


@pytest.mark.parametrize("sizes, match", [
    ([4, 100000, 100000, 3], r"entry W1: expected shape \(4, 100000\) float32 \(config layer_sizes"),
    ([4, 5, 100000], r"entry W2: expected shape \(5, 100000\) float32"),
    ([100000, 5, 3], r"entry W1: expected shape \(100000, 5\) float32"),
    ([4, 5, 3, 100000], r"entry W3 missing: expected shape \(3, 100000\) float32"),
    ([4, -5, 3], r"entry config: layer_sizes: expected a list of at least 2 positive integers"),
    ([4, True, 3], r"entry config: layer_sizes: expected a list of at least 2 positive integers"),
    ([4], r"entry config: layer_sizes: expected a list of at least 2 positive integers"),
    ("4-5-3", r"entry config: layer_sizes: expected a list of at least 2 positive integers"),
])
def test_config_layer_sizes_checked_against_the_arrays_before_building(files, tmp_path, monkeypatch, sizes, match):
    """A config that claims [4, 100000, 100000, 3] beside a 4-5-3 model's arrays would make MLP(**config) allocate
    and initialize 10**10 parameters; the shapes are compared with the entries first and the model never built."""
    import json

    from mlpx import serialization

    arrays = _entries(files["sgd"])
    config = json.loads(str(arrays["config"]))
    config["layer_sizes"] = sizes
    path = tmp_path / "huge.npz"
    np.savez(path, **{**arrays, "config": np.array(json.dumps(config))})

    def never(*args, **kwargs):
        raise AssertionError("the model was built before its weight shapes were checked")

    monkeypatch.setattr(serialization, "MLP", never)
    with pytest.raises(ValueError, match=rf"{path}: {match}"):
        mlpx.load(path)


# ---- checkpoint headers: JSON fields of the wrong type -------------------------------------------------------------
NAN = float("nan")


@pytest.mark.parametrize("change, field", [
    ({"loop": 5}, "loop"),
    ({"loop": "window"}, "loop"),
    ({"loop": {"window": ["a", 0]}}, "loop.window"),
    ({"loop": {"window": [NAN, 3]}}, "loop.window"),
    ({"loop": {"window": [1e400, 3]}}, "loop.window"),  # JSON Infinity
    ({"loop": {"window": [10**400, 3]}}, "loop.window"),
    ({"loop": {"window": [1.5, -1]}}, "loop.window"),
    ({"loop": {"window": [1.5, 2.5]}}, "loop.window"),
    ({"loop": {"window": [1.5, True]}}, "loop.window"),
    ({"loop": {"window": [1.5]}}, "loop.window"),
    ({"loop": {"window": 3}}, "loop.window"),
    ({"loop": {}, "history": {"window": ["a", 0]}}, "history.window"),
    ({"history": {"iterations": 5}}, "history.iterations"),
    ({"history": {"iterations": [1, -2]}}, "history.iterations"),
    ({"history": {"iterations": [1.5]}}, "history.iterations"),
    ({"history": {"loss": ["a"]}}, "history.loss"),
    ({"history": {"loss": 0.5}}, "history.loss"),
    ({"history": {"val_accuracy": [None]}}, "history.val_accuracy"),
    ({"history": {"lr": {"a": 1}}}, "history.lr"),
    ({"history": {"epoch_seconds": [True]}}, "history.epoch_seconds"),
    ({"history": {"iteration_loss": "x"}}, "history.iteration_loss"),
    ({"history": {"iteration_val_loss": [[1.0]]}}, "history.iteration_val_loss"),
    ({"history": {"layer_stats": [5]}}, "history.layer_stats"),
    ({"history": {"layer_stats": [[1.0]]}}, "history.layer_stats"),
    ({"history": {"layer_stats": {}}}, "history.layer_stats"),
    ({"history": {"steps": -1}}, "history.steps"),
    ({"history": {"steps": "3"}}, "history.steps"),
    ({"history": {"steps": 2.0}}, "history.steps"),
    ({"history": {"stop_reason": 5}}, "history.stop_reason"),
    ({"history": {"stop_reason": ["early stopping"]}}, "history.stop_reason"),
])
def test_checkpoint_header_fields_of_the_wrong_type_are_named(files, tmp_path, change, field):
    import json

    arrays = _entries(files["checkpoint"])
    header = json.loads(str(arrays["checkpoint"]))
    for key, value in change.items():
        if isinstance(value, dict) and key == "history":
            header[key].update(value)
        else:
            header[key] = value
    path = tmp_path / "ckpt.npz"
    np.savez(path, **{**arrays, "checkpoint": np.array(json.dumps(header))})
    with pytest.raises(ValueError, match=rf"{path}: entry checkpoint: field '{field}': expected"):
        load_checkpoint(path)


def test_checkpoint_header_values_that_are_fine_load(files, tmp_path):
    """The checks accept what training writes: NaN losses (a diverged run), None layer stats, no loop state
    (older files: the window in the history), an empty window count."""
    import json

    arrays = _entries(files["checkpoint"])
    header = json.loads(str(arrays["checkpoint"]))
    header["history"].update(loss=[NAN, 1], layer_stats=[None, [{"grad_norm": 1.0}]], stop_reason="diverged: x",
                             window=[2.5, 4])
    header["loop"] = {}
    path = tmp_path / "ok.npz"
    np.savez(path, **{**arrays, "checkpoint": np.array(json.dumps(header))})
    ckpt = load_checkpoint(path)
    assert ckpt.loop_state == {"window": [2.5, 4]} and ckpt.history.stop_reason == "diverged: x"
