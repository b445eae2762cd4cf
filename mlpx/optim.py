"""Optimizers over the model's one flat parameter buffer: one fused update per step for the whole network.

Names, defaults and update rules follow ``torch.optim`` (SGD, RMSprop, Adam), including its weight-decay
convention: ``weight_decay * param`` is added to the gradient before the update (L2 regularisation; not AdamW's
decoupled decay). The math itself lives in the backend's ``*_update`` ops.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_array, check_number


def _check_non_negative(owner: str, **values) -> None:
    """Finite and >= 0 (weight decay, dampening): inf or NaN would turn every weight NaN on the first step."""
    for name, value in values.items():
        check_number(value, f"{owner}: {name}", 0)


def _check_decay(owner: str, **values) -> None:
    """Momentum and averaging factors in [0, 1): at 1 or above the running averages never forget and grow
    without bound (momentum 2 diverges within a few steps)."""
    for name, value in values.items():
        check_number(value, f"{owner}: {name}", 0, 1, high_open=True)


class Optimizer:
    """Base class: holds hyper-parameters and the state buffers (allocated on first use, on the model's backend)."""

    name = "optimizer"
    state_names: tuple[str, ...] = ()

    def __init__(self, lr: float):
        self.lr = check_number(lr, f"{type(self).__name__}: lr", 0, low_open=True)
        self.step_count = 0
        self.state: dict = {}
        self._scratch = None

    def _ensure_state(self, ops, params) -> None:
        if self._scratch is None:  # None again on fused backends: they keep their temporaries in registers
            self._scratch = ops.update_scratch(params)
        for key in self.state_names:
            if key not in self.state:
                self.state[key] = ops.zeros(params.shape, params.dtype)

    def state_dict(self, ops) -> dict:
        """Step count and state buffers as host arrays (for checkpoints and saved models)."""
        return {"step_count": self.step_count, **{k: ops.to_host(v).copy() for k, v in self.state.items()}}

    def load_state_dict(self, ops, state: dict, dtype, size: int, what: str = "optimizer state") -> None:
        """Restore what :meth:`state_dict` returned, onto backend ``ops``, for a model of ``size`` parameters.

        Everything is checked before anything changes: the fused kernels take their lengths from the parameter
        buffer and would run past a shorter state array (memory corruption, not an error), so each must be exactly
        ``(size,)`` in ``dtype`` with finite values, and the step count an integer >= 0. ``what`` names the
        source in the errors (e.g. "m.npz: entry optimizer").
        """
        count = np.asarray(state.get("step_count", -1))
        if count.shape != () or count.dtype.kind not in "iu" or count < 0:
            got = "nothing" if "step_count" not in state else f"shape {count.shape} {count.dtype} {count!r}"
            raise ValueError(f"{what}/step_count: expected an integer >= 0 (shape ()), got {got}")
        for key in self.state_names:
            if key in state:
                check_array(state[key], (size,), dtype, f"{what}/{key}")
            elif count > 0:  # every step allocates all buffers, so a stepped optimizer has them all
                raise ValueError(f"{what}/{key}: missing, expected shape ({size},) {np.dtype(dtype).name} after "
                                 f"{int(count)} steps")
        self.step_count = int(count)
        self.state = {k: ops.asarray(state[k], dtype=dtype) for k in self.state_names if k in state}
        self._scratch = None

    def step(self, ops, params, grads) -> None:
        """Update ``params`` in place from ``grads`` (which may be overwritten)."""
        self._ensure_state(ops, params)
        self.step_count += 1
        self._update(ops, params, grads)

    def _update(self, ops, params, grads) -> None:
        raise NotImplementedError

    def folded_weight_update(self) -> tuple[float, float] | None:
        """BLAS's (alpha, beta) when this step's weight update is ``W <- beta * W + alpha * dW``, so that it can
        run inside the weight-gradient product; None when the update needs the gradient itself. Whether a step
        does fold is the training policy's decision (:func:`mlpx.policy.fold_sgd`), not the optimizer's."""
        return None

    def step_ranges(self, ops, params, grads, ranges) -> None:
        """One step that updates only ``params[start:stop]`` for each (start, stop) in ``ranges``: the parameters
        that :meth:`folded_weight_update` left out. Only for optimizers that fold."""
        raise NotImplementedError(f"{type(self).__name__} does not fold its update into the backward pass")

    def get_config(self) -> dict:
        """Hyper-parameters, enough to rebuild this optimizer with ``make_optimizer``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (PyTorch's convention).
    """

    name = "sgd"
    state_names = ("velocity",)

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False):
        super().__init__(lr)
        _check_decay("SGD", momentum=momentum)
        _check_non_negative("SGD", dampening=dampening, weight_decay=weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum requires momentum > 0 and dampening = 0")
        self.momentum, self.dampening = float(momentum), float(dampening)
        self.weight_decay, self.nesterov = float(weight_decay), bool(nesterov)

    def _update(self, ops, params, grads, part=slice(None)):
        """The update of ``params[part]`` (all of it, or one range left by the fold, see :meth:`step_ranges`)."""
        scratch = None if self._scratch is None else self._scratch[part]
        ops.sgd_update(params[part], grads[part], self.state["velocity"][part], scratch, lr=self.lr,
                       momentum=self.momentum, dampening=self.dampening, nesterov=self.nesterov,
                       weight_decay=self.weight_decay, first_step=self.step_count == 1)

    def folded_weight_update(self):
        """Plain SGD (no momentum) folds into the weight-gradient gemm: ``W <- (1 - lr wd) W - lr a^T delta``
        (where the backend's ``gemm_accumulate`` is free this saves one pass over all parameters per step, see
        mlpx.policy). Momentum needs the gradient itself, so it takes the usual path.
        """
        if self.momentum != 0:
            return None
        return -self.lr, 1.0 - self.lr * self.weight_decay

    def step_ranges(self, ops, params, grads, ranges):
        self._ensure_state(ops, params)
        self.step_count += 1
        for start, stop in ranges:
            self._update(ops, params, grads, slice(start, stop))

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}


