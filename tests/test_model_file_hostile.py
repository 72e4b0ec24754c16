"""Model files from elsewhere: truncated, bit-flipped, tampered, pickled, mis-shaped.

Every hostile file must give a :class:`xpnet.ModelFileError` (a ValueError), never run code,
never crash deep inside, and never half-change a model being loaded into
(:func:`xpnet.serialization.load_weights`). Tampered files are rebuilt with valid zip CRCs
and valid per-array SHA-256 sums, as an attacker would, so that the structural checks and not
only the checksums are exercised.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xpnet
from xpnet.layers import Dense, Dropout, ReLU
from xpnet.losses import SoftmaxCrossEntropy
from xpnet.optim import Adam, StepDecay
from xpnet.serialization import HEADER_KEY, ModelFileError, _digest, load_weights


def _model(seed: int = 0) -> xpnet.Sequential:
    net = xpnet.Sequential([Dense(4, 8), ReLU(), Dropout(0.2), Dense(8, 3)], seed=seed)
    return net.compile(SoftmaxCrossEntropy(), Adam(0.01, schedule=StepDecay(1, 0.5)))


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint written mid-training: weights, Adam state, progress and history."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    path = tmp_path_factory.mktemp("good") / "model.npz"
    _model().fit(X, y, epochs=2, batch_size=8, seed=1, checkpoint=path, every=3)
    return path


def _parts(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(arrays.pop(HEADER_KEY).tobytes())
    return header, arrays


def _write(
    path: Path,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray],
    *,
    fix_meta: bool = True,
    raw: dict[str, bytes] | None = None,
    compress: int = zipfile.ZIP_STORED,
) -> Path:
    """Write an archive like ``save`` does; ``fix_meta`` recomputes shapes/dtypes/SHA-256."""
    header = json.loads(json.dumps(header))
    if fix_meta:
        header["arrays"] = {
            k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a)}
            for k, a in arrays.items()
        }
    members = {HEADER_KEY: np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays}
    with zipfile.ZipFile(path, "w", compression=compress) as zf:
        for name, arr in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arr), allow_pickle=False)
            zf.writestr(name + ".npy", buf.getvalue())
        for name, data in (raw or {}).items():
            zf.writestr(name, data)
    return path


def _weights(net: xpnet.Sequential) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in net.params.items()}


def _assert_refused(path: Path, target: xpnet.Sequential) -> str:
    """``load`` and ``load_weights`` both refuse ``path`` and leave ``target`` untouched."""
    before = _weights(target)
    ids = {k: id(v) for k, v in target.params.items()}
    with pytest.raises(ModelFileError) as info:
        xpnet.load(path)
    with pytest.raises(ModelFileError):
        load_weights(target, path)
    for key, value in target.params.items():
        assert id(value) == ids[key] and np.array_equal(value, before[key]), key
    return str(info.value)


def _same_model(a: xpnet.Sequential, b: xpnet.Sequential) -> bool:
    return a.params.keys() == b.params.keys() and all(
        np.array_equal(a.params[k], b.params[k]) for k in a.params
    )


def test_the_good_file_loads(good: Path) -> None:
    net = xpnet.load(good)
    assert net.progress is not None and net.optimizer is not None and net.optimizer.state
    target = _model(seed=9)
    assert not _same_model(target, net)
    assert load_weights(target, good) is target
    assert _same_model(target, net)


def test_truncated_at_many_cut_points(good: Path, tmp_path: Path) -> None:
    data = good.read_bytes()
    n = len(data)
    cuts = sorted({0, 1, 2, 3, 4, 21, 22, n - 1, n - 21, n - 22, n - 23}
                  | set(range(0, n, max(1, n // 150))))
    target = _model(seed=3)
    for cut in cuts:
        path = tmp_path / "cut.npz"
        path.write_bytes(data[:cut])
        _assert_refused(path, target)
    assert len(cuts) > 150


def test_flipped_bytes_are_caught_or_harmless(good: Path, tmp_path: Path) -> None:
    """One byte inverted at ~300 positions: an error, or (zip time stamps and other slack) a
    model identical to the original; never a different model and never another exception."""
    data = good.read_bytes()
    original = xpnet.load(good)
    positions = sorted(set(range(0, len(data), max(1, len(data) // 300))) | {len(data) - 1})
    refused = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0xFF
        path = tmp_path / "flip.npz"
        path.write_bytes(bytes(bad))
        try:
            net = xpnet.load(path)
        except ModelFileError:
            refused += 1
            continue
        assert _same_model(net, original), pos
    assert refused >= 0.75 * len(positions), (refused, len(positions))  # 89% when written


def test_header_declaring_other_shapes(good: Path, tmp_path: Path) -> None:
    header, arrays = _parts(good)
    header["arrays"]["param/0/W"]["shape"] = [5, 8]
    msg = _assert_refused(_write(tmp_path / "h.npz", header, arrays, fix_meta=False), _model())
    assert "param/0/W" in msg and "header says" in msg


def test_architecture_edited_to_other_sizes(good: Path, tmp_path: Path) -> None:
    header, arrays = _parts(good)
    header["layers"][0]["config"]["out_features"] = 10_000_000  # would allocate 320 MB
    msg = _assert_refused(_write(tmp_path / "a.npz", header, arrays), _model())
    assert "layer 0 (Dense) declares (4, 10000000)" in msg


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda a: a.update({"param/0/W": np.zeros((5, 8), np.float32)}), id="W-shape"),
        pytest.param(lambda a: a.update({"param/3/b": np.zeros((4,), np.float32)}), id="b-shape"),
        pytest.param(lambda a: a.update({"param/0/W": np.zeros((4, 8))}), id="W-float64"),
        pytest.param(lambda a: a.update({"param/0/W": np.zeros((4, 8), np.int32)}), id="W-int"),
        pytest.param(lambda a: a.update({"param/0/W": np.full((4, 8), np.nan, np.float32)}),
                     id="W-nan"),
        pytest.param(lambda a: a.pop("param/3/b"), id="missing-b"),
        pytest.param(lambda a: a.update({"param/1/W": np.zeros((8, 8), np.float32)}),
                     id="param-for-ReLU"),
        pytest.param(lambda a: a.update({"extra": np.zeros(3, np.float32)}), id="stray-array"),
        pytest.param(lambda a: a.update({"optim/0.W/m": np.zeros((3, 3), np.float32)}),
                     id="optim-shape"),
        pytest.param(lambda a: a.update({"optim/0.W/q": np.zeros((4, 8), np.float32)}),
                     id="optim-slot"),
        pytest.param(lambda a: a.update({"optim/0.W": np.zeros((4, 8), np.float32)}),
                     id="optim-key"),
        pytest.param(lambda a: a.update({"optim/9.W/m": np.zeros((4, 8), np.float32)}),
                     id="optim-param"),
        pytest.param(lambda a: a.update({"optim/0.W/v": np.zeros((4, 8), np.float64)}),
                     id="optim-dtype"),
        pytest.param(lambda a: a.pop("optim/0.W/v"), id="optim-incomplete"),
        pytest.param(lambda a: a.update({"param/0/W": np.array(["x"] * 32).reshape(4, 8)}),
                     id="W-strings"),
    ],
)
def test_arrays_that_do_not_fit_the_architecture(
    good: Path, tmp_path: Path, change: Callable[[dict[str, np.ndarray]], object]
) -> None:
    header, arrays = _parts(good)
    change(arrays)
    _assert_refused(_write(tmp_path / "f.npz", header, arrays), _model())


def _edit(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(header: dict[str, Any]) -> None:
        node = header
        *path, last = key.split(".")
        for part in path:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


HEADER_EDITS = {
    "format": _edit("format", "other"),
    "version": _edit("version", 99),
    "dtype": _edit("dtype", "float16"),
    "layers-not-list": _edit("layers", {"a": 1}),
    "layer-not-dict": _edit("layers.0", "Dense"),
    "layer-type-unknown": _edit("layers.0.type", "os.system"),
    "layer-type-list": _edit("layers.0.type", ["Dense"]),
    "layer-Sequential": _edit("layers.1.type", "Sequential"),
    "layer-config-list": _edit("layers.0.config", [4, 8]),
    "layer-config-extra": _edit("layers.1.config", {"evil": 1}),
    "layer-config-bad": _edit("layers.0.config.init", "__import__('os')"),
    "dropout-p": _edit("layers.2.config.p", 7),
    "loss-str": _edit("loss", "SoftmaxCrossEntropy"),
    "loss-unknown": _edit("loss.type", "Evil"),
    "optimizer-list": _edit("optimizer", [1]),
    "optimizer-config": _edit("optimizer.config", {"lr": -1}),
    "optimizer-t": _edit("optimizer.t", -1),
    "optimizer-t-str": _edit("optimizer.t", "7"),
    "schedule-str": _edit("optimizer.schedule", "StepDecay"),
    "schedule-unknown": _edit("optimizer.schedule.type", "Evil"),
    "schedule-config": _edit("optimizer.schedule.config", {"step_size": 0}),
    "seed": _edit("seed", -3),
    "history": _edit("history", [1, 2]),
    "history-values": _edit("history", {"loss": "high"}),
    "progress": _edit("progress", 5),
    "progress-epoch": _edit("progress.epoch", "1"),
    "progress-step-negative": _edit("progress.step", -1),
    "progress-shuffle-state": _edit("progress.shuffle_state", {"bit_generator": "MT19937"}),
    "progress-dropout-states": _edit("progress.dropout_states", []),
    "progress-dropout-state": _edit("progress.dropout_states", [{"state": 1}]),
    "progress-sums": _edit("progress.sums", None),
    "progress-finished": _edit("progress.finished", "no"),
}


@pytest.mark.parametrize("edit", HEADER_EDITS.values(), ids=HEADER_EDITS.keys())
def test_tampered_header(
    good: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None]
) -> None:
    header, arrays = _parts(good)
    edit(header)
    _assert_refused(_write(tmp_path / "t.npz", header, arrays), _model())


def test_header_that_is_not_json_or_nested_too_deep(good: Path, tmp_path: Path) -> None:
    _, arrays = _parts(good)
    for blob in (b"\xff\xfe not json", b"[" * 100_000 + b"]" * 100_000, b"[1, 2]"):
        path = tmp_path / "j.npz"
        with zipfile.ZipFile(path, "w") as zf:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.frombuffer(blob, np.uint8))
            zf.writestr(HEADER_KEY + ".npy", buf.getvalue())
        _assert_refused(path, _model())


class Payload:
    """Unpickling this runs ``Path.touch(marker)``: the proof that code was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickled_object_arrays_are_never_unpickled(good: Path, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    evil = np.array([Payload(marker)], dtype=object)
    buf = io.BytesIO()
    np.save(buf, evil, allow_pickle=True)
    header, arrays = _parts(good)
    del arrays["param/0/W"]
    # W replaced by a pickled object array, under its own name and with a matching header.
    header["arrays"]["param/0/W"] = {"shape": [1], "dtype": "object", "sha256": ""}
    path = _write(tmp_path / "p.npz", header, arrays, fix_meta=False,
                  raw={"param/0/W.npy": buf.getvalue()})
    _assert_refused(path, _model())
    # A bare .npy and a bare pickle are not model files either.
    npy = tmp_path / "bare.npy"
    npy.write_bytes(buf.getvalue())
    _assert_refused(npy, _model())
    pkl = tmp_path / "bare.pkl"
    pkl.write_bytes(pickle.dumps(Payload(marker)))
    _assert_refused(pkl, _model())
    assert not marker.exists()


def test_compressed_members_are_refused(good: Path, tmp_path: Path) -> None:
    """A deflated member could expand to gigabytes from a small file (zip bomb)."""
    header, arrays = _parts(good)
    path = _write(tmp_path / "z.npz", header, arrays, compress=zipfile.ZIP_DEFLATED)
    assert "compressed or encrypted" in _assert_refused(path, _model())


def test_other_architecture_is_refused_by_load_weights(good: Path) -> None:
    other = xpnet.Sequential([Dense(4, 8), ReLU(), Dense(8, 3)], seed=0)
    before = _weights(other)
    with pytest.raises(ModelFileError, match="do not match"):
        load_weights(other, good)
    assert all(np.array_equal(before[k], other.params[k]) for k in before)


def test_bad_path_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="path must be"):
        xpnet.load(3)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        xpnet.load(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="model must be"):
        load_weights("model", tmp_path / "x.npz")
