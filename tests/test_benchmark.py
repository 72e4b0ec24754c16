"""benchmarks/mlp_epoch.py runs end to end and prints the ratios the speed goals are read from.

Timings are never asserted (these machines are shared and noisy); only that every figure is
there, positive and consistent with the others printed beside it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "mlp_epoch.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mlp_epoch", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mlp_epoch"] = module
    spec.loader.exec_module(module)
    return module


def _figure(out: str, label: str) -> float:
    m = re.search(rf"^{re.escape(label)}\s*=\s*([0-9.]+)", out, re.MULTILINE)
    assert m, f"no {label!r} line in:\n{out}"
    return float(m.group(1))


def test_a_short_run_prints_every_figure(bench: ModuleType, capsys) -> None:
    code = bench.main(["--rows", "600", "--epochs", "1", "--batch-size", "128", "--no-torch",
                       "--no-scaling"])
    out = capsys.readouterr().out
    assert code == 0
    assert "MLP 784-400-100-10" in out and "600 rows/epoch" in out
    row = re.search(r"^xpnet \(numpy\)\s+([0-9.]+)\s+([0-9,]+)\s+([0-9.]+)/([0-9.]+)", out,
                    re.MULTILINE)
    assert row, out
    seconds, per_s = float(row.group(1)), float(row.group(2).replace(",", ""))
    # Times are printed to the millisecond: the other figures agree to within that rounding.
    assert seconds > 0 and 600 / (seconds + 5e-4) - 1 <= per_s <= 600 / (seconds - 5e-4) + 1
    floor_s = float(re.search(r"^matmul floor\s+([0-9.]+)", out, re.MULTILINE).group(1))
    ratio = _figure(out, "xpnet / matmul floor")
    assert (seconds - 5e-4) / (floor_s + 5e-4) - 1e-3 <= ratio
    assert ratio <= (seconds + 5e-4) / (floor_s - 5e-4) + 1e-3
    assert "torch not installed" in out and "fused=False" not in out  # no CuPy run here


def test_the_scaling_table_has_every_configuration(bench: ModuleType, capsys) -> None:
    assert bench.main(["--quick", "--rows", "300", "--epochs", "1", "--no-torch"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s*(\d+)\s+(\d+-\d+)\s+[0-9.]+\s+-\s+[0-9.]+\s+-\s+[0-9.]+$", out,
                      re.MULTILINE)
    assert [(int(b), h) for b, h in rows] == [
        (64, "400-100"), (256, "400-100"), (1024, "400-100"), (4096, "400-100"),
        (256, "200-50"), (256, "800-200"), (256, "1600-400"),
    ]


def test_an_unusable_backend_is_a_clear_error(bench: ModuleType, capsys) -> None:
    assert bench.main(["--backend", "tpu", "--no-torch"]) == 2
    assert "backend must be 'numpy', 'cupy' or 'auto'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--rows", "--epochs", "--batch-size"])
def test_bad_sizes_are_refused(bench: ModuleType, flag: str, capsys) -> None:
    # Found by this test: --rows 0 and --epochs 0 used to fall back to the defaults.
    with pytest.raises(SystemExit) as exc:
        bench.main([flag, "0", "--no-torch"])
    assert exc.value.code == 2
    assert "must be positive" in capsys.readouterr().err


def test_epoch_flops_count_forward_dw_and_dx_but_not_the_first_dx(bench: ModuleType) -> None:
    # 2 FLOPs per multiply-add: forward + dW on every layer, dx on all but the first.
    rows, widths = 10, (4, 3, 2)
    expected = 2 * (2 * rows * 4 * 3 + 3 * rows * 3 * 2)
    assert bench.matmul_flops(rows, widths) == expected
    assert bench.batches(10, 4) == [4, 4, 2]
