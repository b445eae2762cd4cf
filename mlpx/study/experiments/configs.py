"""The seed studies' experiments: each a list of configurations of the reference network (784-500-250-100-10,
batch 64) with one change per configuration."""
from __future__ import annotations

from typing import Sequence

from ...initializers import check_initializer

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
SGD = {"name": "sgd", "lr": 0.01}
MOMENTUM = {"name": "sgd", "lr": 0.01, "momentum": 0.9}
BASE = {"hidden": [500, 250, 100], "activation": "relu", "init": "xavier_uniform", "loss": "cross_entropy",
        "optimizer": SGD, "batch_size": 64}
INIT_GRID = ("zeros", "small_random", "he_normal", "xavier_uniform")  # the seed study's grid


def _config(label: str, **changes) -> dict:
    return {**BASE, "label": label, **changes}


def _init_grid(inits: Sequence[str] = INIT_GRID) -> list[dict]:
    return [_config(f"{init} / {act}", init=init, activation=act) for init in inits for act in ACTIVATIONS]


def _optimizer_text(spec: dict) -> str:
    extras = [f"{k} {v}" for k, v in spec.items() if k not in ("name", "lr") and v]
    name = "momentum" if spec.get("momentum") else spec["name"]
    return f"{name} lr {spec['lr']}" + (f" ({', '.join(extras)})" if extras else "")


EXPERIMENTS = {
    "activations": ("hidden activation, SGD lr 0.01",
                    lambda: [_config(act, activation=act) for act in ACTIVATIONS]),
    "optimizers": ("optimizer with a standard learning rate each, relu",
                   lambda: [_config("sgd", optimizer=SGD), _config("momentum 0.9", optimizer=MOMENTUM),
                            _config("rmsprop", optimizer={"name": "rmsprop", "lr": 0.001}),
                            _config("adam", optimizer={"name": "adam", "lr": 0.001})]),
    "losses": ("cross-entropy vs MSE (on the softmax output), each with SGD and momentum, relu",
               lambda: [_config(f"{loss} + {name}", loss=loss, optimizer=opt)
                        for loss in ("cross_entropy", "mse") for name, opt in (("sgd", SGD), ("momentum", MOMENTUM))]),
    "weight-decay": ("L2 weight decay with momentum 0.9 lr 0.01, relu",
                     lambda: [_config(f"weight decay {wd}", optimizer={**MOMENTUM, "weight_decay": wd})
                              for wd in (0.5, 0.1, 0.01, 0.001, 0.0)]),
    "learning-rates": ("SGD learning rate for each activation",
                       lambda: [_config(f"{act} lr {lr}", activation=act, optimizer={"name": "sgd", "lr": lr})
                                for act in ACTIVATIONS for lr in (0.001, 0.01, 0.1)]),
    "init-grid": ("weight initialization crossed with the activation, SGD lr 0.01", _init_grid),
}


def experiment_configs(name: str, init: str | Sequence[str] | None = None) -> list[dict]:
    """The configurations of experiment ``name`` (see ``EXPERIMENTS``).

    ``init`` changes the initialization, e.g. to ``torch_default`` to reproduce a study run with PyTorch's
    ``nn.Linear`` defaults: for init-grid, the initializers crossed with the activations (instead of
    ``INIT_GRID``); for the others, one initializer used by every configuration (instead of xavier_uniform).
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    if init is None:
        return EXPERIMENTS[name][1]()
    inits = [init] if isinstance(init, str) else list(init)
    if not inits:
        raise ValueError(f"--init: expected at least one initializer for experiment {name}, got none")
    for each in inits:
        check_initializer(each)
    if name == "init-grid":
        return _init_grid(list(dict.fromkeys(inits)))
    if len(inits) != 1:
        raise ValueError(f"--init: experiment {name} uses one initializer for every configuration (init-grid "
                         f"crosses several), got {len(inits)}: {', '.join(inits)}")
    return [{**config, "init": inits[0]} for config in EXPERIMENTS[name][1]()]
