"""The fused training path agrees with the plain one, layer by layer and over whole epochs.

``Sequential`` on a fused backend runs ``Dense -> ReLU [-> Dropout]`` as one kernel after the
matmul, ``ReLU -> Dropout`` backward as one, softmax cross-entropy with its gradient and
accuracy as one, and Adam for every parameter as one (:mod:`xpnet.cuda_kernels`). On the CPU a
NumPy-backed backend with ``fused = True`` runs the same model code through the generic
implementations of those operations, which must give exactly the plain path's numbers. Where a
GPU is present, CuPy's kernels are checked against CuPy's plain path (``fused=False``), and the
device dropout hash against a host reimplementation of its documented rule.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import xpnet
from xpnet.backend import Backend, CupyBackend, cuda_available, keep_threshold
from xpnet.backends.cuda_kernels import ELEMENTWISE, RAW, raw_source
from xpnet.fusion import FusedStep
from xpnet.layers import Dense, Dropout, ReLU, Sigmoid
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam
from xpnet.testing.backends import GenericNumpy

DTYPES = ("float32", "float64")
needs_cuda = pytest.mark.skipif(not cuda_available(), reason="CuPy with a CUDA device is absent")


HostBackend = GenericNumpy  # NumPy through the generic code, fused or not


def _model(backend: Backend, seed: int = 5) -> xpnet.Sequential:
    # Both fused shapes (Dense-ReLU-Dropout and Dense-ReLU), a Dropout after a non-ReLU
    # layer, and a last Dense without activation: every branch of the fusion plan.
    layers = [Dense(12, 16), ReLU(), Dropout(0.4), Dense(16, 10), ReLU(), Dense(10, 8),
              Sigmoid(), Dropout(0.2), Dense(8, 5)]
    model = xpnet.Sequential(layers, backend=backend, seed=seed)
    return model.compile(SoftmaxCrossEntropy(), Adam(1e-2))


def _data(n: int = 96, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    return r.standard_normal((n, 12)).astype(np.float32), r.integers(0, 5, size=n)


def _host(model: xpnet.Sequential) -> dict[str, np.ndarray]:
    be = model.backend
    return {k: np.asarray(be.to_host(v), dtype=np.float64) for k, v in model.params.items()}


def _one_step(model: xpnet.Sequential, X: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Forward, loss, backward and one Adam step; what each produced, on the host."""
    be = model.backend
    xb, yb = be.asarray(X), be.asarray(y)
    out = model.forward(xb, training=True)
    assert model.loss is not None and model.optimizer is not None
    loss = model.loss.forward(out, yb)
    acc = model.loss.accuracy(out, yb)
    model.backward(model.loss.backward(), need_dx=False)
    got = {"out": out, "loss": loss, "acc": acc}
    got.update({f"relu{i}.y": lay.y for i, lay in enumerate(model.layers) if type(lay) is ReLU})
    got.update({f"drop{i}.mask": lay.mask for i, lay in enumerate(model.layers)
                if type(lay) is Dropout})
    got.update({f"d{k}": g for k, g in model.grads.items()})
    model.optimizer.step(model.parameters())
    got.update(model.params)
    return {k: np.asarray(be.to_host(v), dtype=np.float64) for k, v in got.items()}


# ------------------------------------------------------------------- on the CPU, always
def test_the_fused_plan_covers_every_fusable_run_and_the_plain_plan_none() -> None:
    fused = _model(HostBackend("float64", fused=True))
    names = [s.rule.name if isinstance(s, FusedStep) else type(s).__name__ for s in fused.plan]
    assert names == ["dense_relu_dropout", "dense_relu", "Dense", "Sigmoid", "Dropout", "Dense"]
    plain = _model(HostBackend("float64", fused=False))
    assert plain.plan == plain.layers


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_model_path_equals_the_plain_path_exactly(dtype: str) -> None:
    X, y = _data()
    plain = _one_step(_model(HostBackend(dtype, fused=False)), X, y)
    fused = _one_step(_model(HostBackend(dtype, fused=True)), X, y)
    assert plain.keys() == fused.keys()
    for k in plain:
        np.testing.assert_array_equal(fused[k], plain[k], err_msg=k)
    # The masks were really drawn (some kept, some dropped) and the step moved the weights.
    assert 0 < np.count_nonzero(plain["drop2.mask"]) < plain["drop2.mask"].size
    init = _host(_model(HostBackend(dtype, fused=False)))
    assert max(float(np.abs(plain[k] - init[k]).max()) for k in init) > 1e-4


