"""The ``mlpx`` command line: ``train``, ``evaluate``, ``experiment`` and ``info``.

``mlpx train`` with no arguments trains the reference network (784-500-250-100-10, relu, SGD lr 0.01, batch 64,
15 epochs) on MNIST, or on the bundled sample when the dataset cannot be found, saying so loudly.
"""
from __future__ import annotations

import argparse
import errno
import sys

from .. import datasets
from ..backend import BACKENDS
from ..model import INPUT_SPARSITY
from .experiments import EXPERIMENTS


def _integer(minimum: int, kind: str):
    """An argparse type: an integer >= ``minimum``, refused as 'expected {kind}, got ...'."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
        return value
    return parse


_positive_int = _integer(1, "a positive integer")
_seed = _integer(0, "a non-negative integer")  # as MLP(seed=...) requires, checked before any data is loaded


def _number(low: float | None = None, high: float | None = None, **open_ends: bool):
    """An argparse type: a finite number within the bounds, by ``mlpx._checks.check_number``'s rule, so that the
    command line refuses what the Python API refuses (inf, nan, momentum 2) before anything is written."""
    from .._checks import check_number

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return check_number(value, "", low, high, **open_ends)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).strip()) from None
    return parse


_positive_float = _number(0, low_open=True)
_fraction = _number(0, 1, high_open=True)  # momentum, betas, validation split: in [0, 1)


def _add_data_options(parser, sample_flag: bool = True, dataset_default: str | None = "mnist") -> None:
    parser.add_argument("--dataset", default=dataset_default, choices=list(datasets.DATASETS))
    parser.add_argument("--data-dir", default=None, help="folder with the IDX files (else MLPX_DATA_DIR, cache)")
    if sample_flag:
        parser.add_argument("--no-sample", action="store_true", help="fail instead of using the bundled sample")


def _add_train_parser(sub) -> None:
    from ..activations import ACTIVATIONS
    from ..initializers import INITIALIZERS
    from ..optim import OPTIMIZERS

    train = sub.add_parser("train", help="train an MLP and write its run folder (defaults: the reference network)",
                           description="Train an MLP; writes model.npz, checkpoint.npz, history.json, config.json, "
                                       "report.md, metrics.json and plots into --out.")
    _add_data_options(train)
    train.add_argument("--hidden", type=_positive_int, nargs="+", default=[500, 250, 100],
                       help="hidden layer sizes")
    train.add_argument("--activation", default="relu", choices=sorted(a for a in ACTIVATIONS))
    train.add_argument("--init", default="xavier_uniform", choices=sorted(INITIALIZERS))
    train.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "mse"])
    train.add_argument("--optimizer", default="sgd", choices=sorted(OPTIMIZERS))
    train.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default: 0.01, adam 0.001)")
    train.add_argument("--momentum", type=_fraction, default=None, help="momentum (sgd, rmsprop; 'momentum' is 0.9)")
    train.add_argument("--betas", type=_fraction, nargs=2, default=None, metavar=("BETA1", "BETA2"), help="adam betas")
    train.add_argument("--weight-decay", type=_number(0), default=0.0, help="L2 weight decay added to the gradient")
    train.add_argument("--epochs", type=_positive_int, default=None, help="epochs in all (default 15)")
    train.add_argument("--batch-size", type=_positive_int, default=64)
    train.add_argument("--validation-split", type=_fraction, default=0.0,
                       help="fraction of the training set held out, in [0, 1)")
    train.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE",
                       help="stop when the validation loss has not improved for PATIENCE epochs; restore the best")
    train.add_argument("--schedule", default="none", choices=["none", "step", "cosine"], help="learning-rate schedule")
    train.add_argument("--step-size", type=_positive_int, default=None, help="epochs per step of --schedule step")
    train.add_argument("--gamma", type=float, default=0.1, help="factor per step of --schedule step")
    train.add_argument("--log-every", type=_positive_int, default=200, help="record the iteration loss every N steps")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--backend", default=None, choices=list(BACKENDS))
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--input-sparsity", default="auto", choices=list(INPUT_SPARSITY),
                       help="first layer from the inputs' nonzeros (sparse) or full products (dense); auto picks "
                            "from the training data's density (MNIST: sparse); the report says which ran and why")
    train.add_argument("--out", default=None, help="run folder (default runs/DATASET-DATE-TIME)")
    train.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its last checkpoint (other options come from its "
                            "config.json; --epochs may raise the total)")
    train.add_argument("--save", default=None, help="also write the trained model to this .npz file")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines or progress bars")
    train.set_defaults(func=lambda args: _run("train", args))


def _add_other_parsers(sub) -> None:
    from ..initializers import INITIALIZERS

    evaluate = sub.add_parser("evaluate", help="report on a saved model: accuracy, confusion matrix, per-class scores")
    evaluate.add_argument("model", help="a model .npz written by mlpx train or model.save")
    _add_data_options(evaluate)
    evaluate.add_argument("--backend", default=None, choices=list(BACKENDS))
    evaluate.add_argument("--out", default=None, help="also write report.md, metrics.json and plots here")
    evaluate.set_defaults(func=lambda args: _run("evaluate", args))

    info = sub.add_parser("info", help="versions, backends, the chosen device and the BLAS in use")
    info.add_argument("--kernels", action="store_true",
                      help="compile every CUDA kernel through CuPy's NVRTC (no GPU needed) and report; exit 1 with "
                           "the compiler's message when it fails")
    info.add_argument("--arch", default=None, metavar="SM[,SM...]",
                      help="with --kernels: GPU architectures to compile for, e.g. 80,90 (default: the device's; "
                           "80,90 when there is none)")
    info.set_defaults(func=lambda args: _run("info", args))

    experiment = sub.add_parser("experiment", help="run the seed studies' experiments as one sweep (all, or some)",
                                description="Experiments: " + "; ".join(f"{k}: {v[0]}" for k, v in EXPERIMENTS.items())
                                + "; all: every one of them, as one sweep (each distinct run trained once, finished "
                                  "runs kept in OUT/runs and reused; OUT/NAME/ per experiment, OUT/index.md, "
                                  "OUT/suite.json). autoencoder (alone): the seed's bottleneck autoencoder study "
                                  "(Fashion-MNIST unless --dataset mnist or --sample; --epochs for the autoencoders, "
                                  "--subset N for the classifier comparison's training images; --out is its folder)")
    experiment.add_argument("names", nargs="+", metavar="NAME", choices=list(EXPERIMENTS) + ["all", "autoencoder"],
                            help="experiments to run (all: every one); autoencoder only alone")
    _add_data_options(experiment, sample_flag=False, dataset_default=None)  # mnist; fashion-mnist for autoencoder
    experiment.add_argument("--sample", action="store_true", help="use the bundled MNIST sample")
    experiment.add_argument("--epochs", type=_positive_int, default=15)
    experiment.add_argument("--seeds", type=_positive_int, default=1, help="seeds 0..N-1 per configuration")
    experiment.add_argument("--jobs", type=_positive_int, default=None,
                            help="runs in parallel (processes executor; default: the usable cores, 1 runs inline)")
    experiment.add_argument("--executor", default="processes",
                            help="'processes' (default) or dask://HOST:PORT (a Dask distributed scheduler)")
    experiment.add_argument("--subset", type=_positive_int, default=None,
                            help="keep only the first N training and test images (quick runs)")
    experiment.add_argument("--blas-threads", type=_positive_int, default=1,
                            help="BLAS threads per run (default 1: results identical whatever the executor)")
    experiment.add_argument("--backend", default=None, choices=list(BACKENDS))
    experiment.add_argument("--input-sparsity", default="auto", choices=list(INPUT_SPARSITY),
                            help="every run's first layer: from the inputs' nonzeros (sparse), full products "
                                 "(dense), or decided per run from the data's density (auto, the default); part of "
                                 "each run's key")
    experiment.add_argument("--init", nargs="+", default=None, choices=sorted(INITIALIZERS), metavar="INIT",
                            help="initialization of every configuration (default xavier_uniform), e.g. "
                                 "torch_default for PyTorch's nn.Linear setup; for init-grid, the initializers "
                                 f"to cross with the activations. One of: {', '.join(sorted(INITIALIZERS))}")
    experiment.add_argument("--out", default=None, help="output folder (default experiments): OUT/NAME/ per "
                            "experiment, OUT/runs/ the run store, OUT/index.md, OUT/suite.json")
    experiment.add_argument("--store", default=None, help="run store folder (default OUT/runs)")
    experiment.set_defaults(func=lambda args: _run("experiment", args))


def _run(command: str, args) -> int:
    """Import a command's module only when it runs (keeps `mlpx --help` fast)."""
    if command == "train":
        from .cli_train import train
        return train(args)
    if command == "evaluate":
        from .cli_train import evaluate
        return evaluate(args)
    if command == "info":
        from .cli_info import info, info_kernels
        if getattr(args, "kernels", False):
            return info_kernels(args.arch)
        return info()
    if "autoencoder" in args.names:
        if len(args.names) > 1:
            raise ValueError("the autoencoder study runs alone (mlpx experiment autoencoder): it is not a "
                             "(configuration, seed) run of the reference network and its outputs need the trained "
                             "models, which the run store does not keep")
        if args.init is not None:
            raise ValueError("--init: the autoencoder study has its own setup; --init applies to the MLP experiments")
        return _autoencoder(args)
    from .experiments.suite import run_suite

    run_suite(args.names, args.out or "experiments", store=args.store, epochs=args.epochs, seeds=args.seeds,
              jobs=args.jobs, executor=args.executor, subset=args.subset, dataset=args.dataset or "mnist",
              data_dir=args.data_dir, sample=args.sample, backend=args.backend, blas_threads=args.blas_threads,
              init=args.init, input_sparsity=args.input_sparsity)
    return 0


