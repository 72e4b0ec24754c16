"""Checkpoints written before the redesign (commit 7088d82) still load, and resume exactly.

``tests/data/checkpoint-before-redesign.npz`` was written by that version mid-run (epoch 2,
step 2 of 4, dropout on, Adam with a schedule); ``finished-before-redesign.npz`` is the same
run left to finish by that version. Resuming the first with this version must give the second
bit for bit (NumPy).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import xpnet
from xpnet.layers import Dense, Dropout, ReLU, Tanh

DATA = Path(__file__).parent / "data"


def _data() -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(0)
    X = r.normal(size=(60, 5)).astype(np.float32)
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


def test_an_old_checkpoint_loads_and_resumes_to_the_old_result() -> None:
    model = xpnet.load(DATA / "checkpoint-before-redesign.npz")
    assert [type(lay) for lay in model.layers] == [Dense, ReLU, Dropout, Dense, Tanh, Dense]
    assert model.progress is not None and (model.progress["epoch"], model.progress["step"]) == (
        1, 2)
    X, y = _data()
    model.fit(X, y, epochs=3, batch_size=16, resume=True)
    want = xpnet.load(DATA / "finished-before-redesign.npz")
    assert list(model.params) == list(want.params)
    for key, value in want.params.items():
        np.testing.assert_array_equal(model.params[key], value, err_msg=key)
    assert model.history["loss"] == want.history["loss"]
    assert model.optimizer is not None and want.optimizer is not None
    assert model.optimizer.t == want.optimizer.t
