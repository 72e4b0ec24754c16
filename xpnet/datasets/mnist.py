"""Load MNIST, Fashion-MNIST or the bundled MNIST sample as ``(X, y)`` arrays.

``X`` is uint8 of shape (N, 784): one flattened 28x28 image per row, pixels 0..255 (0 is
background). ``y`` is int64 of shape (N,) with class labels 0..9. Training and prediction
both turn ``X`` into network input with :func:`preprocess`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from . import sample
from .download import DEFAULT_TIMEOUT, DownloadError
from .download import download as fetch
from .errors import DatasetError, DatasetUnavailableError
from .idx import read_idx
from .sources import DATA_ENV, DATASETS, SPLITS, DatasetSpec, Located, cache_dir, locate

#: Every name :func:`load_dataset` accepts.
DATASET_NAMES = ("mnist", "fashion-mnist", sample.NAME)

PathLike = str | os.PathLike[str]


def preprocess(X: np.ndarray) -> np.ndarray:
    """Pixels 0..255 (any shape) -> float32 in [0, 1], i.e. ``X / 255``."""
    X = np.asarray(X)
    if X.dtype != np.uint8:
        raise TypeError(f"preprocess expects uint8 pixels 0..255, got dtype {X.dtype}")
    return X.astype(np.float32) / np.float32(255.0)


def class_counts(y: np.ndarray, num_classes: int = 10) -> dict[int, int]:
    """How many labels of each class ``0..num_classes-1`` appear in ``y``."""
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=num_classes)
    return {c: int(n) for c, n in enumerate(counts)}


def describe(X: np.ndarray, y: np.ndarray) -> str:
    """A one-line summary: ``5000 images 28x28 uint8, labels 0:500 1:500 ...``."""
    side = int(round(np.sqrt(X.shape[1]))) if X.ndim == 2 else 0
    shape = f"{side}x{side}" if side * side == X.shape[-1] else f"{X.shape[1:]}"
    counts = " ".join(f"{c}:{n}" for c, n in class_counts(y).items())
    return f"{len(X)} images {shape} {X.dtype}, labels {counts}"


def validate(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    images_name: str,
    labels_name: str,
    image_shape: tuple[int, int] = (28, 28),
    num_classes: int = 10,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a decoded image/label pair and return ``(X, y)`` as described in the module doc."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != image_shape:
        want = "x".join(str(d) for d in image_shape)
        raise DatasetError(
            f"{images_name}: expected uint8 images of shape (N, {want.replace('x', ', ')}), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(
            f"{labels_name}: expected a 1-D integer label array, "
            f"got {labels.dtype} of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels"
        )
    y = labels.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if bad.size:
        raise DatasetError(
            f"{labels_name}: {bad.size} labels outside 0..{num_classes - 1}, "
            f"first at index {int(bad[0])} with value {int(y[bad[0]])}"
        )
    return images.reshape(len(images), -1), y


def _load_located(spec: DatasetSpec, found: Located) -> tuple[np.ndarray, np.ndarray]:
    return validate(
        read_idx(found.images),
        read_idx(found.labels),
        images_name=str(found.images),
        labels_name=str(found.labels),
        image_shape=spec.image_shape,
        num_classes=spec.num_classes,
    )


def _how_to_get(spec: DatasetSpec, split: str) -> str:
    files = spec.splits[split]
    names = f"{files.images}.gz and {files.labels}.gz"
    return (
        f"To get {spec.title} by hand, download {names} from "
        f"{spec.mirrors[0] if spec.mirrors else spec.homepage} (about: {spec.homepage}) "
        f"and put them in one of:\n"
        f"  - {cache_dir(spec.name)} (the download cache),\n"
        f"  - $XPNET_DATA/{spec.name}/ after setting the {DATA_ENV} environment variable,\n"
        f"  - any folder passed as --data-dir DIR (data_dir=DIR).\n"
        f"The small bundled sample is available as 'mnist-sample'; it is never used in place "
        f"of {spec.title}."
    )


def load_dataset(
    name: str,
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load split ``split`` of data set ``name`` as ``(X uint8 (N, 784), y int64 (N,))``.

    ``name`` is "mnist", "fashion-mnist" or "mnist-sample" (the 5,000 digits bundled with
    xpnet: 4,000 "train", 1,000 "test"; ``data_dir`` and ``download`` do not apply to it).
    Local folders are searched as described in :mod:`xpnet.datasets.sources`; if the split's
    two files are nowhere and ``download`` is true they are fetched into the cache from
    ``mirrors`` (default: the data set's) and checked against ``sha256`` (default: the
    official digests). Raises :class:`DatasetUnavailableError` when the data cannot be had,
    saying where it looked and how to get the files; it never falls back to the sample.
    """
    key = name.lower().replace("_", "-") if isinstance(name, str) else name
    if key not in DATASET_NAMES:
        raise ValueError(f"name must be one of {', '.join(DATASET_NAMES)}; got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if key == sample.NAME:
        images, labels = sample.load_sample_all()
        rows = sample.split_indices(labels, split)
        return validate(
            images[rows],
            labels[rows],
            images_name=sample.IMAGES_FILE,
            labels_name=sample.LABELS_FILE,
        )
    spec = DATASETS[key]
    found, notes = locate(spec, split, data_dir)
    if found is not None:
        return _load_located(spec, found)
    looked = "\n".join(f"  - {n}" for n in notes)
    if not download:
        raise DatasetUnavailableError(
            f"{spec.title} ({split} split) is not available: not found locally and download "
            f"is off.\nLooked in:\n{looked}\n{_how_to_get(spec, split)}"
        )
    files = spec.splits[split]
    digests = spec.sha256 if sha256 is None else sha256
    urls = spec.mirrors if mirrors is None else tuple(mirrors)
    target = cache_dir(spec.name)
    errors: list[str] = []
    for base in (files.images, files.labels):
        filename = f"{base}.gz"
        if (target / filename).is_file():
            continue  # fetched earlier (the other file of the pair may have failed then)
        if filename not in digests:
            raise DatasetError(f"{filename}: no SHA-256 known to verify a download against")
        try:
            fetch(filename, target, urls, digests[filename], timeout=timeout, progress=progress)
        except DownloadError as exc:
            errors.append(str(exc))
    if errors:
        tried = "\n".join(errors)
        raise DatasetUnavailableError(
            f"{spec.title} ({split} split) is not available: not found locally and the "
            f"download failed.\nLooked in:\n{looked}\n{tried}\n{_how_to_get(spec, split)}"
        )
    return _load_located(
        spec, Located(target / f"{files.images}.gz", target / f"{files.labels}.gz")
    )


def load_mnist(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full MNIST (60,000 train / 10,000 test digits) as ``(X, y)``: see :func:`load_dataset`."""
    return load_dataset(
        "mnist",
        split,
        data_dir,
        download,
        mirrors=mirrors,
        sha256=sha256,
        timeout=timeout,
        progress=progress,
    )


def load_fashion_mnist(
    split: str = "train",
    data_dir: PathLike | None = None,
    download: bool = True,
    *,
    mirrors: Sequence[str] | None = None,
    sha256: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST (60,000 train / 10,000 test images) as ``(X, y)``: see :func:`load_dataset`."""
    return load_dataset(
        "fashion-mnist",
        split,
        data_dir,
        download,
        mirrors=mirrors,
        sha256=sha256,
        timeout=timeout,
        progress=progress,
    )
