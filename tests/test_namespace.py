"""The clone-folder trap (xpnet/_namespace.py), for real: Python started in the folder above a
clone named ``xpnet`` imports the clone as an empty namespace package.

Each case runs a fresh interpreter in a temporary folder laid out like the parent of a clone
(``<tmp>/xpnet/`` holding the repository's top-level files, no ``__init__.py``), with the xpnet
under test installed as the README installs it (``pip install -e .``): its subpackages still
import, through the installation, while ``xpnet`` itself is the clone's folder.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import xpnet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def above_a_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "xpnet"
    clone.mkdir()
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(REPO / name, clone / name)
    (clone / "tests").mkdir()
    return tmp_path


def run(cwd: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _trap_happens(cwd: Path) -> bool:
    """Does ``import xpnet`` from ``cwd`` give the namespace package with this installation?
    (A regular, non-editable install in site-packages wins over the clone's folder.)"""
    proc = run(cwd, "import xpnet; print(xpnet.__file__)")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip() == "None"


def test_the_sample_loader_says_what_happened_and_what_to_do(above_a_clone: Path) -> None:
    if not _trap_happens(above_a_clone):
        pytest.skip("xpnet is installed in site-packages here, where a clone folder cannot "
                    "shadow it (the trap needs the editable install the README uses)")
    proc = run(above_a_clone, """
        import xpnet
        from xpnet.datasets import DatasetError, load_dataset
        try:
            load_dataset("mnist-sample", "train")
        except DatasetError as exc:
            print(exc)
        print("Sequential" in dir(xpnet))
    """)
    assert proc.returncode == 0, proc.stderr
    message, has_sequential = proc.stdout.strip().splitlines()
    clone = above_a_clone / "xpnet"
    package = Path(xpnet.__file__).resolve().parent
    assert message.startswith(
        f"the bundled MNIST sample cannot be found: 'import xpnet' found the folder {clone} "
        f"(a clone of the repository?) instead of the package inside it, {package}: Python was "
        f"started in {above_a_clone}, the folder above it, and a folder named xpnet")
    assert "imported as an empty namespace package" in message
    assert message.endswith(f"Run Python from another folder (inside the clone, {clone}, works "
                            "too) or rename the clone's folder.")
    assert "missing from the xpnet installation" not in message  # the old, wrong blame
    assert has_sequential == "False"
    # ... and the import of xpnet.datasets already warned, once, with the same explanation.
    assert proc.stderr.count("RuntimeWarning: 'import xpnet' found the folder") == 1


def test_importing_the_subpackages_warns_once(above_a_clone: Path) -> None:
    if not _trap_happens(above_a_clone):
        pytest.skip("xpnet is installed in site-packages here: no namespace package to detect")
    proc = run(above_a_clone, """
        import xpnet
        from xpnet.layers import Dense
        from xpnet.losses import MSE
        from xpnet.optim import Adam
        from xpnet.testing import check_gradients
        try:
            xpnet.Sequential
        except AttributeError as exc:
            print(exc)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "module 'xpnet' has no attribute 'Sequential'"
    assert proc.stderr.count("RuntimeWarning: 'import xpnet' found the folder") == 1, proc.stderr
    assert "Run Python from another folder" in proc.stderr


def test_elsewhere_nothing_is_said_and_the_sample_loads(above_a_clone: Path) -> None:
    elsewhere = above_a_clone / "elsewhere"
    elsewhere.mkdir()
    proc = run(elsewhere, """
        import warnings
        warnings.simplefilter("error")  # any warning would fail here
        import xpnet
        from xpnet.datasets import load_dataset
        X, y = load_dataset("mnist-sample", "train")
        print(xpnet.__file__ is not None, X.shape)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True (4000, 784)"


def test_the_message_is_none_for_the_real_package() -> None:
    from xpnet._namespace import shadowing_message

    assert xpnet.__file__ is not None and shadowing_message() is None
