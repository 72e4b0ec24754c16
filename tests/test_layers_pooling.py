"""MaxPool2D and AvgPool2D: against naive loops, the tie rule, shapes, validation, save/load."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet import Sequential
from xpnet.layers import AvgPool2D, Conv2D, Flatten, MaxPool2D

aas = pytest.importorskip("array_api_strict")


def naive_pool(x, kernel, stride, op):
    (kh, kw), (sh, sw) = kernel, stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y, dx = np.zeros((n, c, ho, wo)), np.zeros_like(x)
    for a in range(n):
        for ch in range(c):
            for i in range(ho):
                for j in range(wo):
                    win = x[a, ch, i * sh : i * sh + kh, j * sw : j * sw + kw]
                    if op == "max":
                        y[a, ch, i, j] = win.max()
                        r, q = np.unravel_index(np.argmax(win), win.shape)  # first maximum
                        dx[a, ch, i * sh + r, j * sw + q] += 1.0 + i + j
                    else:
                        y[a, ch, i, j] = win.mean()
                        dx[a, ch, i * sh : i * sh + kh, j * sw : j * sw + kw] += \
                            (1.0 + i + j) / (kh * kw)
    return y, dx


CASES = [((2, 2), None), ((3, 3), (1, 1)), ((2, 3), (3, 1)), ((1, 1), None), ((3, 2), (2, 2))]


@pytest.mark.parametrize("backend", ["numpy-float64", "strict-float64", "numpy-float32"])
@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize(("kernel", "stride"), CASES)
def test_forward_and_backward_match_the_naive_loops(backend, cls, kernel, stride):
    name, dtype = backend.split("-")
    be = xpnet.testing.strict_backend(dtype) if name == "strict" else \
        xpnet.get_backend("numpy", dtype)
    rng = np.random.default_rng(0)
    # small integers: plenty of ties, where the first maximum (row-major) takes the gradient
    x = rng.integers(0, 4, size=(2, 3, 7, 8)).astype(np.float64)
    layer = cls(kernel, stride).to(be)
    y = layer.forward(be.asarray(x))
    ref_y, ref_dx = naive_pool(x, layer.kernel_size, layer.stride,
                               "max" if cls is MaxPool2D else "avg")
    assert tuple(y.shape) == ref_y.shape == (2, *layer.output_shape((3, 7, 8)))
    assert y.dtype == be.dtype
    tol = 1e-6 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(be.to_host(y), ref_y, rtol=tol, atol=tol)
    i = np.arange(ref_y.shape[2])[:, None]
    j = np.arange(ref_y.shape[3])[None, :]
    dy = np.broadcast_to(1.0 + i + j, ref_y.shape).copy()
    dx = layer.backward(be.asarray(dy))
    assert dx.dtype == be.dtype
    np.testing.assert_allclose(be.to_host(dx), ref_dx, rtol=tol, atol=tol)


def test_stride_defaults_to_the_kernel_and_shapes():
    layer = MaxPool2D((2, 3))
    assert layer.stride == (2, 3) and layer.config() == {"kernel_size": [2, 3], "stride": [2, 3]}
    assert layer.output_shape((4, 9, 9)) == (4, 4, 3)
    assert layer.output_shape((4, None, 9)) == (4, None, 3)
    assert AvgPool2D(3, 1).output_shape(None) == (None, None, None)
    assert AvgPool2D(3, 1).describe() == "AvgPool2D 3x3 stride 1x1"
    with pytest.raises(ValueError, match="too small for kernel"):
        MaxPool2D(3).output_shape((1, 2, 5))


@pytest.mark.parametrize(
    ("args", "error", "quoted"),
    [
        ((0,), ValueError, "kernel_size must be a positive int or a pair (height, width)"),
        (((2, -1),), ValueError, "got (2, -1)"),
        ((2, 0), ValueError, "stride must be a positive int"),
        ((2, "1"), TypeError, "got '1'"),
        ((None,), TypeError, "got None"),
    ],
)
def test_bad_arguments_are_refused_quoting_the_value(args, error, quoted):
    for cls in (MaxPool2D, AvgPool2D):
        with pytest.raises(error) as exc:
            cls(*args)
        assert quoted in str(exc.value)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, channels"):
        MaxPool2D(2).forward(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="too small"):
        AvgPool2D(3).forward(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        MaxPool2D(2).backward(np.zeros((1, 1, 1, 1), np.float32))


def test_save_load_round_trip(tmp_path):
    model = Sequential([Conv2D(2, 3, 3), MaxPool2D(2), AvgPool2D((1, 2), (1, 1)), Flatten()],
                       seed=0)
    x = np.random.default_rng(0).normal(size=(3, 2, 9, 8)).astype(np.float32)
    again = xpnet.load(model.save(tmp_path / "p.npz"))
    assert [type(la) for la in again.layers] == [type(la) for la in model.layers]
    assert again.layers[2].stride == (1, 1) and again.layers[2].kernel_size == (1, 2)
    np.testing.assert_array_equal(again.forward(x), model.forward(x))
    assert model.output_shape((2, 9, 8)) == (3 * 3 * 2,)
