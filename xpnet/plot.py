"""Pictures of training: loss and accuracy curves, confusion matrix, misclassified digits, and
first-layer weights as images. Needs the ``plot`` extra (``pip install 'xpnet[plot]'``).

matplotlib is imported only when a function here is called, and figures are drawn with the Agg
canvas directly (never through ``pyplot``), so nothing here opens a window, needs a display or
touches a user's interactive backend. Every ``plot_*`` function returns the
``matplotlib.figure.Figure`` and, given ``path``, also writes it as a PNG.

:func:`plot_report` puts all the panels in one PNG; it is what ``xpnet train --plot PATH`` and
``xpnet evaluate --plot PATH`` write.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class PlotUnavailableError(ImportError):
    """matplotlib is not installed."""


def _matplotlib() -> Any:
    """Import matplotlib lazily, with an error that says how to get it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError as exc:
        raise PlotUnavailableError(
            "plotting needs matplotlib, which is not installed: pip install 'xpnet[plot]' "
            f"({exc})"
        ) from None
    return matplotlib


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure of ``width`` x ``height`` inches on an Agg canvas."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` to ``path`` as a PNG (whatever the suffix), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _history_dict(history: Any) -> dict[str, list[float]]:
    data = getattr(history, "history", history)
    if not isinstance(data, dict):
        raise TypeError(f"history must be an xpnet History or a dict of lists, got {history!r}")
    return data


# ------------------------------------------------------------------------ panels (one axes)
def draw_curves(ax: Any, history: Any, metric: str) -> None:
    """Training (and validation, when recorded) ``metric`` per epoch on ``ax``."""
    data = _history_dict(history)
    label = {"loss": "loss", "accuracy": "accuracy"}.get(metric, metric)
    drawn = False
    for key, name, style in ((metric, "train", "-o"), (f"val_{metric}", "held-out", "-s")):
        values = data.get(key)
        if values:
            ax.plot(np.arange(1, len(values) + 1), values, style, ms=3, label=name)
            drawn = True
    ax.set_xlabel("epoch")
    ax.set_ylabel(label)
    ax.set_title(f"{label} per epoch")
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend()
        if metric == "accuracy":
            last = [data[k][-1] for k in (metric, f"val_{metric}") if data.get(k)]
            ax.set_title(f"accuracy per epoch (last: {', '.join(f'{v:.4f}' for v in last)})")
    else:
        ax.text(0.5, 0.5, f"no {label} recorded", ha="center", va="center",
                transform=ax.transAxes)


def draw_confusion(ax: Any, cm: np.ndarray, class_names: Sequence[str] | None = None) -> None:
    """Confusion matrix: rows true class, columns predicted; color is the row fraction, the
    numbers are counts (so errors show even next to a large diagonal)."""
    cm = np.asarray(cm)
    k = cm.shape[0]
    rows = cm.sum(axis=1, keepdims=True)
    frac = cm / np.maximum(rows, 1)
    ax.imshow(np.sqrt(frac), cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                light = frac[i, j] > 0.5
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                        fontsize=7 if k > 10 or cm.max() >= 1000 else 8,
                        color="white" if light else "black")
    ticks = np.arange(k)
    names = list(class_names) if class_names is not None else [str(i) for i in ticks]
    ax.set_xticks(ticks, names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right"
                  if max(map(len, names)) > 2 else "center", fontsize=8)
    ax.set_yticks(ticks, names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    acc = np.trace(cm) / total if total else float("nan")
    ax.set_title(f"confusion matrix ({total} samples, accuracy {acc:.4f})")


def tile(images: np.ndarray, cols: int, gap: int = 2, fill: float = np.nan) -> np.ndarray:
    """Lay out (n, h, w) images in a grid ``cols`` wide with ``gap`` pixels of ``fill`` between."""
    n, h, w = images.shape
    rows = max(1, -(-n // cols))
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), fill, dtype=np.float64)
    for idx in range(n):
        r, c = divmod(idx, cols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[idx]
    return out


def draw_misclassified(
    ax: Any,
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str] | None = None,
    max_images: int = 40,
    cols: int = 10,
) -> None:
    """The first ``max_images`` misclassified 28x28 images, each marked ``true>predicted``."""
    wrong = np.flatnonzero(np.asarray(y_true) != np.asarray(y_pred))
    ax.set_xticks([])
    ax.set_yticks([])
    if wrong.size == 0:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_title("misclassified: none")
        return
    shown = wrong[:max_images]
    side = int(round(np.sqrt(X.shape[1])))
    images = np.asarray(X[shown], dtype=np.float64).reshape(-1, side, side)
    images = images / max(float(images.max()), 1e-12)
    cols = min(cols, len(shown))
    gap = 3
    mosaic = np.ma.masked_invalid(tile(images, cols, gap=gap))
    cmap = _matplotlib().colormaps["gray"].with_extremes(bad="#d8d8d8")
    ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    for k, i in enumerate(shown):
        r, c = divmod(k, cols)
        ax.text(c * (side + gap) + 1, r * (side + gap) + 1, f"{y_true[i]}>{y_pred[i]}",
                color="#ffb000", fontsize=7, va="top", ha="left", fontweight="bold",
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 0.6, "edgecolor": "none"})
    title = f"misclassified: {len(shown)} of {wrong.size} shown (true>predicted)"
    ax.set_title(title)
    if class_names is not None and any(len(n) > 1 for n in class_names):
        legend = ", ".join(f"{i} {n}" for i, n in enumerate(class_names))
        ax.set_xlabel(legend, fontsize=7, wrap=True)


