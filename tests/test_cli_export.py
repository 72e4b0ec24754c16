"""``xpnet export MODEL OUT.onnx``: the file, --verify, --logits, and the errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.architectures import mlp
from xpnet.cli import main


@pytest.fixture
def saved_model(tmp_path: Path) -> tuple[Path, xpnet.Sequential]:
    model = mlp(in_features=12, classes=4, hidden=(6,), dropout=0.1, seed=3)
    model.compile("softmax_cross_entropy", xpnet.optim.Adam())
    return model.save(tmp_path / "model.npz"), model


def test_export_writes_a_file_onnxruntime_runs_like_predict_proba(
    saved_model: tuple[Path, xpnet.Sequential], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    ort = pytest.importorskip("onnxruntime", reason="needs xpnet[onnx]")
    pytest.importorskip("onnx", reason="needs xpnet[onnx]")
    path, model = saved_model
    out = tmp_path / "model.onnx"
    assert main(["export", str(path), str(out), "--verify", "--logits"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "input (batch, 12) float32" in text
    assert '"output" (as predict_proba) and "logits", opset 17' in text
    assert "verified with onnxruntime: max |onnx - predict_proba| = " in text
    x = np.random.default_rng(0).normal(size=(9, 12)).astype(np.float32)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    proba, logits = sess.run(None, {"input": x})
    np.testing.assert_allclose(proba, model.predict_proba(x), rtol=1e-5, atol=1e-6)
    assert logits.shape == (9, 4)


def test_export_errors_are_one_line(
    saved_model: tuple[Path, xpnet.Sequential], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pytest.importorskip("onnx", reason="needs xpnet[onnx]")
    path, _ = saved_model
    assert main(["export", str(tmp_path / "missing.npz"), str(tmp_path / "m.onnx")]) == 2
    assert "error: model file not found" in capsys.readouterr().err
    assert main(["export", str(path), str(tmp_path / "m.onnx"), "--opset", "11"]) == 2
    err = capsys.readouterr().err
    assert "opset must be an int from 13" in err and err.count("\n") == 1


def test_export_help_teaches_by_example(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["export", "--help"])
    assert exc.value.code == 0
    assert "examples:\n  xpnet export model.npz model.onnx" in capsys.readouterr().out


def test_without_onnx_the_message_says_what_to_install(
    saved_model: tuple[Path, xpnet.Sequential], tmp_path: Path
) -> None:
    path, _ = saved_model
    # A fresh interpreter where `import onnx` fails, as when the extra is not installed.
    code = textwrap.dedent(f"""
        import sys
        sys.modules["onnx"] = None
        import xpnet, xpnet.onnx
        from xpnet.cli import main
        from xpnet.layers import Dense
        xpnet.onnx.register_onnx_converter("MyLayer")(lambda layer, g, x: x)  # no onnx needed
        try:
            xpnet.Sequential([Dense(2, 2)]).export_onnx({str(tmp_path / "a.onnx")!r})
        except xpnet.onnx.OnnxUnavailableError as exc:
            print("method:", exc)
        sys.exit(main(["export", {str(path)!r}, {str(tmp_path / "b.onnx")!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert 'method: ONNX export needs the onnx package: pip install "xpnet[onnx]"' in proc.stdout
    assert proc.stderr == ('xpnet export: error: exporting to ONNX needs the onnx package: '
                           'pip install "xpnet[onnx]"\n')
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()


# ------------------------------------------------------- the optional packages stay optional
XPNET_DIR = Path(xpnet.__file__).resolve().parent


@pytest.mark.parametrize(("package", "home"), [("onnx", "onnx/_proto.py"),
                                               ("onnxruntime", "cli/export.py"),  # --verify
                                               ("sklearn", "sklearn.py")])
def test_one_module_imports_each_optional_package(package: str, home: str) -> None:
    import re

    imports = re.compile(rf"^\s*(import\s+{package}\b|from\s+{package}[\s.])", re.MULTILINE)
    found = [str(p.relative_to(XPNET_DIR)) for p in sorted(XPNET_DIR.rglob("*.py"))
             if imports.search(p.read_text("utf-8"))]
    assert found == [home]


def test_import_xpnet_and_xpnet_onnx_import_neither_onnx_nor_sklearn() -> None:
    code = ("import sys, xpnet, xpnet.onnx, xpnet.cli\n"
            "print([m for m in ('onnx', 'onnxruntime', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_without_sklearn_the_message_says_what_to_install() -> None:
    code = ('import sys\nsys.modules["sklearn"] = None\n'
            "try:\n    import xpnet.sklearn\nexcept ImportError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.startswith('xpnet.sklearn needs scikit-learn: pip install "xpnet[sklearn]"')
