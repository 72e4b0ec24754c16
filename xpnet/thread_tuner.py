"""The stateful half of the BLAS thread policy: a run's thread count, set, timed and restored.

:class:`ThreadTuner` applies the decisions of :mod:`xpnet.threads` (read its docstring for the
policy) to one training run: it sets the count through threadpoolctl, times the steps it is
told about, probes and switches, and gives the library its counts back at the end.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .threads import (
    DRIFT,
    DRIFT_STEPS,
    OVERHEAD,
    RECHECK_S,
    ROUNDS,
    Threads,
    candidates,
    check_threads,
    choose,
    clearly_slower,
    free_cpus,
    hold_seconds,
    load_average,
    thread_cap,
    usable_cpus,
)


class ThreadTuner:
    """Sets the BLAS thread count while a training run lasts and restores it afterwards.

    Use as a context manager around the loop, and call :meth:`on_epoch_begin` at the start of
    each epoch and :meth:`on_batch_end` after each step (the training callback
    :class:`xpnet.training.BlasThreads` does). ``macs`` is :func:`largest_matmul` of the model,
    ``host`` whether it computes on the CPU, ``cpus`` the usable CPUs (default
    :func:`usable_cpus`), ``clock`` what steps are timed with, ``load`` the load average
    (default :func:`load_average`). ``current`` is the count in force (None when the pools
    are left alone).
    """

    def __init__(
        self,
        threads: Threads,
        *,
        macs: int,
        host: bool = True,
        cpus: int | None = None,
        clock: Callable[[], float] = time.perf_counter,
        load: Callable[[], float | None] | None = None,
    ) -> None:
        self.setting = check_threads(threads)
        self.macs = int(macs)
        self.host = host
        self.cpus = cpus
        self.clock = clock
        self.load = load_average if load is None else load
        self.current: int | None = None
        self.cap = 1
        self.samples: dict[int, list[float]] = {}
        self.chosen: list[tuple[int, dict[int, float]]] = []  # each probe's pick and medians
        self._libs: Any = None
        self._limiter: Any = None
        self._queue: list[int] = []
        self._stamp = 0.0
        self._hold = 0.0
        self._lost = 0.0  # time all probes lost against the count they chose
        self._trained = 0.0  # time of all steps
        self._since: list[float] = []  # the kept count's first and last timed steps
        self._skip = 1  # the first step allocates gradients and optimizer slots: not timed
        self._epoch: Counter[int] = Counter()

    # ---------------------------------------------------------------------- enter / exit
    def __enter__(self) -> ThreadTuner:
        if self.setting is None or (self.setting == "auto" and not self.host):
            return self
        from threadpoolctl import ThreadpoolController

        libs = ThreadpoolController().select(user_api="blas")
        if not libs.lib_controllers:
            return self  # no BLAS library threadpoolctl can steer (e.g. Apple Accelerate)
        pool = max(int(lib.num_threads or 1) for lib in libs.lib_controllers)
        if self.setting == "auto":
            cpus = usable_cpus() if self.cpus is None else self.cpus
            self.cap = thread_cap(self.macs, pool, cpus)
            # Start at 1 thread, the count that is never far off: on a busy machine an
            # untimed first step with all threads can cost ten.
            start = 1
            self.current = 1
            if self.cap > 1:
                self._queue = self._probe_order(start)
                self._hold = 0.0 if self._queue else RECHECK_S
        else:
            start = self.cap = int(self.setting)
        self._libs = libs
        # The limiter records the original counts (restored on exit) and, with
        # threadpoolctl >= 3.8, makes this thread the one allowed to set OpenBLAS's pool.
        self._limiter = libs.limit(limits=start, user_api="blas")
        self._limiter.__enter__()
        self.current = start
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limiter is not None:
            self._limiter.__exit__(None, None, None)
            self._limiter = None

    # ---------------------------------------------------------------------- the hooks
    def on_epoch_begin(self, epoch: int = 0) -> None:
        """Start timing the epoch's first step (the gap since the last one held validation)."""
        self._epoch = Counter()
        self._stamp = self.clock()

    def on_batch_end(self, *, full: bool = True) -> None:
        """Time the step that just ended (``full``: a whole batch, so comparable) and pick
        the count for the next one."""
        now = self.clock()
        elapsed, self._stamp = now - self._stamp, now
        if self.current is None:
            return
        self._epoch[self.current] += 1
        if self.cap == 1 or self.setting != "auto":
            return
        timed = full and self._skip == 0
        self._skip = max(0, self._skip - 1)
        self._trained += elapsed
        if self._queue:  # probing: this step ran with self._queue[0]
            self._probe_step(elapsed if timed else None)
        else:
            self._hold -= elapsed
            if timed:
                self._since.append(elapsed)
                if len(self._since) > 2 * DRIFT_STEPS:  # keep the first and the last ones
                    del self._since[DRIFT_STEPS]
            drifted = self._drifted()
            # Leaving several threads for 1 costs little, so a slowdown there is acted on at
            # once; other probes wait until the budget allows them.
            urgent = drifted and self.current > 1
            due = self._hold <= 0 or drifted
            if urgent or (due and self._lost <= OVERHEAD * self._trained):
                self._queue = self._probe_order(self.current)
                self.samples = {}
                if not self._queue:  # no core free for another thread: look again later
                    self._hold, self._since = RECHECK_S, []
        self._stamp = self.clock()  # switching threads is not the next step's time

    def epoch_threads(self) -> int | None:
        """The count used for most of the current epoch's steps (None: pools left alone)."""
        if not self._epoch:
            return self.current
        return self._epoch.most_common(1)[0][0]

    def describe(self) -> str:
        """One line for people: the setting and what it led to."""
        if self.current is None:
            return "BLAS threads: left to the library" + (
                "" if self.setting is None else " (no BLAS library found to set)"
            )
        if self.setting != "auto":
            return f"BLAS threads: {self.current} (as asked)"
        if self.cap == 1:
            return "BLAS threads: auto: 1 (matmuls too small to split, or 1 usable core)"
        tried = ", ".join(
            f"{n}: {m * 1e3:.1f} ms" for n, m in sorted(self.chosen[-1][1].items())
        ) if self.chosen else "not yet measured"
        return f"BLAS threads: auto: {self.current} (median step time with {tried})"

    # ---------------------------------------------------------------------- internals
    def _probe_order(self, first: int) -> list[int]:
        """``ROUNDS`` rounds of every candidate, interleaved, starting with ``first``; empty
        when the load leaves no core for more threads than ``first`` (nothing to compare)."""
        cpus = usable_cpus() if self.cpus is None else self.cpus
        room = min(self.cap, max(1, round(free_cpus(cpus, self.load()))))
        cands = [n for n in candidates(room) if n != first]
        if not cands or (first == 1 and room == 1):
            return []
        return [first, *cands] * ROUNDS

    def _probe_step(self, elapsed: float | None) -> None:
        """Record the probe step that ran with ``self._queue[0]`` (None: not comparable, so
        run it again), drop counts that are clearly slower, and set the next one."""
        ran = self._queue.pop(0)
        if elapsed is None:
            self._queue.insert(0, ran)
        else:
            self.samples.setdefault(ran, []).append(elapsed)
            slow = clearly_slower(self.samples)
            self._queue = [n for n in self._queue if n not in slow]
            if len(set(self._queue) | (set(self.samples) - slow)) <= 1:
                self._queue = []  # one count left standing: no need to time it further
        if self._queue:
            self._set(self._queue[0])
        else:
            self._decide()

    def _decide(self) -> None:
        best = choose(self.samples)
        medians = {n: statistics.median(ts) for n, ts in self.samples.items()}
        self.chosen.append((best, medians))
        self._hold = hold_seconds(self.samples, best)
        base = medians[best]
        self._lost += sum(t - base for ts in self.samples.values() for t in ts if t > base)
        self._since = []
        self._set(best)

    def _drifted(self) -> bool:
        """Has the kept count's step time moved where another count could now be faster?"""
        if len(self._since) < 2 * DRIFT_STEPS:
            return False
        then = statistics.median(self._since[:DRIFT_STEPS])
        now = statistics.median(self._since[-DRIFT_STEPS:])
        if then <= 0 or self.current is None:
            return False
        slower, faster = now > DRIFT * then, now * DRIFT < then
        return (slower and self.current > 1) or (faster and self.current < self.cap)

    def _set(self, n: int) -> None:
        if n != self.current:
            for lib in self._libs.lib_controllers:
                lib.set_num_threads(n)
            self.current = n


__all__ = ["ThreadTuner"]
