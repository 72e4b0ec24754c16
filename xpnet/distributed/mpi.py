"""MPI collectives through mpi4py (the only module that imports it, lazily), on host buffers."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

import numpy as np

from .._checks import one_of, real
from ..backends import Array, Backend
from .base import DEFAULT_TIMEOUT, OPS, CollectiveTimeout, Communicator, DistributedError
from .buckets import by_dtype, check_arrays, check_values, pack, poll, unpack

MPI_HINT = "install the extra with `pip install 'xpnet[mpi]'` (mpi4py and MPICH from PyPI)"

#: Where launchers put a rank's index on its host (MPICH/Hydra, Open MPI, MVAPICH).
_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")


def import_mpi() -> ModuleType:
    """``mpi4py.MPI`` (which initializes MPI), or a DistributedError saying what to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        missing = getattr(exc, "name", None) == "mpi4py"
        what = "mpi4py is not installed" if missing else f"mpi4py cannot load MPI ({exc})"
        raise DistributedError(f"distributed training needs MPI: {what}; {MPI_HINT}") from exc
    except RuntimeError as exc:  # mpi4py found no MPI library to load
        msg = " ".join(str(exc).split())
        raise DistributedError(f"mpi4py found no MPI runtime ({msg}); {MPI_HINT}") from exc
    return MPI


class MPICommunicator(Communicator):
    """MPI collectives (mpi4py) on host buffers; arrays on a GPU are staged through the host.

    ``comm`` is an ``mpi4py.MPI.Comm`` (default ``COMM_WORLD``). Each collective is started
    nonblocking (``Iallreduce``, ``Ibcast``, ``Ibarrier``) and polled against ``timeout``.
    With more than one rank and ``abort_on_error`` (the default), an uncaught exception on any
    rank, or an exit after a collective timed out, calls ``MPI_Abort``, so the whole job stops
    instead of hanging.
    """

    name = "mpi"

    def __init__(
        self, comm: Any = None, *, timeout: float = DEFAULT_TIMEOUT, abort_on_error: bool = True
    ) -> None:
        super().__init__(timeout)
        self._mpi = import_mpi()
        self.comm = self._mpi.COMM_WORLD if comm is None else comm
        self.rank, self.size = int(self.comm.Get_rank()), int(self.comm.Get_size())
        self._local_rank: int | None = None
        #: the collective that timed out, once one has: the communicator is unusable then
        self.broken: str | None = None
        self.failed = False  # see fail()
        self._buffers: dict[Any, Array] = {}
        if abort_on_error and self.size > 1:
            _install_abort_hooks(self)

    @property
    def local_rank(self) -> int:
        """From the launcher's environment, else one ``MPI_Comm_split_type`` (a collective)."""
        if self._local_rank is None:
            found = [os.environ[v] for v in _LOCAL_RANK_VARS if os.environ.get(v, "").isdigit()]
            if found and self.comm is self._mpi.COMM_WORLD:
                self._local_rank = int(found[0])
            else:
                node = self.comm.Split_type(self._mpi.COMM_TYPE_SHARED)
                self._local_rank = int(node.Get_rank())
        return self._local_rank

    def allreduce_mean(
        self, arrays: Sequence[Array], *, weight: float = 1.0, backend: Backend | None = None
    ) -> None:
        be = check_arrays("arrays", arrays, backend)
        w = real("weight", weight, low=0.0)
        if not arrays:
            return
        buf, n = pack(be, arrays, self._buffers, weight=w)
        host = be.to_host(buf)
        self._wait(self.comm.Iallreduce(self._mpi.IN_PLACE, host, op=self._mpi.SUM), "allreduce")
        total = float(host[n])
        if not total > 0.0:
            raise DistributedError(f"allreduce_mean: the ranks' weights sum to {total!r}")
        host[:n] *= host.dtype.type(1.0 / total)
        unpack(be, buf if host is buf else be.asarray(host, dtype=buf.dtype), arrays)

    def broadcast(
        self, arrays: Sequence[Array], *, root: int = 0, backend: Backend | None = None
    ) -> None:
        be = check_arrays("arrays", arrays, backend)
        root = self.check_root(root)
        for group in by_dtype(arrays):
            buf, _ = pack(be, group, self._buffers)
            host = be.to_host(buf)
            self._wait(self.comm.Ibcast(host, root=root), "broadcast")
            if self.rank != root:
                unpack(be, buf if host is buf else be.asarray(host, dtype=buf.dtype), group)

    def allreduce(self, values: Sequence[float], op: str = "sum") -> list[float]:
        op = one_of("op", op, OPS)
        buf = np.array(check_values(values), dtype=np.float64)
        mpi_op = {"sum": self._mpi.SUM, "max": self._mpi.MAX, "min": self._mpi.MIN}[op]
        if buf.size:
            self._wait(self.comm.Iallreduce(self._mpi.IN_PLACE, buf, op=mpi_op), "allreduce")
        return [float(v) for v in buf]

    def broadcast_json(self, obj: Any, *, root: int = 0) -> Any:
        root = self.check_root(root)
        data = json.dumps(obj).encode() if self.rank == root else b""
        length = np.array([len(data)], dtype=np.int64)
        self._wait(self.comm.Ibcast(length, root=root), "broadcast")
        raw = np.frombuffer(data, dtype=np.uint8).copy() if self.rank == root else None
        raw = raw if raw is not None else np.empty(int(length[0]), dtype=np.uint8)
        self._wait(self.comm.Ibcast(raw, root=root), "broadcast")
        return json.loads(raw.tobytes().decode())

    def barrier(self) -> None:
        self._wait(self.comm.Ibarrier(), "barrier")

    def fail(self) -> None:
        self.failed = True

    def abort(self, code: int = 1) -> NoReturn:
        sys.stdout.flush()
        sys.stderr.flush()
        # The launcher forwards our output through its own pipes and may end the job before
        # it has passed on the last lines (the error saying why); give it a moment.
        time.sleep(0.5)
        self.comm.Abort(int(code))
        # MPICH's MPI_Abort can return once it has asked the launcher to end the job; leave
        # at once, without Python's exit handlers (which could enter MPI again).
        os._exit(int(code))

    def _wait(self, request: Any, collective: str) -> None:
        """Poll ``request`` until it completes; past ``timeout``, mark this broken and raise."""
        if self.broken is not None:
            raise DistributedError(
                f"{collective} on rank {self.rank}: this communicator is unusable since "
                f"{self.broken} timed out"
            )
        waited = poll(request.Test, self.timeout)
        if waited is not None:
            self.broken = collective
            raise CollectiveTimeout(collective, self.rank, self.size, waited)


_HOOKED: list[MPICommunicator] = []


def _install_abort_hooks(comm: MPICommunicator) -> None:
    """Abort the job on an uncaught exception, and at exit after a collective timed out (or
    :meth:`MPICommunicator.fail`).

    Without this a rank that dies of an exception leaves its peers waiting in their next
    collective, and an exit with a timed-out request pending can hang in ``MPI_Finalize``.
    (ChainerMN did the same with its global except hook.)
    """
    if _HOOKED:
        return
    _HOOKED.append(comm)
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        # The one line that says why first: a launcher ending the job can cut what follows.
        print(f"xpnet: rank {comm.rank} of {comm.size} ends the job: {kind.__name__}: {value}",
              file=sys.stderr, flush=True)
        previous(kind, value, tb)
        comm.abort(1)

    def at_exit() -> None:
        if comm.broken is not None or comm.failed:
            comm.abort(1)

    sys.excepthook = hook
    atexit.register(at_exit)
