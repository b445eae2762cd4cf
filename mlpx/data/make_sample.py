"""Regenerate mnist_sample.npz: a stratified MNIST sample (400 train and 100 test images per digit), seed 0.

Run: ``python -m mlpx.data.make_sample /path/to/folder/with/mnist``. The images are stored unchanged (uint8).
"""
import sys

import numpy as np

from mlpx.datasets import FILES, SAMPLE_FILE, find_dataset, read_idx
from mlpx._io import atomic_write


def stratified(labels, per_class, rng):
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main(data_dir=None):
    folder = find_dataset("mnist", data_dir, download=False)
    x_train, y_train, x_test, y_test = (read_idx(folder / f) for f in FILES)
    rng = np.random.default_rng(0)
    train, test = stratified(y_train, 400, rng), stratified(y_test, 100, rng)
    arrays = {"x_train": x_train[train], "y_train": y_train[train], "x_test": x_test[test], "y_test": y_test[test]}
    atomic_write(SAMPLE_FILE, lambda f: np.savez_compressed(f, **arrays))
    print(f"wrote {SAMPLE_FILE} ({SAMPLE_FILE.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
