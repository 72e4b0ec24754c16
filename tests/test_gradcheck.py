"""The gradient checker itself: it passes right gradients, fails wrong ones with a readable
report, reports kinks as kinks, and never touches the object it checks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xpnet import Sequential, get_backend
from xpnet.layers import Dense, Dropout, Layer, ReLU, Tanh
from xpnet.losses import MSE, SoftmaxCrossEntropy
from xpnet.testing import GradCheckResult, backend_cases, check_gradients, strict_backend


class TanhWrong(Tanh):
    """``dx = dy (1 - y)``: a dropped square."""

    def backward(self, dy):
        return dy * (1.0 - self.y)


class DenseDoubleW(Dense):
    """Correct dx and db, dW twice too large."""

    def backward(self, dy):
        dx = super().backward(dy)
        self.grads["W"] *= 2.0
        return dx


class Float32OnlyBug(Layer):
    """``y = 3x``, but in float32 the backward forgets the factor 3 (a float32-only path)."""

    def forward(self, x, training=False):
        return x * 3.0

    def backward(self, dy):
        return dy if self.backend.dtype_name == "float32" else dy * 3.0


class DropoutIgnoringMask(Dropout):
    def backward(self, dy):
        return dy


def _x(shape=(4, 3), seed=0):
    return np.random.default_rng(seed).normal(size=shape)


def test_right_gradients_pass_with_a_structured_result():
    layer = Dense(3, 2, rng=0)
    layer.params["b"][...] = [0.5, -0.25]
    result = check_gradients(layer, _x())
    assert isinstance(result, GradCheckResult) and result.passed
    assert result.mode == "full" and result.dtype == "float32"
    # float32 layer: the float64 copy and the float32 layer itself are both compared
    assert {(c.name, c.dtype) for c in result.checks} == {
        (n, d) for n in ("input", "W", "b") for d in ("float64", "float32")
    }
    assert result.max_abs_error < 1e-6 and result.max_rel_error < 1e-4
    assert result.checked == 2 * (8 * 12 + 8 * 6 + 8 * 2)  # full Jacobian entries
    assert "passed" in result.report()


def test_wrong_input_gradient_raises_a_readable_report():
    with pytest.raises(AssertionError) as info:
        check_gradients(TanhWrong(), _x())
    text = str(info.value)
    assert "FAILED" in text and "input" in text and "analytic" in text and "numeric" in text


def test_wrong_parameter_gradient_is_pinned_to_that_parameter():
    result = check_gradients(DenseDoubleW(3, 2, rng=1), _x(), raise_on_failure=False)
    assert not result.passed
    assert {c.name for c in result.failures} == {"W"}
    worst = result.worst
    assert worst is not None and worst.name == "W"
    assert worst.analytic == pytest.approx(2 * worst.numeric, rel=1e-4)
    assert "d W[" in worst.worst


def test_float32_path_is_checked_too():
    be32 = get_backend("numpy", "float32")
    result = check_gradients(Float32OnlyBug().to(be32), _x(), raise_on_failure=False)
    by = {(c.name, c.dtype): c.passed for c in result.checks}
    assert by == {("input", "float64"): True, ("input", "float32"): False}
    assert check_gradients(Float32OnlyBug().to(get_backend("numpy", "float64")), _x()).passed


def test_relu_at_zero_is_a_kink_not_a_failure():
    x = np.array([[0.0, 2.0, -1.0, 3e-7]])
    result = check_gradients(ReLU(), x)
    assert result.passed
    assert result.kinks == ["input[0,0]", "input[0,3]"]
    assert result.checks[0].skipped == 8 and result.checks[0].checked == 8
    assert "non-differentiable" in result.report()


def test_kink_inside_a_model_is_found_through_the_parameters():
    # A zero input row and zero biases put the ReLU exactly at 0 for that row.
    model = Sequential([Dense(2, 3), ReLU(), Dense(3, 1)], dtype="float64", seed=0)
    x = np.array([[0.0, 0.0], [1.0, -0.5]])
    result = check_gradients(model, x, np.array([0.5, 1.0]), loss=MSE())
    assert result.passed and any(k.startswith("0.b") for k in result.kinks)


def test_large_problems_use_random_directions_and_still_catch_errors():
    be = get_backend("numpy", "float64")
    good = check_gradients(Dense(40, 30, rng=0, backend=be), _x((20, 40)))
    assert good.mode == "directional" and good.passed
    bad = check_gradients(DenseDoubleW(40, 30, rng=0, backend=be), _x((20, 40)),
                          raise_on_failure=False)
    assert bad.mode == "directional" and {c.name for c in bad.failures} == {"W"}


def test_dropout_mask_is_held_fixed_and_must_be_applied():
    x = _x((5, 6))
    assert check_gradients(Dropout(0.5, seed=3), x, training=True).passed
    with pytest.raises(AssertionError):
        check_gradients(DropoutIgnoringMask(0.5, seed=3), x, training=True)


def test_the_checked_object_is_left_untouched():
    model = Sequential([Dense(3, 4), Tanh(), Dropout(0.3), Dense(4, 2)], seed=0)
    before = {k: v.copy() for k, v in model.params.items()}
    grads_before = {k: v.copy() for k, v in model.grads.items()}
    gen_state = model.layers[2].gen.get_state()
    check_gradients(model, _x(), np.array([0, 1, 1, 0]), loss=SoftmaxCrossEntropy(),
                    training=True)
    for k in before:
        assert np.array_equal(model.params[k], before[k])
        assert np.array_equal(model.grads[k], grads_before[k])
    assert model.layers[2].gen.get_state() == gen_state
    assert model.backend.dtype_name == "float32"


_STRICT_SKIP = {c.id: c for c in backend_cases()}["strict-float64"].skip_reason


@pytest.mark.skipif(_STRICT_SKIP is not None, reason=str(_STRICT_SKIP))
def test_strict_backend_is_checked_on_its_device():
    be = strict_backend("float32")
    model = Sequential([Dense(3, 4), ReLU(), Dense(4, 2)], backend=be, seed=1)
    x = be.asarray(_x(), dtype=be.dtype)
    result = check_gradients(model, x, be.asarray(np.array([0, 1, 1, 0])),
                             loss=SoftmaxCrossEntropy().to(be))
    assert result.passed and result.backend == "array_api_strict"


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="target"):
        check_gradients(MSE(), _x())
    with pytest.raises(ValueError, match="mode"):
        check_gradients(Tanh(), _x(), mode="sideways")
    with pytest.raises(TypeError, match="Layer or Loss"):
        check_gradients(lambda x: x, _x())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        check_gradients(Tanh(), _x(), eps=0.0)


def test_import_xpnet_never_imports_hypothesis_or_pytest():
    code = ("import sys, xpnet, xpnet.testing; "
            "bad = [m for m in ('hypothesis', 'pytest') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
