"""The communicator interface, its single-process default, and the errors collectives raise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from .._checks import one_of, real
from ..backends import Array, Backend
from .buckets import check_arrays, check_values

#: Seconds a collective may wait for the other ranks before the job is aborted.
DEFAULT_TIMEOUT = 300.0

OPS = ("sum", "max", "min")


class DistributedError(RuntimeError):
    """A communicator cannot be made or used (missing mpi4py, a broken communicator, ...)."""


class CollectiveTimeout(DistributedError):
    """A collective waited longer than its timeout: another rank is dead, stuck or far behind.

    ``collective`` names it, ``rank`` (of ``size``) is the rank that gave up after ``waited``
    seconds.
    """

    def __init__(self, collective: str, rank: int, size: int, waited: float) -> None:
        super().__init__(
            f"{collective} timed out on rank {rank} of {size} after waiting {waited:.1f} s for "
            "the other ranks (one of them is dead, stuck or far behind); the job is aborted"
        )
        self.collective, self.rank, self.size, self.waited = collective, rank, size, waited


def shard(lo: int, hi: int, rank: int, size: int) -> tuple[int, int]:
    """Rows ``[a, b)`` of the global rows ``[lo, hi)`` that ``rank`` of ``size`` takes.

    Contiguous and balanced: ``a = lo + floor(rank m / size)``, ``b = lo + floor((rank+1) m /
    size)`` with ``m = hi - lo``; the shards of all ranks tile ``[lo, hi)`` in rank order.
    """
    m = hi - lo
    return lo + rank * m // size, lo + (rank + 1) * m // size


class Communicator:
    """Collectives across the ``size`` ranks of one job; the defaults are the single process's.

    Array collectives take ``backend``, the :class:`~xpnet.backend.Backend` the arrays live on
    (default: NumPy), and work in place, so a caller's references stay valid. ``timeout`` is
    how long (seconds) any collective may wait for the other ranks.
    """

    name = "single"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = real("timeout", timeout, low=0.0, low_open=True)
        self.rank, self.size = 0, 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"

    @property
    def is_root(self) -> bool:
        """True on rank 0, the rank that prints and writes files."""
        return self.rank == 0

    @property
    def local_rank(self) -> int:
        """This rank's index among the ranks on its host (which GPU it takes)."""
        return 0

    def shard(self, lo: int, hi: int) -> tuple[int, int]:
        """This rank's rows ``[a, b)`` of the global rows ``[lo, hi)`` (see :func:`shard`)."""
        return shard(lo, hi, self.rank, self.size)

    def allreduce_mean(
        self, arrays: Sequence[Array], *, weight: float = 1.0, backend: Backend | None = None
    ) -> None:
        """Replace each array by ``sum_r w_r a_r / sum_r w_r`` (``w_r``: rank r's ``weight``).

        All arrays (one dtype) travel in one flat buffer, with the weight appended: one
        collective per call however many arrays. A rank with ``weight=0`` contributes nothing.
        """
        check_arrays("arrays", arrays, backend)
        real("weight", weight, low=0.0)

    def broadcast(
        self, arrays: Sequence[Array], *, root: int = 0, backend: Backend | None = None
    ) -> None:
        """Overwrite every rank's arrays with ``root``'s (one collective per dtype)."""
        check_arrays("arrays", arrays, backend)
        self.check_root(root)

    def allreduce(self, values: Sequence[float], op: str = "sum") -> list[float]:
        """``op`` (``"sum"``, ``"max"``, ``"min"``) of each host scalar across ranks, in float64."""
        one_of("op", op, OPS)
        return check_values(values)

    def broadcast_json(self, obj: Any, *, root: int = 0) -> Any:
        """``root``'s JSON-serializable ``obj`` on every rank (as ``json.loads`` returns it)."""
        self.check_root(root)
        return json.loads(json.dumps(obj))

    def barrier(self) -> None:
        """Wait until every rank has reached this call."""

    def abort(self, code: int = 1) -> NoReturn:
        """End every process of the job with exit status ``code``."""
        raise SystemExit(code)

    def fail(self) -> None:
        """Say this rank has failed: the job is aborted when this process exits, so the other
        ranks do not wait for it until their timeout (nothing to do for one process)."""

    def check_root(self, root: Any) -> int:
        """``root`` as a rank of this job, or a TypeError/ValueError quoting it."""
        if isinstance(root, bool) or not isinstance(root, (int, np.integer)):
            raise TypeError(f"root must be a rank (an int), got {root!r}")
        if not 0 <= root < self.size:
            raise ValueError(f"root must be a rank in [0, {self.size}), got {root!r}")
        return int(root)


class SingleProcess(Communicator):
    """The default: one process, where every collective leaves its arguments as they are."""
