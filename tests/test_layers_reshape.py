"""Flatten and Reshape: per-sample shapes, backward, Sequential's shape checks, validation."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import Conv2D, Dense, Flatten, Reshape

aas = pytest.importorskip("array_api_strict")


@pytest.mark.parametrize("backend", ["numpy", "strict"])
def test_forward_backward_round_trip(backend):
    be = xpnet.testing.strict_backend("float32") if backend == "strict" else \
        xpnet.get_backend("numpy")
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    for layer, shape in ((Flatten(), (2, 60)), (Reshape((5, 12)), (2, 5, 12)),
                         (Reshape((-1, 3)), (2, 20, 3)), (Reshape((3, 4, 5)), (2, 3, 4, 5))):
        layer.to(be)
        y = layer.forward(be.asarray(x))
        assert tuple(y.shape) == shape
        np.testing.assert_array_equal(be.to_host(y), x.reshape(shape))  # row-major (C, H, W)
        dx = layer.backward(y)
        np.testing.assert_array_equal(be.to_host(dx), x)


def test_shapes():
    assert Flatten().output_shape((3, 4, 5)) == (60,)
    assert Flatten().output_shape((3, None, 5)) == (None,)
    assert Flatten().output_shape(None) is None and Flatten().input_shape is None
    r = Reshape((1, 28, 28))
    assert r.input_shape == (784,) and r.output_shape((784,)) == (1, 28, 28)
    assert r.accepts((28, 28)) and r.accepts((4, 196)) and not r.accepts((783,))
    assert r.accepts((None, 28))
    loose = Reshape((-1, 7))
    assert loose.input_shape is None and loose.output_shape((3, 14)) == (6, 7)
    assert loose.output_shape(None) == (None, 7)
    assert loose.accepts((14,)) and not loose.accepts((15,))
    assert Reshape([2, 3]).config() == {"shape": [2, 3]}
    assert r.describe() == "Reshape to (1, 28, 28)"


def test_a_flat_mnist_row_enters_a_conv_net():
    model = Sequential([Reshape((1, 28, 28)), Conv2D(1, 2, 5, stride=3), Flatten(),
                        Dense(2 * 8 * 8, 10)], seed=0)
    assert model.in_features == 784 and model.out_features == 10
    y = model.forward(np.zeros((3, 784), np.float32))
    assert y.shape == (3, 10)
    # Reshape also works after a conv layer (any input with the right element count)
    Sequential([Conv2D(1, 2, 3), Reshape((2, 9)), Flatten(), Dense(18, 1)]).forward(
        np.zeros((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="input of 784 elements per sample does not match"):
        Sequential([Dense(4, 700), Reshape((1, 28, 28))])


@pytest.mark.parametrize(
    ("shape", "error", "quoted"),
    [
        ((), TypeError, "got ()"),
        ((2, 0), ValueError, "got (2, 0)"),
        ((-1, -1), ValueError, "got (-1, -1)"),
        ((2.0, 3), TypeError, "got (2.0, 3)"),
        (6, TypeError, "got 6"),
    ],
)
def test_bad_shapes_are_refused_quoting_the_value(shape, error, quoted):
    with pytest.raises(error) as exc:
        Reshape(shape)
    assert quoted in str(exc.value)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape \(5,\)"):
        Reshape((2, 3)).forward(np.zeros((1, 5), np.float32))
    with pytest.raises(ValueError, match="cannot reshape"):
        Reshape((-1, 4)).forward(np.zeros((1, 6), np.float32))
    with pytest.raises(TypeError, match="convert it with backend.asarray"):
        Flatten().forward([[1.0]])
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Flatten().backward(np.zeros((1, 2), np.float32))


def test_save_load_and_summary(tmp_path):
    model = Sequential([Reshape((1, 4, 4)), Conv2D(1, 2, 3), Flatten(), Dense(8, 2)], seed=0)
    again = xpnet.load(model.save(tmp_path / "r.npz"))
    assert again.layers[0].shape == (1, 4, 4)
    x = np.random.default_rng(0).random((2, 16)).astype(np.float32)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert "(batch, 1, 4, 4)" in model.summary() and "input (batch, 16)" in model.summary()
