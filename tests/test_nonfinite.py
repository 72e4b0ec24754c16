"""NaN/inf during training: ``fit`` stops naming the step and the layer, or skips the batch;
gradient clipping bounds the norm the optimizer really sees, even for gradients whose squares
overflow."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import xpnet
from xpnet.backend import Array, get_backend
from xpnet.layers import Dense, ReLU
from xpnet.layers.base import Layer
from xpnet.losses import MSE, SoftmaxCrossEntropy
from xpnet.optim import SGD, Adam
from xpnet.optim.base import ParamGrad
from xpnet.training.nonfinite import finite_probe as _finite_probe
from xpnet.training.nonfinite import grad_norm as _grad_norm

# NumPy rightly warns about the overflows these tests provoke on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)


def _net(opt: Any = None) -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], seed=1)
    return net.compile(SoftmaxCrossEntropy(), opt or Adam(0.01))


def _poisoned(X: np.ndarray, rows: slice) -> np.ndarray:
    """A copy of X whose ``rows`` hold 3e38: finite float32 inputs that overflow in layer 0."""
    bad = X.copy()
    bad[rows] = 3e38
    return bad


def test_crafted_batch_names_step_and_first_layer() -> None:
    X, y = _data()
    net = _net()
    with pytest.raises(xpnet.NonFiniteError) as info:
        net.fit(_poisoned(X, slice(40, 48)), y, epochs=1, batch_size=8, shuffle=False)
    err = info.value
    assert err.step == 6 and err.layer == "layer 0 (Dense 4 -> 8)"
    assert "at step 6 (epoch 1, batch 6/8)" in str(err)
    assert "layer 0 (Dense 4 -> 8) produced a non-finite output" in str(err)
    # The failed batch changed nothing: the weights are those after the five good steps.
    ref = _net()
    ref.fit(X[:40], y[:40], epochs=1, batch_size=8, shuffle=False)
    for key in ref.params:
        assert np.array_equal(net.params[key], ref.params[key]), key


class PoisonedBackward(Layer):
    """Identity, whose backward returns NaN from its ``at``-th call on (a bug in a layer)."""

    def __init__(self, at: int = 3) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: Array, training: bool = False) -> Array:
        return x

    def backward(self, dy: Array) -> Array:
        self.calls += 1
        return dy * float("nan") if self.calls >= self.at else dy

    def config(self) -> dict[str, Any]:
        return {"at": self.at}


def test_nan_born_in_backward_names_that_layer_not_the_first() -> None:
    """Every gradient below the poisoned layer is NaN too; the diagnosis names the origin."""
    X, y = _data()
    net = xpnet.Sequential(
        [Dense(4, 8), PoisonedBackward(at=3), ReLU(), Dense(8, 3)], seed=1
    ).compile(SoftmaxCrossEntropy(), SGD(0.1))
    with pytest.raises(xpnet.NonFiniteError) as info:
        net.fit(X, y, epochs=2, batch_size=16, shuffle=False)
    assert info.value.step == 3 and info.value.layer == "layer 1 (PoisonedBackward)"
    msg = str(info.value)
    assert "step 3" in msg and "layer 1 (PoisonedBackward) passed a non-finite gradient" in msg
    assert all(np.isfinite(p).all() for p in net.params.values())  # no NaN update applied


def test_huge_learning_rate_is_caught_with_step_and_layer() -> None:
    X, y = _data()
    net = _net(SGD(1e36))
    with pytest.raises(xpnet.NonFiniteError) as info:
        net.fit(X, y, epochs=3, batch_size=8)
    err = info.value
    assert err.step is not None and 1 < err.step <= 24
    assert f"at step {err.step} " in str(err)
    assert err.layer is not None and err.layer in str(err) and err.layer.startswith("layer ")


def test_sync_every_reports_the_window() -> None:
    X, y = _data()
    with pytest.raises(xpnet.NonFiniteError, match=r"one of steps 5\.\.8 \(checked every 4"):
        _net().fit(_poisoned(X, slice(40, 48)), y, batch_size=8, shuffle=False, sync_every=4)


def test_skip_mode_counts_skipped_batches_and_keeps_training() -> None:
    X, y = _data()
    bad = _poisoned(X, slice(24, 32))  # the 4th of 8 batches in every epoch
    net = _net()
    hist = net.fit(bad, y, epochs=3, batch_size=8, shuffle=False, on_nonfinite="skip")
    assert hist["skipped"] == [1.0, 1.0, 1.0]
    assert all(math.isfinite(v) for v in hist["loss"])
    # Skipping = not stepping: identical to training without those rows at all.
    keep = np.r_[0:24, 32:64]
    ref = _net()
    ref.fit(X[keep], y[keep], epochs=3, batch_size=8, shuffle=False)
    assert net.optimizer is not None and ref.optimizer is not None
    assert net.optimizer.t == ref.optimizer.t == 21
    for key in ref.params:
        assert np.array_equal(net.params[key], ref.params[key]), key


def test_skip_mode_refuses_to_skip_forever() -> None:
    X, y = _data()
    with pytest.raises(xpnet.NonFiniteError, match="every batch of epoch 1 was non-finite"):
        _net().fit(_poisoned(X, slice(None)), y, batch_size=8, on_nonfinite="skip")


def test_skip_mode_stops_when_the_weights_themselves_overflow() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(32, 4)).astype(np.float32)
    net = xpnet.Sequential([Dense(4, 1)], seed=0).compile(MSE(), SGD(1e36))
    with pytest.raises(xpnet.NonFiniteError, match="cannot recover") as info:
        net.fit(X, np.full(32, 1e3, np.float32), epochs=2, batch_size=8, on_nonfinite="skip")
    assert info.value.layer == "layer 0 (Dense 4 -> 1)"


class RecordingSGD(SGD):
    """SGD that records the global gradient norm (float64, on the host) of every step."""

    def __init__(self, lr: float) -> None:
        super().__init__(lr)
        self.norms: list[float] = []
        self.grads: list[list[np.ndarray]] = []

    def step(self, params: Any) -> None:
        params = list(params)
        gs: list[ParamGrad] = params
        host = [np.asarray(g, dtype=np.float64) for _, _, g in gs]
        self.norms.append(math.sqrt(sum(float((h * h).sum()) for h in host)))
        self.grads.append(host)
        super().step(params)


def test_clip_norm_bounds_the_norm_the_optimizer_sees() -> None:
    X, y = _data()
    X = X * 20.0  # large inputs, large gradients
    raw, clipped = RecordingSGD(0.001), RecordingSGD(0.001)
    _net(raw).fit(X, y, epochs=2, batch_size=8, seed=0)
    _net(clipped).fit(X, y, epochs=2, batch_size=8, seed=0, clip_norm=0.5)
    assert max(raw.norms) > 0.5  # the test would prove nothing otherwise
    assert max(clipped.norms) <= 0.5 * (1 + 1e-5)
    assert sum(abs(n - 0.5) < 1e-5 for n in clipped.norms) >= 1
    # Same direction: the first step's clipped gradients are the raw ones, rescaled.
    scale = min(1.0, 0.5 / raw.norms[0])
    for r, c in zip(raw.grads[0], clipped.grads[0], strict=True):
        np.testing.assert_allclose(c, r * scale, rtol=1e-5, atol=1e-12)


def test_clip_norm_survives_gradients_whose_squares_overflow() -> None:
    """float32 gradients near 1e25: sum(g * g) overflows to inf, the norm must not."""
    X = np.full((4, 2), 1e25, np.float32)
    opt = RecordingSGD(1e-30)
    net = xpnet.Sequential([Dense(2, 3)], seed=0).compile(SoftmaxCrossEntropy(), opt)
    net.fit(X, np.array([0, 1, 2, 0]), epochs=1, batch_size=4, clip_norm=1.0)
    assert opt.norms[0] == pytest.approx(1.0, rel=1e-5)  # clipped to 1, not zeroed


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_grad_norm_and_probe_are_overflow_free(dtype: str) -> None:
    be = get_backend("numpy", dtype)
    big = float(np.finfo(dtype).max) / 8
    g = np.full((3, 5), big, dtype=dtype)
    params = [("a", g, g), ("b", g[0], g[0])]
    norm = _grad_norm(be, params)
    assert norm.dtype == np.dtype(dtype)
    assert float(norm) == pytest.approx(big * math.sqrt(20), rel=1e-5)
    zero = np.zeros(3, dtype=dtype)
    assert float(_grad_norm(be, [("z", zero, zero)])) == 0.0
    loss = np.asarray(1.0, dtype=dtype)
    assert math.isfinite(float(_finite_probe(be, loss, params)))  # no false alarm
    for bad in (np.nan, np.inf, -np.inf):
        h = g.copy()
        h[1, 2] = bad
        assert not math.isfinite(float(_finite_probe(be, loss, [("a", h, h)])))
