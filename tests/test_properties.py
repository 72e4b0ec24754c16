"""Properties: softmax rows sum to 1; dropout is the identity at inference and keeps the
expectation in training; a model's output at inference does not depend on the batch."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet.layers import Dropout, Softmax
from xpnet.testing.strategies import arrays, batch_sizes, sequentials, shapes


def _host(be, a):
    return be.to_host(a).astype(np.float64)


@given(data=st.data(), bound=st.sampled_from([1.0, 30.0, 80.0]))
def test_softmax_rows_sum_to_one(xpnet_backend, data, bound):
    n, k = data.draw(shapes(), label="shape")
    x = data.draw(arrays(xpnet_backend, (n, k), bound=bound), label="x")
    y = Softmax().to(xpnet_backend).forward(x)
    host = _host(xpnet_backend, y)
    assert y.dtype == xpnet_backend.dtype
    assert (host >= 0).all() and (host <= 1).all()
    tol = 1e-12 if xpnet_backend.dtype_name == "float64" else 1e-5
    np.testing.assert_allclose(host.sum(axis=1), 1.0, rtol=0, atol=tol * k)


@given(data=st.data(), p=st.sampled_from([0.0, 0.1, 0.5, 0.9]))
def test_dropout_at_inference_is_the_identity(xpnet_backend, data, p):
    x = data.draw(arrays(xpnet_backend, data.draw(shapes())), label="x")
    layer = Dropout(p, seed=0).to(xpnet_backend)
    y = layer.forward(x, training=False)
    dy = data.draw(arrays(xpnet_backend, tuple(x.shape)), label="dy")
    assert np.array_equal(_host(xpnet_backend, y), _host(xpnet_backend, x))
    assert np.array_equal(_host(xpnet_backend, layer.backward(dy)), _host(xpnet_backend, dy))


@settings(max_examples=10)
@given(p=st.sampled_from([0.1, 0.25, 0.5, 0.75, 0.9]), seed=st.integers(0, 2**32 - 1))
def test_dropout_in_training_keeps_the_expectation(xpnet_backend, p, seed):
    """Survivors are scaled by 1/(1-p): mean(y) over many units estimates x (here 1).

    The bound is 6 standard errors of the mean, sd(m) = sqrt(p / (1 - p)) / sqrt(n): a false
    failure has probability about 2e-9 per example."""
    n = 40_000
    layer = Dropout(p, seed=seed).to(xpnet_backend)
    x = xpnet_backend.asarray(np.ones((200, n // 200)), dtype=xpnet_backend.dtype)
    y = _host(xpnet_backend, layer.forward(x, training=True))
    keep = 1.0 - p
    scaled = np.isclose(y, 1.0 / keep, rtol=1e-6)
    assert (scaled | (y == 0.0)).all()  # the mask holds 0 and 1/(1-p) only
    se = math.sqrt(p / keep) / math.sqrt(n)
    assert abs(y.mean() - 1.0) < 6 * se
    dy = _host(xpnet_backend, layer.backward(x))  # backward applies the same mask
    assert np.array_equal(dy, y)


@given(data=st.data())
def test_output_does_not_depend_on_batch_composition(xpnet_backend, data):
    """Row i of model(X) at inference is model(X[i:i+1]), whatever else is in the batch,
    in any order, and whatever batch size predict uses (dropout layers included)."""
    be = xpnet_backend
    model = data.draw(sequentials(be, max_depth=3), label="model")
    n = data.draw(batch_sizes(8), label="n")
    x = data.draw(arrays("numpy", (n, model.in_features)).map(np.asarray), label="x")
    full = _host(be, model.forward(be.asarray(x, dtype=be.dtype), training=False))
    perm = np.random.default_rng(n).permutation(n)
    permuted = _host(be, model.forward(be.asarray(x[perm], dtype=be.dtype), training=False))
    singles = np.concatenate([
        _host(be, model.forward(be.asarray(x[i : i + 1], dtype=be.dtype), training=False))
        for i in range(n)
    ])
    chunked = model.predict_proba(x, batch_size=data.draw(batch_sizes(8), label="batch_size"))
    # BLAS may pick other kernels for other batch sizes: equal up to rounding, not bitwise
    tol = 1e-12 if be.dtype_name == "float64" else 1e-5
    scale = max(1.0, float(np.abs(full).max()))
    np.testing.assert_allclose(permuted, full[perm], rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(singles, full, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(chunked, full, rtol=tol, atol=tol * scale)