def _autoencoder(args) -> int:
    """`mlpx experiment autoencoder`: mlpx.autoencoder.run_study on Fashion-MNIST (as the seed) by default."""
    from .autoencoder import run_study

    if args.sample:
        data = datasets.load_mnist_sample()
    else:
        data = datasets.load(args.dataset or "fashion-mnist", data_dir=args.data_dir)
    subset = (8000, 2000) if args.subset is None else (args.subset, max(1, args.subset // 4))
    run_study(args.out or "experiments/autoencoder", epochs=args.epochs, subset=subset, data=data,
              backend=args.backend)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpx", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(sub)
    _add_other_parsers(sub)
    return parser


def typed_options(argv=None) -> set[str]:
    """The destinations of the options actually typed on the command line (``argv`` or sys.argv).

    argparse fills in defaults, so a typed ``--batch-size 64`` and the default 64 look alike; ``--resume`` must
    tell them apart to refuse typed options that contradict the run's saved configuration. Parsing again with
    every default suppressed leaves only what was typed."""
    parser = build_parser()
    parsers = [parser]
    while parsers:
        for action in parsers.pop()._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return set(vars(parser.parse_args(argv))) - {"func", "command"}


_BAD_PATH = {errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOENT, errno.EEXIST, errno.EROFS,
             errno.ENAMETOOLONG, errno.ELOOP}


def _os_error_text(err: OSError) -> str:
    """An OSError as one line naming the path(s) it concerns (not a traceback)."""
    what = err.strerror or str(err) or type(err).__name__
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {what}" if paths else f"{type(err).__name__}: {what}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "resume", None):
        args.typed = typed_options(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError, RuntimeError, ImportError) as err:
        print(f"mlpx: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that cannot be written or read (permissions, a file where a folder must be)...
        print(f"mlpx: error: {_os_error_text(err)}", file=sys.stderr)
        return 2 if err.errno in _BAD_PATH else 1  # ... exit 2 as other bad arguments; a full disk or I/O error 1
    except KeyboardInterrupt:
        print("mlpx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
