"""BatchNorm1d / BatchNorm2d: forward against a NumPy reference, training vs inference, running
statistics by PyTorch's rule, validation, save/load/to with buffers, exact resume, and the
refusal of data-parallel training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.distributed import Communicator, DistributedError
from xpnet.layers import BatchNorm1d, BatchNorm2d, Dense, Layer, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import SGD, Adam
from xpnet.serialization import ModelFileError, load_weights
from xpnet.testing import check_gradients, strict_backend

try:
    STRICT = strict_backend("float32")
except ImportError:  # pragma: no cover - without the test extra
    STRICT = None
needs_strict = pytest.mark.skipif(STRICT is None, reason="array-api-strict not installed")


def _reference(x: np.ndarray, axes: tuple[int, ...], gamma, beta, eps=1e-5):
    """The textbook forward in float64 NumPy: (x - mean) / sqrt(biased var + eps)."""
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)  # ddof=0
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _bcast(v: np.ndarray, rank: int) -> np.ndarray:
    return v.reshape((1, -1) + (1,) * (rank - 2))


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (7, 3)), (BatchNorm2d, (3, 4, 5, 2))])
def test_training_forward_matches_a_numpy_reference(cls, shape) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=shape)
    bn = cls(shape[1], dtype="float64")
    gamma, beta = rng.normal(size=shape[1]), rng.normal(size=shape[1])
    bn.params["gamma"][...] = gamma
    bn.params["beta"][...] = beta
    axes = (0, *range(2, len(shape)))
    y = bn.forward(x, training=True)
    want = _reference(x, axes, _bcast(gamma, len(shape)), _bcast(beta, len(shape)))
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (6, 4)), (BatchNorm2d, (2, 3, 2, 3))])
def test_running_statistics_follow_pytorchs_rule(cls, shape) -> None:
    """running = (1 - momentum) running + momentum stat; the variance unbiased (m - 1)."""
    rng = np.random.default_rng(1)
    bn = cls(shape[1], momentum=0.3, dtype="float64")
    axes = (0, *range(2, len(shape)))
    mean, var = np.zeros(shape[1]), np.ones(shape[1])
    for _ in range(3):
        x = rng.normal(1.0, 2.0, size=shape)
        bn.forward(x, training=True)
        mean = 0.7 * mean + 0.3 * x.mean(axis=axes)
        var = 0.7 * var + 0.3 * x.var(axis=axes, ddof=1)
        np.testing.assert_allclose(bn.buffers["running_mean"], mean, rtol=1e-13)
        np.testing.assert_allclose(bn.buffers["running_var"], var, rtol=1e-13)


def test_inference_uses_the_running_statistics_and_leaves_them() -> None:
    rng = np.random.default_rng(2)
    bn = BatchNorm2d(3, eps=1e-3, dtype="float64")
    rm, rv = rng.normal(size=3), rng.uniform(0.5, 2.0, size=3)
    bn.buffers["running_mean"][...] = rm
    bn.buffers["running_var"][...] = rv
    bn.params["gamma"][...] = [1.0, 2.0, -1.0]
    x = rng.normal(size=(2, 3, 4, 4))
    y = bn.forward(x, training=False)
    want = (x - _bcast(rm, 4)) / np.sqrt(_bcast(rv, 4) + 1e-3) * _bcast(np.array([1.0, 2, -1]), 4)
    np.testing.assert_allclose(y, want, rtol=1e-12)
    np.testing.assert_array_equal(bn.buffers["running_mean"], rm)
    # A batch of one is fine at inference.
    assert bn.forward(x[:1, :, :1, :1], training=False).shape == (1, 3, 1, 1)
    # The simple affine backward at inference: dx = dy gamma / sqrt(var + eps).
    dy = rng.normal(size=x.shape)
    dx = bn.backward(dy)
    np.testing.assert_allclose(dx, dy * _bcast(np.array([1.0, 2, -1]) / np.sqrt(rv + 1e-3), 4))


def test_training_output_does_not_depend_on_the_running_statistics() -> None:
    x = np.random.default_rng(3).normal(size=(5, 2))
    a, b = BatchNorm1d(2, dtype="float64"), BatchNorm1d(2, dtype="float64")
    b.buffers["running_mean"][...] = 100.0
    b.buffers["running_var"][...] = 1e-4
    np.testing.assert_array_equal(a.forward(x, training=True), b.forward(x, training=True))


def test_float32_stays_float32() -> None:
    x = np.random.default_rng(4).normal(size=(4, 3, 2, 2)).astype(np.float32)
    bn = BatchNorm2d(3, momentum=0.25)
    y = bn.forward(x, training=True)
    dx = bn.backward(np.ones_like(y))
    arrays = [y, dx, *bn.params.values(), *bn.grads.values(), *bn.buffers.values()]
    assert all(a.dtype == np.float32 for a in arrays)
    assert bn.forward(x).dtype == np.float32


def test_affine_false_has_no_parameters() -> None:
    bn = BatchNorm1d(3, affine=False, dtype="float64")
    assert bn.params == {} and bn.grads == {} and set(bn.buffers) == {"running_mean",
                                                                        "running_var"}
    x = np.random.default_rng(5).normal(size=(4, 3))
    np.testing.assert_allclose(bn.forward(x, training=True), _reference(x, (0,), 1.0, 0.0))
    assert check_gradients(bn, x, training=True).passed


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"num_features": 0}, ValueError, "num_features must be a positive integer, got 0"),
        ({"num_features": True}, TypeError, "num_features must be a positive integer, got True"),
        ({"num_features": 3, "eps": 0.0}, ValueError, r"eps must be > 0.0, got 0.0"),
        ({"num_features": 3, "momentum": 1.5}, ValueError, r"momentum must be <= 1.0, got 1.5"),
        ({"num_features": 3, "momentum": "x"}, TypeError, "momentum must be a real number"),
        ({"num_features": 3, "affine": 1}, TypeError, "affine must be True or False, got 1"),
    ],
)
def test_constructor_validation_quotes_the_value(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        BatchNorm1d(**kwargs)


def test_input_validation_names_the_layer_and_shape() -> None:
    bn1, bn2 = BatchNorm1d(3), BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(batch, 3\), "
                                         r"got \(4, 2\)"):
        bn1.forward(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(batch, 3, H, W\), got"):
        bn2.forward(np.zeros((4, 3), np.float32))
    with pytest.raises(TypeError, match="expected input dtype float32, got float64"):
        bn1.forward(np.zeros((4, 3)))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        bn1.backward(np.zeros((4, 3), np.float32))


def test_a_batch_of_one_in_training_is_refused_as_in_pytorch() -> None:
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected more than 1 value per channel "
                                         r"when training, got input of shape \(1, 3\)"):
        BatchNorm1d(3).forward(np.zeros((1, 3), np.float32), training=True)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 2, 1, 1\)"):
        BatchNorm2d(2).forward(np.zeros((1, 2, 1, 1), np.float32), training=True)
    # One image of several pixels has a variance per channel: allowed, as in PyTorch.
    assert BatchNorm2d(2).forward(np.ones((1, 2, 2, 1), np.float32), training=True).shape == (
        1, 2, 2, 1)
    # In a model the message names the layer.
    net = xpnet.Sequential([Dense(2, 3), BatchNorm1d(3)])
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm1d 3\): expected more than 1"):
        net.forward(np.zeros((1, 2), np.float32), training=True)
    # fit's last batch of one row: the message says what to change.
    X, y = _xy(17)
    with pytest.raises(ValueError, match="a last batch of one row: choose a batch_size"):
        _bn_net().fit(X, y, epochs=1, batch_size=8, verbose=False)


def test_sequential_checks_shapes_and_summarizes() -> None:
    with pytest.raises(ValueError, match=r"layer 1 \(BatchNorm1d 4\): num_features=4 does not "
                                         "match the 5 features"):
        xpnet.Sequential([Dense(3, 5), BatchNorm1d(4)])
    net = xpnet.Sequential([Dense(3, 5), BatchNorm1d(5), ReLU(), Dense(5, 2)], seed=0)
    text = net.summary()
    assert "layer 1 (BatchNorm1d 5)" in text and "10" in text and "42 parameters" in text
    assert BatchNorm2d(4).input_shape == (4, None, None)
    assert repr(BatchNorm2d(4)) == "BatchNorm2d(num_features=4, eps=1e-05, momentum=0.1, " \
                                   "affine=True)"


def _bn_net(seed: int = 0, dtype: str = "float64") -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(4, 6), BatchNorm1d(6, momentum=0.2), ReLU(), Dense(6, 3)],
                           seed=seed, dtype=dtype)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01))


def _xy(n: int = 96) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 1)


def test_save_load_and_to_keep_the_buffers(tmp_path: Path) -> None:
    net = _bn_net()
    X, y = _xy()
    net.fit(X, y, epochs=1, batch_size=16, seed=0, verbose=False)
    rm = net.layers[1].buffers["running_mean"].copy()
    assert np.abs(rm).sum() > 0
    path = net.save(tmp_path / "bn.npz")
    back = xpnet.load(path)
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(back.layers[1].buffers[key], net.layers[1].buffers[key])
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    f32 = xpnet.load(path, dtype="float32")
    assert f32.layers[1].buffers["running_var"].dtype == np.float32
    np.testing.assert_allclose(f32.predict_proba(X), net.predict_proba(X), rtol=1e-4, atol=1e-5)
    # load_weights copies the running statistics too, in place.
    fresh = _bn_net(seed=1)
    held = fresh.layers[1].buffers["running_mean"]
    load_weights(fresh, path)
    np.testing.assert_array_equal(held, rm)
    np.testing.assert_array_equal(fresh.predict_proba(X), net.predict_proba(X))


@needs_strict
def test_to_array_api_strict_and_back() -> None:
    net = _bn_net()
    X, y = _xy()
    net.fit(X, y, epochs=1, batch_size=16, seed=0, verbose=False)
    want = net.predict_proba(X)
    net.to(STRICT)
    bufs = net.layers[1].buffers
    assert all(STRICT.is_array(b) and b.dtype == STRICT.dtype for b in bufs.values())
    np.testing.assert_allclose(net.predict_proba(X), want, rtol=1e-4, atol=1e-5)
    net.fit(X, y, epochs=1, batch_size=16, seed=0, verbose=False)  # trains there too
    net.to("numpy", "float64")
    assert isinstance(net.layers[1].buffers["running_mean"], np.ndarray)


def _rewrite(path: Path, out: Path, edit) -> Path:
    header, arrays = xpnet.serialization.read_file(path)
    edit(header, arrays)
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(out, __header__=blob, **arrays)
    return out


def test_a_header_declaring_huge_buffers_is_refused_before_building(tmp_path: Path) -> None:
    """affine=False holds no parameters, so only buffer_shapes_for can see the lie."""
    net = xpnet.Sequential([Dense(2, 3), BatchNorm1d(3, affine=False)], seed=0)
    path = net.save(tmp_path / "m.npz")

    def huge(header, arrays):
        header["layers"][1]["config"]["num_features"] = 10**12

    with pytest.raises(ModelFileError, match=r"layer 1 \(BatchNorm1d\) declares "
                                             r"\(1000000000000,\) for running_mean"):
        xpnet.load(_rewrite(path, tmp_path / "bad.npz", huge))


def test_checkpoint_resume_is_bit_identical(tmp_path: Path) -> None:
    X, y = _xy()
    ref = _bn_net()
    ref.fit(X, y, epochs=3, batch_size=16, seed=2, verbose=False)  # 6 steps per epoch

    class Stop(Exception):
        pass

    def stop(epoch: int, logs: dict[str, float]) -> None:
        if epoch == 1:
            raise Stop

    ckpt = tmp_path / "c.npz"
    with pytest.raises(Stop):
        _bn_net().fit(X, y, epochs=3, batch_size=16, seed=2, checkpoint=ckpt, every=5,
                      on_epoch_end=stop, verbose=False)
    resumed = xpnet.load(ckpt)
    assert resumed.progress is not None and resumed.progress["step"] == 4
    resumed.fit(X, y, epochs=3, batch_size=16, resume=True, verbose=False)
    for a, b in zip(resumed.layers, ref.layers, strict=True):
        for key in {**a.params, **a.buffers}:
            got = a.params.get(key, a.buffers.get(key))
            want = b.params.get(key, b.buffers.get(key))
            np.testing.assert_array_equal(got, want)
    for key in ("loss", "accuracy"):
        assert resumed.history.history[key] == ref.history.history[key]
    # and the optimizer state
    for name, slots in ref.optimizer.state.items():
        for slot, value in slots.items():
            np.testing.assert_array_equal(resumed.optimizer.state[name][slot], value)


class _Two(Communicator):
    """Rank 0 of a pretend 2-rank job whose collectives are the single process's."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 2


