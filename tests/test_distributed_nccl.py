"""Collectives on CuPy arrays in real ``mpiexec`` jobs, one GPU per rank: NCCL's, and MPI's
staged through the host. Skipped, with the reason, without MPI, a GPU or CuPy's NCCL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _mpi_child import inputs, weighted_mean
from _mpirun import HERE, run, skip_reason

from xpnet.backends import BackendError, cuda_available, get_backend
from xpnet.backends.cupy import nccl_module

CHILD = str(HERE / "_mpi_child.py")


def _gpus() -> int:
    return int(get_backend("cupy").xp.cuda.runtime.getDeviceCount()) if cuda_available() else 0


def _why_not(kind: str, ranks: int) -> str | None:
    if skip_reason() is not None:
        return skip_reason()
    if not cuda_available():
        return "no CUDA GPU usable through CuPy here"
    if kind == "nccl":
        try:
            nccl_module(get_backend("cupy"))
        except BackendError as exc:
            return str(exc)
    if _gpus() < ranks:
        return f"{ranks} ranks need {ranks} GPUs (one each); this machine has {_gpus()}"
    return None


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("kind", ["nccl", "mpi"])
def test_device_collectives(kind: str, ranks: int, tmp_path: Path) -> None:
    reason = _why_not(kind, ranks)
    if reason is not None:
        pytest.skip(reason)
    rc, out, err = run(ranks, [CHILD, "device", kind, str(tmp_path)])
    assert rc == 0, f"{out}\n{err}"
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(ranks)]
    assert sorted(r["device"] for r in results) == list(range(ranks))  # one GPU per rank
    for dtype, rtol in (("float32", 1e-6), ("float64", 1e-15)):
        cases = (("equal", [1.0] * ranks), ("weighted", [r + 1.0 for r in range(ranks)]))
        for label, weights in cases:
            want = weighted_mean(dtype, weights)
            for r in results:
                assert r[f"{label}/{dtype}/dtypes"] == [dtype] * len(want)
                for g, w in zip(r[f"{label}/{dtype}"], want, strict=True):
                    np.testing.assert_allclose(np.asarray(g), w, rtol=rtol, atol=rtol)
            assert all(r[f"{label}/{dtype}"] == results[0][f"{label}/{dtype}"] for r in results)
        for r in results:
            for g, w in zip(r[f"broadcast/{dtype}"], inputs(0, dtype), strict=True):
                np.testing.assert_array_equal(np.asarray(g), w)