def draw_weights(ax: Any, W: np.ndarray, max_units: int = 64, cols: int = 8) -> None:
    """First-layer weights ``W`` (in_features, units): each unit's incoming weights as an image,
    scaled to its own largest magnitude (red positive, blue negative)."""
    W = np.asarray(W, dtype=np.float64)
    side = int(round(np.sqrt(W.shape[0])))
    ax.set_xticks([])
    ax.set_yticks([])
    if side * side != W.shape[0]:
        ax.text(0.5, 0.5, f"{W.shape[0]} inputs are not a square image", ha="center",
                va="center", transform=ax.transAxes)
        return
    units = min(max_units, W.shape[1])
    images = W[:, :units].T.reshape(units, side, side)
    scale = np.abs(images).max(axis=(1, 2), keepdims=True)
    images = images / np.where(scale > 0, scale, 1.0)
    mosaic = np.ma.masked_invalid(tile(images, min(cols, units), gap=2))
    cmap = _matplotlib().colormaps["RdBu_r"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_title(f"first-layer weights: {units} of {W.shape[1]} units")


def first_layer_weights(model: Any) -> np.ndarray | None:
    """The first weighted layer's ``W`` as a host ``(inputs, units)`` array, what
    :func:`draw_weights` draws (None if no layer has a ``W``): a Dense ``W`` as it is, a
    convolution kernel ``(out, in, kh, kw)`` as ``(kh * kw, out)``, averaged over its input
    channels (each filter drawn as a kh x kw image)."""
    for layer in model.layers:
        if "W" in layer.params:
            W = np.asarray(model.backend.to_host(layer.params["W"]))
            if W.ndim > 2:
                W = W.reshape(W.shape[0], W.shape[1], -1).mean(axis=1).T
            return W
    return None


# ------------------------------------------------------------------------- whole figures
def plot_history(history: Any, path: str | os.PathLike[str] | None = None) -> Any:
    """Loss and accuracy per epoch (train and held-out) side by side."""
    fig = new_figure(10, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    draw_curves(ax_loss, history, "loss")
    draw_curves(ax_acc, history, "accuracy")
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_confusion_matrix(
    cm: np.ndarray,
    class_names: Sequence[str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Any:
    """The confusion matrix ``cm`` (see :func:`xpnet.metrics.confusion_matrix`)."""
    fig = new_figure(6, 5.5)
    draw_confusion(fig.subplots(), cm, class_names)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_misclassified(
    X: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    path: str | os.PathLike[str] | None = None,
    *,
    class_names: Sequence[str] | None = None,
    max_images: int = 40,
) -> Any:
    """A grid of misclassified images ``X`` (N, 784), labelled ``true>predicted``."""
    fig = new_figure(10, 4.8)
    draw_misclassified(fig.subplots(), X, y_true, y_pred, class_names, max_images)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_first_layer(
    weights: Any, path: str | os.PathLike[str] | None = None, *, max_units: int = 64
) -> Any:
    """First-layer weights as images (28x28 for a Dense on MNIST rows, the kernel's size for a
    convolution); ``weights`` is a model or an (inputs, units) array."""
    W = first_layer_weights(weights) if hasattr(weights, "layers") else weights
    if W is None:
        raise ValueError("the model has no Dense layer whose weights could be drawn")
    fig = new_figure(6, 6)
    draw_weights(fig.subplots(), W, max_units)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_report(
    path: str | os.PathLike[str] | None,
    *,
    history: Any = None,
    cm: np.ndarray | None = None,
    X: np.ndarray | None = None,
    y_true: np.ndarray | None = None,
    y_pred: np.ndarray | None = None,
    weights: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Any:
    """All panels in one figure: loss and accuracy curves (top left), the confusion matrix (top
    right), misclassified images (bottom left) and first-layer weights (bottom right). Panels
    whose data is not given are left out."""
    fig = new_figure(17, 10.5)
    grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.15])
    curves = history is not None and bool(_history_dict(history))
    if curves:
        draw_curves(fig.add_subplot(grid[0, 0]), history, "loss")
        draw_curves(fig.add_subplot(grid[0, 1]), history, "accuracy")
    if cm is not None:
        draw_confusion(fig.add_subplot(grid[0, 2] if curves else grid[0, :]), cm, class_names)
    if X is not None and y_true is not None and y_pred is not None:
        ax = fig.add_subplot(grid[1, 0:2] if weights is not None else grid[1, :])
        draw_misclassified(ax, X, y_true, y_pred, class_names)
    if weights is not None:
        draw_weights(fig.add_subplot(grid[1, 2]), weights)
    if title:
        fig.suptitle(title, fontsize=13)
    if path is not None:
        save_figure(fig, path)
    return fig


__all__ = [
    "PlotUnavailableError",
    "draw_confusion",
    "draw_curves",
    "draw_misclassified",
    "draw_weights",
    "first_layer_weights",
    "new_figure",
    "plot_confusion_matrix",
    "plot_first_layer",
    "plot_history",
    "plot_misclassified",
    "plot_report",
    "save_figure",
    "tile",
]
