"""check_gradients on a plain function with a hand-written vjp (xpnet/testing/function.py),
and what pytest shows when a check fails: the report, not the checker's own source."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from xpnet.layers import Tanh
from xpnet.losses import MSE
from xpnet.testing import check_gradients


def _x(shape=(3, 4), seed=0, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def test_a_right_vjp_passes_in_float64():
    result = check_gradients(np.sin, _x(), vjp=lambda x, dy: np.cos(x) * dy)
    assert result.passed and result.dtype == "float64" and result.mode == "full"
    assert [(c.name, c.dtype) for c in result.checks] == [("input", "float64")]
    assert result.checked == 12 * 12  # the full Jacobian of a (3, 4) -> (3, 4) function
    assert result.report().startswith("gradient check passed: function sin with vjp ")


def test_float32_inputs_check_the_float32_vjp_too():
    calls = []

    def vjp(x, dy):
        calls.append(x.dtype)
        return 2.0 * x * dy

    result = check_gradients(np.square, _x(dtype=np.float32), vjp=vjp)
    assert result.passed and result.dtype == "float32"
    assert {c.dtype for c in result.checks} == {"float64", "float32"}
    assert set(calls) == {np.dtype(np.float64), np.dtype(np.float32)}


def test_a_wrong_vjp_is_caught_with_a_readable_report():
    def square_vjp_missing_the_2(x, dy):
        return x * dy

    with pytest.raises(AssertionError) as info:
        check_gradients(np.square, _x(), vjp=square_vjp_missing_the_2)
    text = str(info.value)
    assert text.startswith("gradient check FAILED: function square with vjp "
                           "test_a_wrong_vjp_is_caught_with_a_readable_report.<locals>."
                           "square_vjp_missing_the_2")
    assert "input      (3, 4)       float64" in text and "FAIL at d out[" in text
    result = check_gradients(np.square, _x(), vjp=square_vjp_missing_the_2,
                             raise_on_failure=False)
    (bad,) = result.failures
    # d(x^2)/dx = 2x against the vjp's x: the worst entry is off by exactly x itself.
    assert bad.numeric == pytest.approx(2 * bad.analytic, rel=1e-6)


def test_several_inputs_and_a_wrong_gradient_for_one_of_them():
    a, b = _x(seed=1), _x(seed=2)
    good = check_gradients(lambda a, b: a * b + np.sin(a), (a, b),
                           vjp=lambda a, b, dy: ((b + np.cos(a)) * dy, a * dy))
    assert good.passed and [c.name for c in good.checks] == ["input", "input1"]
    bad = check_gradients(lambda a, b: a * b, (a, b), vjp=lambda a, b, dy: (b * dy, b * dy),
                          raise_on_failure=False)
    assert [c.name for c in bad.failures] == ["input1"]


def test_a_scalar_output_and_random_directions():
    x = _x((40, 30))  # 1,200 inputs: checked along random directions
    result = check_gradients(lambda x: np.sum(x**3), x, vjp=lambda x, dy: 3.0 * x**2 * dy)
    assert result.passed and result.mode == "directional"
    with pytest.raises(AssertionError, match="FAILED"):
        check_gradients(lambda x: np.sum(x**3), x, vjp=lambda x, dy: 3.0 * x * dy)


def test_kinks_are_skipped_and_listed_only_when_declared():
    x = _x()
    x[0, 0] = 0.0  # max(x, 0) is not differentiable there
    relu = lambda x: np.maximum(x, 0.0)  # noqa: E731
    relu_vjp = lambda x, dy: (x > 0) * dy  # noqa: E731
    with pytest.raises(AssertionError, match=r"d out\[0,0\] / d input\[0,0\]"):
        check_gradients(relu, x, vjp=relu_vjp)   # without kink=: a "failure" at the kink
    result = check_gradients(relu, x, vjp=relu_vjp, kink=lambda x: x > 0)
    assert result.passed and result.kinks == ["input[0,0]"]
    assert result.checks[0].skipped == 12  # the column of that input element


def test_vjp_results_of_the_wrong_number_or_shape_are_named():
    a, b = _x(), _x(seed=1)
    with pytest.raises(TypeError, match=r"vjp returned 1 gradient\(s\) for 2 input\(s\) of "
                       r"\S*<lambda>: it must return a tuple of 2"):
        check_gradients(lambda a, b: a * b, (a, b), vjp=lambda a, b, dy: (b * dy,))
    with pytest.raises(ValueError, match=r"vjp's gradient for input has shape \(4,\), but "
                       r"that input has shape \(3, 4\)"):
        check_gradients(np.sin, a, vjp=lambda x, dy: np.cos(x[0]) * dy[0])


def test_bad_arguments():
    x = _x()
    with pytest.raises(TypeError, match="vjp must be a function vjp\\(x, dy\\) -> dx, got 3"):
        check_gradients(np.sin, x, vjp=3)
    with pytest.raises(TypeError, match="kink= goes with vjp="):
        check_gradients(np.sin, x, kink=lambda x: x > 0)
    with pytest.raises(TypeError, match="a Layer or Loss has its own backward"):
        check_gradients(Tanh(), x, vjp=lambda x, dy: dy)
    with pytest.raises(TypeError, match="a Layer or Loss has its own backward"):
        check_gradients(MSE(), x, x, vjp=lambda x, dy: dy)
    with pytest.raises(ValueError, match="no target or loss="):
        check_gradients(np.sin, x, x, vjp=lambda x, dy: dy)
    with pytest.raises(TypeError, match="x must hold floating-point numbers, got dtype int64"):
        check_gradients(np.negative, np.arange(3), vjp=lambda x, dy: -dy)
    with pytest.raises(TypeError, match="a function given with vjp="):
        check_gradients(np.sin, x)  # type: ignore[arg-type]


def test_strict_array_inputs_are_checked_on_that_module():
    aas = pytest.importorskip("array_api_strict", reason="array-api-strict is a test extra")
    x = aas.asarray(_x())
    result = check_gradients(aas.sin, x, vjp=lambda x, dy: aas.cos(x) * dy)
    assert result.passed and result.backend == "array_api_strict"


# ------------------------------------------------------------------ what pytest prints
FAILING_TESTS = '''
import numpy as np
from xpnet import get_backend
from xpnet.layers import Layer, Tanh
from xpnet.testing import assert_backends_agree, check_gradients


class TanhWrong(Tanh):
    def backward(self, dy):
        return dy * (1.0 - self.y)


class DependsOnDtype(Layer):
    def forward(self, x, training=False):
        return x * (3.0 if self.backend.dtype_name == "float32" else 2.0)

    def backward(self, dy):
        return dy * 2.0


def test_wrong_layer():
    check_gradients(TanhWrong(), np.ones((2, 3)))


def test_wrong_vjp():
    check_gradients(np.square, np.ones((2, 3)), vjp=lambda x, dy: x * dy)


def test_backends_disagree():
    assert_backends_agree(DependsOnDtype(), np.ones((2, 3)), get_backend("numpy", "float64"),
                          get_backend("numpy", "float32"))


def test_bad_argument():
    check_gradients(np.square, np.ones((2, 3)), vjp="not a function")
'''


def test_a_failing_check_shows_the_report_not_the_checker_source(tmp_path: Path):
    (tmp_path / "test_user_code.py").write_text(textwrap.dedent(FAILING_TESTS))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_code.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 1 and "4 failed" in out, out
    sections = dict(_sections(out))
    for name in ("test_wrong_layer", "test_wrong_vjp", "test_backends_disagree"):
        text = sections[name]
        assert re.search(r"^E +AssertionError: (gradient check FAILED|backends DISAGREE)",
                         text, re.M), text
        # The checker's frames are hidden: none of its source lines or file names.
        assert "raise AssertionError(result.report())" not in text, text
        assert "gradcheck.py" not in text and "agree.py" not in text, text
        assert len(text.splitlines()) < 40, text
    assert "gradient check FAILED: TanhWrong()" in sections["test_wrong_layer"]
    assert "gradient check FAILED: function square" in sections["test_wrong_vjp"]
    assert "FAIL at d out[" in sections["test_wrong_vjp"]
    assert "numpy float64 vs numpy float32" in sections["test_backends_disagree"]
    assert "problem: output[0]: 2 vs 3" in sections["test_backends_disagree"]
    # Any other error still shows where it came from.
    assert "function.py" in sections["test_bad_argument"]
    assert "TypeError: vjp must be a function" in sections["test_bad_argument"]


def _sections(out: str) -> list[tuple[str, str]]:
    """pytest's ``____ test_name ____`` failure sections, by test name."""
    parts = []
    name, lines = None, []
    for line in out.splitlines():
        head = line.strip("_ ").strip()
        if line.startswith("____") and head.startswith("test_"):
            if name:
                parts.append((name, "\n".join(lines)))
            name, lines = head, []
        elif line.startswith("===") and name:
            parts.append((name, "\n".join(lines)))
            name, lines = None, []
        elif name:
            lines.append(line)
    return parts
