"""mlpx.backend.cblas: NumPy's own BLAS through ctypes (gemm with alpha and beta), against NumPy's matmul."""
import numpy as np
import pytest

from mlpx.backend.cblas import numpy_cblas


def _numpy_blas_name() -> str:
    try:
        return np.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
    except (AttributeError, KeyError, TypeError):
        return "unknown"


@pytest.fixture(scope="module")
def cblas():
    found = numpy_cblas()
    if found is None:
        if "openblas" in _numpy_blas_name():
            pytest.fail("NumPy is built with OpenBLAS, yet mlpx.backend.cblas did not find its gemm")
        pytest.skip(f"NumPy's BLAS ({_numpy_blas_name()}) is not reachable through ctypes; mlpx uses NumPy instead")
    return found


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("m, k, n", [(37, 23, 11), (1, 1, 1), (64, 1, 500), (2, 300, 3)])
def test_gemm_matches_numpy(cblas, dtype, trans_a, trans_b, m, k, n):
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal(s).astype(dtype) for s in ((m, k), (k, n), (m, n)))
    want = 0.9 * c.astype(np.float64) - 0.3 * (a.astype(np.float64) @ b)
    assert cblas.gemm(a.T.copy() if trans_a else a, b.T.copy() if trans_b else b, c, -0.3, 0.9, trans_a, trans_b)
    np.testing.assert_allclose(c, want, rtol=0, atol={np.float32: 1e-5, np.float64: 1e-12}[dtype] * np.abs(want).max())


def test_beta_zero_ignores_nan_in_the_output(cblas):
    """BLAS semantics: with beta = 0 the old contents are not read (a poisoned output cannot leak through)."""
    a, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32)
    c = np.full((3, 4), np.nan, np.float32)
    assert cblas.gemm(a, b, c, 1.0, 0.0)
    np.testing.assert_array_equal(c, np.full((3, 4), 2.0, np.float32))


def test_refuses_what_it_cannot_pass_to_blas_and_leaves_the_output_alone(cblas):
    a, b = np.ones((3, 2), np.float32), np.ones((2, 4), np.float32)
    read_only = np.ones((3, 4), np.float32)
    read_only.flags.writeable = False
    cases = [(a, b, np.ones((4, 3), np.float32)),                     # wrong output shape
             (a, np.ones((3, 4), np.float32), np.ones((3, 4), np.float32)),  # inner sizes differ
             (a, b, np.ones((3, 4), np.float64)),                     # mixed dtypes
             (a.astype(np.int32), b.astype(np.int32), np.ones((3, 4), np.int32)),  # not a float dtype
             (a, b, np.ones((3, 8), np.float32)[:, ::2]),             # output not contiguous
             (a, b, read_only),
             (np.ones((0, 2), np.float32), b, np.ones((0, 4), np.float32))]  # empty
    for a_, b_, c_ in cases:
        before = c_.copy()
        assert cblas.gemm(a_, b_, c_, 1.0, 1.0) is False
        np.testing.assert_array_equal(c_, before)