def test_data_parallel_fit_refuses_batch_dependent_layers() -> None:
    X, y = _xy()
    net = _bn_net()
    assert net.layers[1].batch_dependent and not Layer.batch_dependent
    with pytest.raises(DistributedError, match=r"layer 1 \(BatchNorm1d 6\) normalizes with "
                                               "statistics of the batch"):
        net.fit(X, y, epochs=1, batch_size=16, comm=_Two(), verbose=False)
    # Without the layer the same pretend job trains; with one process a BatchNorm model does.
    plain = xpnet.Sequential([Dense(4, 3)], seed=0).compile(SoftmaxCrossEntropy(), SGD(0.1))
    plain.fit(X, y, epochs=1, batch_size=16, comm=_Two(), verbose=False)
    net.fit(X, y, epochs=1, batch_size=16, verbose=False)


class _RunningMean(Layer):
    """A user layer with a buffer reassigned (not updated in place) in training."""

    def __init__(self) -> None:
        super().__init__()
        self.buffers["mean"] = self.backend.zeros((3,))

    def forward(self, x, training=False):
        if training:
            self.buffers["mean"] = 0.5 * self.buffers["mean"] + 0.5 * self.xp.mean(x, axis=0)
        return x * 2.0

    def backward(self, dy):
        return dy * 2.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("make", [lambda: BatchNorm1d(3), _RunningMean])
