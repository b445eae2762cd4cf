"""The framework-named initializers (torch_default, lecun_uniform, lecun_normal) against their documented formulas,
and torch_default against torch.nn.Linear's own draws.

Tolerances: draws are seeded, so every test is deterministic; the bounds below say how far a correct sampler may
stray for the sample size used, so that a passing test means the formula holds (not that the seed was lucky).
For n independent draws of variance s2 and kurtosis k, the sample mean's standard error is sqrt(s2 / n) and the
sample variance's is s2 sqrt((k - 1) / n); every distribution here has k <= 3 (uniform 1.8, a normal truncated at
two standard deviations about 2.4), so 5 standard errors with k = 3 is a safe margin (two-sided p < 1e-6).
"""
import numpy as np
import pytest

import mlpx
from mlpx.initializers import BIAS_INITIALIZERS, INITIALIZERS, initial_weights

FAN_IN, FAN_OUT = 200, 5000  # 1e6 weights, 5,000 biases per draw


def _formula(name: str, fan_in: int) -> tuple[float, float]:
    """(bound on |w|, variance of w) as the frameworks document them."""
    if name == "torch_default":  # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / (1 + 5)) * sqrt(3 / fan_in)
        bound = np.sqrt(2.0 / (1 + 5)) * np.sqrt(3.0 / fan_in)
        return bound, bound ** 2 / 3
    if name == "lecun_uniform":  # Keras/JAX: U(-sqrt(3 / fan_in), sqrt(3 / fan_in))
        return np.sqrt(3.0 / fan_in), 1.0 / fan_in
    if name == "lecun_normal":  # Keras/JAX: truncated at 2 stddev, stddev = sqrt(1 / fan_in) / 0.87962566103423978
        return 2 * np.sqrt(1.0 / fan_in) / 0.87962566103423978, 1.0 / fan_in
    raise KeyError(name)


def _check_moments(draws: np.ndarray, bound: float, variance: float) -> None:
    n = draws.size
    assert np.abs(draws).max() <= bound
    assert abs(draws.mean()) <= 5 * np.sqrt(variance / n)
    assert abs(draws.var() - variance) <= 5 * variance * np.sqrt((3 - 1) / n)


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    a, b = np.sort(a.ravel()), np.sort(b.ravel())
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, side="right") / a.size
                        - np.searchsorted(b, grid, side="right") / b.size).max())


def _ks_critical(n: int, m: int, c_alpha: float = 1.95) -> float:
    """The two-sample KS rejection threshold at level alpha = 0.001 (c(alpha) = sqrt(-ln(alpha / 2) / 2))."""
    return c_alpha * np.sqrt((n + m) / (n * m))


@pytest.mark.parametrize("name", ["torch_default", "lecun_uniform", "lecun_normal"])
def test_weights_follow_the_documented_formula(name):
    weights, biases = initial_weights(name, [FAN_IN, FAN_OUT], seed=0, dtype=np.float64)
    assert weights.shape == (FAN_IN, FAN_OUT)
    bound, variance = _formula(name, FAN_IN)
    _check_moments(weights, bound, variance)
    if name == "lecun_normal":  # truncated: a plain normal would put 4.6% beyond 2 sigma of the untruncated normal
        assert np.abs(weights).max() > 0.99 * bound  # and the draws do reach the cut
    else:  # uniform: the whole interval is used
        assert np.abs(weights).max() > 0.999 * bound
    if name in BIAS_INITIALIZERS:
        _check_moments(biases, 1 / np.sqrt(FAN_IN), 1 / (3 * FAN_IN))  # torch: U(+-1/sqrt(fan_in))
        assert np.abs(biases).max() > 0.99 / np.sqrt(FAN_IN)
    else:
        assert not biases.any()


@pytest.mark.parametrize("name", ["torch_default", "lecun_uniform", "lecun_normal"])
def test_distribution_shape_against_the_formula(name):
    """The whole distribution, not only its first two moments: KS distance to the formula's CDF."""
    stats = pytest.importorskip("scipy.stats")
    weights, biases = initial_weights(name, [FAN_IN, 2000], seed=1, dtype=np.float64)
    bound, variance = _formula(name, FAN_IN)
    if name == "lecun_normal":
        scale = np.sqrt(variance) / 0.87962566103423978
        cdf = stats.truncnorm(-2, 2, scale=scale).cdf
    else:
        cdf = stats.uniform(-bound, 2 * bound).cdf
    assert stats.kstest(weights.ravel(), cdf).pvalue > 1e-3
    if name in BIAS_INITIALIZERS:
        assert stats.kstest(biases, stats.uniform(-1 / np.sqrt(FAN_IN), 2 / np.sqrt(FAN_IN)).cdf).pvalue > 1e-3


def test_model_layers_get_pytorch_biases_and_a_seed_reproduces_them():
    sizes = [784, 64, 10]
    a = mlpx.MLP(sizes, init="torch_default", seed=5, backend="numpy").get_weights()
    b = mlpx.MLP(sizes, init="torch_default", seed=5, backend="numpy").get_weights()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    for layer, fan_in in enumerate(sizes[:-1]):
        w, bias = a[2 * layer], a[2 * layer + 1]
        assert bias.any() and np.abs(bias).max() <= np.float32(1 / np.sqrt(fan_in))
        assert np.abs(w).max() <= np.float32(1 / np.sqrt(fan_in))


def test_other_initializers_keep_their_draws_and_zero_biases():
    """Drawing biases for torch_default must not shift the random stream of the existing initializers."""
    rng = np.random.default_rng(7)
    expected_w1 = INITIALIZERS["xavier_uniform"](rng, 6, 4)
    expected_w2 = INITIALIZERS["xavier_uniform"](rng, 4, 3)
    w1, b1, w2, b2 = initial_weights("xavier_uniform", [6, 4, 3], seed=7, dtype=np.float64)
    np.testing.assert_array_equal(w1, expected_w1)
    np.testing.assert_array_equal(w2, expected_w2)
    assert not b1.any() and not b2.any()


def test_torch_default_matches_torch_nn_linear():
    """Same bounds and same distribution as torch.nn.Linear's actual init (its draws, not its random numbers)."""
    torch = pytest.importorskip("torch")
    fan_in, fan_out = 300, 2000
    torch.manual_seed(0)
    layer = torch.nn.Linear(fan_in, fan_out, dtype=torch.float64)
    torch_w = layer.weight.detach().numpy().T  # torch stores (out, in); mlpx (in, out)
    torch_b = layer.bias.detach().numpy()
    ours_w, ours_b = initial_weights("torch_default", [fan_in, fan_out], seed=0, dtype=np.float64)
    bound = 1 / np.sqrt(fan_in)
    for w, b in ((torch_w, torch_b), (ours_w, ours_b)):
        assert w.shape == (fan_in, fan_out) and b.shape == (fan_out,)
        _check_moments(w, bound, bound ** 2 / 3)
        _check_moments(b, bound, bound ** 2 / 3)
    assert _ks_statistic(torch_w, ours_w) < _ks_critical(torch_w.size, ours_w.size)
    assert _ks_statistic(torch_b, ours_b) < _ks_critical(torch_b.size, ours_b.size)
    # the comparison has power: he_uniform (bound sqrt(6 / fan_in), sqrt(6) times wider) is told apart at once
    he_w, _ = initial_weights("he_uniform", [fan_in, fan_out], seed=0, dtype=np.float64)
    assert _ks_statistic(torch_w, he_w) > 10 * _ks_critical(torch_w.size, he_w.size)