def test_fused_model_fit_equals_plain_fit_over_epochs() -> None:
    X, y = _data(200)
    results = []
    for fused in (False, True):
        model = _model(HostBackend("float64", fused=fused))
        hist = model.fit(X, y, epochs=2, batch_size=32, seed=9, verbose=False)
        results.append((_host(model), hist["loss"], hist["accuracy"]))
    (pa, la, aa), (pb, lb, ab) = results
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k], err_msg=k)
    assert la == lb and aa == ab


def test_fused_path_leaves_each_layer_what_its_own_backward_reads() -> None:
    """After a fused forward, the layers' own backward passes (the plain path) still work and
    give the fused backward's gradients: nothing is hidden inside the fusion."""
    X, y = _data()
    model = _model(HostBackend("float64", fused=True))
    be = model.backend
    out = model.forward(be.asarray(X), training=True)
    assert model.loss is not None
    model.loss.forward(out, be.asarray(y))
    dy = model.loss.backward()
    model.backward(dy)
    fused_grads = {k: np.array(v) for k, v in model.grads.items()}
    for layer in reversed(model.layers):  # the plain path: each layer's own backward
        dy = layer.backward(dy)
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, fused_grads[k], err_msg=k)


def test_inference_never_takes_the_fused_path() -> None:
    X, _ = _data()
    a, b = _model(HostBackend("float64", False)), _model(HostBackend("float64", True))
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert all(lay.mask is None for lay in b.layers if type(lay) is Dropout)


def test_generic_softmax_xent_declines_and_the_loss_computes_it() -> None:
    be = HostBackend("float64", fused=True)
    assert be.softmax_xent(np.zeros((2, 3)), np.array([0, 1])) is None
    loss = SoftmaxCrossEntropy().to(be)
    value = loss.forward(np.zeros((2, 3)), np.array([0, 1]))
    assert float(value) == pytest.approx(np.log(3.0))
    assert loss.dz is None and loss.p is not None


def test_raw_sources_are_typed_per_dtype() -> None:
    for name in RAW:
        for ctype, suffix in (("float", "f32"), ("double", "f64")):
            src, fn = raw_source(name, ctype)
            assert fn == f"xpnet_{name}_{suffix}" and f"{fn}(" in src
            assert " T " not in src and "(T)" not in src and "const T*" not in src
    with pytest.raises(ValueError, match="'half'"):
        raw_source("sum_rows", "half")
    assert {"relu", "dropout_mask", "bias_relu_dropout", "adam"} <= ELEMENTWISE.keys()


def hash16(key: int, n: int) -> np.ndarray:
    """Host reimplementation of the device dropout hash (xpnet.cuda_kernels.HASH16)."""
    i = np.arange(n, dtype=np.uint64)
    x = np.uint64(key) + i * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(48)).astype(np.uint32)


def test_host_hash_is_uniform_enough_for_masks() -> None:
    bits = hash16(12345, 1 << 16)
    assert bits.max() <= 0xFFFF
    counts = np.bincount(bits >> 12, minlength=16)  # 16 buckets of 4096 values
    assert counts.min() > 0.9 * 4096 and counts.max() < 1.1 * 4096
    kept = bits < keep_threshold(0.7)
    assert abs(kept.mean() - 0.7) < 0.01
    assert not np.array_equal(hash16(12346, 64), hash16(12345, 64))


