"""fit / evaluate / predict on arrays of other libraries, read through DLPack without a copy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import xpnet
from xpnet.backends import cuda_available, get_backend
from xpnet.backends.dlpack import describe, is_dlpack
from xpnet.layers import Dense, ReLU
from xpnet.training.inputs import prepare_inputs, prepare_targets


@pytest.fixture(scope="module")
def torch() -> Any:
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed (pip install 'xpnet[torch]' runs these tests)"
    )


def _model(seed: int = 0, dtype: str = "float32") -> xpnet.Sequential:
    model = xpnet.Sequential([Dense(6, 16), ReLU(), Dense(16, 3)], seed=seed, dtype=dtype)
    return model.compile("softmax_cross_entropy", xpnet.optim.Adam(lr=0.01))


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def _address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


class Producer:
    """A minimal DLPack producer that is neither NumPy nor PyTorch (like a JAX array), and can
    claim to live on another device to exercise the device checks without a GPU."""

    def __init__(self, array: np.ndarray, device: tuple[int, int] = (1, 0)) -> None:
        self.array, self.device = array, device
        self.dtype = array.dtype

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device


# ------------------------------------------------------------------------ same results
def test_fit_on_tensors_gives_bit_identical_weights(torch):
    X, y = _data()
    ref, tm = _model(), _model()
    h_ref = ref.fit(X, y, epochs=3, batch_size=16, seed=1, verbose=False,
                    validation_data=(X[:20], y[:20]))
    h_t = tm.fit(torch.from_numpy(X), torch.from_numpy(y), epochs=3, batch_size=16, seed=1,
                 verbose=False,
                 validation_data=(torch.from_numpy(X[:20]), torch.from_numpy(y[:20])))
    for a, b in zip(ref.layers, tm.layers, strict=True):
        for key in a.params:
            np.testing.assert_array_equal(a.params[key], b.params[key])
    timing = {"time", "samples_per_s"}
    assert {k: v for k, v in h_ref.history.items() if k not in timing} == {
        k: v for k, v in h_t.history.items() if k not in timing}
    assert y.dtype == np.int64  # labels went in as torch.int64


def test_predict_evaluate_on_tensors_match_numpy(torch):
    X, y = _data()
    model = _model()
    model.fit(X, y, epochs=1, batch_size=16, seed=0, verbose=False)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    np.testing.assert_array_equal(model.predict(Xt), model.predict(X))
    np.testing.assert_array_equal(model.predict_proba(Xt), model.predict_proba(X))
    assert model.evaluate(Xt, yt) == model.evaluate(X, y)
    assert isinstance(model.predict(Xt), np.ndarray)


@pytest.mark.parametrize("dtype", ["float64", "float16", "int64", "uint8"])
def test_other_dtypes_are_cast_like_numpy(dtype, torch):
    X, _ = _data()
    model = _model()
    Xt = (torch.from_numpy(X) * 10).to(getattr(torch, dtype))
    as_numpy = Xt.numpy()
    np.testing.assert_array_equal(model.predict_proba(Xt), model.predict_proba(as_numpy))
    Xd = prepare_inputs(model, Xt)
    assert Xd.dtype == np.float32


def test_float64_model_uses_float64_tensor_in_place(torch):
    X, _ = _data()
    model = _model(dtype="float64")
    Xt = torch.from_numpy(X.astype(np.float64))
    assert _address(prepare_inputs(model, Xt)) == Xt.data_ptr()


def test_non_contiguous_tensor(torch):
    X, y = _data()
    wide = torch.from_numpy(np.ascontiguousarray(X.T))  # (6, n), so .T is a strided view
    Xt = wide.T
    assert not Xt.is_contiguous()
    model = _model()
    Xd = prepare_inputs(model, Xt)
    assert _address(Xd) == Xt.data_ptr()  # viewed with its strides, not copied
    np.testing.assert_allclose(model.predict_proba(Xt), model.predict_proba(X), rtol=1e-6)
    a, b = _model(), _model()
    a.fit(X, y, epochs=1, batch_size=16, seed=0, verbose=False)
    b.fit(Xt, torch.from_numpy(y), epochs=1, batch_size=16, seed=0, verbose=False)
    np.testing.assert_array_equal(a.layers[0].params["W"], b.layers[0].params["W"])


def test_bool_targets_and_inputs_follow_the_numpy_policy(torch):
    X, _ = _data()
    model = xpnet.Sequential([Dense(6, 1)], seed=0).compile("mse", xpnet.optim.Adam())
    yb = torch.from_numpy(X[:, 0] > 0).reshape(-1, 1)
    yd = prepare_targets(model, yb, len(X))
    assert yd.dtype == np.float32 and set(np.unique(yd)) <= {0.0, 1.0}
    model.fit(torch.from_numpy(X), yb, epochs=1, verbose=False)
    with pytest.raises(TypeError, match=r"X must hold real numbers.*got dtype bool"):
        model.predict(torch.from_numpy(X > 0))


# ----------------------------------------------------------------------------- no copy
def test_float32_inputs_and_int64_labels_are_not_copied(torch):
    X, y = _data()
    model = _model()
    Xt, yt = torch.from_numpy(X).clone(), torch.from_numpy(y).clone()
    Xd = prepare_inputs(model, Xt)
    yd = prepare_targets(model, yt, len(X))
    assert _address(Xd) == Xt.data_ptr() and _address(yd) == yt.data_ptr()
    assert yd.dtype == np.int64
    Xt[0, 0] = 123.0  # a view: the change shows
    assert Xd[0, 0] == 123.0


def test_any_dlpack_producer_is_read():
    X, y = _data()
    model = _model()
    Xp = Producer(X)
    assert is_dlpack(Xp) and describe(Xp) == "a test_dlpack.Producer on CPU device 0"
    assert _address(prepare_inputs(model, Xp)) == _address(X)
    np.testing.assert_array_equal(model.predict(Xp), model.predict(X))
    assert model.evaluate(Xp, Producer(y)) == model.evaluate(X, y)


def test_parameters_are_shared_with_torch_through_dlpack(torch):
    X, y = _data()
    model = _model()
    dense = model.layers[0]
    W = torch.from_dlpack(dense.params["W"])
    assert W.data_ptr() == _address(dense.params["W"])
    W[0, 0] = 42.0  # writing through the tensor changes the layer
    assert dense.params["W"][0, 0] == 42.0
    model.fit(X, y, epochs=1, batch_size=16, verbose=False)  # in-place updates show in the tensor
    np.testing.assert_array_equal(W.numpy(), dense.params["W"])
    assert W[0, 0].item() != 42.0


# ------------------------------------------------------------------------------ errors
def test_gpu_tensor_on_a_numpy_model_is_refused_clearly():
    X, y = _data()
    model = _model()
    on_gpu = Producer(X, device=(2, 0))
    with pytest.raises(TypeError, match=r"X is a test_dlpack.Producer on CUDA device 0, but the "
                       r"model computes on the CPU.*X\.cpu\(\).*backend='cupy'"):
        model.predict(on_gpu)
    with pytest.raises(TypeError, match=r"^y is a .* on CUDA device 0"):
        model.fit(X, Producer(y, device=(2, 0)), epochs=1, verbose=False)
    with pytest.raises(TypeError, match="validation X is"):
        model.fit(X, y, epochs=1, verbose=False, validation_data=(on_gpu, y))


def test_tensors_dlpack_cannot_export_are_named(torch):
    X, _ = _data()
    model = _model()
    with pytest.raises(TypeError, match=r"X: a torch.Tensor on CPU device 0 .*require.*detach"):
        model.predict(torch.from_numpy(X).requires_grad_())
    with pytest.raises(TypeError, match=r"X: .*dtype torch.bfloat16 .*float\(\)"):
        model.predict(torch.from_numpy(X).to(torch.bfloat16))


def test_shape_and_value_errors_are_the_numpy_ones(torch):
    X, y = _data()
    model = _model()
    with pytest.raises(ValueError, match=r"X: .* input of shape \(batch, 6\), got \(64, 5\)"):
        model.predict(torch.from_numpy(X[:, :5].copy()))
    bad = torch.from_numpy(X.copy())
    bad[3, 2] = float("nan")
    with pytest.raises(ValueError, match=r"X contains NaN or infinity \(first at index \(3, 2\)\)"):
        model.predict(bad)
    with pytest.raises(ValueError, match="y has 10 rows but X has 64"):
        model.evaluate(torch.from_numpy(X), torch.from_numpy(y[:10]))


def test_generic_backend_hands_host_data_back_as_numpy():
    strict = pytest.importorskip("array_api_strict")
    be = get_backend(strict)
    out = be.from_dlpack(Producer(np.arange(3.0)))
    assert isinstance(out, np.ndarray)  # host data: the caller moves it like any host array


def test_cuda_tensor_on_a_cupy_model_is_used_in_place(torch):
    if not cuda_available() or not torch.cuda.is_available():
        pytest.skip("needs CuPy with a CUDA device and a CUDA build of PyTorch")
    X, y = _data()
    model = _model().to("cupy")
    Xt, yt = torch.from_numpy(X).cuda(), torch.from_numpy(y).cuda()
    Xd = prepare_inputs(model, Xt)
    assert Xd.__cuda_array_interface__["data"][0] == Xt.data_ptr()  # the same device memory
    np.testing.assert_allclose(model.predict_proba(Xt), _model().predict_proba(X), rtol=1e-4,
                               atol=1e-6)
    model.fit(Xt, yt, epochs=1, batch_size=16, verbose=False)
    with pytest.raises(TypeError, match="computes on the CPU"):
        _model().predict(Xt)
    # CuPy parameters go out to PyTorch without a copy too
    W = torch.from_dlpack(model.layers[0].params["W"])
    assert W.is_cuda and W.data_ptr() == model.layers[0].params["W"].__cuda_array_interface__[
        "data"][0]
