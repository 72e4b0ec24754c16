"""Collectives for data-parallel training: one process per rank, MPI (mpi4py) or NCCL (CuPy).

A :class:`Communicator` is what the training loop talks to. :class:`SingleProcess` (the
default) does nothing, so code that never asks for another runs unchanged.
:class:`MPICommunicator` runs MPI's collectives on host buffers (a GPU's arrays are staged
through the host) and :class:`NCCLCommunicator` runs NCCL's on CuPy arrays, with MPI carrying
NCCL's unique id. ``mpi4py`` is imported (lazily) in :mod:`xpnet.distributed.mpi` only; NCCL
comes from the CuPy backend (:func:`xpnet.backends.cupy.nccl_module`).

* ``allreduce_mean(arrays, weight=w)`` packs every array into ONE flat buffer (plus the weight),
  sums it across ranks in one call and unpacks it in place as ``sum_r w_r a_r / sum_r w_r``:
  the mean of the ranks' gradients, weighted by their rows when shards differ in size.
* ``broadcast(arrays)`` copies rank 0's arrays into every rank's, one call per dtype.
* ``allreduce(values)`` reduces a few host scalars (metrics) in float64.
* Every collective has a deadline (``timeout`` seconds): it is started nonblocking and polled.
  When a peer is dead or stuck the waiting rank raises :class:`CollectiveTimeout` naming the
  collective, its rank and the seconds waited, and the job is aborted (``MPI_Abort``) when
  that error is left uncaught or the process exits, so no rank hangs.
"""

from __future__ import annotations

import os

from .._checks import one_of, real
from ..backends import Backend, BackendError, get_backend
from ..backends.cupy import nccl_module
from .base import (
    DEFAULT_TIMEOUT,
    CollectiveTimeout,
    Communicator,
    DistributedError,
    SingleProcess,
    shard,
)
from .mpi import MPICommunicator
from .nccl import NCCLCommunicator

#: Environment variables by which MPI launchers announce the job's size.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launched_size() -> int:
    """The job size an MPI launcher announced in the environment (1 when there is none)."""
    for var in _SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit():
            return int(value)
    return 1


def get_communicator(
    kind: str = "auto", *, backend: Backend | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Communicator:
    """A communicator of ``kind``: ``"single"``, ``"mpi"``, ``"nccl"`` or ``"auto"``.

    ``"auto"`` is MPI when an MPI launcher started more than one process (``mpiexec -n 2``),
    NCCL instead when ``backend`` is a CuPy backend, and the single process otherwise.
    ``"nccl"`` needs the CuPy ``backend`` the model lives on. ``timeout`` (seconds) bounds
    every collective's wait.
    """
    kind = one_of("kind", kind, ("auto", "single", "mpi", "nccl"))
    timeout = real("timeout", timeout, low=0.0, low_open=True)
    if kind == "auto":
        if launched_size() <= 1:
            return SingleProcess(timeout)
        kind = "nccl" if backend is not None and get_backend(backend).name == "cupy" else "mpi"
    if kind == "single":
        return SingleProcess(timeout)
    if kind == "mpi":
        return MPICommunicator(timeout=timeout)
    if backend is None:
        raise ValueError("get_communicator('nccl') needs backend= (the model's CuPy backend)")
    be = get_backend(backend)
    try:
        nccl_module(be)
    except BackendError as exc:
        raise DistributedError(f"get_communicator('nccl'): {exc}") from exc
    return NCCLCommunicator(be, MPICommunicator(timeout=timeout))


def from_environment(
    *, backend: Backend | None = None, timeout: float = DEFAULT_TIMEOUT
) -> Communicator:
    """The communicator the launcher implies: ``get_communicator("auto", ...)``."""
    return get_communicator("auto", backend=backend, timeout=timeout)


__all__ = [
    "DEFAULT_TIMEOUT",
    "CollectiveTimeout",
    "Communicator",
    "DistributedError",
    "MPICommunicator",
    "NCCLCommunicator",
    "SingleProcess",
    "from_environment",
    "get_communicator",
    "launched_size",
    "shard",
]
