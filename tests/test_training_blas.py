"""The BlasThreads callback (xpnet/training/blas.py): the BLAS thread count through
``Sequential.fit(callbacks=...)``, logged per epoch, restored after the run or a failure.
Counts are read back with threadpoolctl's own introspection."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import xpnet
from xpnet.layers import Dense, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam
from xpnet.training import BlasThreads, Callback, fit


def blas_threads() -> int:
    counts = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}
    assert len(counts) == 1, threadpool_info()
    return counts.pop()


@pytest.fixture(autouse=True)
def pool_of_two() -> Iterator[None]:
    if not [i for i in threadpool_info() if i["user_api"] == "blas"]:
        pytest.skip("no BLAS library that threadpoolctl can steer is loaded")
    with threadpool_limits(2, user_api="blas"):
        yield


def _model() -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(20, 16), ReLU(), Dense(16, 3)], seed=0)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01))


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(64, 20)).astype(np.float32), rng.integers(0, 3, size=64)


class Spy(Callback):
    """Reads the pool size and the logs' thread count after each epoch."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, float | None]] = []

    def on_epoch_end(self, epoch, logs, state) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((blas_threads(), logs.get("threads")))


def test_sequential_fit_takes_the_count_as_a_callback() -> None:
    spy, cb = Spy(), BlasThreads(3)
    hist = _model().fit(*_data(), epochs=2, batch_size=16, callbacks=[spy, cb])
    assert spy.seen == [(3, 3.0), (3, 3.0)]  # BlasThreads runs first, whatever its place
    assert hist["threads"] == [3.0, 3.0]
    assert blas_threads() == 2 and cb.tuner is None


def test_the_default_is_auto_and_none_leaves_the_pool_alone() -> None:
    spy = Spy()
    _model().fit(*_data(), epochs=1, batch_size=16, callbacks=[spy])
    assert spy.seen == [(1, 1.0)]  # a toy model: never split
    spy = Spy()
    hist = fit(_model(), *_data(), epochs=1, batch_size=16, callbacks=[spy], threads=None)
    assert spy.seen == [(2, None)] and "threads" not in hist


def test_the_pool_is_restored_when_training_raises() -> None:
    class Boom(Callback):
        def on_epoch_end(self, epoch, logs, state) -> None:  # type: ignore[no-untyped-def]
            assert blas_threads() == 3
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _model().fit(*_data(), epochs=2, batch_size=16, callbacks=[BlasThreads(3), Boom()])
    assert blas_threads() == 2


def test_conflicting_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"threads=1 and a BlasThreads callback both set"):
        fit(_model(), *_data(), callbacks=[BlasThreads(2)], threads=1)
    with pytest.raises(ValueError, match="callbacks hold 2 BlasThreads"):
        _model().fit(*_data(), callbacks=[BlasThreads(2), BlasThreads(1)])
    with pytest.raises(ValueError, match="threads must be 'auto', a positive integer or None, "
                       "got 'many'"):
        BlasThreads("many")  # type: ignore[arg-type]
