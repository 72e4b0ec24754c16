"""Backends: choosing one, CuPy kept out unless asked for, dtypes, host transfers, generators."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import BackendError, Sequential, get_backend
from xpnet.backend import Backend, NumpyBackend
from xpnet.layers import Dense, Dropout, ReLU

aas = pytest.importorskip("array_api_strict")

HAS_CUPY = importlib.util.find_spec("cupy") is not None
XPNET_DIR = Path(xpnet.__file__).parent


# ------------------------------------------------------------------------ choosing one
def test_numpy_by_name_and_by_module():
    be = get_backend("numpy")
    assert isinstance(be, NumpyBackend)
    assert be.xp is np and be.name == "numpy" and be.is_host
    assert get_backend(np) is be
    assert get_backend(be) is be


def test_default_dtype_is_float32_and_float64_on_request():
    assert get_backend("numpy").dtype == np.float32
    assert get_backend("numpy").dtype_name == "float32"
    be64 = get_backend("numpy", "float64")
    assert be64.dtype == np.float64 and be64.dtype_name == "float64"
    assert get_backend("numpy", np.float64) is be64
    # a Backend passed in with another dtype gives that dtype
    assert get_backend(get_backend("numpy"), "float64") is be64


def test_module_passed_directly_is_wrapped():
    be = get_backend(aas)
    assert type(be) is Backend
    assert be.xp is aas
    assert be.dtype == aas.float32
    assert get_backend(aas, "float64").dtype == aas.float64


def test_auto_says_what_it_chose_on_stderr(capsys):
    be = get_backend("auto")
    err = capsys.readouterr().err
    expected = "cupy" if xpnet.cuda_available() else "numpy"
    assert be.name == expected
    assert f"backend='auto' chose {expected!r}" in err


def test_auto_is_quiet_with_verbose_false(capsys):
    get_backend("auto", verbose=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("spec", "dtype", "exc", "quoted"),
    [
        ("tensorflow", None, ValueError, "'tensorflow'"),
        (42, None, TypeError, "42"),
        ("numpy", "float16", ValueError, "'float16'"),
        ("numpy", "int32", ValueError, "'int32'"),
    ],
)
def test_bad_backend_or_dtype_quotes_the_value(spec, dtype, exc, quoted):
    with pytest.raises(exc, match=re.escape(quoted)):
        get_backend(spec, dtype)


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here; the missing-CuPy error can't occur")
def test_cupy_missing_gives_backend_error_naming_the_fix():
    with pytest.raises(BackendError) as info:
        get_backend("cupy")
    msg = str(info.value)
    assert "pip install xpnet[cuda12]" in msg
    assert "backend='numpy'" in msg
    # raised by xpnet itself, with the ImportError only as its cause
    assert isinstance(info.value.__cause__, ImportError)
    assert not xpnet.cuda_available()
    assert "cupy" not in sys.modules


@pytest.mark.skipif(HAS_CUPY, reason="CuPy is installed here; the missing-CuPy error can't occur")
def test_cupy_missing_through_sequential_is_the_same_clear_error():
    with pytest.raises(BackendError, match=re.escape("pip install xpnet[cuda12]")):
        Sequential([Dense(2, 2)], backend="cupy")


@pytest.mark.skipif(not HAS_CUPY, reason="CuPy is not installed")
def test_cupy_installed_without_gpu_says_no_cuda_device():
    if xpnet.cuda_available():
        pytest.skip("a CUDA device is usable here")
    with pytest.raises(BackendError, match="no CUDA device found"):
        get_backend("cupy")


# ---------------------------------------------------------------- CuPy stays out of the way
def test_importing_xpnet_and_using_numpy_does_not_import_cupy():
    code = (
        "import sys, numpy as np, xpnet\n"
        "from xpnet.layers import Dense, ReLU\n"
        "m = xpnet.Sequential([Dense(3, 4), ReLU(), Dense(4, 2)], seed=0)\n"
        "m.compile(xpnet.losses.SoftmaxCrossEntropy(), xpnet.optim.Adam())\n"
        "m.fit(np.ones((8, 3)), np.zeros(8, dtype=np.int64), epochs=1)\n"
        "m.predict(np.ones((2, 3)))\n"
        "print('cupy' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False"


def test_only_the_cupy_backend_module_imports_cupy():
    pattern = re.compile(
        r"^\s*(import\s+cupy|from\s+cupy[\s.]|.*import_module\(\s*[\"']cupy)", re.MULTILINE
    )
    sources = sorted(XPNET_DIR.rglob("*.py"))
    assert len(sources) > 10  # the walk found the package
    offenders = [
        str(p.relative_to(XPNET_DIR)) for p in sources if pattern.search(p.read_text("utf-8"))
    ]
    assert offenders == ["backends/cupy.py"]


def test_backend_py_imports_cupy_only_inside_a_function():
    text = (XPNET_DIR / "backend.py").read_text("utf-8")
    assert not re.search(r"^(import\s+cupy|from\s+cupy)", text, re.MULTILINE)


# -------------------------------------------------------------------- arrays and the host
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_and_from_host_numpy(dtype):
    be = get_backend("numpy", dtype)
    host = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    dev = be.asarray(host)
    assert dev.dtype == np.dtype(dtype)
    back = be.to_host(dev)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, host.astype(dtype))
    # integer data stays integer (labels)
    assert be.asarray(np.arange(3)).dtype.kind == "i"
    assert be.to_float(be.asarray(np.float64(2.5))) == 2.5


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_and_from_host_array_api_strict(dtype):
    be = get_backend(aas, dtype)
    host = np.linspace(-1, 1, 12).reshape(3, 4)
    dev = be.asarray(host)
    assert be.is_array(dev) and not isinstance(dev, np.ndarray)
    assert dev.dtype == getattr(aas, dtype)
    back = be.to_host(dev)
    assert isinstance(back, np.ndarray) and back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host.astype(dtype))
    labels = be.asarray(np.array([0, 2, 1]))
    assert labels.dtype == aas.int64
    assert be.to_float(aas.sum(dev)) == pytest.approx(float(host.astype(dtype).sum()), abs=1e-6)


def test_synchronize_is_callable_and_returns_none():
    for be in (get_backend("numpy"), get_backend(aas)):
        assert be.synchronize() is None


def test_zeros_use_the_default_dtype():
    assert get_backend("numpy").zeros((2, 3)).dtype == np.float32
    assert get_backend("numpy", "float64").zeros((2,)).dtype == np.float64
    assert get_backend(aas).zeros((2,)).dtype == aas.float32


# -------------------------------------------------------------------------- generators
@pytest.mark.parametrize("which", ["numpy", "strict"])
def test_generator_is_seeded_and_replayable(which):
    be = get_backend("numpy") if which == "numpy" else get_backend(aas)
    a = be.to_host(be.generator(123).random((4, 5)))
    b = be.to_host(be.generator(123).random((4, 5)))
    c = be.to_host(be.generator(124).random((4, 5)))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.dtype == np.float32 and ((a >= 0) & (a < 1)).all()
    gen = be.generator(7)
    state = gen.get_state()
    first = be.to_host(gen.random((3,)))
    gen.set_state(state)
    np.testing.assert_array_equal(be.to_host(gen.random((3,))), first)


def test_generators_draw_the_same_numbers_on_numpy_and_strict():
    a = get_backend("numpy", "float64").generator(5).random((10,))
    b = get_backend(aas, "float64").generator(5).random((10,))
    np.testing.assert_array_equal(a, get_backend(aas).to_host(b))


# ------------------------------------------------------- one seed, one model, every backend
def _model(backend, dtype):
    layers = [Dense(5, 7), ReLU(), Dropout(0.3), Dense(7, 3, init="glorot_uniform")]
    return Sequential(layers, backend=backend, dtype=dtype, seed=2024)


def test_one_seed_gives_the_same_initial_weights_on_every_backend():
    m64 = _model("numpy", "float64")
    m32 = _model("numpy", "float32")
    ms = _model(get_backend(aas), "float64")
    ms32 = _model(aas, "float32")
    assert set(m64.params) == {"0.W", "0.b", "3.W", "3.b"}
    for key, w64 in m64.params.items():
        assert w64.dtype == np.float64 and m32.params[key].dtype == np.float32
        # float32 weights are the float64 draw rounded: the same draw
        np.testing.assert_array_equal(m32.params[key], w64.astype(np.float32))
        np.testing.assert_array_equal(ms.backend.to_host(ms.params[key]), w64)
        np.testing.assert_array_equal(ms32.backend.to_host(ms32.params[key]), m32.params[key])
    assert np.abs(m64.params["0.W"]).max() > 0  # actually drawn


def test_different_seeds_give_different_weights():
    a = Sequential([Dense(5, 4)], seed=1).params["0.W"]
    b = Sequential([Dense(5, 4)], seed=2).params["0.W"]
    assert not np.array_equal(a, b)


def test_dense_rng_seed_gives_same_layer_on_each_backend():
    w = Dense(4, 3, rng=9, dtype="float64").params["W"]
    ws = Dense(4, 3, rng=9, backend=aas, dtype="float64").params["W"]
    np.testing.assert_array_equal(get_backend(aas).to_host(ws), w)


def test_another_dtype_of_a_backend_keeps_its_options() -> None:
    """get_backend(CupyBackend(cp, fused=False), "float64") must stay unfused (the cache key
    once dropped ``fused``). NumPy stands in for CuPy's module: only the bookkeeping runs."""
    from xpnet.backends import CupyBackend

    plain = CupyBackend(np, "float32", fused=False)
    fused = CupyBackend(np, "float32", fused=True)
    plain64, fused64 = get_backend(plain, "float64"), get_backend(fused, "float64")
    assert plain64.fused is False and fused64.fused is True
    assert plain64.dtype_name == fused64.dtype_name == "float64"
    assert get_backend(plain, "float64") is plain64  # cached: one object per variant
    assert get_backend(plain64, "float32").fused is False


def test_another_dtype_of_a_device_backend_keeps_its_device() -> None:
    aas = pytest.importorskip("array_api_strict")
    dev = aas.Device("device1")
    be = Backend(aas, "float32", device=dev)
    be64 = get_backend(be, "float64")
    assert be64.device == dev and be64.dtype == aas.float64
    assert be64.zeros((2,)).device == dev