# ------------------------------------------------------------------------- on a GPU
def _cupy(dtype: str, fused: bool) -> CupyBackend:
    import cupy as cp  # noqa: PLC0415  (only where a GPU is present)

    return CupyBackend(cp, dtype, fused=fused)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_fused_step_matches_cupy_plain_step(dtype: str) -> None:
    X, y = _data()
    plain = _one_step(_model(_cupy(dtype, False)), X, y)
    fused = _one_step(_model(_cupy(dtype, True)), X, y)
    tol = 2e-5 if dtype == "float32" else 1e-12
    for k in plain:
        if k.endswith("mask") or k.startswith("relu") or k == "out":
            # Same kernels' arithmetic, same key from the same generator state: exact.
            np.testing.assert_array_equal(fused[k], plain[k], err_msg=k)
        else:  # loss, accuracy and gradients: sums in another order
            np.testing.assert_allclose(fused[k], plain[k], rtol=tol, atol=tol, err_msg=k)


@needs_cuda
def test_cupy_fused_fit_matches_plain_fit() -> None:
    X, y = _data(300)
    results = []
    for fused in (False, True):
        model = _model(_cupy("float64", fused))
        hist = model.fit(X, y, epochs=2, batch_size=32, seed=9, verbose=False)
        results.append((_host(model), hist["loss"]))
    (pa, la), (pb, lb) = results
    for k in pa:
        np.testing.assert_allclose(pb[k], pa[k], rtol=1e-9, atol=1e-11, err_msg=k)
    np.testing.assert_allclose(lb, la, rtol=1e-9)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_dropout_mask_is_the_documented_hash(dtype: str) -> None:
    be = _cupy(dtype, True)
    gen, twin = be.generator(77), np.random.Generator(np.random.PCG64(77))
    for shape, keep in (((37, 29), 0.7), ((5,), 0.5), ((3, 4, 5), 0.1)):
        mask = be.to_host(be.dropout_mask(gen, shape, keep))
        key = int(twin.bit_generator.random_raw())  # the one draw the mask costs
        n = int(np.prod(shape))
        kept = (hash16(key, n) < keep_threshold(keep)).reshape(shape)
        scale = np.dtype(dtype).type(1.0 / keep)
        np.testing.assert_array_equal(mask, np.where(kept, scale, 0).astype(dtype))
    assert gen.get_state() == twin.bit_generator.state


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 33), (256, 400), (4096, 10), (0, 5), (3, 0)])
def test_cupy_sum_rows_kernel_matches_cupy_sum(dtype: str, shape: tuple[int, int]) -> None:
    import cupy as cp  # noqa: PLC0415

    be = _cupy(dtype, True)
    a = cp.asarray(np.random.default_rng(1).standard_normal(shape).astype(dtype))
    out = cp.full((shape[1],), cp.nan, dtype=dtype)
    assert be.sum_rows(a, out=out) is out
    tol = 1e-5 if dtype == "float32" else 1e-12
    cp.testing.assert_allclose(out, a.sum(axis=0), rtol=tol, atol=tol * max(shape[0], 1))
    cp.testing.assert_allclose(be.sum_rows(a), a.sum(axis=0), rtol=tol,
                               atol=tol * max(shape[0], 1))
    # A transposed (non-contiguous) input takes CuPy's own reduction, with the same result.
    np.testing.assert_allclose(be.to_host(be.sum_rows(a.T.copy().T)), be.to_host(a.sum(axis=0)),
                               rtol=tol, atol=tol * max(shape[0], 1))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_softmax_xent_kernel_matches_the_plain_loss(dtype: str) -> None:
    r = np.random.default_rng(4)
    cases = [
        (r.standard_normal((1, 3)) * 3, np.array([2])),
        (r.standard_normal((1000, 10)) * 5, r.integers(0, 10, 1000)),  # > one row per thread
        (np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]]), np.array([1, 2])),  # argmax ties
        (np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 1.0]]), np.array([1, 1])),  # huge spread
        (r.standard_normal((5, 1)), np.zeros(5, dtype=np.int64)),  # one class
        # each row's loss is half the largest float: their sum is not a float
        (np.array([[0.0, 1.0], [0.0, 1.0]]) * (np.finfo(dtype).max / 2), np.array([0, 0])),
    ]
    fused, plain = _cupy(dtype, True), _cupy(dtype, False)
    tol = 1e-5 if dtype == "float32" else 1e-12
    for z_host, labels in cases:
        for label_dtype in (np.int64, np.int32, np.uint8):
            res = []
            for be in (fused, plain):
                loss = SoftmaxCrossEntropy().to(be)
                z, t = be.asarray(z_host), be.asarray(labels.astype(label_dtype))
                value = loss.forward(z, t)
                res.append((value, loss.backward(), loss.accuracy(z, t)))
            (lf, df, af), (lp, dp, ap) = [[np.asarray(be.to_host(v)) for v in r_] for r_ in res]
            assert df.dtype == np.dtype(dtype) and lf.dtype == np.dtype(dtype)
            assert np.isfinite(lf) and np.isfinite(lp)
            np.testing.assert_allclose(lf, lp, rtol=tol, atol=tol)
            np.testing.assert_allclose(df, dp, rtol=tol, atol=tol)
            assert float(af) == pytest.approx(float(ap), rel=tol)


