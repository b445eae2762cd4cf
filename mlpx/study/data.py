"""The data a study run trains on: a dataset by name, or the bundled MNIST sample, said loudly when it stands in."""
from __future__ import annotations

import sys

from .. import datasets


def announce_sample(err) -> None:
    """Say loudly, on stderr, that MNIST is missing and the bundled sample stands in for it."""
    print(f"mlpx: {err}\nmlpx: USING THE BUNDLED SAMPLE (4,000 train / 1,000 test images), not the full "
          f"MNIST; accuracy will be lower than on the full dataset", file=sys.stderr)


def load_run_data(dataset: str = "mnist", data_dir=None, sample: bool = False, allow_sample: bool = True,
                  subset: int | None = None, validation_split: float = 0.0, seed: int = 0) -> datasets.Dataset:
    """The data of a run (``mlpx train``, ``mlpx evaluate``, each run of ``mlpx experiment``): the dataset, or the
    bundled MNIST sample (asked for, or as a loud fallback when MNIST is missing and no ``data_dir`` was given: an
    explicit folder without the data is an error); ``subset`` keeps the first N training and test images (for
    quick runs)."""
    if sample:
        data = datasets.load_mnist_sample(validation_split=validation_split, seed=seed)
    else:
        try:
            data = datasets.load(dataset, data_dir=data_dir, validation_split=validation_split, seed=seed)
        except datasets.DatasetNotFoundError as err:
            if dataset != "mnist" or not allow_sample or data_dir:
                raise
            announce_sample(err)
            data = datasets.load_mnist_sample(validation_split=validation_split, seed=seed)
    if subset is not None:
        if subset < 1:
            raise ValueError(f"--subset: expected a positive number of images, got {subset}")
        data.x_train, data.y_train = data.x_train[:subset], data.y_train[:subset]
        data.x_test, data.y_test = data.x_test[:subset], data.y_test[:subset]
        data.source += f", first {subset} train/test images"
    return data
