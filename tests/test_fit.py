"""Model training: fit / evaluate / predict / predict_proba, history, progress, input checks."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import Dense, Dropout, ReLU, Sigmoid
from xpnet.losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy
from xpnet.optim import SGD, Adam, InverseTimeDecay

aas = pytest.importorskip("array_api_strict")


def _blobs(n=240, seed=0):
    """Three well-separated Gaussian blobs in 2-D, plus 2 noise features: host float64, int64."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, size=n)
    X = np.concatenate([centers[y] + rng.normal(size=(n, 2)), rng.normal(size=(n, 2))], axis=1)
    return X, y.astype(np.int64)


def _classifier(seed=0, dropout=0.2, backend="numpy", dtype=None, lr=0.01):
    layers = [Dense(4, 16), ReLU(), Dropout(dropout), Dense(16, 3)]
    model = Sequential(layers, seed=seed, backend=backend, dtype=dtype)
    return model.compile(
        SoftmaxCrossEntropy(), Adam(lr, beta1=0.8, schedule=InverseTimeDecay(0.1))
    )


# ------------------------------------------------------------------------------ training
def test_fit_learns_and_reports_history():
    X, y = _blobs()
    Xv, yv = _blobs(90, seed=1)
    model = _classifier()
    before = model.evaluate(Xv, yv)
    hist = model.fit(X, y, epochs=5, batch_size=16, validation_data=(Xv, yv), seed=0)
    assert hist is model.history and hist.epochs == 5
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "time", "samples_per_s"):
        assert key in hist and len(hist[key]) == 5, key
    assert hist["loss"][-1] < hist["loss"][0]
    # InverseTimeDecay(0.1): the lr in force at each epoch
    np.testing.assert_allclose(hist["lr"], [0.01 / (1 + 0.1 * e) for e in range(5)], rtol=1e-12)
    after = model.evaluate(Xv, yv)
    assert set(after) == {"loss", "accuracy"}
    assert after["loss"] < before["loss"] and after["accuracy"] >= 0.95
    last = {"loss": hist["val_loss"][-1], "accuracy": hist["val_accuracy"][-1]}
    assert after == pytest.approx(last)


def test_predict_and_predict_proba_agree_with_evaluate():
    X, y = _blobs()
    model = _classifier()
    model.fit(X, y, epochs=3, batch_size=32, seed=1)
    proba = model.predict_proba(X)
    assert isinstance(proba, np.ndarray) and proba.shape == (240, 3) and proba.dtype == np.float32
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (proba >= 0).all()
    pred = model.predict(X)
    assert pred.dtype == np.int64 and pred.shape == (240,)
    np.testing.assert_array_equal(pred, proba.argmax(axis=1))
    # inference is deterministic (dropout off) and independent of the batch size
    np.testing.assert_array_equal(model.predict(X, batch_size=7), pred)
    assert model.evaluate(X, y)["accuracy"] == pytest.approx(np.mean(pred == y))


def test_host_inputs_of_any_real_dtype_are_accepted():
    X, y = _blobs(64)
    model = _classifier()
    model.fit(X.astype(np.float32), y.astype(np.int32), epochs=1, batch_size=16, seed=0)
    model.fit(X.tolist(), y.tolist(), epochs=1, batch_size=16, seed=0)
    model.fit(np.round(X * 10).astype(np.int16), y.astype(np.uint8), epochs=1, seed=0)
    assert model.predict(X.tolist()).shape == (64,)
    assert all(p.dtype == np.float32 for p in model.params.values())


def test_same_seed_gives_bit_identical_weights():
    X, y = _blobs()

    def run(seed):
        model = _classifier(seed=seed, dropout=0.3)
        model.fit(X, y, epochs=2, batch_size=16, seed=seed)
        return model

    a, b, c = run(3), run(3), run(4)
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
        np.testing.assert_array_equal(a.optimizer.state[key]["m"], b.optimizer.state[key]["m"])
    assert a.history["loss"] == b.history["loss"]
    assert not np.array_equal(a.params["0.W"], c.params["0.W"])


