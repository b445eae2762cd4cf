"""``python -m bench.gpu_acceptance --backend emulated``: the GPU acceptance script, end to end on the CPU with
reduced sizes, so on a GPU only the device differs. Writes its Markdown report and JSON results."""
import json
import os

import pytest

from conftest import needs_gxx


@needs_gxx
def test_the_acceptance_run_on_the_emulated_device_writes_its_report(tmp_path):
    if not os.environ.get("MLPX_DATA_DIR"):
        pytest.skip("MLPX_DATA_DIR is not set: point it at a folder with the MNIST IDX files")
    from bench import gpu_acceptance

    assert gpu_acceptance.main(["--out", str(tmp_path), "--backend", "emulated"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    steps = results["steps"]
    assert set(steps) == {"kernels", "gpu_tests", "counts", "step_time", "compare", "reference_run"}
    assert not [name for name, step in steps.items() if step["status"] == "failed"], steps
    assert all(r["launches"] <= 24 and r["syncs"] == 0 for r in steps["counts"]["rows"])
    assert steps["step_time"]["syncs_in_loop"] == 0 and steps["step_time"]["launches_per_step"] == 22
    assert 0 <= steps["reference_run"]["test_accuracy"] <= 1
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert steps["kernels"]["status"] == "skipped"
    else:
        assert steps["kernels"]["status"] == "passed"        # CI installs CuPy + NVRTC: compiled for real
    report = (tmp_path / "report.md").read_text()
    assert "# mlpx GPU acceptance run (emulated)" in report and "No step failed." in report
    assert "## Step time against the paper model" in report and "## Reference run" in report
