"""Save and load models: one ``.npz`` file with a JSON header, no pickle, written atomically.

Layout of the file (a zip archive NumPy can read with ``allow_pickle=False``):

* ``__header__``: UTF-8 JSON as a uint8 array: format and version, dtype, the layer types and
  their constructor arguments, the loss, the optimizer (config, schedule, step and epoch), the
  training progress and history, and for every array its shape, dtype and SHA-256;
* ``param/<i>/<name>``: layer ``i``'s parameter (e.g. ``param/0/W``);
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


def read_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a model file: the header and every array, checksums included."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {str(path)!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = list(npz.files)
            if HEADER_KEY not in names:
                raise ModelFileError(f"{path}: not an xpnet model file (no {HEADER_KEY} entry)")
            raw = npz[HEADER_KEY]
            arrays = {k: npz[k] for k in names if k != HEADER_KEY}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, zlib_error()) as exc:
        raise ModelFileError(f"{path}: corrupt or truncated model file ({exc})") from None
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("header is not a byte string")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
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


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def load(path: str | os.PathLike[str], backend: Any = "numpy", dtype: str | None = None) -> Any:
    """Rebuild a saved model on ``backend`` (default NumPy) in ``dtype`` (default: as saved).

    Architecture, weights, loss, optimizer state, training progress and history are restored;
    a model saved from CuPy loads on NumPy and the other way round.
    """
    from .model import History, Sequential

    path = Path(path)
    header, arrays = read_file(path)
    saved_dtype = header.get("dtype")
    if saved_dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: unsupported dtype {saved_dtype!r}")
    layers = []
    try:
        for i, spec in enumerate(header["layers"]):
            kind = spec["type"]
            if kind not in LAYER_TYPES or kind == "Sequential":
                raise ModelFileError(f"{path}: layer {i} has unknown type {kind!r}")
            layers.append(LAYER_TYPES[kind](**spec["config"]))
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad layer description ({exc})") from None
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
    for key, shape in expected.items():
        if got[key] != shape:
            raise ModelFileError(
                f"{path}: {key} has shape {got[key]}, the architecture needs {shape}"
            )
        if arrays[key].dtype != np.dtype(saved_dtype):
            raise ModelFileError(
                f"{path}: {key} has dtype {arrays[key].dtype}, expected {saved_dtype}"
            )
        if not np.isfinite(arrays[key]).all():
            raise ModelFileError(f"{path}: {key} contains NaN or infinity")
    loss = None
    if header.get("loss") is not None:
        spec = header["loss"]
        if spec.get("type") not in LOSS_TYPES:
            raise ModelFileError(f"{path}: unknown loss {spec.get('type')!r}")
        try:
            loss = LOSS_TYPES[spec["type"]](**spec.get("config", {}))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad loss description ({exc})") from None
    opt = None
    if header.get("optimizer") is not None:
        spec = header["optimizer"]
        if spec.get("type") not in OPTIMIZER_TYPES:
            raise ModelFileError(f"{path}: unknown optimizer {spec.get('type')!r}")
        try:
            opt = OPTIMIZER_TYPES[spec["type"]](
                **spec["config"], schedule=schedule_from_config(spec.get("schedule"))
            )
            opt.t = int(spec.get("t", 0))
            opt.epoch = int(spec.get("epoch", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad optimizer description ({exc})") from None
        for key, arr in arrays.items():
            if not key.startswith("optim/"):
                continue
            _, pname, slot = key.split("/", 2)
            pkey = "param/" + pname.replace(".", "/", 1)
            if pkey not in expected or tuple(arr.shape) != expected[pkey] or slot not in opt.slots:
                raise ModelFileError(f"{path}: optimizer state {key!r} fits no parameter")
            opt.state.setdefault(pname, {})[slot] = arr.astype(saved_dtype, copy=True)
    model = Sequential(layers, backend="numpy", dtype=saved_dtype)
    for i, layer in enumerate(model.layers):
        for key in layer.params:
            layer.params[key] = arrays[f"param/{i}/{key}"].copy()
    model.seed = header.get("seed")
    if loss is not None:
        model.compile(loss, opt)
    model.progress = header.get("progress")
    try:
        model.history = History(header.get("history") or {})
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad history ({exc})") from None
    return model.to(backend, dtype)
