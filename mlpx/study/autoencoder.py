"""The bottleneck-autoencoder study: an MLP trained to reproduce its input, whose narrow middle layer is a feature
extractor.

An autoencoder here is an ordinary :class:`mlpx.MLP` with an identity output head and the MSE loss, trained on
targets equal to its inputs. The study (``run_study``, ``mlpx experiment autoencoder``) trains the seed's
784-128-64-32-64-128-784 network on Fashion-MNIST with relu and with identity hidden activations, draws the
reconstruction-loss curves and 10 test images beside their reconstructions, and compares classifiers trained on
the 32-dimensional bottleneck features with the same classifiers trained on raw pixels.

Losses are reported per pixel (mlpx's MSE sums the squared errors over the 784 outputs; divided by 784 it is the
mean squared error per pixel, the number Keras calls 'mse').
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import optim
from .._io import atomic_write_text
from ..model import MLP

HIDDEN = (128, 64, 32, 64, 128)
CLASSIFIERS = {"softmax regression": (), "MLP 128 relu": (128,)}


def build_autoencoder(n_inputs: int = 784, hidden: Sequence[int] = HIDDEN, activation: str = "relu",
                      lr: float = 1e-3, seed: int | None = 0, dtype: str = "float32",
                      backend: str | None = None) -> MLP:
    """An MLP n_inputs-hidden-n_inputs with an identity head and MSE loss, compiled with Adam(lr)."""
    model = MLP([n_inputs, *hidden, n_inputs], activation=activation, output="identity", seed=seed, dtype=dtype,
                backend=backend)
    return model.compile(loss="mse", optimizer=optim.Adam(lr=lr))


def bottleneck_layer(model: MLP) -> int:
    """The (1-based) number of the narrowest hidden layer: what ``model.transform(x, layer=...)`` takes."""
    hidden = model.layer_sizes[1:-1]
    if not hidden:
        raise ValueError(f"an autoencoder needs hidden layers; got layer sizes {model.layer_sizes}")
    return int(np.argmin(hidden)) + 1


def train_autoencoder(model: MLP, x_train: np.ndarray, x_test: np.ndarray | None = None, epochs: int = 10,
                      batch_size: int = 128, verbose: int = 0):
    """Train ``model`` to reconstruct ``x_train`` (targets = inputs); returns the :class:`mlpx.History`."""
    validation = None if x_test is None else (x_test, x_test)
    return model.fit(x_train, x_train, epochs=epochs, batch_size=batch_size, validation_data=validation,
                     verbose=verbose)


def encode(model: MLP, x: np.ndarray) -> np.ndarray:
    """Bottleneck features of x."""
    return model.transform(x, layer=bottleneck_layer(model))


def pca_reconstruction_mse(x_train: np.ndarray, x_test: np.ndarray, k: int) -> float:
    """Per-pixel test MSE of the best rank-k linear reconstruction fitted on x_train (PCA): what a linear
    autoencoder with a k-unit bottleneck can reach at best, a yardstick for the trained ones."""
    mean = x_train.mean(axis=0)
    centred = x_train - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, -k:]
    residual = (x_test - mean) - ((x_test - mean) @ top) @ top.T
    return float((residual.astype(np.float64) ** 2).mean())


def train_classifier(x_train, y_train, x_test, y_test, hidden: Sequence[int] = (), epochs: int = 30,
                     seed: int = 0, backend: str | None = None) -> dict:
    """Standardize the features (statistics of x_train), train a softmax classifier (``hidden`` layers of relu
    units, none = softmax regression) with Adam, and return its train and test accuracy."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 1e-3, std, 1.0)   # constant features (blank border pixels) are only centred
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    n_classes = int(max(y_train.max(), y_test.max())) + 1
    model = MLP([x_train.shape[1], *hidden, n_classes], activation="relu", seed=seed, backend=backend)
    model.compile(loss="cross_entropy", optimizer=optim.Adam(lr=1e-3))
    model.fit(x_train.astype(np.float32), y_train, epochs=epochs, batch_size=64, verbose=0)
    return {"train_accuracy": model.evaluate(x_train.astype(np.float32), y_train)["accuracy"],
            "test_accuracy": model.evaluate(x_test.astype(np.float32), y_test)["accuracy"]}


def first_of_each_class(y: np.ndarray, n: int = 10) -> np.ndarray:
    """Indices of the first test image of each class (then the next ones), n in all: a varied figure."""
    firsts = [int(np.flatnonzero(y == c)[0]) for c in np.unique(y)]
    rest = np.setdiff1d(np.arange(len(y)), firsts)
    return np.concatenate([firsts, rest])[:n].astype(np.int64)