def test_shuffle_false_and_batch_larger_than_data():
    X, y = _blobs(20)
    model = _classifier(dropout=0.0)
    hist = model.fit(X, y, epochs=2, batch_size=64, shuffle=False)
    assert model.optimizer.t == 2 and hist.epochs == 2


def test_regression_with_mse():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3))
    y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    model = Sequential([Dense(3, 1)], seed=0, dtype="float64").compile(MSE(), SGD(0.1))
    hist = model.fit(X, y, epochs=30, batch_size=32, seed=0)
    assert "accuracy" not in hist
    assert model.evaluate(X, y) == {"loss": pytest.approx(0.0, abs=1e-6)}
    np.testing.assert_allclose(model.layers[0].params["W"][:, 0], [1.0, -2.0, 0.5], atol=1e-3)


def test_binary_classifier_predicts_zero_or_one():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.float64)
    probs = Sequential([Dense(2, 1), Sigmoid()], seed=0).compile(BinaryCrossEntropy(), SGD(0.5))
    logits = Sequential([Dense(2, 1)], seed=0)
    logits.compile(BinaryCrossEntropy(from_logits=True), SGD(0.5))
    for model in (probs, logits):
        model.fit(X, y, epochs=20, batch_size=20, seed=0)
        pred = model.predict(X)
        assert set(np.unique(pred)) <= {0, 1} and pred.dtype == np.int64
        assert np.mean(pred == y) > 0.95
        assert model.evaluate(X, y)["accuracy"] == pytest.approx(np.mean(pred == y))
    # both see the same data from the same start: sigmoid outputs agree
    np.testing.assert_allclose(probs.predict_proba(X), logits.predict_proba(X), atol=1e-5)


def test_fit_on_array_api_strict_matches_numpy():
    X, y = _blobs(96)
    ref = _classifier(dtype="float64")
    ref.fit(X, y, epochs=2, batch_size=16, seed=5)
    be = xpnet.get_backend(aas, "float64")
    model = _classifier(backend=be)
    model.fit(X, y, epochs=2, batch_size=16, seed=5)
    for key in ref.params:
        np.testing.assert_allclose(be.to_host(model.params[key]), ref.params[key], rtol=1e-10)
    np.testing.assert_array_equal(model.predict(X), ref.predict(X))


# ------------------------------------------------------------------------ progress bar
def test_progress_is_quiet_when_stderr_is_not_a_tty(capsys):
    X, y = _blobs(64)
    _classifier().fit(X, y, epochs=2, batch_size=16, verbose=None)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_is_shown_with_verbose_true(capsys):
    X, y = _blobs(64)
    _classifier().fit(X, y, epochs=2, batch_size=16, verbose=True, validation_data=(X, y))
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err
    assert "64/64" in err and "loss" in err and "val_accuracy" in err


