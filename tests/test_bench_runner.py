"""Smoke tests of the side-by-side runner's pieces, at tiny sizes: the worker protocol, the systems' networks,
the statistics and ratios of the report, and the op profiler's bookkeeping."""
import importlib.util
import json
import time

import pytest

from bench import compare, report
from bench.common import LAYERS, n_parameters, scaled_layers
from bench.profile_step import OpTimer, without_first_layer
from bench.studies import scaling_samples
from bench.worker import Worker

REFERENCE_PARAMETERS = 543_860


def test_reference_network_sizes():
    assert n_parameters(LAYERS) == REFERENCE_PARAMETERS
    assert scaled_layers(2.0) == (784, 1000, 500, 200, 10)
    assert scaled_layers(0.5) == (784, 250, 125, 50, 10)
    with pytest.raises(ValueError, match="positive"):
        scaled_layers(0)


@pytest.mark.parametrize("system,module", [("mlpx-numpy", None), ("blas-floor", None), ("course-numpy", None),
                                           ("torch-eager", "torch"), ("sklearn", "sklearn"), ("jax-jit", "jax")])
def test_every_system_builds_the_reference_network_and_trains(system, module):
    if module and importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    worker = Worker(threads=1, samples=256, synthetic=True)
    built = worker.handle({"cmd": "build", "system": system, "layers": list(LAYERS), "batch": 64,
                           "samples": 128})
    assert built["ok"] and built["n_parameters"] == REFERENCE_PARAMETERS
    timed = worker.handle({"cmd": "epoch"})
    assert timed["samples"] == 128 and timed["epoch_seconds"] == pytest.approx(timed["seconds"] * 2)
    if system != "blas-floor":
        assert 0.0 <= worker.handle({"cmd": "accuracy"})["accuracy"] <= 1.0


def test_a_system_that_cannot_run_here_says_why():
    worker = Worker(threads=1, samples=64, synthetic=True)
    reply = worker.handle({"cmd": "build", "system": "torch-cuda" if importlib.util.find_spec("torch")
                           else "mlpx-cupy", "layers": [784, 8, 10], "batch": 16})
    if reply.get("ok"):
        pytest.skip("a GPU is present")
    assert reply["unavailable"]
    with pytest.raises(RuntimeError, match="no system built"):
        worker.handle({"cmd": "epoch"})


def test_runner_end_to_end_writes_table_json_and_chart(tmp_path):
    results = compare.main(["--synthetic", "--samples", "512", "--rounds", "2", "--threads", "1",
                            "--systems", "mlpx-numpy,mlpx-cupy,course-numpy,blas-floor", "--course-samples", "128",
                            "--out", str(tmp_path)])
    rows = {row["name"]: row for row in results["table"]}
    assert rows["mlpx-numpy"]["ratio_to_mlpx"] == 1.0 and rows["blas-floor"]["ratio_to_floor"] == 1.0
    assert len(rows["mlpx-numpy"]["rounds"]) == 2 and rows["course-numpy"]["scaled"]
    assert "median_s" not in rows["mlpx-cupy"] or rows["mlpx-cupy"]["ok"]
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["table"][0]["name"] == "mlpx-numpy"
    text = (tmp_path / "compare.md").read_text()
    assert "| mlpx NumPy (input_sparsity auto) |" in text and "(*)" in text
    assert (tmp_path / "epoch_bar.png").stat().st_size > 1000


def test_summary_ratios_and_the_slower_than_sentence():
    times = {"mlpx-numpy": [2.0, 2.2, 1.8], "torch-eager": [1.0, 1.1, 0.9], "blas-floor": [0.4, 0.5, 0.6]}
    built = {name: {"ok": True, "label": name, "samples": 60000} for name in times}
    table = compare.summarize(times, built, 60000)
    rows = {row["name"]: row for row in table}
    assert rows["torch-eager"]["ratio_to_mlpx"] == pytest.approx(0.5)
    assert rows["mlpx-numpy"]["ratio_to_floor"] == pytest.approx(4.0)
    # per round 5.0, 4.4, 3.0: the median of the same-round ratios, not a ratio of medians
    assert rows["mlpx-numpy"]["ratio_to_floor_paired"] == pytest.approx(4.4)
    assert rows["torch-eager"]["ratio_to_floor_paired"] == pytest.approx(2.2)
    assert "| 4.00x | 4.40x | 4.50x |" in report.table_markdown({"table": table, "train_samples": 60000})
    assert rows["mlpx-numpy"]["spread"] == pytest.approx(0.2)
    assert rows["torch-eager"]["samples_per_s"] == pytest.approx(60000)
    lines = report.slower_than_peers({"table": table})
    assert lines == ["- mlpx NumPy is slower than torch-eager: 2.00x its epoch time."]


def test_op_timer_charges_exclusive_time_to_nested_ops():
    now = [0.0]                            # a fake clock that the fake ops advance: no timing involved

    class FakeOps:
        def outer(self):
            now[0] += 0.02
            self.inner()
            now[0] += 0.005

        def inner(self):
            now[0] += 0.03

    ops = FakeOps()
    with OpTimer(ops, clock=lambda: now[0]) as timer:
        ops.outer()
        ops.inner()
    assert timer.calls == {"outer": 1, "inner": 2}
    assert timer.seconds["outer"] == pytest.approx(0.025) and timer.seconds["inner"] == pytest.approx(0.06)
    assert "outer" not in vars(ops)        # methods restored


def test_without_first_layer_subtracts_only_the_sparse_ops():
    prof = {"epoch_seconds": 1.2, "ops": {"sparse_forward": {"seconds": 0.2}, "sparse_index": {"seconds": 0.1},
                                          "gemm forward a W": {"seconds": 0.5}}}
    rest, ratio = without_first_layer(prof, floor_seconds=1.8)
    assert rest == pytest.approx(0.9) and ratio == pytest.approx(0.5)
    dense = {"epoch_seconds": 1.2, "ops": {"gemm forward a W": {"seconds": 0.5}}}
    assert without_first_layer(dense, floor_seconds=1.8) == (0.0, 0.0)


def test_scaling_samples_are_whole_batches_and_enough_of_them():
    for batch in (16, 64, 4096):
        for width in (0.5, 1.0, 4.0):
            n = scaling_samples(batch, width)
            assert n % batch == 0 and n >= 4 * batch


def test_foreign_load_does_not_count_our_own_cpu_time():
    import os

    from bench.interference import ForeignLoad, _process_seconds

    before = _process_seconds([os.getpid()])
    load = ForeignLoad([])
    load.start()
    start = time.process_time()
    while time.process_time() - start < 0.3:      # burn 0.3 s of our own CPU
        pass
    cores = load.cores()
    assert _process_seconds([os.getpid()]) - before >= 0.25
    assert cores is not None and 0.0 <= cores <= (os.cpu_count() or 1)
