"""``mlpx train`` and ``mlpx evaluate``: a full run into its folder, and the same report for a saved model.

A run folder holds config.json (every option, enough to resume), checkpoint.npz (after each epoch, atomic),
model.npz, history.json (every recorded number), metrics.json, report.md and the plots.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .. import __version__
from .._io import atomic_write_text
from ..callbacks import EarlyStopping, default_step_size, make_schedule
from .data import load_run_data
from .paths import check_writable as _check_writable

CONFIG_KEYS = ("dataset", "data_dir", "no_sample", "hidden", "activation", "init", "loss", "optimizer", "lr",
               "momentum", "betas", "weight_decay", "epochs", "batch_size", "validation_split", "early_stopping",
               "schedule", "step_size", "gamma", "log_every", "seed", "backend", "dtype")


def _optimizer_spec(config: dict) -> dict:
    spec = {"name": config["optimizer"], "weight_decay": config["weight_decay"]}
    spec["lr"] = config["lr"]
    if config["momentum"] is not None:
        if config["optimizer"] == "adam":
            raise ValueError("--momentum: adam has no momentum option; use --betas BETA1 BETA2")
        spec["momentum"] = config["momentum"]
    if config["betas"] is not None:
        if config["optimizer"] != "adam":
            raise ValueError(f"--betas: only adam takes betas, not {config['optimizer']}")
        spec["betas"] = config["betas"]
    return spec


def _callbacks(config: dict) -> list:
    callbacks = []
    schedule = make_schedule(config["schedule"], config["epochs"], config["step_size"], config["gamma"])
    if schedule is not None:
        callbacks.append(schedule)
    if config["early_stopping"]:
        if not config["validation_split"]:
            raise ValueError("--early-stopping watches the validation loss: add --validation-split (e.g. 0.1)")
        callbacks.append(EarlyStopping(patience=config["early_stopping"]))
    return callbacks


def _new_run(args) -> tuple[dict, Path]:
    config = {key: getattr(args, key) for key in CONFIG_KEYS}
    config["input_sparsity"] = getattr(args, "input_sparsity", "auto")  # not in CONFIG_KEYS: older runs lack it
    config["epochs"] = config["epochs"] or 15
    config["lr"] = config["lr"] or (0.001 if config["optimizer"] == "adam" else 0.01)
    if config["schedule"] == "step" and config["step_size"] is None:  # the config and report state the one used
        config["step_size"] = default_step_size(config["epochs"])
    folder = Path(args.out or f"runs/{config['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
    if (folder / "checkpoint.npz").exists():
        raise FileExistsError(f"{folder} already holds a run: continue it with --resume {folder}, or pick a new --out")
    _check_writable(folder, "--out")
    return config, folder


def _read_run_config(folder: Path) -> dict:
    """A run folder's saved options, with errors that name config.json when it is corrupt or incomplete."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())["config"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"--resume {folder}: cannot read the run's configuration {path}: expected the JSON that "
                         f"mlpx train writes, with a 'config' entry; got {type(err).__name__}: {err}") from None
    missing = [key for key in CONFIG_KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise ValueError(f"--resume {folder}: {path} lacks the options {', '.join(missing)}")
    return config


def _conflicts(args, config: dict, folder: Path) -> list[str]:
    """The typed options whose values differ from the run's saved ones (``--epochs`` may raise the total). Every
    saved option counts, also those a newer mlpx added beyond CONFIG_KEYS."""
    typed = getattr(args, "typed", set())
    found = []
    for key in config:
        if key not in typed or (key == "epochs" and args.epochs >= config["epochs"]):
            continue
        value, saved = getattr(args, key), config[key]
        if isinstance(value, tuple):
            value = list(value)
        if value != saved:
            note = "; --epochs may only raise the total" if key == "epochs" else ""
            found.append(f"--{key.replace('_', '-')} {value} (the run has {saved}{note})")
    if "out" in typed and Path(args.out).resolve() != folder.resolve():
        found.append(f"--out {args.out} (a resumed run writes into its own folder {folder})")
    return found


def _resumed_run(args):
    """The saved config (with a raised --epochs), the folder and the checkpoint of the run to continue; typed
    options that contradict the saved ones are refused before anything is loaded or written."""
    from ..checkpoint import load_checkpoint

    folder = Path(args.resume)
    if not (folder / "config.json").is_file() or not (folder / "checkpoint.npz").is_file():
        raise FileNotFoundError(f"--resume {folder}: expected a run folder with config.json and checkpoint.npz")
    config = _read_run_config(folder)
    conflicts = _conflicts(args, config, folder)
    if conflicts:
        raise ValueError(f"--resume {folder}: options that contradict the run's saved configuration "
                         f"({folder / 'config.json'}): {', '.join(conflicts)}. A resumed run continues as "
                         f"configured: drop them, or start a new run with --out")
    if config["schedule"] == "step" and config["step_size"] is None:  # runs saved before the size was recorded
        config["step_size"] = default_step_size(config["epochs"])
    ckpt = load_checkpoint(folder / "checkpoint.npz", backend=config["backend"])
    if "epochs" in getattr(args, "typed", set()):
        if args.epochs <= ckpt.epoch:
            raise ValueError(f"--epochs {args.epochs}: {folder} has already trained {ckpt.epoch} epochs (of "
                             f"{config['epochs']}); --epochs is the total, so give more than {ckpt.epoch} to "
                             f"train further")
        config["epochs"] = args.epochs
    elif ckpt.epoch >= config["epochs"] and ckpt.history.stop_reason != "early stopping":
        raise ValueError(f"--resume {folder}: the run has already trained all {config['epochs']} epochs of its "
                         f"configuration ({folder / 'config.json'}); nothing to continue. Give --epochs above "
                         f"{ckpt.epoch} to train further")
    _check_writable(folder, "--resume")
    return config, folder, ckpt


def _save_resumed_config(folder: Path, config: dict) -> None:
    """Rewrite config.json (atomically) when the resumed run's options differ from the saved ones (a raised
    ``--epochs``, a step size filled in), so that a later plain ``--resume`` continues to the same total with the
    same schedule. The file's other entries (mlpx version, data) are kept."""
    path = folder / "config.json"
    saved = json.loads(path.read_text())
    if saved.get("config") != config:
        atomic_write_text(path, json.dumps({**saved, "config": config}, indent=1))


def train(args) -> int:
    """Train, checkpoint every epoch, then write the model, history, report and plots. Exit status: 0 done,
    1 diverged, 130 interrupted (the outputs are written in every case)."""
    from ..model import MLP
    from ..optim import make_optimizer
    from .report import write_run_files
    from ..training import continue_run

    config, folder, ckpt = _resumed_run(args) if args.resume else (*_new_run(args), None)
    if args.save:
        _check_writable(Path(args.save), "--save", folder=False)
    data = load_run_data(config["dataset"], config["data_dir"], allow_sample=not config["no_sample"],
                           validation_split=config["validation_split"], seed=config["seed"])
    print(f"data: {data}")
    callbacks = _callbacks(config)
    if ckpt is None:
        sizes = [data.x_train.shape[1], *config["hidden"], len(data.classes)]
        model = MLP(sizes, activation=config["activation"], init=config["init"], seed=config["seed"],
                    dtype=config["dtype"], backend=config["backend"],
                    input_sparsity=config.get("input_sparsity", "auto"))
        model.compile(loss=config["loss"], optimizer=make_optimizer(_optimizer_spec(config)))
        atomic_write_text(folder / "config.json", json.dumps({"mlpx_version": __version__, "config": config,
                                                              "data": repr(data)}, indent=1))
    else:
        model = ckpt.model
        if ckpt.history.stop_reason == "early stopping":
            print(f"{folder}: this run already stopped early after epoch {ckpt.epoch}; nothing to continue, "
                  f"writing its outputs again")
        else:
            print(f"resuming {folder} after epoch {ckpt.epoch} of {config['epochs']}")
    print(f"model: {model}, loss {model.loss}, optimizer {model.optimizer}")
    validation = (data.x_val, data.y_val) if data.x_val is not None else None
    run = dict(epochs=config["epochs"], batch_size=config["batch_size"], validation_data=validation,
               verbose=0 if args.quiet else 1, callbacks=callbacks, log_every=config["log_every"],
               checkpoint=folder / "checkpoint.npz",
               diagnostics=True)  # per-layer stats: report.md's table, gradient_norms.png, activations.png
    if ckpt is None:
        history = model.fit(data.x_train, data.y_train, **run)
    else:  # the one resume path (mlpx.training), also for a run that early stopping ended
        if ckpt.history.stop_reason != "early stopping":  # a raised total is saved before training to it
            _save_resumed_config(folder, config)
        model, history = continue_run(ckpt, data.x_train, data.y_train, **run)
    model.save(folder / "model.npz")
    atomic_write_text(folder / "history.json", json.dumps(history.to_dict(), indent=1))
    title = f"mlpx run: {data.name}, {'-'.join(map(str, model.layer_sizes))} {model.activation}"
    shown = {**config, "backend": f"{model.backend} (asked: {config['backend'] or 'default'})",
             "input_sparsity": f"{model.input_sparsity}: {model.input_path['path']} first layer "
                               f"({model.input_path['reason']})",
             "optimizer": _optimizer_spec(config), "data": data.source}
    test = write_run_files(folder, model, data, history.to_dict(), shown, title)
    print(f"test loss {test['loss']:.4f}  test accuracy {test['accuracy']:.4f}")
    print(f"run folder: {folder} (report.md, model.npz, history.json, plots)")
    if args.save:
        model.save(args.save)
        print(f"saved model to {args.save}")
    reason = history.stop_reason or ""
    return 130 if reason == "interrupted" else 1 if reason.startswith("diverged") else 0


def evaluate(args) -> int:
    """Print the report of a saved model on a dataset's test set (and write it with --out)."""
    from .. import serialization
    from .report import evaluate_classifier, markdown_report, write_run_files

    if args.out:
        _check_writable(Path(args.out), "--out")
    model = serialization.load(args.model, backend=args.backend)
    if model.loss is None:
        raise ValueError(f"{args.model}: the model was saved without a loss (not compiled); cannot evaluate it")
    if model.output != "softmax":
        raise ValueError(f"{args.model}: mlpx evaluate reports on classifiers; this model has an identity head")
    data = load_run_data(args.dataset, args.data_dir, allow_sample=not args.no_sample)
    if data.x_test.shape[1] != model.n_features or len(data.classes) != model.n_outputs:
        raise ValueError(f"{args.model}: the model takes {model.n_features} inputs and gives {model.n_outputs} "
                         f"classes, the {data.name} data has {data.x_test.shape[1]} and {len(data.classes)}")
    title = f"mlpx evaluate: {Path(args.model).name} on {data.name} ({data.source})"
    if args.out:
        write_run_files(args.out, model, data, {}, None, title, with_train_eval=False)
        print((Path(args.out) / "report.md").read_text())
    else:
        print(markdown_report(title, evaluate_classifier(model, data.x_test, data.y_test, list(data.classes)),
                              list(data.classes)))
    sys.stdout.flush()
    return 0