def test_progress_is_off_with_verbose_false(capsys):
    X, y = _blobs(64)
    _classifier().fit(X, y, epochs=1, verbose=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------ errors
def test_wrong_width_names_the_layer_and_the_shape_it_expected():
    model = Sequential([Dense(784, 10), ReLU(), Dense(10, 10)], seed=0)
    model.compile(SoftmaxCrossEntropy(), SGD(0.1))
    X = np.zeros((5, 785), dtype=np.float32)
    y = np.zeros(5, dtype=np.int64)
    pattern = re.escape("layer 0 (Dense 784 -> 10) expects input of shape (batch, 784)")
    for call in (lambda: model.fit(X, y), lambda: model.predict(X),
                 lambda: model.predict_proba(X), lambda: model.evaluate(X, y)):
        with pytest.raises(ValueError, match=pattern) as info:
            call()
        assert "(5, 785)" in str(info.value)


@pytest.mark.parametrize("shape", [(784,), (2, 28, 28), (2, 1, 784)])
def test_wrong_rank_names_the_layer(shape):
    model = Sequential([Dense(784, 10)], seed=0)
    with pytest.raises(ValueError, match=re.escape("(batch, 784)")) as info:
        model.predict(np.zeros(shape))
    assert "layer 0 (Dense 784 -> 10)" in str(info.value) and str(shape) in str(info.value)


@pytest.mark.parametrize(
    "X", [np.array([["a", "b", "c", "d"]]), np.array([[None, 1, 2, 3]], dtype=object),
          np.ones((1, 4), dtype=complex)]
)
def test_non_real_inputs_name_the_layer_and_the_shape_it_expected(X):
    with pytest.raises(TypeError, match=re.escape(str(X.dtype))) as info:
        _classifier().predict(X)
    msg = str(info.value)
    assert msg.startswith("X must hold real numbers")
    assert "layer 0 (Dense 4 -> 16) expects input of shape (batch, 4)" in msg


def test_nan_or_inf_in_X_is_a_clear_error():
    X, y = _blobs(32)
    model = _classifier()
    X[7, 2] = np.nan
    first = re.escape("X contains NaN or infinity (first at index (7, 2))")
    with pytest.raises(ValueError, match=first):
        model.fit(X, y)
    X[7, 2] = np.inf
    with pytest.raises(ValueError, match="NaN or infinity"):
        model.predict(X)
    Xv, yv = _blobs(16)
    Xv[0, 0] = -np.inf
    with pytest.raises(ValueError, match="validation X"):
        model.fit(_blobs(32)[0], y, validation_data=(Xv, yv))


def test_labels_out_of_range_are_a_clear_error():
    X, y = _blobs(32)
    model = _classifier()
    y[4] = 3
    with pytest.raises(ValueError, match=re.escape("labels must be in [0, 2]")) as info:
        model.fit(X, y)
    assert "got 3" in str(info.value) and str(info.value).startswith("y:")
    y[4] = -1
    with pytest.raises(ValueError, match="got -1"):
        model.evaluate(X, y)


def test_bad_targets():
    X, y = _blobs(32)
    model = _classifier()
    with pytest.raises(TypeError, match="integer class labels"):
        model.fit(X, y.astype(np.float64))
    with pytest.raises(ValueError, match="31 rows but X has 32"):
        model.fit(X, y[:-1])
    with pytest.raises(ValueError, match=re.escape("(32, 4)")):
        model.fit(X, np.eye(4)[y])


def test_fit_needs_compile_and_valid_arguments():
    X, y = _blobs(16)
    bare = Sequential([Dense(4, 3)], seed=0)
    with pytest.raises(RuntimeError, match="compile"):
        bare.fit(X, y)
    with pytest.raises(RuntimeError, match="compile"):
        bare.evaluate(X, y)
    model = _classifier()
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        model.fit(X, y, epochs=0)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got -4"):
        model.fit(X, y, batch_size=-4)
    with pytest.raises(TypeError, match="'yes'"):
        model.fit(X, y, verbose="yes")
    with pytest.raises(ValueError, match="empty"):
        model.predict(np.zeros((0, 4)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_model_seed_alone_makes_fit_reproducible(dtype):
    # fit(seed=None) on a seeded model: shuffling and dropout both come from the model's seed
    X, y = _blobs(64)
    a = _classifier(seed=8, dropout=0.5, dtype=dtype)
    b = _classifier(seed=8, dropout=0.5, dtype=dtype)
    a.fit(X, y, epochs=2, batch_size=16)
    b.fit(X, y, epochs=2, batch_size=16)
    for key in a.params:
        assert a.params[key].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a.params[key], b.params[key])


def test_validation_data_is_checked_once_not_at_every_epoch(monkeypatch):
    """fit prepares (checks, and on a GPU uploads) the validation set once, then evaluates the
    prepared arrays at each epoch end."""
    import xpnet.training.inputs as inputs

    calls = []
    real = inputs.check_finite
    monkeypatch.setattr(inputs, "check_finite", lambda h, name, dt: calls.append(name) or
                        real(h, name, dt))
    X, y = _blobs(64)
    history = _classifier().fit(X, y, epochs=3, validation_data=(X, y), verbose=False)
    assert len(history["val_loss"]) == 3
    assert calls == ["X", "validation X"]
