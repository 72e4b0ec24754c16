"""BLAS threads while ``fit`` runs: the callback behind ``fit(threads=...)``.

``fit`` adds a :class:`BlasThreads` for its ``threads`` argument (``"auto"`` by default);
passing one in ``callbacks=[BlasThreads(1)]`` does the same (its ``tuner`` then says what
was chosen and why). The policy itself (what ``"auto"`` measures and decides) is
:mod:`xpnet.threads`.
"""

from __future__ import annotations

from ..threads import Threads, ThreadTuner, check_threads, largest_matmul
from .callbacks import Callback
from .state import TrainState


class BlasThreads(Callback):
    """Set the BLAS thread count for the run (``"auto"``, ``N`` or None; see
    :mod:`xpnet.threads`) and restore it at the end; each epoch's count goes into
    ``logs["threads"]`` and ``history["threads"]``. ``tuner`` is the run's
    :class:`~xpnet.threads.ThreadTuner` (its ``describe()`` says what was chosen and why)."""

    def __init__(self, threads: Threads = "auto") -> None:
        self.setting = check_threads(threads)
        self.tuner: ThreadTuner | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.close()
        model = state.model
        self.tuner = ThreadTuner(
            self.setting,
            macs=largest_matmul(model.layers, state.batch_size, model.input_shape),
            host=model.backend.is_host,
        ).__enter__()

    def on_epoch_begin(self, epoch: int, state: TrainState) -> None:
        if self.tuner is not None:
            self.tuner.on_epoch_begin(epoch)

    def on_batch_end(self, state: TrainState) -> None:
        if self.tuner is not None:  # a short last batch is not timed against full ones
            self.tuner.on_batch_end(full=(state.step + 1) * state.batch_size <= state.n_samples)

    def on_epoch_end(self, epoch: int, logs: dict[str, float], state: TrainState) -> None:
        used = None if self.tuner is None else self.tuner.epoch_threads()
        if used is not None:  # the loop has put logs in the history already
            logs["threads"] = float(used)
            state.model.history.history.setdefault("threads", []).append(float(used))

    def on_train_end(self, state: TrainState) -> None:
        self.close()

    def __enter__(self) -> BlasThreads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # on_train_end is not reached when training raises

    def close(self) -> None:
        """Give the BLAS pools back their counts from before the run (idempotent)."""
        if self.tuner is not None:
            self.tuner.__exit__(None, None, None)
            self.tuner = None


def blas_callbacks(extra: list[Callback], threads: Threads) -> BlasThreads:
    """Make sure ``extra`` holds one :class:`BlasThreads`, first (so that later callbacks see
    ``logs["threads"]``): the caller's, or one for ``threads``; return it."""
    threads = check_threads(threads)
    given = [cb for cb in extra if isinstance(cb, BlasThreads)]
    if len(given) > 1:
        raise ValueError(f"callbacks hold {len(given)} BlasThreads; one sets the threads")
    if given and threads != "auto":
        raise ValueError(f"threads={threads!r} and a BlasThreads callback both set the BLAS "
                         "threads: pass one of them")
    chosen = given[0] if given else BlasThreads(threads)
    if given:
        extra.remove(chosen)
    extra.insert(0, chosen)
    return chosen


__all__ = ["BlasThreads", "blas_callbacks"]
