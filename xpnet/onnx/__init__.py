"""Export xpnet models to ONNX: ``xpnet.onnx.export(model, "model.onnx")``.

The exported graph computes what :meth:`xpnet.Sequential.predict_proba` returns (softmax or
sigmoid appended where the loss applies one), in float32, for any batch size: input
``"input"`` (batch, *input_shape), output ``"output"``, and ``"logits"`` (the last layer's
outputs) with ``logits=True``. Each layer type has a converter emitting standard ONNX nodes
(:mod:`xpnet.onnx.converters`); add one for your own layer with
:func:`register_onnx_converter`.

Needs the ``onnx`` package (``pip install "xpnet[onnx]"``, which brings ``onnxruntime`` to run
the files) only to build the file: ``import xpnet.onnx`` and registering converters work
without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import converters  # noqa: F401  (registers the built-in converters)
from .registry import (
    DEFAULT_OPSET,
    INSTALL_HINT,
    ONNX_CONVERTERS,
    Graph,
    OnnxExportError,
    OnnxUnavailableError,
    register_onnx_converter,
)

__all__ = [
    "ONNX_CONVERTERS",
    "Graph",
    "OnnxExportError",
    "OnnxUnavailableError",
    "export",
    "layers_to_onnx",
    "register_onnx_converter",
    "to_onnx",
]


def _onnx_module() -> Any:
    """The module that imports onnx, imported on first use (a clear error without it)."""
    try:
        from . import _proto
    except OnnxUnavailableError:
        raise
    except ImportError as exc:  # e.g. onnx present but broken
        raise OnnxUnavailableError(f"ONNX export needs the onnx package: {INSTALL_HINT} "
                                   f"({exc})") from exc
    return _proto


def to_onnx(
    model: Any, *, input_shape: tuple[int | None, ...] | None = None, opset: int = DEFAULT_OPSET,
    logits: bool = False,
) -> Any:
    """``model`` (an :class:`xpnet.Sequential`) as a checked ``onnx.ModelProto``.

    ``input_shape``: the per-sample input shape, needed only when the model does not say
    (its first layers take any shape); None dimensions become symbolic. Shapes: input
    (batch, *input_shape) float32 -> output like ``predict_proba``'s, float32.
    """
    from ..model import Sequential

    if not isinstance(model, Sequential):
        raise TypeError(f"model must be an xpnet Sequential, got {type(model).__name__}")
    shape = input_shape if input_shape is not None else model.input_shape
    if shape is None:
        raise ValueError(
            "the model does not say its input shape (its first layers take any shape): pass "
            "input_shape=(features,) or the per-sample shape, e.g. input_shape=(1, 28, 28)"
        )
    return layers_to_onnx(model.layers, tuple(shape), loss=model.loss, opset=opset,
                          logits=logits, doc=model.describe())


def layers_to_onnx(layers: list[Any], input_shape: tuple[int | None, ...], **options: Any) -> Any:
    """Like :func:`to_onnx` for a bare list of layers (``loss=`` adds its probabilities)."""
    return _onnx_module().layers_to_onnx(layers, input_shape, **options)


def export(model: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """Write ``model`` as an ONNX file at ``path`` (options of :func:`to_onnx`); the path."""
    proto = to_onnx(model, **options)
    path = Path(path)
    path.write_bytes(proto.SerializeToString())
    return path
