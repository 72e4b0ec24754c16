"""MPICommunicator in real 2-process jobs (``mpiexec -n 2`` over loopback): results, bucketing,
and timeouts that end the job instead of hanging. Skipped, with the reason, without MPI."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _mpi_child import inputs, weighted_mean
from _mpirun import HERE, needs_mpi, run, skip_reason

CHILD = str(HERE / "_mpi_child.py")
no_mpi4py = importlib.util.find_spec("mpi4py") is None


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """What each of the two ranks ended with after the ``collectives`` scenario."""
    if skip_reason() is not None:
        pytest.skip(str(skip_reason()))
    out = tmp_path_factory.mktemp("collectives")
    rc, stdout, stderr = run(2, [CHILD, "collectives", str(out)])
    assert rc == 0, f"{stdout}\n{stderr}"
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


@pytest.mark.parametrize("dtype, rtol", [("float32", 1e-6), ("float64", 1e-15)])
@pytest.mark.parametrize("label, weights", [("equal", (1.0, 1.0)), ("weighted", (1.0, 2.0))])
def test_allreduce_mean_is_the_weighted_mean(
    ranks: list[dict], dtype: str, rtol: float, label: str, weights: tuple[float, float]
) -> None:
    want = weighted_mean(dtype, list(weights))
    for r in ranks:
        got = [np.asarray(g) for g in r[f"{label}/{dtype}"]]
        assert r[f"{label}/{dtype}/dtypes"] == [dtype] * len(want)  # float32 stays float32
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol)
    # Both replicas must hold the same bits, or their weights would drift apart.
    assert ranks[0][f"{label}/{dtype}"] == ranks[1][f"{label}/{dtype}"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_allreduce_mean_packs_every_tensor_into_one_call(ranks: list[dict], dtype: str) -> None:
    for r in ranks:
        assert r[f"equal/{dtype}/calls"] == 1  # five tensors, one Iallreduce
        assert r[f"weighted/{dtype}/calls"] == 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_rank_with_weight_zero_does_not_count_even_if_nan(ranks: list[dict], dtype: str) -> None:
    want = inputs(0, dtype)  # rank 1 sent NaNs with weight 0: the mean is rank 0's arrays
    for r in ranks:
        for g, w in zip(r[f"zero-weight/{dtype}"], want, strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6)


def test_broadcast_gives_every_rank_root_values_one_call_per_dtype(ranks: list[dict]) -> None:
    root = [*inputs(0, "float32")[:2], *inputs(0, "float64")[:2], np.arange(4)]
    for r in ranks:
        assert len(r["broadcast"]) == len(root)
        for g, w in zip(r["broadcast"], root, strict=True):
            np.testing.assert_array_equal(np.asarray(g), w)
        assert r["broadcast/calls"] == 3  # float32, float64, int64


def test_scalar_allreduce_and_json_broadcast(ranks: list[dict]) -> None:
    for r in ranks:
        assert r["sum"] == [1.0, 0.5]  # [0 + 1, -1 + 1.5]
        assert r["max"] == [1.0, 1.5]
        assert r["min"] == [0.0, -1.0]
        assert r["json"] == {"from": 1, "ids": [1, 2, 3]}
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert {r["size"] for r in ranks} == {2}


@needs_mpi
@pytest.mark.parametrize(
    "how, handling",
    [("sleep", "uncaught"), ("sleep", "caught"), ("sigstop", "uncaught")],
)
def test_a_stuck_rank_makes_the_other_time_out_and_end_the_job(how: str, handling: str) -> None:
    """Rank 1 stops answering (asleep for 10 minutes, or SIGSTOPped): rank 0's allreduce gives
    up after 2 s with an error naming the collective, the rank and the wait, and the job ends
    (``run`` fails the test if it is still running after its bound)."""
    rc, out, err = run(2, [CHILD, "stuck", how, handling, "2"])
    assert rc != 0, f"{out}\n{err}"
    text = out + err
    assert "allreduce timed out on rank 0 of 2 after waiting" in text, text
    assert "rank 0 ready" in out and "rank 1 ready" in out
    assert "rank 1 woke up" not in out  # the stuck rank was ended, not waited for
    if handling == "caught":
        assert "caught: allreduce timed out on rank 0 of 2" in out
    else:
        assert "CollectiveTimeout" in err  # the traceback, printed before the abort
        assert "rank 0 returned" not in out


def test_missing_mpi4py_is_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"
        "from xpnet.distributed import get_communicator\n"
        "get_communicator('mpi')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "DistributedError: distributed training needs MPI" in out.stderr
    assert "pip install 'xpnet[mpi]'" in out.stderr


@pytest.mark.skipif(no_mpi4py, reason="mpi4py is not installed (pip install -e '.[mpi]')")
def test_missing_mpi_runtime_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, MPI4PY_LIBMPI=str(tmp_path / "libmpi.so.12"))
    code = "from xpnet.distributed import get_communicator; get_communicator('mpi')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "DistributedError: mpi4py found no MPI runtime" in out.stderr
    assert "libmpi.so.12" in out.stderr
