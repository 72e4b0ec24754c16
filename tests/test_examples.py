"""Each lesson in examples/ runs as a script (small settings) and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]_*.py"))


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def accuracy(out: str, prefix: str) -> float:
    match = re.search(rf"^{re.escape(prefix)}:? ([\d.]+)", out, flags=re.M)
    assert match is not None, out
    return float(match.group(1))


def test_all_six_lessons_are_present():
    assert SCRIPTS == [
        "01_perceptron_nand.py", "02_xor_mlp.py", "03_make_your_own_nn.py",
        "04_modular_tanh_mse.py", "05_mnist_classifier.py", "06_mnist_cnn.py",
    ]


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_has_backend_and_examples(name):
    out = run_example(name, "--help")
    assert "--backend" in out and "examples:" in out
    assert f"python examples/{name}" in out


def test_perceptron_learns_nand_like_the_lesson():
    out = run_example("01_perceptron_nand.py", "--backend", "numpy")
    # The classic worked example: threshold 0.5, lr 0.1, weights from zero.
    assert "step perceptron: converged after 9 epochs, weights [+0.80, -0.20, -0.10]" in out
    assert accuracy(out, "sigmoid neuron: accuracy") == 1.0


def test_xor_needs_the_hidden_layer():
    out = run_example("02_xor_mlp.py", "--epochs", "400")
    assert accuracy(out, "single neuron: accuracy") <= 0.75
    assert accuracy(out, "mlp: accuracy") == 1.0


def test_make_your_own_network():
    out = run_example("03_make_your_own_nn.py", "--epochs", "1", "--limit", "2000")
    assert "mnist-sample: 2000 training, 1000 test images" in out
    assert accuracy(out, "test accuracy") > 0.6


def test_modular_tanh_network():
    out = run_example("04_modular_tanh_mse.py", "--epochs", "1", "--limit", "600")
    assert accuracy(out, "xor: accuracy") == 1.0
    assert accuracy(out, "test accuracy") > 0.6


def test_mnist_classifier():
    out = run_example("05_mnist_classifier.py", "--epochs", "3", "--limit", "1000")
    assert re.search(r"^epoch  3/3  loss [\d.]+  train acc [\d.]+  test acc", out, flags=re.M)
    assert accuracy(out, "test accuracy") > 0.8


def test_mnist_cnn():
    """The convolutional lesson learns: 2 epochs on 600 random sample digits (of 4,000)."""
    out = run_example("06_mnist_cnn.py", "--epochs", "2", "--limit", "600")
    assert "Conv2D 1 -> 32, 3x3 pad 1x1" in out and "BatchNorm2d 64" in out  # the summary
    assert re.search(r"^epoch  2/2  loss [\d.]+  train acc [\d.]+  test acc", out, flags=re.M)
    assert accuracy(out, "test accuracy") > 0.6
