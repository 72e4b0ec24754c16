"""Packing many arrays into one flat buffer (one collective per step), argument checks, polling."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..backends import Array, Backend, get_backend


def check_arrays(name: str, arrays: Any, backend: Backend | None) -> Backend:
    """The backend of ``arrays`` (a list of its arrays), or a TypeError naming the culprit."""
    be = get_backend("numpy") if backend is None else backend
    if not isinstance(be, Backend):
        raise TypeError(f"backend must be an xpnet Backend or None, got {backend!r}")
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(f"{name} must be a list of arrays, got {type(arrays).__name__}")
    for i, a in enumerate(arrays):
        if not be.is_array(a):
            hint = "" if backend is not None else " (pass backend= for arrays not on NumPy)"
            raise TypeError(f"{name}[{i}] is a {type(a).__name__}, not a {be.name} array{hint}")
    return be


def check_values(values: Any) -> list[float]:
    """``values`` (a list of real numbers) as Python floats."""
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"values must be a list of numbers, got {type(values).__name__}")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"values[{i}] must be a real number, got {v!r}")
    return [float(v) for v in values]


def by_dtype(arrays: Sequence[Array]) -> list[list[Array]]:
    """``arrays`` grouped by dtype, in first-seen order (one buffer, one call per group)."""
    groups: dict[str, list[Array]] = {}
    for a in arrays:
        groups.setdefault(str(a.dtype), []).append(a)
    return list(groups.values())


def pack(
    be: Backend, arrays: Sequence[Array], cache: dict[Any, Array], weight: float | None = None
) -> tuple[Array, int]:
    """One flat buffer ``[w a_0, w a_1, ..., w]`` (``w`` appended when ``weight`` is given).

    Returns the buffer and ``n``, the number of array elements in it. The buffer is reused
    from ``cache`` (a step's sizes repeat), so a step allocates nothing.
    """
    dtype = arrays[0].dtype
    for i, a in enumerate(arrays):
        if a.dtype != dtype:
            raise TypeError(
                f"arrays[{i}] is {a.dtype} but arrays[0] is {dtype}: allreduce_mean packs one "
                "dtype into its buffer"
            )
    n = sum(math.prod(a.shape) for a in arrays)
    size = n + (weight is not None)
    key = (id(be.xp), str(dtype), size)
    buf = cache.get(key)
    if buf is None:
        buf = cache[key] = be.zeros((size,), dtype)  # on the arrays' device
    xp, off = be.xp, 0
    for a in arrays:
        k = math.prod(a.shape)
        buf[off : off + k] = xp.reshape(a, (k,))
        off += k
    if weight is not None:
        if weight == 0.0:
            buf[:n] = 0.0  # a rank with no rows: its stale gradients must not count, NaN or not
        elif weight != 1.0:
            buf[:n] *= weight
        buf[n] = weight
    return buf, n


def unpack(be: Backend, buf: Array, arrays: Sequence[Array]) -> None:
    """Copy consecutive pieces of ``buf`` back into ``arrays``, in place."""
    xp, off = be.xp, 0
    for a in arrays:
        k = math.prod(a.shape)
        a[...] = xp.reshape(buf[off : off + k], a.shape)
        off += k


def poll(done: Callable[[], bool], timeout: float) -> float | None:
    """Call ``done()`` until it is True (return None) or ``timeout`` s pass (return the wait).

    It spins for the first millisecond (a bare allreduce of a step's gradients takes about
    0.3 ms here), then sleeps between polls, doubling from 20 us up to 0.2 ms during the first
    second and up to 10 ms after it: a rank waiting for a slower peer leaves the CPU to it
    (on shared cores spinning slows the peer down) yet notices within ~0.2 ms when a step's
    imbalance ends, and a long wait (a peer validating) costs ~100 wake-ups a second.
    MPI's nonblocking collectives progress only inside these polls.
    """
    start, pause = time.monotonic(), 20e-6
    while not done():
        waited = time.monotonic() - start
        if waited > timeout:
            return waited
        if waited > 1e-3:
            time.sleep(pause)
            pause = min(2 * pause, 2e-4 if waited < 1.0 else 1e-2)
    return None
