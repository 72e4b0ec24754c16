"""Rebuilding a saved model, checked piece by piece: layers, arrays, loss, optimizer, progress.

Loading never executes code: layers, losses, optimizers and models are rebuilt only from
xpnet's registries (a class is registered when it is defined, so a user's own layer loads once
its module is imported), and every array is checked (present, shape, dtype, checksum, finite)
before a model is built, so a corrupt, truncated or tampered file gives a
:class:`ModelFileError` and nothing else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backends import Array, Backend
from ..layers.base import LAYER_TYPES, Layer
from ..losses.base import LOSS_TYPES, Loss
from ..optim.base import OPTIMIZER_TYPES, Optimizer
from ..optim.schedules import schedule_from_config
from .files import ModelFileError, model_path, read_file

#: model class name -> class with ``from_parts(ModelParts)`` (``Sequential`` registers itself)
MODEL_TYPES: dict[str, Any] = {}


def register_model(cls: Any) -> Any:
    """Make ``cls`` (with a ``from_parts`` classmethod) loadable by its class name."""
    MODEL_TYPES[cls.__name__] = cls
    return cls


@dataclass
class ModelParts:
    """Everything a verified file describes, rebuilt on NumPy, before a model holds it."""

    dtype: str
    layers: list[Layer]
    arrays: dict[str, np.ndarray]
    loss: Loss | None = None
    optimizer: Optimizer | None = None
    seed: int | None = None
    progress: dict[str, Any] | None = None
    history: dict[str, list[float]] = field(default_factory=dict)


def load(path: str | os.PathLike[str], backend: Any = "numpy", dtype: str | None = None) -> Any:
    """Rebuild a saved model on ``backend`` (default NumPy) in ``dtype`` (default: as saved,
    or the dtype of a :class:`~xpnet.backends.Backend` passed as ``backend``).

    Architecture, weights, buffers, loss, optimizer state, training progress and history are
    restored; a model saved from CuPy loads on NumPy and the other way round. Everything in the
    file is checked before the model is built; any fault is a :class:`ModelFileError`.
    """
    path = model_path(path)
    header, arrays = read_file(path)
    model = build(path, header, arrays)
    if dtype is None and not isinstance(backend, Backend):
        dtype = model.backend.dtype_name
    return model.to(backend, dtype)


def load_weights(model: Any, path: str | os.PathLike[str]) -> Any:
    """Copy the weights (and buffers: running statistics) saved at ``path`` into ``model``
    (same layer types and shapes).

    All or nothing: the file is read and verified, and every array converted to the model's
    backend and dtype, before the first weight is overwritten (in place); a bad file or an
    architecture that does not match leaves ``model`` untouched. Returns ``model``.
    """
    if not any(isinstance(model, cls) for cls in MODEL_TYPES.values()):
        raise TypeError(f"model must be an xpnet Sequential, got {model!r}")
    path = model_path(path)
    header, arrays = read_file(path)
    saved = build(path, header, arrays)

    def shapes(m: Any) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
        return [
            (type(lay).__name__, {k: tuple(v.shape) for k, v in _arrays(lay).items()})
            for lay in m.layers
        ]

    if shapes(saved) != shapes(model):
        raise ModelFileError(
            f"{path}: the saved layers {shapes(saved)} do not match the model's {shapes(model)}"
        )
    be = model.backend
    staged = [
        (target, be.asarray(_arrays(saved.layers[i])[key], dtype=be.dtype))
        for i, layer in enumerate(model.layers)
        for key, target in _arrays(layer).items()
    ]
    for target, value in staged:
        target[...] = value
    return model


def _arrays(layer: Layer) -> dict[str, Array]:
    """A layer's parameters and buffers (``buffer/`` keys prefixed: names may coincide)."""
    return {**layer.params, **{f"buffer/{k}": v for k, v in layer.buffers.items()}}