def plot_reconstructions(images: np.ndarray, reconstructions: dict, path, shape=(28, 28),
                         title: str = "Test images (top) and their reconstructions") -> Path:
    """One column per image: the original on top, then each model's reconstruction (rows labelled)."""
    from .plot import _figure, _save

    rows = {"original": images, **reconstructions}
    fig = _figure(1.0 * len(images) + 1.2, 1.1 * len(rows) + 0.4)
    for r, (label, batch) in enumerate(rows.items()):
        for c, image in enumerate(batch):
            ax = fig.add_subplot(len(rows), len(images), r * len(images) + c + 1)
            ax.imshow(np.clip(image.reshape(shape), 0, 1), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def run_study(out_dir, epochs: int = 20, subset: tuple[int, int] = (8000, 2000), seed: int = 0, data=None,
              activations: Sequence[str] = ("relu", "identity"), batch_size: int = 128, classifier_epochs: int = 30,
              backend: str | None = None, verbose: int = 1) -> dict:
    """Run the whole study and write into ``out_dir``: reconstructions.png, loss_iterations.png, loss_epochs.png,
    loss_curves.csv, results.csv and results.md. Returns the numbers.

    The autoencoders train on all of ``data.x_train`` (default: Fashion-MNIST); the classifier comparison uses a
    seeded random subset of ``subset = (n_train, n_test)`` images from the training and test sets.
    """
    from .. import datasets
    from . import plot

    out_dir = Path(out_dir)
    data = data if data is not None else datasets.load_fashion_mnist()
    n_pixels = data.x_train.shape[1]
    rng = np.random.default_rng(seed)
    train_idx = np.sort(rng.choice(len(data.x_train), size=min(subset[0], len(data.x_train)), replace=False))
    test_idx = np.sort(rng.choice(len(data.x_test), size=min(subset[1], len(data.x_test)), replace=False))
    y_train, y_test = data.y_train[train_idx], data.y_test[test_idx]
    shown = first_of_each_class(data.y_test)

    results, curves, histories, recon = [], [], {}, {}
    for name, hidden in CLASSIFIERS.items():
        acc = train_classifier(data.x_train[train_idx], y_train, data.x_test[test_idx], y_test, hidden,
                               classifier_epochs, seed, backend)
        results.append({"features": f"raw pixels ({n_pixels})", "classifier": name, **acc})
    for activation in activations:
        model = build_autoencoder(n_pixels, HIDDEN, activation, seed=seed, backend=backend)
        start = time.perf_counter()
        history = train_autoencoder(model, data.x_train, data.x_test, epochs, batch_size, verbose=0)
        seconds = time.perf_counter() - start
        histories[activation] = history
        test_mse = model.evaluate(data.x_test, data.x_test)["loss"] / n_pixels
        recon[f"{activation} AE"] = model.predict(data.x_test[shown])
        for epoch, (train_loss, test_loss) in enumerate(zip(history.loss, history.val_loss), start=1):
            curves.append({"activation": activation, "epoch": epoch, "train_mse_per_pixel": train_loss / n_pixels,
                           "test_mse_per_pixel": test_loss / n_pixels})
        features_train, features_test = encode(model, data.x_train[train_idx]), encode(model, data.x_test[test_idx])
        for name, hidden in CLASSIFIERS.items():
            acc = train_classifier(features_train, y_train, features_test, y_test, hidden, classifier_epochs, seed,
                                   backend)
            results.append({"features": f"{activation} AE bottleneck ({features_train.shape[1]})",
                            "classifier": name, **acc, "ae_test_mse_per_pixel": test_mse,
                            "ae_train_seconds": seconds})
        if verbose:
            print(f"autoencoder {activation}: test MSE/pixel {test_mse:.5f} after {epochs} epochs ({seconds:.0f} s)")

    pca_mse = pca_reconstruction_mse(data.x_train, data.x_test, min(HIDDEN))
    plot_reconstructions(data.x_test[shown], recon, out_dir / "reconstructions.png",
                         title=f"{data.name} test images (top) and their reconstructions after {epochs} epochs")
    per_pixel = {a: [{"iterations": h.iterations, "iteration_loss": [v / n_pixels for v in h.iteration_loss]}]
                 for a, h in histories.items()}
    plot.compare(per_pixel, out_dir / "loss_iterations.png", key="iteration_loss", x_key="iterations",
                 xlabel="iteration (mean over 200 steps)", ylabel="reconstruction MSE per pixel",
                 title="Autoencoder training loss")
    per_epoch = {f"{a} {split}": [{"loss": [row[f"{split}_mse_per_pixel"] for row in curves
                                            if row["activation"] == a]}]
                 for a in histories for split in ("train", "test")}
    plot.compare(per_epoch, out_dir / "loss_epochs.png", key="loss", ylabel="reconstruction MSE per pixel",
                 title="Autoencoder reconstruction loss per epoch")
    _write_csv(out_dir / "loss_curves.csv", curves)
    _write_csv(out_dir / "results.csv", results)
    atomic_write_text(out_dir / "results.md", _markdown(results, epochs, subset, seed, data, pca_mse,
                                                              batch_size, classifier_epochs))
    return {"results": results, "curves": curves, "pca_test_mse_per_pixel": pca_mse}


def _write_csv(path: Path, rows: list) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _markdown(results: list, epochs: int, subset, seed: int, data, pca_mse: float, batch_size: int,
              classifier_epochs: int) -> str:
    lines = [f"# Autoencoder study ({data.name})", "",
             f"Autoencoder {data.x_train.shape[1]}-{'-'.join(map(str, HIDDEN))}-{data.x_train.shape[1]}, Adam lr 0.001, batch {batch_size}, {epochs} epochs on "
             f"{len(data.x_train)} training images (targets = inputs), seed {seed}. Classifiers: "
             f"{subset[0]} training / {subset[1]} test images (seeded random subset), features standardized, "
             f"Adam lr 0.001, batch 64, {classifier_epochs} epochs.", "",
             "| features | classifier | train accuracy | test accuracy | AE test MSE/pixel |",
             "|---|---|---|---|---|"]
    for row in results:
        mse = f"{row['ae_test_mse_per_pixel']:.5f}" if "ae_test_mse_per_pixel" in row else "-"
        lines.append(f"| {row['features']} | {row['classifier']} | {row['train_accuracy']:.4f} | "
                     f"{row['test_accuracy']:.4f} | {mse} |")
    lines += ["", f"Yardstick: PCA with {min(HIDDEN)} components (fitted on the training images) reconstructs the "
                  f"test images with MSE/pixel {pca_mse:.5f}, the best any linear {min(HIDDEN)}-unit bottleneck can do."]
    return "\n".join(lines) + "\n"
