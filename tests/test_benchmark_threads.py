"""benchmarks/threads.py runs end to end and prints the side-by-side figures.

Timings are never asserted (the machines are shared and noisy): only that every figure is
printed, positive, and that the ratios agree with the medians printed beside them.
"""

from __future__ import annotations

import importlib.util
import re
import signal
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "threads.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_threads", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_threads"] = module
    spec.loader.exec_module(module)
    return module


def test_a_short_run_prints_every_figure(bench: ModuleType, capsys) -> None:
    code = bench.main(["--busy", "0", "--repeats", "1", "--epochs", "1", "--fit-epochs", "1",
                       "--settings", "none", "1", "auto"])
    out = capsys.readouterr().out
    assert code == 0
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # its SIGTERM handler is undone
    assert re.search(r"^CPUs usable: \d+; BLAS: ", out, re.M), out
    rows = re.findall(
        r"^(xpnet train|fit)\s+0\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+(\S+)\s+([0-9.]+) "
        r"\((none|1)\)\s+([0-9.]+)$", out, re.M)
    assert [r[0] for r in rows] == ["xpnet train", "fit"], out
    for _, none, one, auto, used, ratio, best, none_auto in rows:
        none_s, one_s, auto_s = float(none), float(one), float(auto)
        assert min(none_s, one_s, auto_s) > 0
        assert re.fullmatch(r"(\d+:\d+%/?)+", used), used
        fixed = {"none": none_s, "1": one_s}
        assert best == min(fixed, key=lambda k: fixed[k])
        # Medians printed to 3 decimals, ratios to 2: they agree within those roundings.
        assert _within(float(ratio), auto_s, fixed[best])
        assert _within(float(none_auto), none_s, auto_s)


def _within(ratio: float, a: float, b: float) -> bool:
    """``ratio`` is a / b printed to 2 decimals, for a and b printed to 3."""
    low, high = (a - 5e-4) / (b + 5e-4), (a + 5e-4) / max(b - 5e-4, 1e-9)
    return low - 5e-3 <= ratio <= high + 5e-3


def test_burners_run_while_inside_and_are_gone_after(bench: ModuleType) -> None:
    with bench.Burners(1) as burners:
        (proc,) = burners.procs
        assert proc.poll() is None  # spinning
    assert proc.poll() is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--repeats", "0"], "--repeats must be at least 1, got 0"),
     (["--busy", "-1"], "--busy takes counts >= 0, got [-1]"),
     (["--settings", "lots"], "--settings: expected 'auto', 'none' or a positive integer, "
                              "got 'lots'")],
)
def test_bad_arguments_are_refused(bench: ModuleType, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