def test_gradient_checks_leave_the_buffers_alone(make, dtype) -> None:
    """check_gradients forwards many times in training mode: on private copies of every
    layer's buffers, whether the layer updates them in place or replaces them."""
    layer = make().to("numpy", dtype)
    net = xpnet.Sequential([Dense(2, 3), make()], dtype=dtype, seed=0)
    x = np.random.default_rng(8).normal(size=(4, 3))
    for obj, inp in ((layer, x), (net, x[:, :2])):
        inner = obj if isinstance(obj, Layer) and not hasattr(obj, "layers") else obj.layers[1]
        before = {k: np.array(v) for k, v in inner.buffers.items()}
        held = dict(inner.buffers)
        assert check_gradients(obj, inp, training=True).passed
        assert inner.buffers.keys() == before.keys()
        for key, value in before.items():
            assert inner.buffers[key] is held[key]
            np.testing.assert_array_equal(inner.buffers[key], value)


def _f32_bn_net() -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(4, 8), BatchNorm1d(8), ReLU(), Dense(8, 3)], seed=1)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_skipped_batch_leaves_the_running_statistics_alone() -> None:
    """on_nonfinite='skip' is training without that batch, running statistics included (a
    batch overflowing in layer 0 would otherwise leave NaN in them for every later inference)."""
    X, y = _xy(64)
    X = X.astype(np.float32)
    bad = X.copy()
    bad[24:32] = 3e38  # finite float32 inputs that overflow in layer 0
    net = _f32_bn_net()
    hist = net.fit(bad, y, epochs=2, batch_size=8, shuffle=False, on_nonfinite="skip",
                   verbose=False)
    assert hist["skipped"] == [1.0, 1.0]
    keep = np.r_[0:24, 32:64]
    ref = _f32_bn_net()
    ref.fit(X[keep], y[keep], epochs=2, batch_size=8, shuffle=False, verbose=False)
    for a, b in zip(net.layers, ref.layers, strict=True):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
        for key in a.buffers:
            np.testing.assert_array_equal(a.buffers[key], b.buffers[key])
    # The failing batch raised in the default mode, after the same check: nothing changed.
    net = _f32_bn_net()
    with pytest.raises(xpnet.NonFiniteError, match=r"layer 0 \(Dense 4 -> 8\)"):
        net.fit(bad, y, epochs=1, batch_size=8, shuffle=False, verbose=False)
    ref = _f32_bn_net()
    ref.fit(X[:24], y[:24], epochs=1, batch_size=8, shuffle=False, verbose=False)
    for key in ("running_mean", "running_var"):
        np.testing.assert_array_equal(net.layers[1].buffers[key], ref.layers[1].buffers[key])
