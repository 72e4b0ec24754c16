"""Same seed, same backend: the same bits.

What holds where (see also the docstring of :mod:`xpnet.training`):

* NumPy: ``Sequential(seed=s)`` and ``fit(seed=t)`` fix the initial weights, the order of the
  rows in every epoch and every dropout mask, so two runs end with bit-identical weights,
  optimizer state and history (same machine, same NumPy/BLAS build). Tested here.
* CuPy (tested in tests/test_cuda_kernels.py where a GPU is present): weights, data order and
  the dropout generators' states come from host generators and match NumPy's; a dropout mask
  is a device hash of a key drawn from that generator, so masks repeat run to run but differ
  from NumPy's; cuBLAS/CuPy reductions repeat run to run on one GPU model and library version
  (not bit-equal to NumPy). Checkpoints hold the generator states, so resume continues the run.
* A custom generator that cannot export its state: a checkpoint stores None for it and resume
  restarts its stream from the run's seed and the position, so resuming is reproducible but
  matches an uninterrupted run only for models without dropout. The last test drives that
  code path on NumPy with such a generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
from xpnet.backend import BackendError, DeviceGenerator
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, CosineDecay


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(96, 5)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


def _train(model_seed: int, fit_seed: int, **fit_args: Any) -> xpnet.Sequential:
    X, y = _data()
    net = xpnet.Sequential(
        [Dense(5, 16), ReLU(), Dropout(0.3), Dense(16, 16), ReLU(), Dropout(0.2), Dense(16, 3)],
        seed=model_seed,
    ).compile(SoftmaxCrossEntropy(), Adam(0.01, schedule=CosineDecay(4)))
    net.fit(X, y, epochs=4, batch_size=10, seed=fit_seed, **fit_args)
    return net


def _same(a: xpnet.Sequential, b: xpnet.Sequential) -> bool:
    oa, ob = a.optimizer, b.optimizer
    assert oa is not None and ob is not None
    return (
        all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
        and all(np.array_equal(oa.state[n][s], ob.state[n][s]) for n in oa.state
                for s in oa.state[n])
        and a.history["loss"] == b.history["loss"]
    )


def test_same_seeds_give_bit_identical_training() -> None:
    assert _same(_train(1, 2), _train(1, 2))


@pytest.mark.parametrize("seeds", [(1, 3), (7, 2)])
def test_other_seeds_give_other_weights(seeds: tuple[int, int]) -> None:
    assert not _same(_train(1, 2), _train(*seeds))


class ExportlessGenerator(DeviceGenerator):
    """A generator whose state cannot be saved (a custom one; xpnet's own all can)."""

    def get_state(self) -> dict[str, Any]:
        raise BackendError("state cannot be saved")

    def set_state(self, state: dict[str, Any]) -> None:
        raise BackendError("state cannot be restored")


def test_unsaveable_dropout_stream_checkpoints_and_resumes_reproducibly(tmp_path: Path) -> None:
    X, y = _data()
    ckpt = tmp_path / "c.npz"
    net = xpnet.Sequential([Dense(5, 8), ReLU(), Dropout(0.5), Dense(8, 3)], seed=0)
    net.compile(SoftmaxCrossEntropy(), Adam(0.01))
    dropout = net.layers[2]
    assert isinstance(dropout, Dropout)
    dropout.reseed = lambda seed: setattr(  # type: ignore[method-assign]
        dropout, "gen", ExportlessGenerator(dropout.backend, seed)
    )

    def stop(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        net.fit(X, y, epochs=3, batch_size=16, seed=5, checkpoint=ckpt, every=4,
                on_epoch_end=stop)
    saved = xpnet.load(ckpt)
    assert saved.progress is not None and saved.progress["dropout_states"] == [None]
    runs = []
    for _ in range(2):
        again = xpnet.load(ckpt)
        again.fit(X, y, epochs=3, batch_size=16, resume=True)
        runs.append(again)
    assert _same(runs[0], runs[1])
