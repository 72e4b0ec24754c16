"""What the epoch benchmarks share: BLAS threads from ``--threads`` (set before NumPy loads),
synthetic MNIST-shaped data, and PyTorch's side of the comparison (a plain training loop).

Import it before NumPy: OpenBLAS reads its thread count when it loads.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any


def threads_from_argv(argv: list[str]) -> int | None:
    """``--threads N``, read before NumPy loads: BLAS reads its thread count at import."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return int(argv[i + 1])
        if arg.startswith("--threads="):
            return int(arg.split("=", 1)[1])
    return None


THREADS = threads_from_argv(sys.argv[1:])
if THREADS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(THREADS)

import numpy as np  # noqa: E402

IN, CLASSES = 784, 10


def make_data(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped data: float32 pixels ``k / 255`` (k uniform in 0..255) and int64 labels."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(rows, IN), dtype=np.uint8).astype(np.float32)
    X *= np.float32(1.0 / 255.0)
    y = rng.integers(0, CLASSES, size=rows).astype(np.int64)
    return X, y


def torch_or_none() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


class TorchLoop:
    """PyTorch's side: ``model`` (built by the subclass after seeding) trained with Adam (lr
    1e-3) and cross-entropy by a plain eager loop over a shuffled epoch."""

    def __init__(self, torch: Any, device: str, model: Any, batch: int, X: np.ndarray,
                 y: np.ndarray) -> None:
        self.torch, self.device, self.batch = torch, device, batch
        self.model = model.to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss = torch.nn.CrossEntropyLoss()
        self.X = torch.from_numpy(X).to(device)
        self.y = torch.from_numpy(y).to(device)
        self.last = (math.nan, math.nan)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def epoch(self) -> float:
        torch, n, bs = self.torch, self.X.shape[0], self.batch
        self.model.train()
        self.sync()
        t0 = time.perf_counter()
        order = torch.randperm(n, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        hits = torch.zeros((), device=self.device)
        for i in range(0, n, bs):
            idx = order[i : i + bs]
            xb, yb = self.X[idx], self.y[idx]
            out = self.model(xb)
            loss = self.loss(out, yb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            # Loss and accuracy kept on the device, read once per epoch, as xpnet does on a GPU.
            loss_sum += loss.detach() * xb.shape[0]
            hits += (out.detach().argmax(1) == yb).sum()
        self.last = (float(loss_sum) / n, float(hits) / n)  # the one read per epoch
        self.sync()
        return time.perf_counter() - t0
