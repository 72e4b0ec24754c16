"""The backends' fast paths agree with the generic array-API ones, and float32 stays float32.

``NumpyBackend`` and ``CupyBackend`` override the hot operations (matmul into ``out=``, ReLU,
dropout masks, Adam) with in-place or fused versions; the plain :class:`~xpnet.backend.Backend`
implements each with the array API alone. Here both run on the same inputs: the generic class
wrapping NumPy itself (so any difference is the fast path's), ``array_api_strict`` when it is
installed, and CuPy's fused kernels when a GPU is present (skipped otherwise).
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

import xpnet
from xpnet.backend import Backend, NumpyBackend, cuda_available, keep_threshold
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam
from xpnet.testing.backends import GenericNumpy

DTYPES = ("float32", "float64")
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="CuPy with a CUDA device is absent")


def fast(dtype: str) -> Backend:
    return NumpyBackend(dtype)


def generic(dtype: str) -> Backend:
    return GenericNumpy(dtype)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- matmul, sums
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["nn", "tn", "nt"])
def test_matmul_into_out_matches_generic(dtype: str, layout: str) -> None:
    r = rng(1)
    a = r.standard_normal((7, 5)).astype(dtype)
    b = r.standard_normal((5, 3) if layout != "tn" else (7, 3)).astype(dtype)
    if layout == "tn":  # dW = x^T dy, as Dense.backward_params does it
        a_op, b_op = a.T, b
    elif layout == "nt":  # dx = dy W^T
        a_op, b_op = a, np.ascontiguousarray(b.T).T
    else:
        a_op, b_op = a, b
    expected = generic(dtype).matmul(a_op, b_op)
    out = np.full(expected.shape, np.nan, dtype=dtype)
    got = fast(dtype).matmul(a_op, b_op, out=out)
    assert got is out
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(got, expected, rtol=1e-5 if dtype == "float32" else 1e-12)
    out2 = np.full(expected.shape, np.nan, dtype=dtype)
    assert generic(dtype).matmul(a_op, b_op, out=out2) is out2
    np.testing.assert_allclose(out2, got, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sum_rows_into_out_matches_generic(dtype: str) -> None:
    a = rng(2).standard_normal((9, 4)).astype(dtype)
    out = np.zeros(4, dtype=dtype)
    assert fast(dtype).sum_rows(a, out=out) is out
    np.testing.assert_allclose(out, generic(dtype).sum_rows(a), rtol=1e-6)


# ---------------------------------------------------------------------------------- ReLU
def _relu_inputs(dtype: str) -> list[np.ndarray]:
    r = rng(3)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 3.5], dtype=dtype)
    return [
        special,
        r.standard_normal((6, 5)).astype(dtype),
        r.standard_normal((2, 3, 4)).astype(dtype),
        np.asarray(-2.0, dtype=dtype),
        np.zeros((0, 3), dtype=dtype),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_matches_generic_exactly(dtype: str) -> None:
    for x in _relu_inputs(dtype):
        got, want = fast(dtype).relu(x), generic(dtype).relu(x)
        assert got.dtype == x.dtype and got.shape == x.shape
        np.testing.assert_array_equal(got, want)
        assert got is not x  # a new array: the layer output stays safe to keep


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_matches_generic_exactly(dtype: str) -> None:
    r = rng(4)
    for x in _relu_inputs(dtype):
        y = generic(dtype).relu(x)
        dy = r.standard_normal(x.shape).astype(dtype)
        got, want = fast(dtype).relu_backward(dy, y), generic(dtype).relu_backward(dy, y)
        assert got.dtype == dy.dtype
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(got, np.where(y > 0, dy, 0))


def test_relu_backward_keeps_nan_in_dy_on_both_paths() -> None:
    y = np.array([1.0, 0.0, 2.0], dtype=np.float32)
    dy = np.array([np.nan, np.nan, 1.0], dtype=np.float32)
    for be in (fast("float32"), generic("float32")):
        out = be.relu_backward(dy, y)
        assert np.isnan(out[0]) and np.isnan(out[1]) and out[2] == 1.0


# ------------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keep", [0.5, 0.7, 0.1, 1.0])
def test_dropout_masks_match_generic_from_the_same_generator_state(dtype: str, keep: float) -> None:
    f, g = fast(dtype), generic(dtype)
    gf, gg = f.generator(123), g.generator(123)
    for shape in [(64, 50), (3, 7), (5,), (2, 3, 4)]:  # odd sizes: bits16 pads the last draw
        mf = f.dropout_mask(gf, shape, keep)
        mg = g.dropout_mask(gg, shape, keep)
        assert mf.dtype == np.dtype(dtype) and mf.shape == shape
        np.testing.assert_array_equal(mf, mg)
        scale = np.dtype(dtype).type(1.0 / keep)
        assert set(np.unique(mf)).issubset({0.0, scale})
    assert gf.get_state() == gg.get_state()


def test_dropout_mask_keeps_the_right_fraction() -> None:
    be = fast("float32")
    gen = be.generator(7)
    for keep in (0.5, 0.3, 0.9):
        mask = be.dropout_mask(gen, (400, 500), keep)
        frac = float(np.count_nonzero(mask)) / mask.size
        # 200,000 Bernoulli draws: 5 standard deviations is about 0.005.
        assert abs(frac - keep) < 5 * np.sqrt(keep * (1 - keep) / mask.size)
        np.testing.assert_allclose(mask.mean(dtype=np.float64), 1.0, atol=0.02)


def test_dropout_masks_differ_between_draws_and_repeat_from_a_saved_state() -> None:
    be = fast("float32")
    gen = be.generator(0)
    state = gen.get_state()
    a = be.dropout_mask(gen, (32, 32), 0.5)
    b = be.dropout_mask(gen, (32, 32), 0.5)
    assert not np.array_equal(a, b)
    gen.set_state(state)
    np.testing.assert_array_equal(be.dropout_mask(gen, (32, 32), 0.5), a)


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5, float("nan")])
def test_dropout_mask_rejects_bad_keep(keep: float) -> None:
    for be in (fast("float32"), generic("float32")):
        with pytest.raises(ValueError, match="keep"):
            be.dropout_mask(be.generator(0), (2, 2), keep)


def test_keep_threshold_is_round_keep_times_65536() -> None:
    assert keep_threshold(0.5) == 32768
    assert keep_threshold(1.0) == 65536
    assert keep_threshold(0.7) == round(0.7 * 65536)


def test_bits16_are_uniform_uint16_and_match_across_host_backends() -> None:
    a = fast("float32").generator(5).bits16((1000, 13))
    b = generic("float64").generator(5).bits16((1000, 13))
    assert a.dtype == np.uint16 and a.shape == (1000, 13)
    np.testing.assert_array_equal(a, b)
    # Roughly uniform over 0..65535: each quarter holds about a quarter of the draws.
    counts = np.bincount(a.ravel() >> 14, minlength=4) / a.size
    np.testing.assert_allclose(counts, 0.25, atol=0.01)


# ---------------------------------------------------------------------------------- Adam
def _adam_reference(p, g, m, v, *, lr_t, beta1, beta2, eps_t):  # float64, textbook order
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    return p - lr_t * m / (np.sqrt(v) + eps_t), m, v


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_update_matches_generic_over_many_steps(dtype: str) -> None:
    r = rng(5)
    shape = (37, 11)
    p0 = r.standard_normal(shape).astype(dtype)
    states = {name: [p0.copy(), np.zeros(shape, dtype), np.zeros(shape, dtype)]
              for name in ("fast", "generic")}
    ref = [p0.astype(np.float64), np.zeros(shape), np.zeros(shape)]
    bes = {"fast": fast(dtype), "generic": generic(dtype)}
    b1, b2, lr, eps = 0.9, 0.999, 1e-2, 1e-8
    for t in range(1, 31):
        g = (r.standard_normal(shape) * 10.0 ** r.integers(-4, 2)).astype(dtype)
        c2 = math.sqrt(1 - b2**t)  # Python floats, as Adam passes them
        kw = {"lr_t": lr * c2 / (1 - b1**t), "beta1": b1, "beta2": b2, "eps_t": eps * c2}
        for name, (p, m, v) in states.items():
            bes[name].adam_update(p, g, m, v, **kw)
        ref = list(_adam_reference(*ref[:1], g.astype(np.float64), *ref[1:], **kw))
    # The NumPy path does the generic operations in the same order: the same bits. Against the
    # float64 textbook rule, tolerance relative to each array's scale (an entry of m near a
    # sign change has no relative accuracy to speak of).
    rel = 1e-5 if dtype == "float32" else 1e-12
    for i, what in enumerate(("p", "m", "v")):
        got, want = states["fast"][i], states["generic"][i]
        assert got.dtype == np.dtype(dtype), what
        np.testing.assert_array_equal(got, want, err_msg=what)
        atol = rel * float(np.abs(ref[i]).max())
        np.testing.assert_allclose(got, ref[i], rtol=rel, atol=atol, err_msg=what)


def test_adam_update_is_safe_from_two_threads_on_same_shaped_params() -> None:
    """The NumPy path reuses a scratch array per shape: it must be per thread."""
    be = fast("float32")
    r = rng(6)
    shape = (300, 200)
    items = [(r.standard_normal(shape).astype(np.float32),
              r.standard_normal(shape).astype(np.float32)) for _ in range(4)]
    kw = {"lr_t": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps_t": 1e-8}

    def run(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, ...]:
        m, v = np.zeros_like(p), np.zeros_like(p)
        for _ in range(20):
            be.adam_update(p, g, m, v, **kw)
        return p, m, v

    expected = [run(p.copy(), g) for p, g in items]
    results: list[tuple[np.ndarray, ...] | None] = [None] * len(items)

    def worker(i: int) -> None:
        results[i] = run(items[i][0].copy(), items[i][1])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(items))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for got, want in zip(results, expected, strict=True):
        assert got is not None
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------- whole training runs
def _mlp(backend, seed: int = 3) -> xpnet.Sequential:
    layers = [Dense(20, 16), ReLU(), Dropout(0.5), Dense(16, 12), ReLU(), Dropout(0.3),
              Dense(12, 4)]
    model = xpnet.Sequential(layers, backend=backend, seed=seed)
    return model.compile(SoftmaxCrossEntropy(), Adam(1e-2))


def _data(n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    r = rng(8)
    X = r.integers(0, 256, size=(n, 20)).astype(np.float32) / np.float32(255)
    y = r.integers(0, 4, size=n)
    return X, y


def _host_params(model: xpnet.Sequential) -> dict[str, np.ndarray]:
    return {k: np.asarray(model.backend.to_host(v)) for k, v in model.params.items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_training_epochs_fast_vs_generic_numpy_give_the_same_weights(dtype: str) -> None:
    X, y = _data()
    a = _mlp(NumpyBackend(dtype))
    b = _mlp(generic(dtype))
    assert type(a.backend) is NumpyBackend and type(b.backend) is GenericNumpy
    ha = a.fit(X, y, epochs=2, batch_size=32, seed=11, verbose=False)
    hb = b.fit(X, y, epochs=2, batch_size=32, seed=11, verbose=False)
    # Every fast path does the generic operations in the same order (the same BLAS calls, the
    # same masks from the same generator states), so two epochs end bit-identical. A future
    # fast path that reorders arithmetic should loosen this to allclose on purpose.
    pa, pb = _host_params(a), _host_params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        assert pa[k].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-6)
    # Training moved the weights: the comparison is not between two untouched models.
    init = _host_params(_mlp(NumpyBackend(dtype)))
    assert max(float(np.abs(pa[k] - init[k]).max()) for k in pa) > 1e-3


def test_training_epoch_fast_numpy_vs_array_api_strict() -> None:
    strict = pytest.importorskip("array_api_strict")
    X, y = _data()
    a = _mlp(NumpyBackend("float64"))
    b = _mlp(Backend(strict, "float64", device=strict.Device("device1")))
    a.fit(X, y, epochs=1, batch_size=32, seed=2, verbose=False)
    b.fit(X, y, epochs=1, batch_size=32, seed=2, verbose=False)
    pa, pb = _host_params(a), _host_params(b)
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-9, atol=1e-11, err_msg=k)


def test_a_float32_training_step_never_makes_float64() -> None:
    model = _mlp("numpy")
    X, y = _data(64)
    be = model.backend
    xb, yb = be.asarray(X), be.asarray(y)
    assert xb.dtype == np.float32
    loss, opt = model.loss, model.optimizer
    assert loss is not None and opt is not None
    for _ in range(2):  # the second step runs with optimizer state in place
        out = xb
        for layer in model.layers:
            out = layer.forward(out, training=True)
            assert out.dtype == np.float32, layer.name
        lv = loss.forward(out, yb)
        assert lv.dtype == np.float32
        dy = loss.backward()
        assert dy.dtype == np.float32
        for layer in reversed(model.layers):
            dy = layer.backward(dy)
            assert dy.dtype == np.float32, layer.name
            for key, g in layer.grads.items():
                assert g.dtype == np.float32, (layer.name, key)
            mask = getattr(layer, "mask", None)
            assert mask is None or mask.dtype == np.float32
        opt.step(model.parameters())
        for name, p, g in model.parameters():
            assert p.dtype == np.float32 and g.dtype == np.float32, name
            for slot, arr in opt.state[name].items():
                assert arr.dtype == np.float32, (name, slot)
    model.fit(X, y, epochs=1, batch_size=16, verbose=False)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert all(a.dtype == np.float32 for s in opt.state.values() for a in s.values())


def test_layer_outputs_stay_valid_after_later_steps() -> None:
    """Fast paths may not reuse an output buffer a caller could still hold."""
    model = _mlp("numpy")
    X, _ = _data(64)
    x = model.backend.asarray(X[:32])
    first = model.forward(x, training=True)
    kept = first.copy()
    relu_out = model.layers[1].y.copy()
    mask = model.layers[2].mask.copy()
    model.forward(model.backend.asarray(X[32:]), training=True)
    np.testing.assert_array_equal(first, kept)
    assert not np.array_equal(model.layers[2].mask, mask)  # a new mask was drawn...
    np.testing.assert_array_equal(mask, mask)  # ...into a new array
    assert not np.shares_memory(model.layers[1].y, relu_out)


# --------------------------------------------------------------------------------- CuPy
@needs_cuda
def test_cupy_fused_kernels_match_the_generic_backend() -> None:
    import cupy as cp  # noqa: PLC0415  (only where a GPU is present)

    fast_cp = xpnet.get_backend("cupy")
    plain = Backend(cp, "float32")
    r = rng(9)
    x = cp.asarray(np.r_[r.standard_normal(997), [0.0, -0.0, np.inf, -np.inf, np.nan]]
                   .astype(np.float32))
    cp.testing.assert_array_equal(fast_cp.relu(x), plain.relu(x))
    y = plain.relu(x)
    dy = cp.asarray(r.standard_normal(x.shape).astype(np.float32))
    cp.testing.assert_array_equal(fast_cp.relu_backward(dy, y), plain.relu_backward(dy, y))
    shape = (41, 23)
    p = cp.asarray(r.standard_normal(shape).astype(np.float32))
    arrays = {k: [p.copy(), cp.zeros(shape, cp.float32), cp.zeros(shape, cp.float32)]
              for k in ("fast", "plain")}
    for t in range(1, 11):
        g = cp.asarray(r.standard_normal(shape).astype(np.float32))
        kw = {"lr_t": 1e-2 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t), "beta1": 0.9,
              "beta2": 0.999, "eps_t": 1e-8 * np.sqrt(1 - 0.999**t)}
        fast_cp.adam_update(*arrays["fast"][:1], g, *arrays["fast"][1:], **kw)
        plain.adam_update(*arrays["plain"][:1], g, *arrays["plain"][1:], **kw)
    for a, b in zip(arrays["fast"], arrays["plain"], strict=True):
        cp.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    gen = fast_cp.generator(0)
    mask = cp.asnumpy(fast_cp.dropout_mask(gen, (300, 300), 0.7))
    assert mask.dtype == np.float32
    assert set(np.unique(mask)).issubset({0.0, np.float32(1 / 0.7)})
    assert abs(np.count_nonzero(mask) / mask.size - 0.7) < 0.01


@needs_cuda
def test_cupy_training_matches_numpy_without_dropout() -> None:
    X, y = _data()
    models = []
    for be in ("numpy", "cupy"):
        m = xpnet.Sequential([Dense(20, 16), ReLU(), Dense(16, 4)], backend=be, seed=1)
        m.compile(SoftmaxCrossEntropy(), Adam(1e-2))
        m.fit(X, y, epochs=2, batch_size=32, seed=4, verbose=False)
        models.append(_host_params(m))
    for k in models[0]:
        np.testing.assert_allclose(models[0][k], models[1][k], rtol=1e-3, atol=1e-4)