@needs_cuda
def test_cupy_softmax_xent_kernel_gives_nan_for_nan_logits_and_bad_labels() -> None:
    be = _cupy("float32", True)
    z = be.asarray(np.array([[0.0, np.nan], [1.0, 2.0]], dtype=np.float32))
    loss, _, _ = be.softmax_xent(z, be.asarray(np.array([0, 1])))
    assert np.isnan(float(loss))
    z = be.asarray(np.zeros((2, 3), dtype=np.float32))
    loss, _, _ = be.softmax_xent(z, be.asarray(np.array([0, 3])))  # 3 is out of range
    assert np.isnan(float(loss))


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cupy_multi_tensor_adam_matches_per_parameter_updates(dtype: str) -> None:
    r = np.random.default_rng(6)
    # (1030, 1024) is more elements than one grid pass covers (4096 blocks x 256 threads).
    shapes = [(784, 40), (40,), (0, 3), (1030, 1024), (40, 10), (10,), (1,)]
    fused, plain = _cupy(dtype, True), _cupy(dtype, False)
    states = []
    for be in (fused, plain):
        arrays = [[be.asarray(r_.astype(dtype)) for r_ in (
            np.random.default_rng(i).standard_normal(s), np.zeros(s), np.zeros(s))]
            for i, s in enumerate(shapes)]
        states.append((be, arrays))
    for t in range(1, 6):
        grads = [r.standard_normal(s).astype(dtype) for s in shapes]
        kw = {"lr_t": 1e-2 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t), "beta1": 0.9,
              "beta2": 0.999, "eps_t": 1e-8 * np.sqrt(1 - 0.999**t)}
        for be, arrays in states:
            items = [(p, be.asarray(g), m, v) for (p, m, v), g in zip(arrays, grads, strict=True)]
            be.adam_step(items, **kw)
    tol = 1e-6 if dtype == "float32" else 1e-13
    for (_, fa), (_, pa) in [(states[0], states[1])]:
        for a_list, b_list in zip(fa, pa, strict=True):
            for a, b in zip(a_list, b_list, strict=True):
                np.testing.assert_allclose(fused.to_host(a), plain.to_host(b), rtol=tol, atol=tol)
    moved = fused.to_host(states[0][1][0][0]) - np.random.default_rng(0).standard_normal(
        shapes[0]).astype(dtype)
    assert np.abs(moved).max() > 1e-3


@needs_cuda
def test_cupy_resume_with_dropout_continues_the_same_run(tmp_path) -> None:
    """Dropout masks come from host generator states, so a checkpoint restores them on CuPy."""
    X, y = _data(160)
    whole = _model(xpnet.get_backend("cupy", "float64"))
    whole.fit(X, y, epochs=2, batch_size=32, seed=1, verbose=False)
    part = _model(xpnet.get_backend("cupy", "float64"))
    ckpt = tmp_path / "ckpt.npz"
    part.fit(X, y, epochs=1, batch_size=32, seed=1, verbose=False, checkpoint=ckpt)
    resumed = xpnet.load(ckpt, backend="cupy", dtype="float64")
    resumed.fit(X, y, epochs=2, batch_size=32, verbose=False, resume=True)
    a, b = _host(whole), _host(resumed)
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=1e-12, atol=1e-14, err_msg=k)


