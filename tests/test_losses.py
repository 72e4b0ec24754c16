"""Losses: hand-computed values and gradients, a naive float64 reference, target errors."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import xpnet
from xpnet.losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy

aas = pytest.importorskip("array_api_strict")


# ------------------------------------------------------------------------------- MSE
def test_mse_by_hand():
    loss = MSE()
    pred = np.array([[1.0, 2.0], [3.0, 4.0]])
    target = np.array([[0.0, 2.0], [1.0, 1.0]])
    # differences 1, 0, 2, 3 -> squares 1, 0, 4, 9 -> mean over all 4 elements
    assert float(loss.forward(pred, target)) == 3.5
    # 2 (p - t) / size
    np.testing.assert_allclose(loss.backward(), [[0.5, 0.0], [1.0, 1.5]], rtol=1e-15)


def test_mse_column_prediction_with_flat_target():
    loss = MSE()
    pred = np.array([[1.0], [2.0], [4.0]])
    assert float(loss.forward(pred, np.array([0.0, 2.0, 2.0]))) == pytest.approx(5 / 3)
    np.testing.assert_allclose(loss.backward(), [[2 / 3], [0.0], [4 / 3]])


def test_mse_keeps_float32():
    loss = MSE()
    pred = np.ones((2, 3), dtype=np.float32)
    out = loss.forward(pred, np.zeros((2, 3), dtype=np.float64))
    assert out.dtype == np.float32 and loss.backward().dtype == np.float32


def test_mse_wrong_shape():
    with pytest.raises(ValueError, match=re.escape("(2, 2)")):
        MSE().forward(np.ones((2, 3)), np.ones((2, 2)))


# ---------------------------------------------------------------- softmax cross-entropy
def _naive_sce(z, labels):
    """Cross-entropy by the textbook formula, in float64, one row at a time."""
    total = 0.0
    for row, k in zip(z.astype(np.float64), labels, strict=True):
        e = [math.exp(v) for v in row]
        total -= math.log(e[k] / sum(e))
    return total / len(labels)


def test_sce_matches_naive_float64():
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(7, 5))
    labels = rng.integers(0, 5, size=7)
    loss = SoftmaxCrossEntropy()
    assert float(loss.forward(z, labels)) == pytest.approx(_naive_sce(z, labels), rel=1e-12)


def test_sce_by_hand():
    # logits [0, log 3]: p = [1/4, 3/4]; label 1 -> -log(3/4); label 0 -> -log(1/4)
    z = np.array([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    loss = SoftmaxCrossEntropy()
    value = float(loss.forward(z, np.array([1, 0])))
    assert value == pytest.approx((-math.log(0.75) - math.log(0.25)) / 2, rel=1e-14)
    np.testing.assert_allclose(loss.backward(), [[0.125, -0.125], [-0.375, 0.375]], rtol=1e-14)


def test_sce_gradient_is_p_minus_onehot_over_n():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 4))
    labels = np.array([0, 1, 2, 3, 3, 1])
    loss = SoftmaxCrossEntropy()
    loss.forward(z, labels)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(4)[labels]
    np.testing.assert_allclose(loss.backward(), (p - onehot) / 6, rtol=1e-12, atol=1e-16)


def test_sce_labels_and_onehot_agree():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(5, 3)).astype(np.float32)
    labels = np.array([2, 0, 1, 1, 0])
    a, b = SoftmaxCrossEntropy(), SoftmaxCrossEntropy()
    la = a.forward(z, labels)
    lb = b.forward(z, np.eye(3, dtype=np.float32)[labels])
    assert la.dtype == lb.dtype == np.float32
    assert float(la) == float(lb)
    np.testing.assert_array_equal(a.backward(), b.backward())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sce_stable_for_huge_logits(dtype):
    z = np.array([[1e4, 0.0, -1e4], [0.0, 0.0, 800.0]], dtype=dtype)
    loss = SoftmaxCrossEntropy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value = float(loss.forward(z, np.array([0, 0])))
            grad = loss.backward()
    # row 0 is right and sure: ~0; row 1 is wrong by 800: 800
    assert value == pytest.approx(400.0, rel=1e-6)
    assert np.isfinite(grad).all() and grad.dtype == dtype


def test_sce_on_array_api_strict_matches_numpy():
    be = xpnet.get_backend(aas, "float64")
    z = np.random.default_rng(3).normal(size=(4, 3))
    labels = np.array([0, 2, 2, 1])
    ref, loss = SoftmaxCrossEntropy(), SoftmaxCrossEntropy().to(be)
    value = loss.forward(be.asarray(z), be.asarray(labels))
    assert be.to_float(value) == pytest.approx(float(ref.forward(z, labels)), rel=1e-14)
    np.testing.assert_allclose(be.to_host(loss.backward()), ref.backward(), rtol=1e-14)
    assert be.to_float(loss.accuracy(be.asarray(z), be.asarray(labels))) == float(
        ref.accuracy(z, labels)
    )


def test_sce_accuracy():
    z = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.0, 1.0]])
    assert float(SoftmaxCrossEntropy().accuracy(z, np.array([0, 1, 1, 0]))) == 0.5


@pytest.mark.parametrize(
    ("target", "exc", "fragment"),
    [
        (np.array([0, 1, 3]), ValueError, "got 3"),
        (np.array([0, -1, 2]), ValueError, "got -1"),
        (np.array([0.0, 1.0, 2.0]), TypeError, "integer class labels"),
        (np.array([0, 1]), ValueError, "2 labels for 3 rows"),
        (np.zeros((3, 4)), ValueError, "(3, 4)"),
        (np.zeros((3, 3, 1)), ValueError, "(3, 3, 1)"),
        (np.full((3, 3), 0.5), ValueError, "summing to"),
        (np.eye(3, dtype=np.int64), TypeError, "floating"),
    ],
)
def test_sce_bad_targets(target, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        SoftmaxCrossEntropy().forward(np.zeros((3, 3)), target)


def test_sce_label_error_names_the_valid_range():
    with pytest.raises(ValueError, match=re.escape("[0, 9]")):
        SoftmaxCrossEntropy().forward(np.zeros((2, 10)), np.array([3, 10]))


# ----------------------------------------------------------------- binary cross-entropy
def test_bce_probabilities_by_hand():
    loss = BinaryCrossEntropy()
    p = np.array([[0.9], [0.2]])
    t = np.array([1.0, 0.0])
    assert float(loss.forward(p, t)) == pytest.approx(
        -(math.log(0.9) + math.log(0.8)) / 2, rel=1e-12
    )
    # (p - t) / (p (1 - p)) / size: -1/0.9/2 and 1/0.8/2
    np.testing.assert_allclose(loss.backward(), [[-1 / 1.8], [1 / 1.6]], rtol=1e-12)


def test_bce_from_logits_by_hand_and_matches_probabilities():
    z = np.array([[2.0, -1.0], [0.0, 0.5]])
    t = np.array([[1.0, 0.0], [1.0, 1.0]])
    s = 1 / (1 + np.exp(-z))
    naive = -np.mean(t * np.log(s) + (1 - t) * np.log(1 - s))
    logits = BinaryCrossEntropy(from_logits=True)
    assert float(logits.forward(z, t)) == pytest.approx(naive, rel=1e-12)
    np.testing.assert_allclose(logits.backward(), (s - t) / 4, rtol=1e-12)
    probs = BinaryCrossEntropy()
    assert float(probs.forward(s, t)) == pytest.approx(naive, rel=1e-9)


def test_bce_from_logits_stable_for_huge_logits():
    z = np.array([[1e4], [-1e4], [50.0]], dtype=np.float32)
    t = np.array([1.0, 1.0, 0.0], dtype=np.float32)
    loss = BinaryCrossEntropy(from_logits=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            value = float(loss.forward(z, t))
            grad = loss.backward()
    assert value == pytest.approx((0.0 + 1e4 + 50.0) / 3, rel=1e-6)
    np.testing.assert_allclose(grad[:, 0], [0.0, -1 / 3, 1 / 3], atol=1e-7)


def test_bce_clips_probabilities():
    loss = BinaryCrossEntropy(eps=1e-7)
    value = float(loss.forward(np.array([[0.0], [1.0]]), np.array([1.0, 0.0])))
    assert value == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert np.isfinite(loss.backward()).all()


@pytest.mark.parametrize("from_logits", [False, True])
def test_bce_float32_and_array_api_strict(from_logits):
    p = np.array([[0.3, 0.9], [0.8, 0.5]], dtype=np.float32)
    t = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=np.float32)
    ref = BinaryCrossEntropy(from_logits=from_logits)
    value = ref.forward(p, t)
    grad = ref.backward()
    assert value.dtype == grad.dtype == ref.accuracy(p, t).dtype == np.float32
    be = xpnet.get_backend(aas, "float32")
    loss = BinaryCrossEntropy(from_logits=from_logits).to(be)
    got = loss.forward(be.asarray(p), be.asarray(t))
    assert be.to_float(got) == pytest.approx(float(value), rel=1e-6)
    np.testing.assert_allclose(be.to_host(loss.backward()), grad, rtol=1e-6)


def test_bce_accuracy():
    p = np.array([[0.9], [0.4], [0.6]])
    acc = BinaryCrossEntropy().accuracy(p, np.array([1.0, 1.0, 0.0]))
    assert float(acc) == pytest.approx(1 / 3)
    z = np.array([[1.0], [-1.0]])
    assert float(BinaryCrossEntropy(from_logits=True).accuracy(z, np.array([1.0, 0.0]))) == 1.0


def test_bce_bad_targets():
    with pytest.raises(ValueError, match=re.escape("[0, 1]")):
        BinaryCrossEntropy().forward(np.full((2, 1), 0.5), np.array([0.0, 2.0]))
    with pytest.raises(ValueError, match=re.escape("(3,)")):
        BinaryCrossEntropy().forward(np.full((2, 1), 0.5), np.array([0.0, 1.0, 1.0]))


@pytest.mark.parametrize(
    ("make", "exc", "quoted"),
    [
        (lambda: BinaryCrossEntropy(from_logits=1), TypeError, "1"),
        (lambda: BinaryCrossEntropy(eps=0.0), ValueError, "0.0"),
        (lambda: BinaryCrossEntropy(eps=0.7), ValueError, "0.7"),
    ],
)
def test_bce_constructor_errors(make, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)):
        make()


@pytest.mark.parametrize("make", [MSE, SoftmaxCrossEntropy, BinaryCrossEntropy])
def test_backward_before_forward(make):
    with pytest.raises(RuntimeError, match="before forward"):
        make().backward()
