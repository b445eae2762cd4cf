"""Parity with PyTorch: same initial weights, same batches in the same order, 50 steps per optimizer setting, on
both first-layer paths (issue 12): dense products, and the sparse kernels of mlpx/backend/sparse_input.py (the
Numba backend; 70% of the inputs are zero, so the sparse path skips real work and leaves whole rows of W1 untouched
in some batches)."""
import numpy as np
import pytest

import mlpx

torch = pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0)")

SIZES = [20, 16, 12, 5]
STEPS, BATCH = 50, 8

SETTINGS = {
    "sgd": (lambda: mlpx.optim.SGD(lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05)),
    "sgd_wd": (lambda: mlpx.optim.SGD(lr=0.05, weight_decay=0.01),
               lambda p: torch.optim.SGD(p, lr=0.05, weight_decay=0.01)),
    "momentum": (lambda: mlpx.optim.SGD(lr=0.05, momentum=0.9),
                 lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "momentum_dampening_wd": (lambda: mlpx.optim.SGD(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01),
                              lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, dampening=0.3,
                                                        weight_decay=0.01)),
    "nesterov_wd": (lambda: mlpx.optim.SGD(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01),
                    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    "rmsprop": (lambda: mlpx.optim.RMSProp(lr=0.001), lambda p: torch.optim.RMSprop(p, lr=0.001)),
    "rmsprop_wd_momentum": (lambda: mlpx.optim.RMSProp(lr=0.001, weight_decay=0.01, momentum=0.5),
                            lambda p: torch.optim.RMSprop(p, lr=0.001, weight_decay=0.01, momentum=0.5)),
    "rmsprop_centered": (lambda: mlpx.optim.RMSProp(lr=0.001, centered=True),
                         lambda p: torch.optim.RMSprop(p, lr=0.001, centered=True)),
    "adam": (lambda: mlpx.optim.Adam(lr=0.001), lambda p: torch.optim.Adam(p, lr=0.001)),
    "adam_wd": (lambda: mlpx.optim.Adam(lr=0.001, weight_decay=0.01),
                lambda p: torch.optim.Adam(p, lr=0.001, weight_decay=0.01)),
}

ZERO_FRACTION = 0.7
HAS_SPARSE_KERNELS = mlpx.MLP([2, 1], backend="numpy").ops.sparse_input
INPUT_PATHS = [pytest.param("dense", id="dense"),
               pytest.param("sparse", id="sparse", marks=pytest.mark.skipif(
                   not HAS_SPARSE_KERNELS, reason="the sparse first-layer kernels need the Numba backend"))]

ACT = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}


def torch_net(weights, activation, dtype):
    layers = []
    for i in range(0, len(weights), 2):
        linear = torch.nn.Linear(*weights[i].shape).to(dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(weights[i].T.copy()))
            linear.bias.copy_(torch.from_numpy(weights[i + 1].copy()))
        layers.append(linear)
        if i + 2 < len(weights):
            layers.append(ACT[activation]())
    return torch.nn.Sequential(*layers)


def run_both(setting, activation, loss, dtype, input_sparsity):
    make_ours, make_theirs = SETTINGS[setting]
    rng = np.random.default_rng(1)
    x = rng.normal(size=(STEPS * BATCH, SIZES[0])).astype(dtype)
    x[rng.random(x.shape) < ZERO_FRACTION] = 0
    y = rng.integers(0, SIZES[-1], size=STEPS * BATCH)
    model = mlpx.MLP(SIZES, activation=activation, seed=0, dtype=dtype, backend="numpy",
                     input_sparsity=input_sparsity)
    model.compile(loss=loss, optimizer=make_ours())
    assert model.input_path["path"] == input_sparsity, model.input_path
    net = torch_net(model.get_weights(), activation, getattr(torch, dtype))
    opt = make_theirs(net.parameters())
    for step in range(STEPS):
        xb, yb = x[step * BATCH:(step + 1) * BATCH], y[step * BATCH:(step + 1) * BATCH]
        ours = model.train_step(xb, yb)
        opt.zero_grad()
        logits = net(torch.from_numpy(xb))
        target = torch.from_numpy(yb)
        if loss == "cross_entropy":
            theirs = torch.nn.functional.cross_entropy(logits, target)
        else:  # mean over samples of the sum over classes of (softmax - onehot)^2
            onehot = torch.nn.functional.one_hot(target, SIZES[-1]).to(logits.dtype)
            theirs = ((torch.softmax(logits, dim=1) - onehot) ** 2).sum(dim=1).mean()
        theirs.backward()
        opt.step()
        assert ours == pytest.approx(theirs.item(), rel=1e-4 if dtype == "float32" else 1e-9)
    torch_weights = []
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            torch_weights += [layer.weight.detach().numpy().T, layer.bias.detach().numpy()]
    return model.get_weights(), torch_weights


def max_relative_difference(ours, theirs):
    return max(float(np.max(np.abs(a - b)) / np.max(np.abs(b))) for a, b in zip(ours, theirs))


@pytest.mark.parametrize("input_sparsity", INPUT_PATHS)
@pytest.mark.parametrize("setting", SETTINGS)
def test_parameters_match_pytorch_float64(setting, input_sparsity):
    ours, theirs = run_both(setting, "relu", "cross_entropy", "float64", input_sparsity)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.max(np.abs(b)))


@pytest.mark.parametrize("input_sparsity", INPUT_PATHS)
@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_activations_and_losses_match_pytorch_float64(activation, loss, input_sparsity):
    ours, theirs = run_both("momentum", activation, loss, "float64", input_sparsity)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * np.max(np.abs(b)))


@pytest.mark.parametrize("input_sparsity", INPUT_PATHS)
@pytest.mark.parametrize("setting", ["sgd", "momentum", "rmsprop", "adam"])
def test_float32_agreement_with_pytorch(setting, input_sparsity, record_property):
    """float32 after 50 steps: rounding differs (BLAS order), so agreement is looser; the figure is recorded."""
    ours, theirs = run_both(setting, "relu", "cross_entropy", "float32", input_sparsity)
    difference = max_relative_difference(ours, theirs)
    record_property("max_relative_difference", difference)
    print(f"float32 {setting} {input_sparsity}: max relative difference after {STEPS} steps {difference:.2e}")
    assert difference < 1e-4
