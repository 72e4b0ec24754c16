"""Same inputs and parameters on two backends give the same outputs and gradients.

NumPy float64 is the reference; it is compared with NumPy float32, with ``array_api_strict`` on
its fake ``device1`` (which refuses silent conversion to NumPy and mixing devices: the CPU
stand-in that catches the mistakes CuPy would), and with CuPy where a GPU exists.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpnet import Sequential
from xpnet.layers import Dense, Layer, ReLU, Sigmoid
from xpnet.optim import SGD, Adam
from xpnet.testing import assert_backends_agree, backend_cases, strict_backend
from xpnet.testing.strategies import arrays, problems, sequentials

_CASES = {c.id: c for c in backend_cases()}
_STRICT_SKIP = _CASES["strict-float64"].skip_reason
needs_strict = pytest.mark.skipif(_STRICT_SKIP is not None, reason=str(_STRICT_SKIP))
_PAIRS = [
    ("numpy-float64", "numpy-float32"),
    ("numpy-float64", "strict-float64"),
    ("numpy-float32", "strict-float32"),
    ("numpy-float64", "strict-float32"),
    ("numpy-float64", "cupy-float64"),
    ("numpy-float32", "cupy-float32"),
]


def _pair_params():
    out = []
    for a, b in _PAIRS:
        reason = _CASES[a].skip_reason or _CASES[b].skip_reason
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param((a, b), id=f"{a}-vs-{b}", marks=marks))
    return out


@pytest.fixture(scope="module", params=_pair_params())
def pair(request):
    a, b = request.param
    return _CASES[a].make(), _CASES[b].make()


@given(data=st.data())
def test_random_models_with_a_loss_agree(pair, data):
    a, b = pair
    prob = data.draw(problems("numpy"), label="problem")
    result = assert_backends_agree(prob.model, prob.x, a, b, target=prob.target, loss=prob.loss,
                                   training=True)
    assert "loss" in result.errors and "d input" in result.errors or result.notes


@given(data=st.data())
def test_random_models_agree_at_inference(pair, data):
    a, b = pair
    model = data.draw(sequentials("numpy"), label="model")
    x = data.draw(arrays("numpy", (data.draw(st.integers(1, 6)), model.in_features)), label="x")
    result = assert_backends_agree(model, x, a, b)
    assert result.errors["output"] <= 1.0


@settings(max_examples=10)
@given(seed=st.integers(0, 2**16), steps=st.integers(1, 4), adam=st.booleans())
def test_optimizer_steps_agree(pair, seed, steps, adam):
    """The generic array-API Adam/SGD updates match NumPy's fused ones (and CuPy's kernels)."""
    a, b = pair
    low = "float32" if "float32" in (a.dtype_name, b.dtype_name) else "float64"
    rng = np.random.default_rng(seed)
    p0 = rng.normal(size=(3, 4)).astype(low)
    grads = [rng.normal(size=(3, 4)).astype(low) for _ in range(steps)]
    finals = []
    for be in (a, b):
        opt = (Adam(0.01, weight_decay=0.1) if adam else SGD(0.05, momentum=0.9, nesterov=True,
                                                             weight_decay=0.01)).to(be)
        p = be.asarray(p0.copy(), dtype=be.dtype)  # NumPy would update p0 itself
        for g in grads:
            opt.step([("w", p, be.asarray(g, dtype=be.dtype))])
        assert p.dtype == be.dtype
        finals.append(be.to_host(p).astype(np.float64))
    tol = 1e-5 if low == "float32" else 1e-12
    np.testing.assert_allclose(finals[0], finals[1], rtol=tol, atol=tol)


# ----------------------------------------------------------- the checker catches disagreement
class LeaksFloat64(Layer):
    """``y = 2x`` computed with a NumPy float64 scalar: the NumPy 2 promotion trap."""

    def forward(self, x, training=False):
        return x * np.float64(2.0) if self.backend.name == "numpy" else x * 2.0

    def backward(self, dy):
        return dy * 2.0


class BackendDependent(Layer):
    """A layer whose backward is wrong on the generic array-API backend only."""

    def forward(self, x, training=False):
        return x * 2.0

    def backward(self, dy):
        return dy * (2.0 if self.backend.name == "numpy" else 2.01)


@needs_strict
def test_a_float64_leak_on_a_float32_backend_is_reported():
    x = np.ones((2, 3))
    with pytest.raises(AssertionError, match="dtype float64 on a float32 backend"):
        assert_backends_agree(LeaksFloat64(), x, "numpy", strict_backend("float32"))


@needs_strict
def test_a_backend_specific_gradient_bug_is_reported():
    with pytest.raises(AssertionError, match="d input"):
        assert_backends_agree(BackendDependent(), np.ones((2, 3)), "numpy",
                              strict_backend("float32"))


@needs_strict
def test_strict_device_refuses_numpy_and_mixed_devices():
    """What makes array_api_strict a stand-in for CuPy: these mistakes raise on the CPU."""
    be = strict_backend("float32")
    x = be.asarray(np.ones((2, 2)), dtype=be.dtype)
    with pytest.raises(RuntimeError):
        np.asarray(x)
    with pytest.raises(ValueError):
        _ = x + be.xp.asarray(np.ones((2, 2), dtype=np.float32))  # default device, not device1
    with pytest.raises(TypeError):
        _ = x * np.float64(2.0)


@needs_strict
def test_model_trains_on_the_strict_device():
    """A few fit steps on device1 reach the same weights as NumPy."""
    be = strict_backend("float64")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(24, 5)), rng.integers(0, 3, size=24)
    finals = []
    for backend in ("numpy", be):
        model = Sequential([Dense(5, 6), ReLU(), Dense(6, 4), Sigmoid(), Dense(4, 3)],
                           backend=backend, dtype="float64", seed=2)
        model.compile("softmax_cross_entropy", Adam(0.01))
        model.fit(X, y, epochs=2, batch_size=8, seed=3, verbose=False)
        finals.append({k: model.backend.to_host(v) for k, v in model.params.items()})
    for k in finals[0]:
        np.testing.assert_allclose(finals[0][k], finals[1][k], rtol=1e-10, atol=1e-12)
