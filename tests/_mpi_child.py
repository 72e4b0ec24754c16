"""One rank of a test job that tests/test_distributed_mpi.py starts with ``mpiexec -n 2``.

usage: python tests/_mpi_child.py collectives OUT_DIR
       python tests/_mpi_child.py device {mpi,nccl} OUT_DIR
       python tests/_mpi_child.py stuck {sleep,sigstop} {uncaught,caught} TIMEOUT

``collectives`` runs every collective of :class:`xpnet.distributed.MPICommunicator` on arrays
drawn from ``inputs(rank, dtype)`` and writes what each rank ends with to
``OUT_DIR/rank<r>.json`` (the parent checks it). The MPI communicator object is wrapped in a
counter of the nonblocking calls made through it, so the parent can check that many tensors
travel in one call.

``device`` does the same for CuPy arrays on the GPU ``local_rank`` (one per rank), with the
MPI communicator (staged through the host) or NCCL's.

``stuck`` makes rank 1 stop answering (``time.sleep`` for ten minutes, or a real SIGSTOP to
itself) while rank 0 enters an allreduce with a ``TIMEOUT``-second deadline; rank 0 either
leaves the CollectiveTimeout uncaught or catches it, prints ``caught: <message>`` and returns.
Either way the job must end: the parent waits with a bound and checks the message.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from xpnet.backends import get_backend
from xpnet.distributed import CollectiveTimeout, MPICommunicator
from xpnet.distributed.mpi import import_mpi

SHAPES = [(3, 4), (5,), (2, 3, 2), (), (7, 1)]


def inputs(rank: int, dtype: str) -> list[np.ndarray]:
    """The arrays rank ``rank`` starts with: seeded by the rank, so the parent can redraw them."""
    rng = np.random.default_rng(100 + rank)
    return [rng.normal(size=s).astype(dtype) for s in SHAPES]


def weighted_mean(dtype: str, weights: list[float]) -> list[np.ndarray]:
    """``sum_r w_r inputs(r) / sum_r w_r`` over ranks ``0..len(weights)-1``, in float64."""
    per_rank = [inputs(r, dtype) for r in range(len(weights))]
    total = sum(weights)
    return [
        sum(w * arrays[i].astype(np.float64) for w, arrays in zip(weights, per_rank, strict=True))
        / total
        for i in range(len(SHAPES))
    ]


class CountingComm:
    """An mpi4py communicator that counts the nonblocking collectives started through it."""

    def __init__(self, comm: Any) -> None:
        self._comm = comm
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._comm, name)
        if name.startswith("I"):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] = self.calls.get(name, 0) + 1
                return attr(*args, **kwargs)

            return counted
        return attr


def collectives(out: Path) -> None:
    mpi = import_mpi()
    counter = CountingComm(mpi.COMM_WORLD)
    comm = MPICommunicator(counter, timeout=60.0)
    rank, result = comm.rank, {}
    for dtype in ("float32", "float64"):
        for label, weight in (("equal", 1.0), ("weighted", float(rank + 1))):
            arrays = inputs(rank, dtype)
            before = dict(counter.calls)
            comm.allreduce_mean(arrays, weight=weight)
            result[f"{label}/{dtype}"] = [a.tolist() for a in arrays]
            result[f"{label}/{dtype}/dtypes"] = [str(a.dtype) for a in arrays]
            result[f"{label}/{dtype}/calls"] = counter.calls.get("Iallreduce", 0) - before.get(
                "Iallreduce", 0
            )
        arrays = inputs(rank, dtype)
        if rank == 1:  # weight 0: this rank's values (NaN here) must not count
            arrays = [np.full_like(a, np.nan) for a in arrays]
        comm.allreduce_mean(arrays, weight=0.0 if rank == 1 else 3.0)
        result[f"zero-weight/{dtype}"] = [a.tolist() for a in arrays]
    mixed = [*inputs(rank, "float32")[:2], *inputs(rank, "float64")[:2], np.arange(4) * (rank + 1)]
    before = counter.calls.get("Ibcast", 0)
    comm.broadcast(mixed, root=0)
    result["broadcast"] = [a.tolist() for a in mixed]
    result["broadcast/calls"] = counter.calls.get("Ibcast", 0) - before
    values = [float(rank), 2.5 * rank - 1.0]
    result["sum"] = comm.allreduce(values)
    result["max"] = comm.allreduce(values, "max")
    result["min"] = comm.allreduce(values, "min")
    result["json"] = comm.broadcast_json({"from": rank, "ids": [1, 2, 3]}, root=1)
    comm.barrier()
    result["rank"], result["size"] = rank, comm.size
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def device(kind: str, out: Path) -> None:
    from xpnet.distributed import get_communicator

    be = get_backend("cupy")
    mpi = MPICommunicator(timeout=60.0)
    be.xp.cuda.Device(mpi.local_rank).use()  # before any array is made on this rank
    comm = mpi if kind == "mpi" else get_communicator("nccl", backend=be, timeout=60.0)
    rank, result = comm.rank, {}
    for dtype in ("float32", "float64"):
        for label, weight in (("equal", 1.0), ("weighted", float(rank + 1))):
            arrays = [be.asarray(a, dtype=a.dtype) for a in inputs(rank, dtype)]
            comm.allreduce_mean(arrays, weight=weight, backend=be)
            result[f"{label}/{dtype}"] = [be.to_host(a).tolist() for a in arrays]
            result[f"{label}/{dtype}/dtypes"] = [str(a.dtype) for a in arrays]
        arrays = [be.asarray(a, dtype=a.dtype) for a in inputs(rank, dtype)]
        comm.broadcast(arrays, backend=be)
        result[f"broadcast/{dtype}"] = [be.to_host(a).tolist() for a in arrays]
    result["rank"], result["size"], result["device"] = rank, comm.size, mpi.local_rank
    (out / f"rank{rank}.json").write_text(json.dumps(result))


def stuck(how: str, handling: str, timeout: float) -> None:
    comm = MPICommunicator(timeout=timeout)
    comm.barrier()
    print(f"rank {comm.rank} ready", flush=True)
    if comm.rank == 1:
        if how == "sigstop":
            os.kill(os.getpid(), signal.SIGSTOP)
        time.sleep(600)
        print("rank 1 woke up", flush=True)  # reached only if nothing ended the job
    grads = inputs(comm.rank, "float32")
    if handling == "uncaught":
        comm.allreduce_mean(grads)
    else:
        try:
            comm.allreduce_mean(grads)
        except CollectiveTimeout as exc:
            print(f"caught: {exc}", flush=True)
    print(f"rank {comm.rank} returned", flush=True)


def main(argv: list[str]) -> int:
    if argv[0] == "collectives":
        collectives(Path(argv[1]))
    elif argv[0] == "device":
        device(argv[1], Path(argv[2]))
    elif argv[0] == "stuck":
        stuck(argv[1], argv[2], float(argv[3]))
    else:
        raise SystemExit(f"unknown scenario {argv[0]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
