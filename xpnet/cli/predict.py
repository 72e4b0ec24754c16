"""``xpnet predict MODEL IMAGE...``: classify images with a saved model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .common import FASHION_CLASSES, FORMATTER, backend_for, load_model

PREDICT_EPILOG = """\
Each PNG (gray, gray+alpha, RGB, RGBA or palette; any bit depth; not interlaced) becomes
what the model was trained on: converted to gray (transparent parts count as white),
resized to 28x28 (area averaging when shrinking, bilinear when enlarging), inverted
when mostly light (MNIST digits are white on black, so dark ink on white paper is
flipped), then scaled to [0, 1] like the training images. Nothing is cropped or
centered: frame the digit like MNIST does, about 20 pixels high in a 28x28 square.
--show prints the 28x28 image the model sees.

examples:
  xpnet predict model.npz seven.png
  xpnet predict model.npz digits/*.png --json
  xpnet predict fashion.npz shoe.png --classes fashion-mnist --show
"""


def add_parser(sub: Any) -> None:
    """The ``predict`` subcommand and its options."""
    p = sub.add_parser(
        "predict", help="classify PNG images with a saved model",
        description="Classify PNG images of digits (or clothes) with a saved model.",
        epilog=PREDICT_EPILOG, formatter_class=FORMATTER,
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="PNG files")
    p.add_argument("--classes", choices=("digits", "fashion-mnist"), default="digits",
                   help="how to name the 10 classes (default: digits)")
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="numpy",
                   help="where to compute (default: numpy)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--show", action="store_true",
                   help="also print the 28x28 image the model sees, as text")
    p.set_defaults(func=run)


def _ascii(digit: np.ndarray) -> str:
    ramp = " .:-=+*#%@"
    img = digit.reshape(28, 28)
    return "\n".join("".join(ramp[int(v) * (len(ramp) - 1) // 255] * 2 for v in row)
                     for row in img)


def run(args: argparse.Namespace) -> int:
    from ..datasets import preprocess
    from ..png import digit_from_png

    backend = backend_for(args.backend, None)
    model = load_model(args.model, backend)
    digits = np.stack([digit_from_png(path) for path in args.images])
    proba = model.predict_proba(preprocess(digits)).astype(np.float64)
    is_proba = bool(np.all(proba >= 0) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-3))
    kind = "probabilities" if is_proba else "outputs"
    names = list(FASHION_CLASSES) if args.classes == "fashion-mnist" else [
        str(i) for i in range(10)
    ]
    results = []
    for path, p, digit in zip(args.images, proba, digits, strict=True):
        k = int(np.argmax(p))
        results.append({"image": str(path), "class": k, "label": names[k],
                        kind: [float(v) for v in p]})
        if args.json:
            continue
        label = f"{k} ({names[k]})" if args.classes != "digits" else str(k)
        print(f"{path}: {label}  {'p' if is_proba else 'output'} {p[k]:.4f}")
        print("  " + kind + ": " + "  ".join(f"{i}:{v:.3f}" for i, v in enumerate(p)))
        if args.show:
            print(_ascii(digit))
    if args.json:
        print(json.dumps({"model": str(args.model), "predictions": results}))
    return 0
