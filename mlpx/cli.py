"""The ``mlpx`` command line. ``mlpx train`` trains the reference network (784-500-250-100-10, relu, SGD lr 0.01,
batch 64, 15 epochs) on MNIST, or on the bundled sample when the dataset cannot be found, saying so."""
from __future__ import annotations

import argparse
import sys

from . import datasets
from .model import MLP
from .optim import make_optimizer


def _train(args) -> int:
    try:
        data = datasets.load(args.dataset, data_dir=args.data_dir, validation_split=args.validation_split,
                             seed=args.seed)
    except datasets.DatasetNotFoundError as err:
        if args.dataset != "mnist" or args.no_sample:
            raise
        print(f"mlpx: {err}\nmlpx: USING THE BUNDLED SAMPLE (4,000 train / 1,000 test images), not the full MNIST; "
              f"accuracy will be lower than on the full dataset", file=sys.stderr)
        data = datasets.load_mnist_sample(validation_split=args.validation_split, seed=args.seed)
    print(f"data: {data}")
    sizes = [data.x_train.shape[1], *args.hidden, len(data.classes)]
    model = MLP(sizes, activation=args.activation, init=args.init, seed=args.seed, backend=args.backend)
    model.compile(loss=args.loss, optimizer=make_optimizer(args.optimizer, lr=args.lr))
    print(f"model: {model}, loss {model.loss}, optimizer {model.optimizer}")
    validation = (data.x_val, data.y_val) if data.x_val is not None else None
    model.fit(data.x_train, data.y_train, epochs=args.epochs, batch_size=args.batch_size,
              validation_data=validation)
    result = model.evaluate(data.x_test, data.y_test)
    print(f"test loss {result['loss']:.4f}  test accuracy {result['accuracy']:.4f}")
    if args.save:
        model.save(args.save)
        print(f"saved model to {args.save}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlpx", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train an MLP (defaults: the reference network of the seed studies)")
    train.add_argument("--dataset", default="mnist", choices=list(datasets.DATASETS))
    train.add_argument("--data-dir", default=None, help="folder with the IDX files (else MLPX_DATA_DIR, cache)")
    train.add_argument("--no-sample", action="store_true", help="fail instead of using the bundled sample")
    train.add_argument("--hidden", type=int, nargs="+", default=[500, 250, 100], help="hidden layer sizes")
    train.add_argument("--activation", default="relu")
    train.add_argument("--init", default="xavier_uniform")
    train.add_argument("--loss", default="cross_entropy")
    train.add_argument("--optimizer", default="sgd")
    train.add_argument("--lr", type=float, default=0.01)
    train.add_argument("--epochs", type=int, default=15)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--validation-split", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--backend", default=None, choices=["auto", "numpy", "cupy"])
    train.add_argument("--save", default=None, help="write the trained model to this .npz file")
    train.set_defaults(func=_train)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"mlpx: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlpx: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