def build(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """A NumPy model from a verified file; a :class:`ModelFileError` on any inconsistency."""
    kind = header.get("model", "Sequential")  # files from before the field existed
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        raise ModelFileError(f"{path}: unknown model type {kind!r:.100}")
    saved_dtype = header.get("dtype")
    if saved_dtype not in ("float32", "float64"):
        raise ModelFileError(f"{path}: unsupported dtype {saved_dtype!r:.100}")
    layers = _layers(path, header.get("layers"), arrays)
    expected = _check_layer_arrays(path, layers, arrays, saved_dtype)
    parts = ModelParts(dtype=saved_dtype, layers=layers, arrays=arrays)
    parts.loss = _loss(path, header.get("loss"))
    parts.optimizer = _optimizer(path, header.get("optimizer"), arrays, expected, saved_dtype)
    seed = header.get("seed")
    if seed is not None and not _is_int(seed):
        raise ModelFileError(f"{path}: bad seed {seed!r:.100}")
    parts.seed = seed
    _check_progress(path, header.get("progress"), sum(1 for lay in layers if lay.stochastic))
    parts.progress = header.get("progress")
    hist = header.get("history") or {}
    if not isinstance(hist, dict) or not all(
        isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in hist.values()
    ):
        raise ModelFileError(f"{path}: bad training history")
    parts.history = hist
    return MODEL_TYPES[kind].from_parts(parts)


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


def _unknown(path: Path, what: str, kind: str) -> ModelFileError:
    return ModelFileError(
        f"{path}: {what} has unknown type {kind!r:.100}; if it is a class of your own, import "
        "the module that defines it before loading (xpnet registers a class when it is defined)"
    )


def _layers(path: Path, specs: Any, arrays: dict[str, np.ndarray]) -> list[Layer]:
    """The layers the header describes, each checked against its stored weights before it
    allocates any (``Layer.param_shapes_for``)."""
    if not isinstance(specs, list):
        raise ModelFileError(f"{path}: the header holds no list of layers")
    layers = []
    for i, spec in enumerate(specs):
        kind, config = _spec(path, spec, f"layer {i}")
        cls = LAYER_TYPES.get(kind)
        if cls is None or kind in MODEL_TYPES:
            raise _unknown(path, f"layer {i}", kind)
        try:
            need = {f"param/{i}/{k}": v for k, v in (cls.param_shapes_for(config) or {}).items()}
            bufs = cls.buffer_shapes_for(config) or {}
            need.update({f"buffer/{i}/{k}": v for k, v in bufs.items()})
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad description of layer {i} ({exc})") from None
        for name, shape in need.items():
            stored, key = arrays.get(name), name.rsplit("/", 1)[1]
            if stored is None or tuple(stored.shape) != tuple(shape):
                raise ModelFileError(
                    f"{path}: layer {i} ({kind}) declares {tuple(shape)!r:.100} for {key} but the "
                    f"file holds {key} {None if stored is None else stored.shape}"
                )
        try:
            layers.append(cls(**config))
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path}: bad description of layer {i} ({exc})") from None
    return layers


def _check_layer_arrays(
    path: Path, layers: list[Layer], arrays: dict[str, np.ndarray], dtype: str
) -> dict[str, tuple[int, ...]]:
    """Every parameter and buffer array present with the architecture's shape and dtype, and
    nothing else; returns the parameter shapes by array name."""
    expected: dict[str, tuple[int, ...]] = {}
    buffers: dict[str, tuple[int, ...]] = {}
    for i, layer in enumerate(layers):
        expected.update({f"param/{i}/{k}": tuple(v.shape) for k, v in layer.params.items()})
        buffers.update({f"buffer/{i}/{k}": tuple(v.shape) for k, v in layer.buffers.items()})
    for prefix, what, need in (("param/", "parameters", expected), ("buffer/", "buffers", buffers)):
        got = sorted(k for k in arrays if k.startswith(prefix))
        if set(got) != set(need):
            raise ModelFileError(
                f"{path}: {what} {got} do not fit the architecture, which needs {sorted(need)}"
            )
    strays = sorted(k for k in arrays if not k.startswith(("param/", "buffer/", "optim/")))
    if strays:
        raise ModelFileError(f"{path}: unexpected arrays {strays}")
    for key, shape in {**expected, **buffers}.items():
        check_array(path, key, arrays[key], shape, dtype)
    return expected


def _loss(path: Path, spec: Any) -> Loss | None:
    if spec is None:
        return None
    kind, config = _spec(path, spec, "loss")
    if kind not in LOSS_TYPES:
        raise _unknown(path, "the loss", kind)
    try:
        return LOSS_TYPES[kind](**config)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: bad loss description ({exc})") from None


def _optimizer(
    path: Path, spec: Any, arrays: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]],
    dtype: str,
) -> Optimizer | None:
    """The optimizer with its step, epoch and state arrays (each fitting a parameter)."""
    if spec is None:
        return None
    kind, config = _spec(path, spec, "optimizer")
    if kind not in OPTIMIZER_TYPES:
        raise _unknown(path, "the optimizer", kind)
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
        check_array(path, key, arr, expected[pkey], dtype)
        opt.state.setdefault(parts[1], {})[parts[2]] = arr.copy()
    if opt.state:
        names = {k[len("param/") :].replace("/", ".", 1) for k in expected}
        if not all(set(opt.state.get(nm, {})) == set(opt.slots) for nm in names):
            raise ModelFileError(f"{path}: optimizer state is incomplete")
    return opt


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


def check_array(path: Path, key: str, arr: np.ndarray, shape: Any, dtype: str) -> None:
    """``arr`` has the architecture's ``shape`` and the file's ``dtype``, and is finite."""
    if tuple(arr.shape) != tuple(shape):
        raise ModelFileError(f"{path}: {key} has shape {arr.shape}, the architecture needs {shape}")
    if arr.dtype != np.dtype(dtype):
        raise ModelFileError(f"{path}: {key} has dtype {arr.dtype}, expected {dtype}")
    if not np.isfinite(arr).all():
        raise ModelFileError(f"{path}: {key} contains NaN or infinity")
