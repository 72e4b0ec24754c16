"""Saving and loading: everything in one pickle-free file, written atomically, any dtype/backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet import ModelFileError, Sequential
from xpnet.layers import Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from xpnet.losses import BinaryCrossEntropy, SoftmaxCrossEntropy
from xpnet.optim import SGD, Adam, CosineDecay, InverseTimeDecay

aas = pytest.importorskip("array_api_strict")


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    return X, (X[:, 0] + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)


def _trained(dtype="float32", epochs=2):
    layers = [Dense(5, 12, init="glorot_uniform"), LeakyReLU(0.05), Dropout(0.25),
              Dense(12, 8, bias=False), Tanh(), Dense(8, 3)]
    model = Sequential(layers, seed=7, dtype=dtype)
    model.compile(SoftmaxCrossEntropy(), Adam(0.01, beta1=0.8, schedule=InverseTimeDecay(0.5)))
    X, y = _data()
    model.fit(X, y, epochs=epochs, batch_size=16, seed=1)
    return model


def _same_weights(a, b):
    assert list(a.params) == list(b.params)
    for key in a.params:
        np.testing.assert_array_equal(a.backend.to_host(a.params[key]),
                                      b.backend.to_host(b.params[key]))


def test_round_trip_restores_everything(tmp_path):
    model = _trained()
    path = model.save(tmp_path / "model.npz")
    assert path == tmp_path / "model.npz" and path.is_file()
    again = xpnet.load(path)
    assert again.config() == model.config()
    assert [type(la) for la in again.layers] == [type(la) for la in model.layers]
    assert again.layers[1].slope == 0.05 and again.layers[2].p == 0.25
    assert again.layers[3].bias is False and again.layers[0].init == "glorot_uniform"
    assert again.backend.name == "numpy" and again.backend.dtype_name == "float32"
    _same_weights(model, again)
    assert isinstance(again.loss, SoftmaxCrossEntropy)
    opt, ref = again.optimizer, model.optimizer
    assert type(opt) is Adam and opt.config() == ref.config()
    assert type(opt.schedule) is InverseTimeDecay and opt.schedule.decay == 0.5
    assert (opt.t, opt.epoch) == (ref.t, ref.epoch) == (12, 1)
    assert set(opt.state) == set(ref.state) == set(model.params)
    for name, slots in ref.state.items():
        for slot, arr in slots.items():
            np.testing.assert_array_equal(opt.state[name][slot], arr)
            assert opt.state[name][slot].dtype == np.float32
    assert again.history.to_dict() == model.history.to_dict()
    assert again.progress == model.progress and again.progress["finished"] is True
    assert again.seed == 7
    X, _ = _data(20, seed=3)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))


def test_untrained_and_uncompiled_models_round_trip(tmp_path):
    model = Sequential([Dense(3, 2), Sigmoid(), Softmax()], seed=0)
    again = xpnet.load(model.save(tmp_path / "bare.npz"))
    _same_weights(model, again)
    assert again.loss is None and again.optimizer is None and again.progress is None
    compiled = Sequential([Dense(3, 1)], seed=0).compile(
        BinaryCrossEntropy(from_logits=True), SGD(0.1, momentum=0.9, schedule=CosineDecay(4))
    )
    again = xpnet.load(compiled.save(tmp_path / "compiled.npz"))
    assert again.loss.from_logits is True
    assert again.optimizer.momentum == 0.9 and again.optimizer.schedule.epochs == 4
    assert again.optimizer.state == {} and again.optimizer.t == 0


def test_file_is_a_plain_npz_without_pickled_objects(tmp_path):
    path = _trained().save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as npz:  # raises on any object array
        names = list(npz.files)
        arrays = {k: npz[k] for k in names}
    assert "__header__" in names and "param/0/W" in names and "optim/0.W/m" in names
    for key, arr in arrays.items():
        assert not arr.dtype.hasobject, key
        assert arr.dtype.kind in "fu", key
    header = json.loads(arrays["__header__"].tobytes().decode("utf-8"))
    assert header["format"] == "xpnet-model" and header["dtype"] == "float32"
    assert [spec["type"] for spec in header["layers"]] == [
        "Dense", "LeakyReLU", "Dropout", "Dense", "Tanh", "Dense"]
    # every member, read at the .npy level, declares a plain dtype
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            with zf.open(name) as f:
                arr = np.lib.format.read_array(f, allow_pickle=False)
            assert not arr.dtype.hasobject, name


def test_atomic_write_failure_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    model = _trained()
    path = model.save(tmp_path / "model.npz")
    before = path.read_bytes()
    X, y = _data()
    model.fit(X, y, epochs=1, seed=9)  # the model changes; the file must not

    real_savez = np.savez

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a model " * 64)  # some bytes reach the temp file
        raise OSError("simulated disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="simulated disk full"):
        model.save(path)
    monkeypatch.setattr(np, "savez", real_savez)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]
    assert xpnet.load(path).optimizer.t == 12  # still the first save


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    def failing_savez(file, *args, **kwargs):
        file.write(b"x" * 100)
        raise KeyboardInterrupt  # even a Ctrl-C mid-write cleans up

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(KeyboardInterrupt):
        Sequential([Dense(2, 2)], seed=0).save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == []


def test_save_replaces_an_existing_file(tmp_path):
    path = tmp_path / "m.npz"
    Sequential([Dense(2, 2)], seed=0).save(path)
    model = Sequential([Dense(2, 3), ReLU()], seed=1)
    model.save(path)
    _same_weights(xpnet.load(path), model)
    assert os.listdir(tmp_path) == ["m.npz"]


def test_float32_to_float64_and_back(tmp_path):
    model = _trained("float32")
    path = model.save(tmp_path / "f32.npz")
    m64 = xpnet.load(path, dtype="float64")
    assert m64.backend.dtype_name == "float64"
    for key, p in m64.params.items():
        assert p.dtype == np.float64
        np.testing.assert_array_equal(p, model.params[key].astype(np.float64))
    for slots in m64.optimizer.state.values():
        assert all(arr.dtype == np.float64 for arr in slots.values())
    X, _ = _data(40, seed=4)
    np.testing.assert_array_equal(m64.predict(X), model.predict(X))
    back = xpnet.load(m64.save(tmp_path / "f64.npz"), dtype="float32")
    assert back.backend.dtype_name == "float32"
    _same_weights(back, model)  # float32 -> float64 -> float32 is exact


def test_float64_file_loads_as_saved_by_default(tmp_path):
    model = _trained("float64", epochs=1)
    again = xpnet.load(model.save(tmp_path / "m.npz"))
    assert again.backend.dtype_name == "float64"
    _same_weights(again, model)


def test_load_on_array_api_strict_predicts_the_same(tmp_path):
    model = _trained()
    path = model.save(tmp_path / "m.npz")
    be = xpnet.get_backend(aas, "float32")
    strict = xpnet.load(path, backend=be)
    assert strict.backend is be
    assert all(be.is_array(p) for p in strict.params.values())
    X, _ = _data(50, seed=5)
    np.testing.assert_array_equal(strict.predict(X), model.predict(X))
    np.testing.assert_allclose(strict.predict_proba(X), model.predict_proba(X), rtol=1e-5,
                               atol=1e-6)
    # and saves from there again
    _same_weights(xpnet.load(strict.save(tmp_path / "s.npz")), model)


def test_continuing_after_load_equals_never_saving(tmp_path):
    X, y = _data()
    a = _trained()
    b = xpnet.load(a.save(tmp_path / "m.npz"))
    # Adam's step count and moments, the epoch and the schedule all come back
    a.fit(X, y, epochs=2, batch_size=16, seed=2)
    b.fit(X, y, epochs=2, batch_size=16, seed=2)
    _same_weights(a, b)
    assert a.optimizer.t == b.optimizer.t == 24
    for name, slots in a.optimizer.state.items():
        for slot, arr in slots.items():
            np.testing.assert_array_equal(b.optimizer.state[name][slot], arr)


def test_continuing_without_optimizer_state_would_differ(tmp_path):
    # the check above can fail: losing Adam's state changes the weights
    X, y = _data()
    a = _trained()
    b = xpnet.load(a.save(tmp_path / "m.npz"))
    b.optimizer.state.clear()
    b.optimizer.t = 0
    a.fit(X, y, epochs=1, batch_size=16, seed=2)
    b.fit(X, y, epochs=1, batch_size=16, seed=2)
    assert not np.array_equal(a.params["0.W"], b.params["0.W"])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.npz"):
        xpnet.load(tmp_path / "nowhere.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a model")
    with pytest.raises(ModelFileError, match="not an xpnet model file"):
        xpnet.load(junk)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ModelFileError):
        xpnet.load(tmp_path / "other.npz")
    with pytest.raises(TypeError, match="42"):
        xpnet.load(42)


def test_save_accepts_str_paths_and_creates_folders(tmp_path):
    target = tmp_path / "deep" / "er" / "m.npz"
    path = Sequential([Dense(2, 2)], seed=0).save(str(target))
    assert Path(path) == target and target.is_file()


class _RunningMean(xpnet.layers.Layer):
    """A user layer with a buffer: the running mean of its inputs, updated in training."""

    def __init__(self, features: int = 3) -> None:
        super().__init__()
        self.features = features
        self.buffers["mean"] = self.backend.zeros((features,))

    def forward(self, x, training=False):
        if training:
            self.buffers["mean"] = 0.5 * self.buffers["mean"] + 0.5 * self.xp.mean(x, axis=0)
        return x - self.buffers["mean"]

    def backward(self, dy):
        return dy

    def config(self):
        return {"features": self.features}


def test_buffers_are_saved_loaded_moved_and_checked(tmp_path: Path) -> None:
    model = Sequential([Dense(5, 3), _RunningMean(3)], seed=0, dtype="float64")
    model.forward(np.ones((4, 5)), training=True)
    want = model.layers[1].buffers["mean"].copy()
    assert np.abs(want).sum() > 0
    path = model.save(tmp_path / "m.npz")
    back = xpnet.load(path)
    np.testing.assert_array_equal(back.layers[1].buffers["mean"], want)
    moved = xpnet.load(path, backend=aas, dtype="float32")
    assert moved.layers[1].buffers["mean"].dtype == aas.float32
    # A file whose buffer does not fit the architecture is refused.
    header, arrays = xpnet.serialization.read_file(path)
    arrays["buffer/1/mean"] = np.zeros((4,))
    meta = header["arrays"]["buffer/1/mean"]
    meta["shape"], meta["sha256"] = [4], xpnet.serialization._digest(arrays["buffer/1/mean"])
    blob = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, __header__=blob, **arrays)
    with pytest.raises(ModelFileError, match="buffer/1/mean"):
        xpnet.load(bad)


SQUARE_MODULE = '''
from xpnet.layers import Layer


class Square(Layer):
    """y = x * x; dx = 2 x dy."""

    def forward(self, x, training=False):
        self.x = x
        return x * x

    def backward(self, dy):
        return 2.0 * self.x * dy
'''


def test_loading_a_user_layer_needs_its_module_and_says_so(tmp_path: Path) -> None:
    """A model file holding a user's layer, loaded in fresh processes: without the module
    that defines the layer the error names the type and says to import that module first;
    with it imported, the model loads."""
    (tmp_path / "user_layers.py").write_text(SQUARE_MODULE)
    save = ("import xpnet, user_layers\n"
            "from xpnet.layers import Dense\n"
            "xpnet.Sequential([Dense(3, 2), user_layers.Square()], seed=0).save('square.npz')\n")
    load = ("import sys, xpnet\n"
            "try:\n"
            "    xpnet.load('square.npz')\n"
            "except xpnet.ModelFileError as exc:\n"
            "    print(exc); sys.exit(3)\n")

    def run(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    assert run(save).returncode == 0
    proc = run(load)
    assert proc.returncode == 3, proc.stderr
    message = proc.stdout.strip()
    assert message.startswith("square.npz: layer 1 has unknown type 'Square'")
    assert "import the module that defines it before loading" in message
    proc = run("import user_layers\n" + load + "m = xpnet.load('square.npz')\n"
               "print(type(m.layers[1]).__name__)\n")
    assert proc.returncode == 0 and proc.stdout.strip() == "Square", proc.stderr

