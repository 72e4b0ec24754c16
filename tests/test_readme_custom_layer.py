"""The README's "Writing your own layer" and function-checking examples, run as written.

Every fenced ``python`` block of README.md whose first line is ``# <path>`` is written to that
path in a fresh folder (a user's project: ``my_layers.py``, ``conftest.py``,
``tests/test_prelu.py``, ``check_softplus.py``); the scripts are run with Python and the
tests with pytest, in subprocesses, so the README cannot drift from what works.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n# (?P<path>[\w/]+\.py)\n(?P<code>.*?)^```$", re.M | re.S)
EXPECTED = {"my_layers.py", "conftest.py", "tests/test_prelu.py", "check_softplus.py"}


def readme_files() -> dict[str, str]:
    """``{path: code}`` of the README's blocks that name a file."""
    return {m["path"]: m["code"] for m in BLOCK.finditer(README.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    files = readme_files()
    assert EXPECTED <= set(files), f"README blocks found: {sorted(files)}"
    root = tmp_path_factory.mktemp("user-project")
    for path, code in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"# {path}\n{code}", encoding="utf-8")
    return root


def test_the_readme_blocks_are_complete_files() -> None:
    files = readme_files()
    assert files["conftest.py"].strip() == 'pytest_plugins = ["xpnet.testing.pytest_plugin"]'
    assert "class PReLU(Layer):" in files["my_layers.py"]
    assert "register_kink(PReLU" in files["tests/test_prelu.py"]


def test_the_worked_test_passes_on_every_backend_here(project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=project, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = proc.stdout.strip().splitlines()[-1]
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert "failed" not in summary and "error" not in summary, proc.stdout
    # numpy-float64 and numpy-float32 at least, plus the save/load test; the rest of the
    # backends (array-api-strict, CuPy) run or are skipped with the reason.
    assert passed >= 3, proc.stdout
    assert "test_prelu_gradients[numpy-float32]" not in proc.stdout  # i.e. not skipped


def test_the_scripts_run(project: Path) -> None:
    proc = subprocess.run([sys.executable, "check_softplus.py"], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("gradient check passed: function softplus with vjp "
                                  "softplus_vjp on numpy float64"), proc.stdout


def test_a_wrong_backward_in_the_readme_layer_fails_that_test(project: Path,
                                                             tmp_path: Path) -> None:
    """The worked test can fail: with da's sign flipped it does, showing the report."""
    broken = tmp_path / "broken"
    for path in EXPECTED:
        (broken / path).parent.mkdir(parents=True, exist_ok=True)
        (broken / path).write_text((project / path).read_text())
    layers = broken / "my_layers.py"
    text = layers.read_text()
    wrong = text.replace("xp.sum(xp.where(x > 0, xp.zeros_like(x), x * dy), axis=0)",
                         "-xp.sum(xp.where(x > 0, xp.zeros_like(x), x * dy), axis=0)")
    assert wrong != text
    layers.write_text(wrong)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "gradients",
         "-x", "tests/test_prelu.py"],
        cwd=broken, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stdout
    assert "gradient check FAILED: PReLU(features=4, slope=0.25)" in proc.stdout
    assert re.search(r"^E +a +\(4,\) .*FAIL at d out\[", proc.stdout, re.M), proc.stdout
