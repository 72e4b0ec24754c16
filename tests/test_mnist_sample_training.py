"""Done when: the 784-400-100-10 network learns real MNIST digits, saves, and reloads anywhere.

Trains on 4,000 of the 5,000 digits in ../shared/datasets/mnist-5k (skipped when absent) for 4
epochs (batches of 128) on NumPy float32 and checks the accuracy on the other 1,000. Measured
here: 0.938-0.945 held-out accuracy over 6 split/seed pairs (0.938 for the pair below), about
0.65 s of training with one BLAS thread; the threshold 0.92 leaves a margin for other BLAS
builds and machines.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, InverseTimeDecay

DATA = Path(__file__).parents[2] / "shared/datasets/mnist-5k/mnist_5k.csv.gz"
MIN_ACCURACY = 0.92

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    if not DATA.is_file():
        pytest.skip(f"MNIST sample not found at {DATA}")
    with gzip.open(DATA, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    assert table.shape == (5000, 785)
    X = table[:, :784].astype(np.float32) / 255.0
    y = table[:, 784].astype(np.int64)
    # the file is sorted by class: a seeded shuffle before splitting
    order = np.random.default_rng(1).permutation(len(y))
    train, test = order[:4000], order[4000:]
    return X[train], y[train], X[test], y[test]


def _network(seed):
    layers = [
        Dense(784, 400, init="he_normal"), ReLU(), Dropout(0.2),
        Dense(400, 100, init="he_normal"), ReLU(), Dropout(0.2),
        Dense(100, 10, init="he_normal"),
    ]
    model = Sequential(layers, seed=seed)
    return model.compile(
        SoftmaxCrossEntropy(), Adam(0.005, beta1=0.8, schedule=InverseTimeDecay(0.5))
    )


def test_mnist_sample_trains_saves_and_reloads(digits, tmp_path):
    X_train, y_train, X_test, y_test = digits
    assert np.bincount(y_test, minlength=10).min() >= 70  # every digit is held out
    model = _network(seed=1)
    history = model.fit(X_train, y_train, epochs=4, batch_size=128, seed=1,
                        validation_data=(X_test, y_test))
    assert history["loss"][-1] < history["loss"][0]
    # InverseTimeDecay(0.5): lr / (1 + 0.5 epoch)
    np.testing.assert_allclose(history["lr"], [0.005, 0.005 / 1.5, 0.0025, 0.002], rtol=1e-12)
    result = model.evaluate(X_test, y_test)
    assert result["accuracy"] >= MIN_ACCURACY, result
    predicted = model.predict(X_test)
    assert np.mean(predicted == y_test) == pytest.approx(result["accuracy"])

    path = model.save(tmp_path / "mnist.npz")
    m64 = xpnet.load(path, dtype="float64")
    assert m64.backend.dtype_name == "float64"
    np.testing.assert_array_equal(m64.predict(X_test), predicted)

    aas = pytest.importorskip("array_api_strict")
    strict = xpnet.load(path, backend=xpnet.get_backend(aas, "float32"))
    assert strict.backend.xp is aas
    np.testing.assert_array_equal(strict.predict(X_test), predicted)
