"""Softmax, log-softmax, sigmoid and the cross-entropies at extreme values (Hypothesis).

"Finite wherever the math is finite": for float32 logits within +-1e30 and float64 logits
within +-1e300 (rows mixing both signs, rows of equal logits, one-hot predictions) every output
and every gradient is finite, keeps the input's dtype, and matches a reference computed in
higher precision (float64 for float32 inputs, long double for float64 ones) by a different
formula. Beyond that, where a spread of logits exceeds the dtype's range, probabilities and
gradients stay finite and a loss may only be +inf where its true value is above the largest
float, never NaN.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from xpnet import Sequential, get_backend
from xpnet.layers import Dense, Sigmoid, Softmax
from xpnet.layers.activations import sigmoid
from xpnet.layers.softmax import log_softmax, softmax
from xpnet.losses import MSE, BinaryCrossEntropy, SoftmaxCrossEntropy
from xpnet.optim import SGD

LIMITS = {"float32": 1e30, "float64": 1e300}
HIGHER = {"float32": np.float64, "float64": np.longdouble}
TOL = {"float32": 2e-6, "float64": 1e-13}


def logits(dtype: str, *, limit: float | None = None) -> st.SearchStrategy[np.ndarray]:
    """(N, C) logits in [-limit, limit], with the extremes, zero and ties drawn often."""
    lim = float(np.dtype(dtype).type(LIMITS[dtype] if limit is None else limit))
    width = 32 if dtype == "float32" else 64
    element = st.one_of(
        st.floats(-lim, lim, width=width),
        st.sampled_from([lim, -lim, 0.0, 1.0]),
    )
    shape = st.tuples(st.integers(1, 6), st.integers(1, 7))
    return arrays(np.dtype(dtype), shape, elements=element)


def ref_log_softmax(x: np.ndarray) -> np.ndarray:
    h = x.astype(HIGHER[str(x.dtype)])
    m = h.max(axis=1, keepdims=True)
    return (h - m) - np.log(np.exp(h - m).sum(axis=1, keepdims=True))


def ref_softmax(x: np.ndarray) -> np.ndarray:
    """``p_i = 1 / sum_j exp(x_j - x_i)``: no max subtracted, overflow gives exactly 0."""
    h = x.astype(HIGHER[str(x.dtype)])
    with np.errstate(over="ignore"):
        return 1.0 / np.exp(h[:, None, :] - h[:, :, None]).sum(axis=2)


def close(got: np.ndarray, want: np.ndarray, dtype: str, scale: float = 1.0) -> None:
    tol = TOL[dtype] * scale
    np.testing.assert_allclose(got.astype(want.dtype), want, rtol=tol, atol=tol)


dtypes = pytest.mark.parametrize("dtype", ["float32", "float64"])


@dtypes
@given(data=st.data())
def test_softmax_and_log_softmax_extremes(dtype: str, data: st.DataObject) -> None:
    x = data.draw(logits(dtype))
    p, lp = softmax(np, x), log_softmax(np, x)
    assert p.dtype == lp.dtype == np.dtype(dtype)
    assert np.isfinite(p).all() and np.isfinite(lp).all()
    assert (p >= 0).all() and (p <= 1).all() and (lp <= 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=10 * TOL[dtype])
    close(p, ref_softmax(x), dtype)
    close(lp, ref_log_softmax(x), dtype)


@dtypes
@given(data=st.data())
def test_softmax_layer_backward_extremes(dtype: str, data: st.DataObject) -> None:
    x = data.draw(logits(dtype))
    dy = data.draw(arrays(np.dtype(dtype), x.shape, elements=st.floats(-1e3, 1e3, width=32)))
    layer = Softmax().to("numpy", dtype)
    y = layer.forward(x)
    dx = layer.backward(dy)
    assert dx.dtype == np.dtype(dtype) and np.isfinite(dx).all()
    want = ref_softmax(x) * (dy - (dy * ref_softmax(x)).sum(axis=1, keepdims=True))
    close(dx, want, dtype, scale=1e3 * x.shape[1])
    assert np.isfinite(y).all()


@dtypes
@pytest.mark.parametrize("n_classes", [1, 2, 10])
def test_equal_logits_rows(dtype: str, n_classes: int) -> None:
    for value in (0.0, LIMITS[dtype], -LIMITS[dtype]):
        x = np.full((3, n_classes), value, dtype=dtype)
        np.testing.assert_allclose(softmax(np, x), 1.0 / n_classes, rtol=TOL[dtype])
        np.testing.assert_allclose(log_softmax(np, x), -np.log(n_classes), atol=TOL[dtype])
        loss = SoftmaxCrossEntropy()
        value_ = loss.forward(x, np.zeros(3, np.int64))
        assert value_.dtype == np.dtype(dtype)
        np.testing.assert_allclose(float(value_), np.log(n_classes), atol=TOL[dtype])
        grad = loss.backward()
        assert np.isfinite(grad).all() and grad.dtype == np.dtype(dtype)


@dtypes
@given(data=st.data())
def test_softmax_cross_entropy_extremes(dtype: str, data: st.DataObject) -> None:
    x = data.draw(logits(dtype))
    n, c = x.shape
    labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss = SoftmaxCrossEntropy()
    value = loss.forward(x, labels)
    grad = loss.backward()
    assert value.dtype == grad.dtype == np.dtype(dtype)
    assert np.isfinite(value) and np.isfinite(grad).all()
    want = -ref_log_softmax(x)[np.arange(n), labels].mean()
    close(np.asarray(value), np.asarray(want), dtype)
    onehot = np.eye(c)[labels]
    close(grad, (ref_softmax(x) - onehot) / n, dtype)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=10 * TOL[dtype])
    # The same targets as probability rows give the same loss and gradient.
    loss2 = SoftmaxCrossEntropy()
    value2 = loss2.forward(x, onehot.astype(dtype))
    assert float(value2) == pytest.approx(float(value), rel=TOL[dtype], abs=TOL[dtype])
    close(loss2.backward(), grad.astype(np.float64), dtype)


@st.composite
def logits_and_labels(draw: st.DrawFn, dtype: str, limit: float) -> tuple[np.ndarray, np.ndarray]:
    x = draw(logits(dtype, limit=limit))
    n, c = x.shape
    labels = np.asarray(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    return x, labels


F32_MAX = float(np.finfo(np.float32).max)
# Found by the dev profile: each row's loss (1.7e38) is a float32, their sum is not.
HUGE_ROWS = (np.array([[0, 1.7014118e38], [0, 1.7014118e38]], np.float32), np.array([0, 0]))


@example(case=HUGE_ROWS)
@given(case=logits_and_labels("float32", F32_MAX))
def test_cross_entropy_never_nan_across_the_whole_float32_range(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    x, labels = case
    n = x.shape[0]
    with np.errstate(over="ignore"):  # x - max(x) may overflow to -inf: exp gives 0 there
        p = softmax(np, x)
        loss = SoftmaxCrossEntropy()
        value = float(loss.forward(x, labels))
        grad = loss.backward()
    assert np.isfinite(p).all() and np.isfinite(grad).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    rows = -ref_log_softmax(x)[np.arange(n), labels]  # float64: no overflow
    true = float(rows.mean())
    if rows.max() < 0.999 * F32_MAX:  # every row's loss is a float32, so their mean is too
        assert value == pytest.approx(true, rel=1e-5, abs=1e-5)
    else:  # a row's loss is (about) beyond float32: +inf is the rounded answer, NaN never is
        assert value == np.inf or value == pytest.approx(true, rel=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_batch_mean_survives_terms_near_the_largest_float(dtype: str) -> None:
    """Losses whose every term is representable have a representable mean (no overflow in
    the sum), in each loss and in Backend.mean itself."""
    big = float(np.finfo(dtype).max) / 2
    be = get_backend("numpy", dtype)
    assert float(be.mean(np.full((4, 3), big, dtype=dtype))) == pytest.approx(big, rel=1e-6)
    x = np.array([[0.0, big]] * 4, dtype=dtype)
    sce = SoftmaxCrossEntropy().to(be)
    assert float(sce.forward(x, np.zeros(4, dtype=np.int64))) == pytest.approx(big, rel=1e-6)
    bce = BinaryCrossEntropy(from_logits=True).to(be)
    z = np.full((4, 1), big, dtype=dtype)
    assert float(bce.forward(z, np.zeros(4))) == pytest.approx(big, rel=1e-6)
    mse = MSE().to(be)
    root = np.full((4, 2), np.sqrt(big), dtype=dtype)
    assert float(mse.forward(root, np.zeros((4, 2)))) == pytest.approx(big, rel=1e-5)


def test_evaluate_and_fit_metrics_do_not_overflow_for_huge_but_finite_losses() -> None:
    """evaluate() and fit's running loss weight batches without overflowing float32."""
    big = float(np.finfo(np.float32).max) / 4
    model = Sequential([Dense(1, 2, bias=False, rng=0)], seed=0)
    model.layers[0].params["W"][...] = np.array([[0.0, 1.0]], dtype=np.float32)
    model.compile(SoftmaxCrossEntropy(), SGD(1e-45))
    X = np.full((1000, 1), big, dtype=np.float32)
    y = np.zeros(1000, dtype=np.int64)
    assert model.evaluate(X, y, batch_size=100)["loss"] == pytest.approx(big, rel=1e-5)
    history = model.fit(X, y, epochs=1, batch_size=250, shuffle=False, verbose=False)
    assert history["loss"][0] == pytest.approx(big, rel=1e-4)


