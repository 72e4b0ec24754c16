"""Dropout: inverted scaling, identity at inference, the mask reused by backward, seeding."""

from __future__ import annotations

import re

import numpy as np
import pytest

import xpnet
from xpnet.layers import Dropout

aas = pytest.importorskip("array_api_strict")


def test_identity_at_inference():
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    layer = Dropout(0.5, seed=0)
    y = layer.forward(x)  # training defaults to False
    assert y is x or np.array_equal(y, x)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(layer.backward(dy), dy)
    assert layer.params == {} and layer.grads == {}


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_inverted_dropout_in_training(p):
    x = np.ones((200, 500), dtype=np.float32)
    layer = Dropout(p, seed=1)
    y = layer.forward(x, training=True)
    assert y.dtype == np.float32
    kept = y != 0
    # survivors are scaled by 1 / (1 - p), so the expectation is unchanged
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-6)
    # 100k draws: the kept fraction is within ~5 standard errors of 1 - p
    se = np.sqrt(p * (1 - p) / x.size)
    assert abs(kept.mean() - (1 - p)) < 5 * se
    assert abs(y.mean() - 1.0) < 5 * se / (1 - p)


def test_backward_uses_the_forward_mask():
    x = np.arange(1.0, 41.0, dtype=np.float32).reshape(4, 10)
    layer = Dropout(0.5, seed=2)
    y = layer.forward(x, training=True)
    dy = np.full_like(x, 3.0)
    dx = layer.backward(dy)
    np.testing.assert_array_equal(dx == 0, y == 0)
    np.testing.assert_allclose(dx[y != 0], 6.0)
    assert 0 < (y == 0).sum() < y.size


def test_p_zero_is_identity_even_in_training():
    x = np.ones((3, 3), dtype=np.float32)
    np.testing.assert_array_equal(Dropout(0.0).forward(x, training=True), x)


def test_seeded_masks_repeat_and_differ_between_calls():
    x = np.ones((8, 16), dtype=np.float32)
    a, b = Dropout(0.5, seed=3), Dropout(0.5, seed=3)
    m1, m2 = a.forward(x, training=True), b.forward(x, training=True)
    np.testing.assert_array_equal(m1, m2)
    assert not np.array_equal(a.forward(x, training=True), m1)  # the stream moves on
    assert not np.array_equal(Dropout(0.5, seed=4).forward(x, training=True), m1)


def test_same_masks_on_numpy_and_array_api_strict():
    be = xpnet.get_backend(aas, "float32")
    x = np.ones((6, 7), dtype=np.float32)
    ref = Dropout(0.4, seed=5).forward(x, training=True)
    layer = Dropout(0.4, seed=5).to(be)
    got = layer.forward(be.asarray(x), training=True)
    np.testing.assert_array_equal(be.to_host(got), ref)


@pytest.mark.parametrize(
    ("p", "exc", "quoted"),
    [(1.0, ValueError, "1.0"), (-0.1, ValueError, "-0.1"), (1.5, ValueError, "1.5"),
     ("half", TypeError, "'half'")],
)
def test_bad_p_quotes_the_value(p, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)) as info:
        Dropout(p)
    assert "p must" in str(info.value)


def test_bad_seed():
    with pytest.raises(ValueError, match="-3"):
        Dropout(0.5, seed=-3)
    with pytest.raises(TypeError, match="'x'"):
        Dropout(0.5, seed="x")


def test_moving_backends_keeps_the_mask_stream():
    x = np.ones((5, 9), dtype=np.float64)
    ref = Dropout(0.5, seed=6)
    ref.forward(x.astype(np.float32), training=True)  # advance the stream once
    expected = ref.forward(x.astype(np.float32), training=True)
    layer = Dropout(0.5, seed=6)
    layer.forward(x.astype(np.float32), training=True)
    layer.to("numpy", "float64")
    np.testing.assert_array_equal(layer.forward(x, training=True), expected)


@pytest.mark.parametrize("where", ["float64", "strict"])
def test_sequential_seed_seeds_dropout_on_every_backend_and_dtype(where):
    # Bug fixed: moving to another backend/dtype restarted the stream from OS entropy.
    from xpnet import Sequential

    x = np.ones((6, 10), dtype=np.float32)
    ref = Sequential([Dropout(0.5)], seed=11).forward(x, training=True)
    be = xpnet.get_backend(aas, "float32") if where == "strict" else None
    a = Sequential([Dropout(0.5)], seed=11, backend=be or "numpy", dtype="float32" if be else where)
    b = Sequential([Dropout(0.5)], seed=11, backend=be or "numpy", dtype="float32" if be else where)
    ya = a.backend.to_host(a.forward(a.backend.asarray(x), training=True))
    yb = b.backend.to_host(b.forward(b.backend.asarray(x), training=True))
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(ya, ref)
