"""``xpnet export MODEL OUT.onnx``: write a saved model as an ONNX graph (needs xpnet[onnx])."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from .common import FORMATTER, CLIError, positive_int

EXPORT_EPILOG = """\
The graph computes what the model's predict_proba does (softmax or sigmoid appended where
the model was trained on logits), in float32, for any batch size: input "input" of shape
(batch, *input shape), output "output"; --logits adds the raw outputs as "logits". Any
runtime reading ONNX (onnxruntime, TensorRT, a browser through onnxruntime-web) can run it.
Layers of your own need a converter: see xpnet.onnx.register_onnx_converter.

examples:
  xpnet export model.npz model.onnx
  xpnet export model.npz model.onnx --verify      # and compare onnxruntime with xpnet
  xpnet export model.npz model.onnx --logits --opset 13
"""


def add_parser(sub: Any) -> None:
    """The ``export`` subcommand and its options."""
    p = sub.add_parser(
        "export", help="write a saved model as an ONNX file (needs xpnet[onnx])",
        description="Export a saved model to ONNX.",
        epilog=EXPORT_EPILOG, formatter_class=FORMATTER,
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    p.add_argument("out", type=Path, metavar="OUT", help="the ONNX file to write (.onnx)")
    p.add_argument("--opset", type=positive_int, default=17,
                   help="ONNX opset version, 13 or later (default: 17)")
    p.add_argument("--logits", action="store_true",
                   help='also output the last layer\'s raw outputs, as "logits"')
    p.add_argument("--verify", action="store_true",
                   help="run the file with onnxruntime on random inputs and print the largest "
                   "difference from the model's predict_proba")
    p.set_defaults(func=run)


def _onnx_module() -> Any:
    """:mod:`xpnet.onnx` with the onnx package importable, or a one-line error saying what to
    install."""
    from .. import onnx

    try:
        onnx._onnx_module()
    except onnx.OnnxUnavailableError:
        raise CLIError(f"exporting to ONNX needs the onnx package: {onnx.INSTALL_HINT}") \
            from None
    return onnx


def verify(model: Any, path: Path, rows: int = 64) -> float:
    """The largest |difference| between onnxruntime on ``path`` and ``predict_proba``, over
    ``rows`` standard-normal inputs."""
    from ..onnx import INSTALL_HINT

    try:
        import onnxruntime
    except ImportError:
        raise CLIError(f"--verify needs onnxruntime: {INSTALL_HINT}") from None
    shape = [d if d is not None else 8 for d in model.input_shape or ()]
    x = np.random.default_rng(0).standard_normal((rows, *shape)).astype(np.float32)
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(["output"], {"input": x})[0]
    return float(np.max(np.abs(got - model.predict_proba(x))))


def run(args: argparse.Namespace) -> int:
    """``xpnet export``: load, convert, write, and say what was written."""
    from ..serialization import load

    onnx = _onnx_module()  # before loading: a missing package is the first thing to say
    if not args.model.exists():
        raise CLIError(f"model file not found: {args.model}")
    model = load(args.model)
    path = onnx.export(model, args.out, opset=args.opset, logits=args.logits)
    outputs = '"output" (as predict_proba)' + (' and "logits"' if args.logits else "")
    dims = ", ".join("any" if d is None else str(d) for d in model.input_shape or ())
    print(f"wrote {path}: {model.describe()}, input (batch, {dims}) float32 "
          f"-> {outputs}, opset {args.opset}")
    if args.verify:
        print(f"verified with onnxruntime: max |onnx - predict_proba| = "
              f"{verify(model, path):.3g} over 64 random inputs")
    return 0
