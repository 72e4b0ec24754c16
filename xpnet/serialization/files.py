"""The model file: one ``.npz`` with a JSON header, no pickle, written atomically, verified on read.

Layout of the file (a zip archive NumPy can read with ``allow_pickle=False``):

* ``__header__``: UTF-8 JSON as a uint8 array: format and version, the model type, dtype, the
  layer types and their constructor arguments, the loss, the optimizer (config, schedule, step
  and epoch), the training progress and history, and for every array its shape, dtype and
  SHA-256;
* ``param/<i>/<name>``: layer ``i``'s parameter (e.g. ``param/0/W``);
* ``buffer/<i>/<name>``: layer ``i``'s non-trained state (e.g. running statistics);
* ``optim/<param>/<slot>``: optimizer state (e.g. ``optim/0.W/m``).
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

FORMAT = "xpnet-model"
VERSION = 1
HEADER_KEY = "__header__"


class ModelFileError(ValueError):
    """A model file is unreadable, corrupt, truncated, tampered with, or not an xpnet model."""


def digest(arr: np.ndarray) -> str:
    """The SHA-256 of an array's bytes (C order), as the header records it."""
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
        "model": type(model).__name__,
        "dtype": be.dtype_name,
        "saved_from": be.name,
        "seed": model.seed,
        "layers": model.config()["layers"],
        "loss": None if loss is None else {"type": type(loss).__name__, "config": loss.config()},
        "optimizer": opt_header,
        "progress": model.progress,
        "history": model.history.to_dict(),
        "arrays": {
            k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": digest(a)}
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


def model_path(path: Any) -> Path:
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
    path = model_path(path)
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
        if digest(arr) != info.get("sha256"):
            raise ModelFileError(f"{path}: array {key!r} fails its SHA-256 check (file altered)")
    return header, arrays
