"""Data sets for xpnet: MNIST, Fashion-MNIST and a bundled 5,000-digit MNIST sample.

>>> from xpnet.datasets import load_dataset, preprocess
>>> X, y = load_dataset("mnist-sample", "train")   # uint8 (4000, 784), int64 (4000,)
>>> inputs = preprocess(X)                          # float32 in [0, 1]

Full data sets are looked for locally (``data_dir``, ``$XPNET_DATA``, ``/usr/share/datasets``,
the user cache) and otherwise downloaded, verified by SHA-256; see
:mod:`xpnet.datasets.sources`. Only the standard library and NumPy are used.
"""

from .._namespace import warn_if_shadowed
from .download import DownloadError, download
from .errors import DatasetError, DatasetUnavailableError
from .idx import parse_idx, read_idx, write_idx
from .mnist import (
    DATASET_NAMES,
    class_counts,
    describe,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    preprocess,
    validate,
)
from .sources import DATASETS, FASHION_MNIST, MNIST, DatasetSpec, cache_dir, search_dirs

warn_if_shadowed()  # imported through a clone folder named xpnet? say so

__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "FASHION_MNIST",
    "MNIST",
    "DatasetError",
    "DatasetSpec",
    "DatasetUnavailableError",
    "DownloadError",
    "cache_dir",
    "class_counts",
    "describe",
    "download",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "parse_idx",
    "preprocess",
    "read_idx",
    "search_dirs",
    "validate",
    "write_idx",
]
