"""The single-process communicator (the default: nothing changes), sharding, the factory and
its errors. The 2-process behaviour is in test_distributed_mpi.py."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpnet.backends import get_backend
from xpnet.distributed import (
    CollectiveTimeout,
    DistributedError,
    SingleProcess,
    get_communicator,
    launched_size,
    shard,
)


@given(st.integers(0, 50), st.integers(0, 300), st.integers(1, 9))
def test_shards_tile_the_rows_in_rank_order_balanced(lo: int, m: int, size: int) -> None:
    bounds = [shard(lo, lo + m, r, size) for r in range(size)]
    assert bounds[0][0] == lo and bounds[-1][1] == lo + m
    assert all(a[1] == b[0] for a, b in zip(bounds[:-1], bounds[1:], strict=True))  # tiled
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_the_single_process_leaves_everything_as_it_is() -> None:
    comm = get_communicator()  # no launcher here: the default
    assert isinstance(comm, SingleProcess)
    assert (comm.rank, comm.size, comm.local_rank, comm.is_root) == (0, 1, 0, True)
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
    before = [a.copy() for a in arrays]
    comm.allreduce_mean(arrays, weight=7.0)
    comm.broadcast(arrays)
    comm.barrier()
    for a, b in zip(arrays, before, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    assert comm.allreduce([1, 2.5]) == [1.0, 2.5]
    assert comm.broadcast_json({"k": (1, 2)}) == {"k": [1, 2]}  # as JSON gives it on any rank
    assert comm.shard(10, 20) == (10, 20)
    with pytest.raises(SystemExit) as info:
        comm.abort(3)
    assert info.value.code == 3


def test_single_process_checks_arguments_like_the_others() -> None:
    comm = SingleProcess()
    with pytest.raises(ValueError, match="weight must be >= 0.0, got -1"):
        comm.allreduce_mean([np.zeros(2)], weight=-1)
    with pytest.raises(ValueError, match=r"root must be a rank in \[0, 1\), got 1"):
        comm.broadcast([np.zeros(2)], root=1)
    with pytest.raises(TypeError, match="root must be a rank"):
        comm.broadcast_json(1, root="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="op must be one of 'sum', 'max', 'min', got 'mean'"):
        comm.allreduce([1.0], "mean")
    with pytest.raises(ValueError, match="timeout must be > 0.0, got 0"):
        SingleProcess(timeout=0)


def test_factory_errors_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="kind must be one of .* got 'gloo'"):
        get_communicator("gloo")
    with pytest.raises(ValueError, match="timeout must be > 0.0, got -5"):
        get_communicator("single", timeout=-5)
    with pytest.raises(ValueError, match=r"get_communicator\('nccl'\) needs backend="):
        get_communicator("nccl")
    with pytest.raises(DistributedError, match="NCCL runs on CuPy arrays: it needs a CuPy"):
        get_communicator("nccl", backend=get_backend("numpy"))


@pytest.mark.parametrize(
    "env, size",
    [({}, 1), ({"PMI_SIZE": "2"}, 2), ({"OMPI_COMM_WORLD_SIZE": "4"}, 4), ({"PMI_SIZE": "x"}, 1)],
)
def test_launched_size_reads_the_launchers_variables(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], size: int
) -> None:
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert launched_size() == size


def test_collective_timeout_names_the_collective_rank_and_wait() -> None:
    exc = CollectiveTimeout("allreduce", 1, 4, 12.34)
    assert str(exc).startswith("allreduce timed out on rank 1 of 4 after waiting 12.3 s")
    assert (exc.collective, exc.rank, exc.size, exc.waited) == ("allreduce", 1, 4, 12.34)
    assert isinstance(exc, DistributedError)


def test_importing_the_package_does_not_import_mpi4py() -> None:
    code = "import sys, xpnet, xpnet.distributed; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
