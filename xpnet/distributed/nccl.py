"""NCCL collectives on CuPy arrays, one GPU per rank; MPI carries the unique id and scalars."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .._checks import real
from ..backends import Array, Backend
from ..backends.cupy import nccl_module
from .base import CollectiveTimeout, Communicator
from .buckets import by_dtype, check_arrays, pack, poll, unpack
from .mpi import MPICommunicator


class NCCLCommunicator(Communicator):
    """NCCL's allreduce and broadcast on CuPy arrays; scalars, JSON and barriers go over MPI.

    ``backend`` is the CuPy backend the model will live on: making the communicator selects
    this rank's GPU (``local_rank`` modulo the GPUs on the host), so make it before the model
    and its data. ``mpi`` carries
    NCCL's unique id from rank 0. NCCL runs on the current stream; an event recorded after
    each call is polled against ``timeout``, and a call that misses it aborts the NCCL
    communicator (``ncclCommAbort``) and raises :class:`CollectiveTimeout`.
    """

    name = "nccl"

    def __init__(self, backend: Backend, mpi: MPICommunicator | None = None) -> None:
        self.mpi = mpi if mpi is not None else MPICommunicator()
        super().__init__(self.mpi.timeout)
        self.rank, self.size = self.mpi.rank, self.mpi.size
        self.backend = backend
        self._nccl = nccl_module(backend)
        # One GPU per rank, by its index on its host: arrays made from now on go there.
        count = int(backend.xp.cuda.runtime.getDeviceCount())
        backend.xp.cuda.Device(self.local_rank % count).use()
        uid = self.mpi.broadcast_json(list(self._nccl.get_unique_id()) if self.is_root else None)
        self.mpi.barrier()  # NCCL's set-up blocks with no deadline: enter it together
        self._comm = self._nccl.NcclCommunicator(self.size, tuple(uid), self.rank)
        self._buffers: dict[Any, Array] = {}

    @property
    def local_rank(self) -> int:
        return self.mpi.local_rank

    def allreduce_mean(
        self, arrays: Sequence[Array], *, weight: float = 1.0, backend: Backend | None = None
    ) -> None:
        be = check_arrays("arrays", arrays, backend or self.backend)
        w = real("weight", weight, low=0.0)
        if not arrays:
            return
        buf, n = pack(be, arrays, self._buffers, weight=w)
        stream = be.xp.cuda.get_current_stream()
        ptr, code = buf.data.ptr, self._code(buf.dtype)
        self._comm.allReduce(ptr, ptr, int(buf.size), code, self._nccl.NCCL_SUM, stream.ptr)
        self._wait(stream, "allreduce")
        buf[:n] *= 1.0 / buf[n : n + 1]  # on the device: the total weight is never read back
        unpack(be, buf, arrays)

    def broadcast(
        self, arrays: Sequence[Array], *, root: int = 0, backend: Backend | None = None
    ) -> None:
        be = check_arrays("arrays", arrays, backend or self.backend)
        root = self.check_root(root)
        stream = be.xp.cuda.get_current_stream()
        for group in by_dtype(arrays):
            buf, _ = pack(be, group, self._buffers)
            self._comm.bcast(buf.data.ptr, int(buf.size), self._code(buf.dtype), root, stream.ptr)
            self._wait(stream, "broadcast")
            if self.rank != root:
                unpack(be, buf, group)

    def allreduce(self, values: Sequence[float], op: str = "sum") -> list[float]:
        return self.mpi.allreduce(values, op)

    def broadcast_json(self, obj: Any, *, root: int = 0) -> Any:
        return self.mpi.broadcast_json(obj, root=root)

    def barrier(self) -> None:
        self.mpi.barrier()

    def abort(self, code: int = 1) -> NoReturn:
        self._comm.abort()
        self.mpi.abort(code)

    def _code(self, dtype: Any) -> int:
        """NCCL's code for a float32/float64 buffer."""
        name = np.dtype(str(dtype)).name
        if name not in ("float32", "float64"):
            raise TypeError(f"NCCL collectives here take float32 or float64 arrays, got {name}")
        return int(self._nccl.NCCL_FLOAT32 if name == "float32" else self._nccl.NCCL_FLOAT64)

    def _wait(self, stream: Any, collective: str) -> None:
        """Poll an event recorded after the NCCL call until done; past the deadline, abort."""
        event = self.backend.xp.cuda.Event(block=False, disable_timing=True)
        event.record(stream)
        waited = poll(lambda: bool(event.done), self.timeout)
        if waited is not None:
            self._comm.abort()
            self.mpi.broken = f"NCCL {collective}"
            raise CollectiveTimeout(f"NCCL {collective}", self.rank, self.size, waited)
