"""Plots: each figure is drawn, written as a PNG and read back; a missing matplotlib is named."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xpnet.datasets import load_dataset
from xpnet.metrics import confusion_matrix
from xpnet.training import History

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image", reason="Pillow reads the PNGs back (matplotlib needs it)")

from xpnet import plot  # noqa: E402


def _history() -> History:
    h = History()
    for e in range(5):
        h.append(loss=1.0 / (e + 1), accuracy=0.5 + 0.1 * e, val_loss=1.2 / (e + 1),
                 val_accuracy=0.45 + 0.1 * e)
    return h


def _texts(fig) -> list[str]:
    out = [t.get_text() for ax in fig.axes for t in ax.texts]
    out += [ax.get_title() for ax in fig.axes]
    return out


def _check_png(path, width: int, height: int) -> np.ndarray:
    with Image.open(path) as f:
        assert f.format == "PNG"
        img = np.asarray(f)
    assert img.shape[:2] == (height, width)
    assert img.std() > 10, "the picture is blank"
    return img


def test_history_plot_has_both_curves(tmp_path):
    fig = plot.plot_history(_history(), tmp_path / "h.png")
    loss_ax, acc_ax = fig.axes
    assert [line.get_label() for line in loss_ax.get_lines()] == ["train", "held-out"]
    np.testing.assert_allclose(acc_ax.get_lines()[1].get_ydata(), [0.45, 0.55, 0.65, 0.75, 0.85])
    assert "last: 0.9000, 0.8500" in acc_ax.get_title()
    _check_png(tmp_path / "h.png", 1000, 400)


def test_history_without_accuracy_says_so():
    h = History()
    h.append(loss=0.3)
    fig = plot.plot_history(h)
    assert "no accuracy recorded" in _texts(fig)


def test_confusion_matrix_plot_shows_counts(tmp_path):
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 2]), 3)
    fig = plot.plot_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "cm.png")
    texts = _texts(fig)
    assert sorted(t for t in texts if t.isdigit()) == ["1", "1", "1", "2"]
    assert any("accuracy 0.8000" in t for t in texts)
    _check_png(tmp_path / "cm.png", 600, 550)


def test_misclassified_grid_labels_true_and_predicted(tmp_path):
    X, y = load_dataset("mnist-sample", "test")
    pred = y.copy()
    pred[[3, 150, 999]] = [7, 0, 4]
    fig = plot.plot_misclassified(X, y, pred, tmp_path / "m.png")
    texts = _texts(fig)
    assert f"{y[3]}>7" in texts and f"{y[150]}>0" in texts and f"{y[999]}>4" in texts
    assert "misclassified: 3 of 3 shown (true>predicted)" in texts
    (image,) = fig.axes[0].get_images()
    assert image.get_array().shape == (28, 3 * 28 + 2 * 3)  # three tiles, 3-pixel gaps
    _check_png(tmp_path / "m.png", 1000, 480)
    fig = plot.plot_misclassified(X[:10], y[:10], y[:10])
    assert "misclassified: none" in _texts(fig)


def test_first_layer_weights_are_28x28_tiles(tmp_path):
    import xpnet
    from xpnet.layers import Dense, ReLU

    model = xpnet.Sequential([Dense(784, 20), ReLU(), Dense(20, 10)], seed=0)
    fig = plot.plot_first_layer(model, tmp_path / "w.png", max_units=9)
    (image,) = fig.axes[0].get_images()
    assert image.get_array().shape == (2 * 28 + 2, 8 * 28 + 7 * 2)  # 8 columns, 2 rows
    W = plot.first_layer_weights(model)
    assert W is not None and W.shape == (784, 20)
    tile0 = image.get_array()[:28, :28]
    np.testing.assert_allclose(tile0, W[:, 0].reshape(28, 28) / np.abs(W[:, 0]).max())
    _check_png(tmp_path / "w.png", 600, 600)


def test_a_conv_nets_first_layer_is_drawn_filter_by_filter(tmp_path):
    """A convolution's kernel (out, in, kh, kw): one kh x kw tile per filter, averaged over
    the input channels (a conv net's report failed on reshaping the kernel as 784 pixels)."""
    import xpnet
    from xpnet.layers import Conv2D, Dense, Flatten, Reshape

    model = xpnet.Sequential([Reshape((2, 5, 5)), Conv2D(2, 6, 3), Flatten(), Dense(54, 3)],
                             seed=0)
    W = plot.first_layer_weights(model)
    kernel = model.layers[1].params["W"]
    assert W is not None and W.shape == (9, 6)
    np.testing.assert_allclose(W[:, 4].reshape(3, 3), kernel[4].mean(axis=0), rtol=1e-6)
    fig = plot.plot_first_layer(model, tmp_path / "k.png")
    (image,) = fig.axes[0].get_images()
    assert image.get_array().shape == (3, 6 * 3 + 5 * 2)  # one row of 6 tiles, gaps of 2
    _check_png(tmp_path / "k.png", 600, 600)


def test_report_has_every_panel(tmp_path):
    X, y = load_dataset("mnist-sample", "test")
    pred = (y + (np.arange(len(y)) % 7 == 0)) % 10
    W = np.random.default_rng(0).normal(size=(784, 30))
    fig = plot.plot_report(tmp_path / "r.png", history=_history(),
                           cm=confusion_matrix(y, pred, 10), X=X, y_true=y, y_pred=pred,
                           weights=W, title="report")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "loss per epoch" and titles[1].startswith("accuracy per epoch")
    assert titles[2].startswith("confusion matrix (1000 samples")
    assert titles[3].startswith("misclassified: 40 of 143")
    assert titles[4] == "first-layer weights: 30 of 30 units"
    _check_png(tmp_path / "r.png", 1700, 1050)


def test_missing_matplotlib_names_the_extra(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from xpnet import plot\n"
        "try:\n"
        "    plot.plot_history({'loss': [1.0]})\n"
        "except plot.PlotUnavailableError as e:\n"
        "    print('ERR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "ERR plotting needs matplotlib" in out.stdout
    assert "pip install 'xpnet[plot]'" in out.stdout