class RMSProp(Optimizer):
    """RMSProp, as ``torch.optim.RMSprop`` (square average decay ``alpha``, optional momentum and centering).

    ``alpha`` keeps PyTorch's name (and saved optimizer configs' key); the ops call it ``decay``.

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (PyTorch's convention).
    """

    name = "rmsprop"
    state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False):
        super().__init__(lr)
        _check_decay("RMSProp", alpha=alpha, momentum=momentum)
        check_number(eps, "RMSProp: eps", 0, low_open=True)
        _check_non_negative("RMSProp", weight_decay=weight_decay)
        self.alpha, self.eps, self.weight_decay = float(alpha), float(eps), float(weight_decay)
        self.momentum, self.centered = float(momentum), bool(centered)

    def _update(self, ops, params, grads):
        s = self.state
        ops.rmsprop_update(params, grads, s["square_avg"], s["grad_avg"], s["momentum_buffer"], self._scratch,
                           lr=self.lr, decay=self.alpha, eps=self.eps, weight_decay=self.weight_decay,
                           momentum=self.momentum, centered=self.centered)

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "alpha": self.alpha, "eps": self.eps,
                "weight_decay": self.weight_decay, "momentum": self.momentum, "centered": self.centered}


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (bias-corrected moments).

    ``weight_decay`` adds ``weight_decay * param`` to the gradient (PyTorch's convention, not AdamW).
    """

    name = "adam"
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(self, lr: float = 0.001, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr)
        try:
            beta1, beta2 = betas if not isinstance(betas, (str, bytes)) else ()
        except (TypeError, ValueError):  # not iterable (0.9, a 0-d array) or not two items
            raise TypeError(f"Adam: betas must be a pair (beta1, beta2), each in [0, 1), got {betas!r}") from None
        _check_decay("Adam", **{"betas[0] (beta1)": beta1, "betas[1] (beta2)": beta2})
        check_number(eps, "Adam: eps", 0, low_open=True)
        _check_non_negative("Adam", weight_decay=weight_decay)
        self.betas = (float(beta1), float(beta2))
        self.eps, self.weight_decay = float(eps), float(weight_decay)

    def _update(self, ops, params, grads):
        ops.adam_update(params, grads, self.state["exp_avg"], self.state["exp_avg_sq"], self._scratch, lr=self.lr,
                        beta1=self.betas[0], beta2=self.betas[1], eps=self.eps, weight_decay=self.weight_decay,
                        step=self.step_count)

    def get_config(self):
        return {"name": self.name, "lr": self.lr, "betas": list(self.betas), "eps": self.eps,
                "weight_decay": self.weight_decay}


OPTIMIZERS = {"sgd": SGD, "momentum": SGD, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(spec, **overrides) -> Optimizer:
    """An Optimizer from an instance, a name ('sgd', 'momentum', 'rmsprop', 'adam') or a ``get_config()`` dict."""
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, dict):
        config = dict(spec)
        name = config.pop("name")
    else:
        name, config = spec, {}
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    name = name.lower()
    if name == "momentum":
        config.setdefault("momentum", 0.9)
    if "betas" in config:
        config["betas"] = tuple(config["betas"])
    config.update(overrides)
    return OPTIMIZERS[name](**config)
