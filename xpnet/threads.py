"""How many BLAS threads a training run uses: the policy behind ``fit(threads=...)``.

Why a policy at all: OpenBLAS starts one thread per core and splits every matmul between
them. A training step at batch 256 is a handful of matmuls of a few milliseconds each, so
all threads must meet at a barrier several times a step; when another process holds a core,
the thread that lost it stalls the others for a scheduler time slice. On a 2-core machine
with one busy core, 2 threads made ``xpnet train`` about 4x slower than 1 thread, while on
the idle machine 2 threads were about 1.5x faster than 1 (``benchmarks/threads.py`` prints
the figures). No fixed count is right for both, so by default the count is measured:

``threads="auto"`` (the default)
    On NumPy, when the model's largest matmul is big enough to split (at least
    ``MIN_MACS_PER_THREAD`` multiply-adds per thread) and more than one core is usable, the
    training steps themselves are timed: ``ROUNDS`` steps with each candidate count (1, 2,
    4, ... up to the cap), interleaved; the fewest threads whose median step time is within
    ``TOLERANCE`` of the fastest are kept, and the probe is repeated after enough time that
    the steps lost to probing stay under ``OVERHEAD`` of the run, or earlier when the kept
    count's steps get ``DRIFT`` times slower or faster (the load changed); a probe that could
    add threads waits while the time lost to all probes so far exceeds ``OVERHEAD`` of the
    time trained (one that can only drop them is cheap and never waits). The cap is the
    smallest of the BLAS pool's size when training starts (so ``OPENBLAS_NUM_THREADS=1``
    means 1), the usable CPUs (affinity mask and cgroup quota) and the size limit; counts
    above the cores the 1-minute load average leaves free are not tried (on a saturated
    machine one step with 2 threads can cost ten with 1). Elsewhere (small matmuls, one
    usable core) it is 1 thread; on CuPy the pool is left alone.
``threads=N``
    Exactly N threads for the whole run.
``threads=None``
    The BLAS library's own setting (``OPENBLAS_NUM_THREADS`` or one thread per core).

Bits: OpenBLAS sums a matmul with a long inner dimension (784 here) in a different order with
1 and with several threads (relative differences near 4e-7), and training amplifies them. A
run is bit-identical to another with the same seeds when both used the same count at every
step, so runs that must repeat exactly pass ``threads=N``; ``"auto"`` stays bit-identical
where it cannot adapt (one core, small models, ``OPENBLAS_NUM_THREADS=1``). The count used
in each epoch is logged as ``history["threads"]``.

The limit is process-wide while ``fit`` runs (BLAS libraries have one pool per process) and
restored when it returns or raises. ``threadpoolctl`` (pure Python) does the setting.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from ._checks import positive_int

Threads = Literal["auto"] | int | None

#: Below this many multiply-adds per thread in the model's largest matmul (about 0.3 ms of
#: one core) splitting cannot pay for the handoffs, nor for a preempted thread stalling the
#: others; and the rest of such a step (elementwise work, one thread) outweighs its matmuls.
#: The 784-400-100-10 MLP at batch 256 has 80M (cap 9); 784-64-10 has 12.8M (cap 1).
MIN_MACS_PER_THREAD = 1 << 23
#: Timed steps per candidate count in one probe.
ROUNDS = 3
#: Fewer threads are kept unless more are this much faster (less CPU taken from others).
TOLERANCE = 0.05
#: The steps lost to probing (slower than the chosen count) stay under this share of the run.
OVERHEAD = 0.05
#: A count is ruled out of a probe early when even its fastest step took this many times
#: the slowest step of the best count (a busy machine makes extra threads 4-10x slower).
DECISIVE = 2.0
#: Keep a choice for at least this many steps' time.
MIN_HOLD_STEPS = 20
#: Probe again early when the median of the kept count's last ``DRIFT_STEPS`` steps moved
#: this many times away from the median of its first ``DRIFT_STEPS``, in the direction where
#: another count could now win: slower with several threads (the load rose), faster with
#: fewer than the cap (it fell).
DRIFT = 1.5
DRIFT_STEPS = 5
#: When the load average leaves no core free for another thread, look again this much later.
RECHECK_S = 1.0
#: Probe again at least this often (seconds of training), whatever the last probe cost.
MAX_HOLD_S = 60.0


def check_threads(threads: Any) -> Threads:
    """``threads`` as ``"auto"``, a positive int or None, or a clear TypeError/ValueError."""
    if threads is None or threads == "auto":
        return threads  # type: ignore[no-any-return]
    if isinstance(threads, str):
        raise ValueError(f"threads must be 'auto', a positive integer or None, got {threads!r}")
    return positive_int("threads", threads)


def parse_threads(text: str) -> Threads:
    """The command line's ``--threads`` value: ``auto``, ``none`` or a positive integer."""
    low = text.strip().lower()
    if low in ("auto", "none"):
        return None if low == "none" else "auto"
    if not low.isdigit() or int(low) < 1:
        raise ValueError(f"expected 'auto', 'none' or a positive integer, got {text!r}")
    return int(low)


def cgroup_cpu_limit(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """CPUs allowed by a cgroup v2 quota (``"quota period"`` in ``cpu.max``), rounded up;
    None when there is no file or no quota (``"max ..."``)."""
    try:
        fields = path.read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota / period)) if quota > 0 and period > 0 else None


