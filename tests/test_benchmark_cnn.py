"""benchmarks/cnn_epoch.py runs end to end and prints consistent figures (no timing asserted:
these machines are shared and noisy)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "cnn_epoch.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cnn_epoch", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["cnn_epoch"] = module
    spec.loader.exec_module(module)
    return module


def _row(out: str, label: str) -> tuple[float, float]:
    m = re.search(rf"^{re.escape(label)}\s+([0-9.]+)\s+([0-9,]+)\s+[0-9.]+\s+[0-9.]+$", out,
                  re.MULTILINE)
    assert m, f"no {label!r} row in:\n{out}"
    return float(m.group(1)), float(m.group(2).replace(",", ""))


def _consistent(rows: int, seconds: float, per_s: float) -> None:
    # Times are printed to the millisecond: samples/s agrees to within that rounding.
    assert seconds > 0 and rows / (seconds + 5e-4) - 1 <= per_s <= rows / (seconds - 5e-4) + 1


def test_a_short_run_prints_every_figure(bench: ModuleType, capsys) -> None:
    torch = bench.torch_or_none()  # the torch half runs where torch is installed
    args = ["--rows", "256", "--epochs", "1", "--batch-size", "64", "--threads", "1"]
    code = bench.main(args + ([] if torch is not None else ["--no-torch"]))
    out = capsys.readouterr().out
    assert code == 0
    assert "CNN Reshape(1,28,28) Conv 1->16 3x3 pad 1" in out and "256 rows/epoch" in out
    xs, xps = _row(out, "xpnet (numpy)")
    _consistent(256, xs, xps)
    if torch is None:
        assert "torch not installed" in out and "xpnet / PyTorch = -" in out
        return
    ts, tps = _row(out, "PyTorch CPU")
    _consistent(256, ts, tps)
    ratio = float(re.search(r"^xpnet / PyTorch = ([0-9.]+)", out, re.MULTILINE).group(1))
    assert (xs - 5e-4) / (ts + 5e-4) - 1e-3 <= ratio <= (xs + 5e-4) / (ts - 5e-4) + 1e-3


def test_without_torch(bench: ModuleType, capsys) -> None:
    assert bench.main(["--rows", "130", "--epochs", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    _consistent(130, *_row(out, "xpnet (numpy)"))
    assert "torch not installed" in out


def test_the_models_match(bench: ModuleType) -> None:
    import xpnet

    model = xpnet.Sequential(bench.xpnet_layers(), seed=0)
    assert model.in_features == 784 and model.out_features == 10
    assert "206,922 parameters" in model.summary()  # as torch's: 160 + 4640 + 200832 + 1290
    torch = bench.torch_or_none()
    if torch is not None:
        import numpy as np

        X, y = bench.make_data(8)
        tr = bench.TorchRunner(torch, "cpu", 4, 0, X, y)
        assert sum(p.numel() for p in tr.model.parameters()) == 206_922
        assert np.isfinite(tr.epoch())


def test_an_unusable_backend_and_bad_sizes_are_refused(bench: ModuleType, capsys) -> None:
    assert bench.main(["--backend", "tpu", "--no-torch"]) == 2
    assert "backend must be 'numpy', 'cupy' or 'auto'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        bench.main(["--rows", "0", "--no-torch"])
    assert exc.value.code == 2
