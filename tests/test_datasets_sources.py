"""Finding data set files: search order, split-only folders, validation of what is found."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from xpnet.datasets import (
    FASHION_MNIST,
    MNIST,
    DatasetError,
    DatasetUnavailableError,
    cache_dir,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    search_dirs,
    write_idx,
)
from xpnet.datasets.sources import SYSTEM_DATA_ROOT, SplitFiles


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the system root and the cache into ``tmp_path``; unset $XPNET_DATA."""
    monkeypatch.setenv("XPNET_SYSTEM_DATA", str(tmp_path / "system"))
    monkeypatch.setenv("XPNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("XPNET_DATA", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path


def make_split(
    folder: Path,
    split: str,
    marker: int,
    *,
    n: int = 6,
    gz: bool = True,
    labels: np.ndarray | None = None,
    image_shape: tuple[int, ...] = (28, 28),
) -> None:
    """Write a tiny split whose every pixel equals ``marker``, so tests can tell sources apart."""
    files: SplitFiles = MNIST.splits[split]
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"{files.images}{suffix}", np.full((n, *image_shape), marker, np.uint8))
    y = np.arange(n, dtype=np.uint8) % 10 if labels is None else labels
    write_idx(folder / f"{files.labels}{suffix}", y)


def marker_of(X: np.ndarray) -> int:
    return int(X[0, 0])


def test_search_order_explicit_dir_first(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_split(env / "explicit", "train", 1)
    make_split(env / "envdata" / "mnist", "train", 2)
    make_split(env / "system" / "mnist", "train", 3)
    make_split(env / "cache" / "mnist", "train", 4)
    monkeypatch.setenv("XPNET_DATA", str(env / "envdata"))
    X, y = load_mnist("train", data_dir=env / "explicit", download=False)
    assert marker_of(X) == 1
    assert X.shape == (6, 784) and X.dtype == np.uint8
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 2, 3, 4, 5]
    assert marker_of(load_mnist("train", download=False)[0]) == 2
    monkeypatch.delenv("XPNET_DATA")
    assert marker_of(load_mnist("train", download=False)[0]) == 3
    monkeypatch.setenv("XPNET_SYSTEM_DATA", str(env / "empty-system"))
    assert marker_of(load_mnist("train", download=False)[0]) == 4


def test_explicit_dir_may_hold_a_named_subfolder(env: Path) -> None:
    make_split(env / "root" / "fashion-mnist", "train", 7)
    make_split(env / "root" / "mnist", "train", 8)
    assert marker_of(load_fashion_mnist("train", env / "root", download=False)[0]) == 7
    assert marker_of(load_mnist("train", env / "root", download=False)[0]) == 8


def test_search_dirs_lists_every_source_in_order(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XPNET_DATA", str(env / "d"))
    origins = [origin for origin, _ in search_dirs("mnist", env / "x")]
    assert origins == ["data_dir", "data_dir", "$XPNET_DATA", "system", "cache"]
    assert search_dirs("mnist")[-1][1] == env / "cache" / "mnist"


def test_cache_dir_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XPNET_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("mnist") == tmp_path / "xdg" / "xpnet" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("mnist") == tmp_path / "home" / ".cache" / "xpnet" / "mnist"


def test_system_root_default_is_debians() -> None:
    assert SYSTEM_DATA_ROOT == Path("/usr/share/datasets")


def test_folder_with_only_the_test_split_serves_test(env: Path) -> None:
    make_split(env / "only-test", "test", 5, n=4)
    assert sorted(os.listdir(env / "only-test")) == [
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    X, y = load_mnist("test", env / "only-test", download=False)
    assert X.shape == (4, 784) and marker_of(X) == 5
    with pytest.raises(DatasetUnavailableError, match="missing train-images-idx3-ubyte"):
        load_mnist("train", env / "only-test", download=False)


def test_half_a_split_is_skipped_for_a_later_complete_one(env: Path) -> None:
    make_split(env / "explicit", "train", 1)
    (env / "explicit" / "train-labels-idx1-ubyte.gz").unlink()
    make_split(env / "cache" / "mnist", "train", 4)
    assert marker_of(load_mnist("train", env / "explicit", download=False)[0]) == 4


def test_uncompressed_files_are_accepted(env: Path) -> None:
    make_split(env / "raw", "test", 9, gz=False)
    assert marker_of(load_mnist("test", env / "raw", download=False)[0]) == 9


def test_label_out_of_range_names_the_file(env: Path) -> None:
    make_split(env / "d", "train", 1, labels=np.array([0, 1, 2, 10, 3, 4], np.uint8))
    with pytest.raises(DatasetError) as info:
        load_mnist("train", env / "d", download=False)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message
    assert "outside 0..9" in message and "index 3 with value 10" in message


def test_count_mismatch_names_both_files(env: Path) -> None:
    make_split(env / "d", "train", 1, n=6, labels=np.arange(5, dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"has 6 images but .*train-labels.* has 5 labels"):
        load_mnist("train", env / "d", download=False)


def test_wrong_image_shape_names_the_file(env: Path) -> None:
    make_split(env / "d", "train", 1, image_shape=(32, 32))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz: expected uint8 images"):
        load_mnist("train", env / "d", download=False)


def test_corrupt_local_file_is_reported_not_skipped(env: Path) -> None:
    make_split(env / "d", "test", 1)
    (env / "d" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: damaged gzip"):
        load_mnist("test", env / "d", download=False)


def test_unavailable_full_mnist_says_how_to_get_it(env: Path) -> None:
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist("train", download=False)
    message = str(info.value)
    assert "MNIST (train split) is not available" in message
    assert "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz" in message
    assert str(env / "cache" / "mnist") in message
    assert "XPNET_DATA" in message and "--data-dir" in message
    assert str(env / "system" / "mnist") in message  # where it looked
    assert "never used in place of MNIST" in message


def test_unavailable_is_a_dataset_error_and_value_error(env: Path) -> None:
    with pytest.raises(ValueError):
        load_dataset("fashion-mnist", "test", download=False)


@pytest.mark.parametrize(
    ("name", "split", "fragment"),
    [("cifar", "train", "'cifar'"), ("mnist", "validation", "'validation'")],
)
def test_bad_name_or_split_quotes_the_value(name: str, split: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        load_dataset(name, split)


def test_specs_have_a_digest_for_every_file() -> None:
    for spec in (MNIST, FASHION_MNIST):
        for files in spec.splits.values():
            for base in (files.images, files.labels):
                assert len(spec.sha256[f"{base}.gz"]) == 64
                assert len(spec.md5[f"{base}.gz"]) == 32


DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not (DEBIAN / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_debian_fashion_mnist_loads_fully(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XPNET_SYSTEM_DATA", raising=False)
    monkeypatch.delenv("XPNET_DATA", raising=False)
    monkeypatch.setenv("XPNET_CACHE", str(tmp_path / "cache"))
    X, y = load_fashion_mnist("train", download=False)
    assert X.shape == (60000, 784) and X.dtype == np.uint8 and y.shape == (60000,)
    assert np.bincount(y).tolist() == [6000] * 10
    X, y = load_dataset("fashion-mnist", "test", download=False)
    assert X.shape == (10000, 784) and np.bincount(y).tolist() == [1000] * 10
