"""Save and load models: one ``.npz`` file with a JSON header, no pickle, written atomically.

Layout of the file (a zip archive NumPy can read with ``allow_pickle=False``):

* ``__header__``: UTF-8 JSON as a uint8 array: format and version, dtype, the layer types and
  their constructor arguments, the loss, the optimizer (config, schedule, step and epoch), the
  training progress and history, and for every array its shape, dtype and SHA-256;
* ``param/<i>/<name>``: layer ``i``'s parameter (e.g. ``param/0/W``);
* ``buffer/<i>/<name>``: layer ``i``'s non-trained state (e.g. running statistics);
* ``optim/<param>/<slot>``: optimizer state (e.g. ``optim/0.W/m``).

Loading never executes code: layers, losses and optimizers are rebuilt only from xpnet's own
registries, and every array is checked (present, shape, dtype, checksum) before a model is
built, so a corrupt, truncated or tampered file gives a :class:`ModelFileError` and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .backend import Backend
from .layers.base import LAYER_TYPES
from .losses.base import LOSS_TYPES
from .optim.base import OPTIMIZER_TYPES
from .optim.schedules import schedule_from_config

FORMAT = "xpnet-model"
VERSION = 1
HEADER_KEY = "__header__"


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, truncated, tampered with, or not an xpnet model."""


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save(model: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``model`` to ``path`` atomically: a temporary file in the same folder, then rename.

    A crash or a kill mid-write leaves any earlier file at ``path`` intact.
    """
    path = Path(path)
    be = model.backend
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        for key, value in layer.params.items():
            arrays[f"param/{i}/{key}"] = be.to_host(value)
        for key, value in layer.buffers.items():
            arrays[f"buffer/{i}/{key}"] = be.to_host(value)
    opt = model.optimizer
    opt_header = None
    if opt is not None:
        for pname, slots in opt.state.items():
            for slot, value in slots.items():
                arrays[f"optim/{pname}/{slot}"] = be.to_host(value)
        opt_header = {
            "type": type(opt).__name__,
            "config": opt.config(),
            "schedule": {"type": type(opt.schedule).__name__, "config": opt.schedule.config()},
            "t": opt.t,
            "epoch": opt.epoch,
        }
    loss = model.loss
    header = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": be.dtype_name,
        "saved_from": be.name,
        "seed": model.seed,
        "layers": model.config()["layers"],
        "loss": None if loss is None else {"type": type(loss).__name__, "config": loss.config()},
        "optimizer": opt_header,
        "progress": model.progress,
        "history": model.history.to_dict(),
        "arrays": {
            k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a)}
            for k, a in arrays.items()
        },
    }
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{HEADER_KEY: blob}, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename durable (POSIX); harmless where directories can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _model_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
    return Path(path)


def _check_archive(path: Path) -> None:
    """Refuse anything but the plain zip archive ``save`` writes, before NumPy parses it.

    Not a zip (e.g. a bare ``.npy``, which ``np.load`` would read as an array), compressed or
    encrypted members (a small file must not expand into gigabytes), or members claiming more
    bytes than the file holds: all :class:`ModelFileError`.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ModelFileError(f"{path}: not an xpnet model file (not a zip archive)")
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                raise ModelFileError(
                    f"{path}: member {info.filename!r} is compressed or encrypted; xpnet "
                    "writes plain stored members"
                )
            if info.file_size > size:
                raise ModelFileError(
                    f"{path}: member {info.filename!r} claims {info.file_size} bytes, more "
                    f"than the whole file ({size})"
                )


def read_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a model file: the header and every array, checksums included."""
    path = _model_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        _check_archive(path)
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if HEADER_KEY not in names:
                raise ModelFileError(f"{path}: not an xpnet model file (no {HEADER_KEY} entry)")
            raw = npz[HEADER_KEY]
            arrays = {k: npz[k] for k in names if k != HEADER_KEY}
    except ModelFileError:
        raise
    except Exception as exc:  # whatever a damaged archive makes zipfile/NumPy raise
        raise ModelFileError(
            f"{path}: corrupt or truncated model file ({type(exc).__name__}: {exc})"
        ) from None
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("header is not a byte string")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: unreadable header ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an xpnet model file")
    if header.get("version") != VERSION:
        raise ModelFileError(
            f"{path}: model format version {header.get('version')!r}; this xpnet reads {VERSION}"
        )
    meta = header.get("arrays")
    if not isinstance(meta, dict) or set(meta) != set(arrays):
        missing = sorted(set(meta or {}) - set(arrays))
        extra = sorted(set(arrays) - set(meta or {}))
        raise ModelFileError(
            f"{path}: array list does not match header (missing {missing}, extra {extra})"
        )
    for key, arr in arrays.items():
        info = meta[key]
        if not isinstance(info, dict):
            raise ModelFileError(f"{path}: bad header entry for array {key!r}")
        if list(arr.shape) != info.get("shape") or str(arr.dtype) != info.get("dtype"):
            raise ModelFileError(
                f"{path}: array {key!r} is {arr.dtype}{list(arr.shape)}, header says "
                f"{info.get('dtype')}{info.get('shape')}"
            )
        if _digest(arr) != info.get("sha256"):
            raise ModelFileError(f"{path}: array {key!r} fails its SHA-256 check (file altered)")
    return header, arrays


def load(path: str | os.PathLike[str], backend: Any = "numpy", dtype: str | None = None) -> Any:
    """Rebuild a saved model on ``backend`` (default NumPy) in ``dtype`` (default: as saved,
    or the dtype of a :class:`~xpnet.backend.Backend` passed as ``backend``).

    Architecture, weights, loss, optimizer state, training progress and history are restored;
    a model saved from CuPy loads on NumPy and the other way round. Everything in the file is
    checked before the model is built; any fault is a :class:`ModelFileError`.
    """
    path = _model_path(path)
    header, arrays = read_file(path)
    model = _build(path, header, arrays)
    if dtype is None and not isinstance(backend, Backend):
        dtype = model.backend.dtype_name
    return model.to(backend, dtype)


def load_weights(model: Any, path: str | os.PathLike[str]) -> Any:
    """Copy the weights saved at ``path`` into ``model`` (same layer types and shapes).

    All or nothing: the file is read and verified, and every array converted to the model's
    backend and dtype, before the first weight is overwritten (in place); a bad file or an
    architecture that does not match leaves ``model`` untouched. Returns ``model``.
    """
    from .model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an xpnet Sequential, got {model!r}")
    path = _model_path(path)
    header, arrays = read_file(path)
    saved = _build(path, header, arrays)

    def shapes(m: Any) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
        return [
            (type(lay).__name__, {k: tuple(v.shape) for k, v in lay.params.items()})
            for lay in m.layers
        ]

    if shapes(saved) != shapes(model):
        raise ModelFileError(
            f"{path}: the saved layers {shapes(saved)} do not match the model's {shapes(model)}"
        )
    be = model.backend
    staged = [
        (layer.params[key], be.asarray(saved.layers[i].params[key], dtype=be.dtype))
        for i, layer in enumerate(model.layers)
        for key in layer.params
    ]
    for target, value in staged:
        target[...] = value
    return model


def _is_int(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _spec(path: Path, spec: Any, what: str) -> tuple[str, dict[str, Any]]:
    """``{"type": name, "config": {...}}`` from the header, checked."""
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise ModelFileError(f"{path}: bad {what} description {spec!r:.200}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise ModelFileError(f"{path}: bad {what} config {config!r:.200}")
    return spec["type"], config


def _check_generator_state(path: Path, state: Any, what: str) -> None:
    try:
        np.random.PCG64().state = state
    except Exception as exc:
        raise ModelFileError(f"{path}: bad {what} ({type(exc).__name__}: {exc})") from None


def _check_progress(path: Path, prog: Any, n_stochastic: int) -> None:
    """The training progress ``fit(resume=True)`` trusts: present keys of the right types."""
    if prog is None:
        return
    if not isinstance(prog, dict):
        raise ModelFileError(f"{path}: bad training progress {prog!r:.200}")
    ints = {"epoch": 0, "step": 0, "epochs": 1, "n_samples": 1, "batch_size": 1}
    for key, low in ints.items():
        if not _is_int(prog.get(key), low):
            raise ModelFileError(f"{path}: training progress has bad {key!r}: {prog.get(key)!r}")
    for key in ("shuffle", "finished"):
        if not isinstance(prog.get(key), bool):
            raise ModelFileError(f"{path}: training progress has bad {key!r}: {prog.get(key)!r}")
    if prog.get("seed") is not None and not _is_int(prog.get("seed")):
        raise ModelFileError(f"{path}: training progress has bad 'seed': {prog.get('seed')!r}")
    if not _is_int(prog.get("skipped", 0)):
        raise ModelFileError(f"{path}: training progress has bad 'skipped'")
    sums = prog.get("sums")
    if (
        not isinstance(sums, dict)
        or not all(isinstance(sums.get(k), (int, float)) for k in ("loss", "acc"))
        or not _is_int(sums.get("seen"))
    ):
        raise ModelFileError(f"{path}: training progress has bad 'sums': {sums!r:.200}")
    _check_generator_state(path, prog.get("shuffle_state"), "shuffle generator state")
    states = prog.get("dropout_states")
    if not isinstance(states, list) or len(states) != n_stochastic:
        raise ModelFileError(
            f"{path}: training progress needs {n_stochastic} dropout generator state(s), got "
            f"{states!r:.200}"
        )
    for state in states:
        if state is not None:
            _check_generator_state(path, state, "dropout generator state")


def _build(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """A NumPy model from a verified file; a :class:`ModelFileError` on any inconsistency."""
    from .model import History, Sequential

    saved_dtype = header.get("dtype")
    if saved_dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: unsupported dtype {saved_dtype!r:.100}")
    specs = header.get("layers")
    if not isinstance(specs, list):
        raise ModelFileError(f"{path}: the header holds no list of layers")
    layers = []
    for i, spec in enumerate(specs):
        kind, config = _spec(path, spec, f"layer {i}")
        if kind not in LAYER_TYPES or kind == "Sequential":
            raise ModelFileError(f"{path}: layer {i} has unknown type {kind!r:.100}")
        if kind == "Dense":
            # Check the sizes against the stored weights before the layer allocates them.
            need = (config.get("in_features"), config.get("out_features"))
            w = arrays.get(f"param/{i}/W")
            if not all(_is_int(v, 1) for v in need) or w is None or w.shape != need:
                raise ModelFileError(
                    f"{path}: layer {i} (Dense) declares {need!r:.100} but the file holds "
                    f"W {None if w is None else w.shape}"
                )
        try:
            layers.append(LAYER_TYPES[kind](**config))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad description of layer {i} ({exc})") from None
    # Check every parameter against the architecture before any is assigned.
    expected = {}
    for i, layer in enumerate(layers):
        for key, value in layer.params.items():
            expected[f"param/{i}/{key}"] = tuple(value.shape)
    got = {k: tuple(a.shape) for k, a in arrays.items() if k.startswith("param/")}
    if set(got) != set(expected):
        raise ModelFileError(
            f"{path}: parameters {sorted(got)} do not fit the architecture, which needs "
            f"{sorted(expected)}"
        )
    buffers = {
        f"buffer/{i}/{key}": tuple(value.shape)
        for i, layer in enumerate(layers)
        for key, value in layer.buffers.items()
    }
    got = {k: tuple(a.shape) for k, a in arrays.items() if k.startswith("buffer/")}
    if set(got) != set(buffers):
        raise ModelFileError(
            f"{path}: buffers {sorted(got)} do not fit the architecture, which needs "
            f"{sorted(buffers)}"
        )
    strays = sorted(k for k in arrays if not k.startswith(("param/", "buffer/", "optim/")))
    if strays:
        raise ModelFileError(f"{path}: unexpected arrays {strays}")
    for key, shape in {**expected, **buffers}.items():
        _check_array(path, key, arrays[key], shape, saved_dtype)
    loss = None
    if header.get("loss") is not None:
        kind, config = _spec(path, header["loss"], "loss")
        if kind not in LOSS_TYPES:
            raise ModelFileError(f"{path}: unknown loss {kind!r:.100}")
        try:
            loss = LOSS_TYPES[kind](**config)
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad loss description ({exc})") from None
    opt = None
    if header.get("optimizer") is not None:
        spec = header["optimizer"]
        kind, config = _spec(path, spec, "optimizer")
        if kind not in OPTIMIZER_TYPES:
            raise ModelFileError(f"{path}: unknown optimizer {kind!r:.100}")
        sched = spec.get("schedule")
        if sched is not None:
            _spec(path, sched, "learning-rate schedule")
        t, epoch = spec.get("t", 0), spec.get("epoch", 0)
        if not _is_int(t) or not _is_int(epoch):
            raise ModelFileError(f"{path}: bad optimizer step {t!r:.50} or epoch {epoch!r:.50}")
        try:
            opt = OPTIMIZER_TYPES[kind](**config, schedule=schedule_from_config(sched))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad optimizer description ({exc})") from None
        opt.t, opt.epoch = t, epoch
        for key, arr in arrays.items():
            if not key.startswith("optim/"):
                continue
            parts = key.split("/")
            pkey = "param/" + parts[1].replace(".", "/", 1) if len(parts) == 3 else ""
            if pkey not in expected or parts[2] not in opt.slots:
                raise ModelFileError(f"{path}: optimizer state {key!r} fits no parameter")
            _check_array(path, key, arr, expected[pkey], saved_dtype)
            opt.state.setdefault(parts[1], {})[parts[2]] = arr.copy()
        if opt.state:
            names = {k[len("param/") :].replace("/", ".", 1) for k in expected}
            whole = all(set(opt.state.get(nm, {})) == set(opt.slots) for nm in names)
            if not whole:
                raise ModelFileError(f"{path}: optimizer state is incomplete")
    seed = header.get("seed")
    if seed is not None and not _is_int(seed):
        raise ModelFileError(f"{path}: bad seed {seed!r:.100}")
    _check_progress(path, header.get("progress"), sum(1 for lay in layers if lay.stochastic))
    hist = header.get("history") or {}
    if not isinstance(hist, dict) or not all(
        isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in hist.values()
    ):
        raise ModelFileError(f"{path}: bad training history")
    model = Sequential(layers, backend="numpy", dtype=saved_dtype)
    for i, layer in enumerate(model.layers):
        for key in layer.params:
            layer.params[key] = arrays[f"param/{i}/{key}"].copy()
        for key in layer.buffers:
            layer.buffers[key] = arrays[f"buffer/{i}/{key}"].copy()
    model.seed = seed
    if loss is not None:
        model.compile(loss, opt)
    model.progress = header.get("progress")
    model.history = History(hist)
    return model


def _check_array(path: Path, key: str, arr: np.ndarray, shape: Any, dtype: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise ModelFileError(f"{path}: {key} has shape {arr.shape}, the architecture needs {shape}")
    if arr.dtype != np.dtype(dtype):
        raise ModelFileError(f"{path}: {key} has dtype {arr.dtype}, expected {dtype}")
    if not np.isfinite(arr).all():
        raise ModelFileError(f"{path}: {key} contains NaN or infinity")
