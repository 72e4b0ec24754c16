"""Where data set files come from: the file names, mirrors and checksums, and the local folders.

Local folders are searched in this order (the first holding both files of a split wins):

1. an explicit ``data_dir`` (``--data-dir``): ``<data_dir>/<name>/`` then ``<data_dir>/`` itself;
2. ``$XPNET_DATA/<name>/``;
3. the system folder ``/usr/share/datasets/<name>/`` (where Debian's ``dataset-fashion-mnist``
   installs Fashion-MNIST), its root overridable by ``$XPNET_SYSTEM_DATA``;
4. the user cache ``$XPNET_CACHE/<name>/``, else ``$XDG_CACHE_HOME/xpnet/<name>/``, else
   ``~/.cache/xpnet/<name>/`` (downloads are written here).

Each file may be gzip-compressed (``.gz``) or raw.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Environment variable naming a root folder that holds ``<name>/`` data set folders.
DATA_ENV = "XPNET_DATA"
#: Environment variable overriding :data:`SYSTEM_DATA_ROOT` (used by tests).
SYSTEM_ENV = "XPNET_SYSTEM_DATA"
#: Environment variable overriding the download cache root.
CACHE_ENV = "XPNET_CACHE"
#: Where Debian's ``dataset-*`` packages install data sets.
SYSTEM_DATA_ROOT = Path("/usr/share/datasets")

SPLITS = ("train", "test")


@dataclass(frozen=True)
class SplitFiles:
    """The base names (without ``.gz``) of one split's image and label files."""

    images: str
    labels: str


_STANDARD_SPLITS: Mapping[str, SplitFiles] = {
    "train": SplitFiles("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": SplitFiles("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable IDX data set: file names, mirrors and the expected digests.

    ``sha256`` maps each downloaded ``.gz`` file name to the SHA-256 of the official file,
    which every download is checked against. ``md5`` holds the digests the authors publish,
    kept for reference (they identify the same files).
    """

    name: str
    title: str
    homepage: str
    mirrors: tuple[str, ...]
    sha256: Mapping[str, str]
    md5: Mapping[str, str]
    splits: Mapping[str, SplitFiles] = field(default_factory=lambda: dict(_STANDARD_SPLITS))
    num_classes: int = 10
    image_shape: tuple[int, int] = (28, 28)


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST",
    homepage="http://yann.lecun.com/exdb/mnist/",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    ),
    # Official files: train-images 9,912,422 bytes, train-labels 28,881,
    # t10k-images 1,648,877, t10k-labels 4,542.
    sha256={
        "train-images-idx3-ubyte.gz": (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
        ),
        "train-labels-idx1-ubyte.gz": (
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
        ),
    },
    md5={
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    # Official files (26,421,880 / 29,515 / 4,422,102 / 5,148 bytes); their MD5s are the ones
    # the Fashion-MNIST README publishes.
    sha256={
        "train-images-idx3-ubyte.gz": (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
        ),
        "train-labels-idx1-ubyte.gz": (
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
        ),
        "t10k-images-idx3-ubyte.gz": (
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
        ),
        "t10k-labels-idx1-ubyte.gz": (
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
        ),
    },
    md5={
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
)

#: SHA-256 of the files Debian's ``dataset-fashion-mnist`` 0.0~git20200523.55506a9-1 ships.
#: They differ from the official ones only in the gzip header (Debian's build normalises it:
#: no stored file name, a fixed time stamp), so the images and labels are the same. Local files
#: are therefore checked by their IDX structure, and only downloads by digest.
DEBIAN_FASHION_MNIST_SHA256: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
}

DATASETS: Mapping[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST)}


def system_root() -> Path:
    """The system data root: ``$XPNET_SYSTEM_DATA`` or :data:`SYSTEM_DATA_ROOT`."""
    override = os.environ.get(SYSTEM_ENV)
    return Path(override) if override else SYSTEM_DATA_ROOT


def cache_dir(name: str) -> Path:
    """The download cache folder of data set ``name`` (see the module docstring)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser() / name
    xdg = os.environ.get("XDG_CACHE_HOME")
    root = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return root / "xpnet" / name


def search_dirs(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> list[tuple[str, Path]]:
    """The folders searched for data set ``name``, in order, each with where it came from."""
    dirs: list[tuple[str, Path]] = []
    if data_dir is not None:
        base = Path(data_dir).expanduser()
        dirs += [("data_dir", base / name), ("data_dir", base)]
    env = os.environ.get(DATA_ENV)
    if env:
        dirs.append((f"${DATA_ENV}", Path(env).expanduser() / name))
    dirs.append(("system", system_root() / name))
    dirs.append(("cache", cache_dir(name)))
    return dirs


def find_file(folder: Path, base: str) -> Path | None:
    """``folder/base.gz`` or ``folder/base`` (in that order), whichever is a file."""
    for candidate in (folder / f"{base}.gz", folder / base):
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Located:
    """A split's two files as found on disk."""

    images: Path
    labels: Path


def locate(
    spec: DatasetSpec, split: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Located | None, list[str]]:
    """The first searched folder holding both files of ``split``, and a line per folder looked at.

    The lines explain, for error messages, why each folder did not serve.
    """
    files = spec.splits[split]
    notes: list[str] = []
    for origin, folder in search_dirs(spec.name, data_dir):
        if not folder.is_dir():
            notes.append(f"{folder} ({origin}): no such folder")
            continue
        images, labels = find_file(folder, files.images), find_file(folder, files.labels)
        if images is not None and labels is not None:
            return Located(images, labels), notes
        missing = [b for b, p in ((files.images, images), (files.labels, labels)) if p is None]
        notes.append(f"{folder} ({origin}): missing {' and '.join(m + '[.gz]' for m in missing)}")
    if not os.environ.get(DATA_ENV):
        notes.append(f"${DATA_ENV}: not set")
    return None, notes
