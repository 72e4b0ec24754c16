"""``xpnet predict MODEL IMAGE...``: classify images with a saved model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from .common import FASHION_CLASSES, FORMATTER, backend_for, load_model

PREDICT_EPILOG = """\
Reads PNG, JPEG, BMP, GIF (first frame), TIFF, WebP... in any mode and size, through
Pillow (pip install "xpnet[images]"), and makes each image what the model was trained
on, the way MNIST was made: gray (transparent parts show white, or black behind light
ink), inverted when the background (the border) is light, so the ink is white on black,
contrast stretched, the digit scaled to 20 pixels on its longer side and centred by its
centre of mass in a 28x28 square, then scaled to [0, 1] like the training images.
--show prints the 28x28 image the model sees.

examples:
  xpnet predict model.npz seven.png
  xpnet predict model.npz digits/*.png --json
  xpnet predict fashion.npz shoe.png --classes fashion-mnist --show
"""


def add_parser(sub: Any) -> None:
    """The ``predict`` subcommand and its options."""
    p = sub.add_parser(
        "predict", help="classify images (PNG, JPEG...) with a saved model",
        description="Classify images of digits (or clothes) with a saved model.",
        epilog=PREDICT_EPILOG, formatter_class=FORMATTER,
    )
    p.add_argument("model", type=Path, metavar="MODEL", help="a model saved by xpnet (.npz)")
    p.add_argument("images", type=Path, nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, BMP, GIF...)")
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
    img = np.rint(digit.reshape(28, 28) * 255.0).astype(int)
    return "\n".join("".join(ramp[v * (len(ramp) - 1) // 255] * 2 for v in row) for row in img)


def run(args: argparse.Namespace) -> int:
    from ..images import digit_from_file, pillow

    pillow()  # before loading the model: say at once how to install it when it is missing
    backend = backend_for(args.backend, None)
    model = load_model(args.model, backend)
    digits = np.stack([digit_from_file(path) for path in args.images])
    proba = model.predict_proba(digits).astype(np.float64)
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
