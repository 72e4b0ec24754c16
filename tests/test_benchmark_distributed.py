"""benchmarks/distributed_step.py runs end to end (1 process, and 2 where MPI is installed) and
prints every figure, each consistent with the others on its row. Timings are never asserted."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from _mpirun import skip_reason

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "distributed_step.py"
ROW = re.compile(
    r"^(\d) \((single|mpi)\)\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)%\s+([0-9.]+)$",
    re.MULTILINE,
)


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("distributed_step", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["distributed_step"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("procs", ["", "2"], ids=["1-process", "1-and-2-processes"])
def test_a_short_run_prints_every_figure(bench: ModuleType, capsys, procs: str) -> None:
    if procs and skip_reason() is not None:
        pytest.skip(str(skip_reason()))
    code = bench.main(["--quick", "--steps", "12", "--warmup", "2", "--reps", "3",
                       "--procs", procs])
    out = capsys.readouterr().out
    assert code == 0
    assert "355,110 gradients (1.4 MB) per allreduce" in out
    rows = ROW.findall(out)
    assert [(int(r[0]), r[1], int(r[2])) for r in rows] == (
        [(1, "single", 256), (2, "mpi", 128)] if procs else [(1, "single", 256)]
    ), out
    # Each bound is the printed rounding of the figures involved (steps/s to 0.1, ms to 0.01,
    # allreduce ms to 0.001, share to 0.1 %, speed-up to 0.01).
    first = float(rows[0][3])
    for _, _, _, per_s, ms, red, share, speedup in rows:
        p, m, r = float(per_s), float(ms), float(red)
        assert p > 0 and m > 0 and 0 <= r <= m + 0.0015
        assert abs(p * m - 1000) <= 0.05 * m + 0.005 * p + 1e-6
        assert abs(float(share) - 100 * r / m) <= 0.05 + 100 * (0.0005 / m + r * 0.005 / m**2)
        assert abs(float(speedup) - p / first) <= 0.005 + 0.05 / first + p * 0.05 / first**2
    assert ("bare allreduce, 2 processes = " in out) == bool(procs)