@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["nn", "tn", "nt", "tt"])
@pytest.mark.parametrize("mkn", [(5, 7, 3), (1, 9, 4), (6, 1, 2), (3, 4, 1), (256, 784, 400)])
def test_cupy_matmul_layouts_with_and_without_out(dtype: str, layout: str, mkn: tuple) -> None:
    """Dense's three products (x W, x^T dy, dy W^T) read transposed views correctly."""
    import cupy as cp  # noqa: PLC0415

    m, k, n = mkn
    r = np.random.default_rng(sum(mkn))
    a = cp.asarray(r.standard_normal((m, k) if layout[0] == "n" else (k, m)).astype(dtype))
    b = cp.asarray(r.standard_normal((k, n) if layout[1] == "n" else (n, k)).astype(dtype))
    a_op = a if layout[0] == "n" else a.T
    b_op = b if layout[1] == "n" else b.T
    be = _cupy(dtype, True)
    want = cp.asnumpy(a_op).astype(np.float64) @ cp.asnumpy(b_op).astype(np.float64)
    tol = 1e-4 if dtype == "float32" else 1e-12
    got = be.matmul(a_op, b_op)
    assert got.dtype == np.dtype(dtype) and got.shape == (m, n)
    np.testing.assert_allclose(cp.asnumpy(got), want, rtol=tol, atol=tol * k)
    out = cp.full((m, n), cp.nan, dtype=dtype)
    assert be.matmul(a_op, b_op, out=out) is out
    np.testing.assert_allclose(cp.asnumpy(out), want, rtol=tol, atol=tol * k)


@needs_cuda
def test_cupy_training_step_never_waits_for_the_gpu() -> None:
    """Forward, loss, accuracy, backward and Adam queue work without a device sync: CuPy
    raises DeviceSynchronized inside ``allow_synchronize(False)`` at any implicit one."""
    import cupyx  # noqa: PLC0415

    allow_synchronize = getattr(cupyx, "allow_synchronize", None)
    if allow_synchronize is None:
        pytest.skip("this CuPy no longer has cupyx.allow_synchronize")
    X, y = _data()
    model = _model(xpnet.get_backend("cupy"))
    be = model.backend
    xb, yb = be.asarray(X), be.asarray(y)
    loss_fn, opt = model.loss, model.optimizer
    assert loss_fn is not None and opt is not None
    before = _host(model)

    def step() -> None:
        out = model.forward(xb, training=True)
        loss_fn.forward(out, yb, check=False)
        loss_fn.accuracy(out, yb)
        model.backward(loss_fn.backward(), need_dx=False)
        opt.step(model.parameters())

    step()  # the first step compiles kernels and builds the Adam address table
    with warnings.catch_warnings():  # CuPy 14 warns that the detector is best-effort
        warnings.simplefilter("ignore", UserWarning)
        with allow_synchronize(False):
            for _ in range(3):
                step()
    be.synchronize()
    after = _host(model)
    assert max(float(np.abs(after[k] - before[k]).max()) for k in before) > 1e-4


@needs_cuda
def test_cupy_fused_float32_step_makes_no_float64() -> None:
    """Every array a fused float32 step leaves behind is float32 (kernel scalars included)."""
    X, y = _data()
    model = _model(_cupy("float32", True))
    be = model.backend
    xb, yb = be.asarray(X), be.asarray(y)
    loss_fn, opt = model.loss, model.optimizer
    assert loss_fn is not None and opt is not None
    out = model.forward(xb, training=True)
    loss = loss_fn.forward(out, yb)
    acc = loss_fn.accuracy(out, yb)
    model.backward(loss_fn.backward(), need_dx=False)
    opt.step(model.parameters())
    arrays = {"out": out, "loss": loss, "acc": acc, "dz": loss_fn.backward()}
    arrays.update(model.params)
    arrays.update({f"d{k}": g for k, g in model.grads.items()})
    arrays.update({f"{k}.{s}": a for k, slots in opt.state.items() for s, a in slots.items()})
    for i, lay in enumerate(model.layers):
        for attr in ("x", "y", "mask"):
            if getattr(lay, attr, None) is not None:
                arrays[f"{i}.{attr}"] = getattr(lay, attr)
    bad = {k: str(a.dtype) for k, a in arrays.items() if a.dtype != np.float32}
    assert not bad
    assert len(arrays) > 20