@dtypes
@given(data=st.data())
def test_sigmoid_extremes(dtype: str, data: st.DataObject) -> None:
    x = data.draw(logits(dtype))
    y = sigmoid(np, x)
    assert y.dtype == np.dtype(dtype) and np.isfinite(y).all()
    assert (y >= 0).all() and (y <= 1).all()
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-x.astype(HIGHER[dtype])))  # naive, in higher precision
    close(y, want, dtype)
    layer = Sigmoid().to("numpy", dtype)
    layer.forward(x)
    dx = layer.backward(np.ones_like(x))
    assert dx.dtype == np.dtype(dtype) and np.isfinite(dx).all() and (dx >= 0).all()


@dtypes
@given(data=st.data())
def test_binary_cross_entropy_on_logits_extremes(dtype: str, data: st.DataObject) -> None:
    z = data.draw(logits(dtype))
    t = data.draw(arrays(np.dtype(dtype), z.shape, elements=st.sampled_from([0.0, 0.25, 1.0])))
    loss = BinaryCrossEntropy(from_logits=True)
    value = loss.forward(z, t)
    grad = loss.backward()
    assert value.dtype == grad.dtype == np.dtype(dtype)
    assert np.isfinite(value) and np.isfinite(grad).all()
    h = z.astype(HIGHER[dtype])
    want = (np.logaddexp(0.0, h) - h * t).mean()  # softplus(z) - z t
    close(np.asarray(value), np.asarray(want), dtype, scale=10)
    with np.errstate(over="ignore"):
        close(grad, (1.0 / (1.0 + np.exp(-h)) - t) / z.size, dtype)


@dtypes
@given(
    data=st.data(),
    eps=st.one_of(st.sampled_from([1e-7, 1e-12, 1e-45, 1e-300]), st.floats(1e-300, 0.49)),
)
def test_binary_cross_entropy_on_one_hot_predictions(
    dtype: str, data: st.DataObject, eps: float
) -> None:
    """Predictions of exactly 0 and 1 (a saturated sigmoid), right or wrong, any eps."""
    shape = data.draw(st.tuples(st.integers(1, 6), st.integers(1, 4)))
    p = data.draw(arrays(np.dtype(dtype), shape, elements=st.sampled_from([0.0, 1.0])))
    t = data.draw(arrays(np.dtype(dtype), shape, elements=st.sampled_from([0.0, 1.0])))
    loss = BinaryCrossEntropy(eps=eps)
    value = loss.forward(p, t)
    grad = loss.backward()
    assert value.dtype == grad.dtype == np.dtype(dtype)
    assert np.isfinite(value) and np.isfinite(grad).all()
    assert float(value) >= 0.0
    right = p == t
    assert (np.sign(grad[~right]) == np.where(p[~right] > t[~right], 1, -1)).all()