def usable_cpus() -> int:
    """CPUs this process may run on: the affinity mask, then a container's CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    return max(1, min(n, quota) if quota is not None else n)


def largest_matmul(layers: Iterable[Any], batch_size: int, input_shape: Any = None) -> int:
    """Multiply-adds of the biggest matmul of a step: ``batch * layer.matmul_macs(shape)``,
    the per-sample shapes walked from ``input_shape`` through each layer's ``output_shape``
    (a Dense ``W`` (in, out): ``batch * in * out``; a Conv2D: that times ``Ho Wo``). Objects
    without those methods count ``prod(W.shape)`` for each parameter with 2 or more axes."""
    biggest, shape = 0, input_shape
    for layer in layers:
        macs = getattr(layer, "matmul_macs", None)
        if macs is not None:
            biggest = max(biggest, batch_size * int(macs(shape)))
        else:
            for p in getattr(layer, "params", {}).values():
                dims = tuple(getattr(p, "shape", ()))
                if len(dims) >= 2:
                    biggest = max(biggest, batch_size * math.prod(int(s) for s in dims))
        out_shape = getattr(layer, "output_shape", None)
        shape = out_shape(shape) if out_shape is not None else None
    return biggest


def thread_cap(macs: int, pool: int, cpus: int) -> int:
    """The most threads ``"auto"`` tries: ``min(pool, cpus, macs // MIN_MACS_PER_THREAD)``,
    at least 1."""
    return max(1, min(pool, cpus, macs // MIN_MACS_PER_THREAD))


def candidates(cap: int) -> list[int]:
    """Counts a probe times: 1, 2, 4, ... below ``cap``, then ``cap``."""
    out = [1]
    while out[-1] * 2 < cap:
        out.append(out[-1] * 2)
    if cap > 1:
        out.append(cap)
    return out


def choose(samples: dict[int, list[float]], tolerance: float = TOLERANCE) -> int:
    """The fewest threads whose median step time is within ``tolerance`` of the fastest."""
    medians = {n: statistics.median(ts) for n, ts in samples.items() if ts}
    if not medians:
        raise ValueError("choose: no timed steps")
    best = min(medians.values())
    return min(n for n, m in medians.items() if m <= best * (1.0 + tolerance))


def clearly_slower(samples: dict[int, list[float]], factor: float = DECISIVE) -> set[int]:
    """Counts whose fastest step took more than ``factor`` times the slowest step of the
    count with the lowest median: no more rounds are needed to rule them out."""
    timed = {n: ts for n, ts in samples.items() if ts}
    if len(timed) < 2:
        return set()
    best = min(timed, key=lambda n: (statistics.median(timed[n]), n))
    worst_of_best = max(timed[best])
    return {n for n, ts in timed.items() if n != best and min(ts) > factor * worst_of_best}


def hold_seconds(samples: dict[int, list[float]], chosen: int) -> float:
    """Training time until the next probe: the probe's lost time (its steps' excess over the
    chosen count's median) divided by ``OVERHEAD``, at least ``MIN_HOLD_STEPS`` steps and
    at most ``MAX_HOLD_S``."""
    base = statistics.median(samples[chosen])
    lost = sum(t - base for ts in samples.values() for t in ts if t > base)
    # At least MIN_HOLD_STEPS steps: when the counts tie, probing costs nothing but would
    # otherwise switch back and forth every few steps.
    return min(MAX_HOLD_S, max(lost / OVERHEAD, MIN_HOLD_STEPS * base))


def load_average() -> float | None:
    """The 1-minute load average (runnable processes, ours included), None where unknown."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):  # not on this platform
        return None


def free_cpus(cpus: int, load: float | None) -> float:
    """CPUs the others leave free: ``cpus - (load - 1)``, counting this training thread as
    the 1 (``cpus`` when the load is unknown)."""
    if load is None:
        return float(cpus)
    return max(0.0, cpus - max(0.0, load - 1.0))


def describe_epochs(per_epoch: Iterable[float] | None, setting: Threads) -> str:
    """``" (BLAS threads: 2, auto)"``, or with a count per epoch where they differed
    (``" (BLAS threads, auto: 1 in 28 epochs, 2 in 2)"``); ``""`` when nothing was set."""
    counts = Counter(int(v) for v in per_epoch or () if v)
    if not counts:
        return ""
    how = "auto" if setting == "auto" else "as asked"
    if len(counts) == 1:
        return f" (BLAS threads: {next(iter(counts))}, {how})"
    parts = ", ".join(f"{n} in {k} epoch{'s' if k > 1 else ''}" for n, k in sorted(counts.items()))
    return f" (BLAS threads, {how}: {parts})"


# The run-time half, re-exported: ``from xpnet.threads import ThreadTuner``.
from .thread_tuner import ThreadTuner  # noqa: E402

__all__ = [
    "ThreadTuner",
    "DRIFT",
    "DRIFT_STEPS",
    "MIN_MACS_PER_THREAD",
    "OVERHEAD",
    "Threads",
    "candidates",
    "cgroup_cpu_limit",
    "check_threads",
    "choose",
    "clearly_slower",
    "describe_epochs",
    "free_cpus",
    "load_average",
    "hold_seconds",
    "largest_matmul",
    "parse_threads",
    "thread_cap",
    "usable_cpus",
]
