"""What the GPU docs say about CuPy, checked against CuPy's code where it is installed (finding 5: TF32)."""
import importlib.util
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_kernels_doc_does_not_claim_cupy_tf32_changes_mlpxs_products():
    text = (DOCS / "kernels.md").read_text()
    assert "unless `CUPY_TF32=1`" not in text
    assert re.search(r"always full FP32.*cublasSgemm", text, re.S)


def test_cupy_cublas_gemm_calls_plain_sgemm():
    spec = importlib.util.find_spec("cupy")
    if spec is None:
        pytest.skip("CuPy is not installed")
    source = (Path(spec.origin).parent / "cublas.py").read_text()   # read, not imported: needs no cuBLAS library
    gemm = source[source.index("def gemm("):]
    gemm = gemm[:gemm.index("\ndef ", 1)]
    assert "cublas.sgemm" in gemm and "gemmEx" not in gemm and "TF32" not in gemm
