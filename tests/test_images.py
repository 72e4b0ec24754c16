"""Image files -> MNIST-style digits (xpnet.images): formats, modes, preprocessing, errors."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import xpnet
from xpnet.datasets import load_dataset, preprocess
from xpnet.images import (
    ImageError,
    ImagesUnavailableError,
    digit_from_array,
    digit_from_file,
    gray_from_channels,
    read_channels,
    resize,
)
from xpnet.layers import Dense, ReLU


@pytest.fixture
def Image():
    return pytest.importorskip("PIL.Image", reason='Pillow is not installed (xpnet[images])')


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_dataset("mnist-sample", "test")


_SAMPLE = load_dataset("mnist-sample", "test")[0]


def _stroke(height: int, width: int, top: int, left: int, ink: int = 0, paper: int = 255,
            zoom: float = 1.0, k: int = 3) -> np.ndarray:
    """A uint8 ``height x width`` page of ``paper`` with test digit ``k`` of the MNIST sample
    drawn in ``ink`` at (top, left): its ink box, enlarged (zoom 2, 3...) or shrunk (0.5)."""
    d = _SAMPLE[k].reshape(28, 28) / 255.0
    d = d[np.ix_(np.flatnonzero(d.max(1)), np.flatnonzero(d.max(0)))]
    if zoom >= 1:
        d = np.kron(d, np.ones((int(zoom), int(zoom))))
    else:
        step = round(1 / zoom)
        h, w = d.shape[0] // step * step, d.shape[1] // step * step
        d = d[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    page = np.full((height, width), float(paper))
    page[top : top + d.shape[0], left : left + d.shape[1]] = paper + (ink - paper) * d
    return np.rint(page).astype(np.uint8)


def check_mnist_style(digit: np.ndarray) -> np.ndarray:
    """float32 (784,) in [0, 1], ink 20 px on its longer side, centre of mass within 1 px of
    (14, 14); returns the 28x28 image."""
    assert digit.shape == (784,) and digit.dtype == np.float32
    assert digit.min() >= 0.0 and 0.9 < digit.max() <= 1.0
    img = digit.reshape(28, 28).astype(np.float64)
    r = np.arange(28)
    cy, cx = img.sum(1) @ r / img.sum(), img.sum(0) @ r / img.sum()
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    rows, cols = np.flatnonzero(img.max(1) > 0.2), np.flatnonzero(img.max(0) > 0.2)
    # 20, give or take: enlarging blurs the box's edge by up to a pixel on each side
    assert 19 <= max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 22
    return img


# ------------------------------------------------------------- formats, modes and sizes
@pytest.mark.parametrize("suffix,options", [
    (".png", {}), (".jpg", {"quality": 92}), (".bmp", {}), (".gif", {}), (".tiff", {}),
    (".webp", {"lossless": True}),
])
@pytest.mark.parametrize("shape,where,zoom", [((28, 28), (4, 6), 1), ((60, 200), (5, 150), 2),
                                              ((300, 90), (200, 3), 3)])
def test_formats_and_sizes_give_the_same_centred_digit(Image, tmp_path, suffix, options, shape,
                                                       where, zoom):
    """Dark ink on white paper, off-centre, in non-square canvases of every format."""
    pixels = _stroke(*shape, *where, zoom=zoom)
    path = tmp_path / f"digit{suffix}"
    Image.fromarray(pixels).save(path, **options)
    img = check_mnist_style(digit_from_file(path))
    reference = check_mnist_style(digit_from_array(pixels))
    # the format's own losses only: JPEG ringing, GIF/BMP/PNG/TIFF/WebP lossless
    tolerance = 0.35 if suffix == ".jpg" else 1e-6
    assert np.abs(img - reference.reshape(28, 28)).max() <= tolerance


@pytest.mark.parametrize("mode", ["L", "RGB", "LA", "RGBA", "P", "PA-as-P", "I;16", "1", "CMYK"])
def test_every_mode(Image, tmp_path, mode):
    pixels = _stroke(50, 40, 10, 8, ink=30, paper=230)
    rgb = Image.fromarray(np.dstack([pixels, pixels // 2 + 100, pixels]))
    img = {
        "L": Image.fromarray(pixels),
        "RGB": rgb,
        "LA": Image.fromarray(pixels).convert("LA"),
        "RGBA": rgb.convert("RGBA"),
        "P": rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8),
        "PA-as-P": Image.fromarray(pixels).convert("P"),
        "I;16": Image.fromarray(pixels.astype(np.uint16) * 257),
        "1": Image.fromarray(pixels < 128),
        "CMYK": rgb.convert("CMYK"),
    }[mode]
    if mode == "PA-as-P":
        img.info["transparency"] = 255  # index 255 (the paper) transparent
    path = tmp_path / ("d.tiff" if mode == "CMYK" else "d.png")
    img.save(path, **({"transparency": 255} if mode == "PA-as-P" else {}))
    with Image.open(path) as f:
        saved_mode = f.mode
    assert saved_mode == {"PA-as-P": "P", "CMYK": "CMYK"}.get(mode, mode)
    check_mnist_style(digit_from_file(path))


def test_sixteen_bit_png_keeps_its_full_range(Image, tmp_path):
    levels = (np.arange(6 * 4).reshape(6, 4) * 2800).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    np.testing.assert_allclose(read_channels(path)[..., 0], levels / 65535.0)


def test_gif_first_frame_is_used(Image, tmp_path):
    first = Image.fromarray(_stroke(40, 40, 5, 5))
    second = Image.fromarray(np.full((40, 40), 255, dtype=np.uint8))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second])
    np.testing.assert_array_equal(digit_from_file(path), digit_from_array(np.asarray(first)))


def test_exif_orientation_is_applied(Image, tmp_path):
    pixels = _stroke(40, 60, 5, 5)
    img = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, -1)))  # stored rotated
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "photo.jpg"
    img.save(path, exif=exif, quality=95)
    assert read_channels(path).shape[:2] == pixels.shape


def test_large_photos_are_reduced_first(Image, tmp_path):
    page = _stroke(3000, 4000, 1200, 1500, zoom=20, ink=40, paper=210)
    path = tmp_path / "photo.jpg"
    Image.fromarray(np.dstack([page] * 3)).save(path, quality=85)
    assert max(read_channels(path).shape[:2]) <= 1024
    small = digit_from_array(_stroke(150, 200, 60, 75, ink=40, paper=210))
    np.testing.assert_allclose(check_mnist_style(digit_from_file(path)).reshape(-1), small,
                               atol=0.25)


# ------------------------------------------------------------------- transparency
@pytest.mark.parametrize("ink", [0, 255])
def test_ink_on_a_transparent_canvas_reads_as_ink_in_either_colour(Image, tmp_path, ink):
    shape = _stroke(40, 40, 6, 6, ink=255, paper=0)  # where the ink is
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = shape  # opaque ink, transparent elsewhere
    path = tmp_path / "layer.png"
    Image.fromarray(rgba).save(path)
    img = check_mnist_style(digit_from_file(path))
    np.testing.assert_array_equal(img, digit_from_array(shape).reshape(28, 28))


def test_paper_with_transparent_margins_stays_paper():
    paper = _stroke(40, 40, 10, 10, ink=0, paper=255)
    rgba = np.dstack([paper] * 3 + [np.full((40, 40), 255, dtype=np.uint8)])
    rgba[:, :3, 3] = 0  # transparent margins around opaque white paper: shown white
    gray = gray_from_channels(rgba)
    assert gray[:, :3].min() == 1.0
    check_mnist_style(digit_from_array(rgba))


def test_rgb_uses_luma():
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[..., 0] = 100  # pure red 100: luma 0.299 * 100 = 29.9
    np.testing.assert_allclose(gray_from_channels(rgb), 29.9 / 255)


# ------------------------------------------------------------------ preprocessing rules
def test_light_and_dark_backgrounds_give_the_same_digit():
    white_ink = _stroke(70, 50, 20, 9, ink=255, paper=0)
    dark_ink = 255 - white_ink
    np.testing.assert_array_equal(digit_from_array(white_ink), digit_from_array(dark_ink))


def test_faint_ink_on_grey_paper_is_stretched():
    faint = _stroke(40, 40, 8, 8, ink=150, paper=200)  # pencil on grey paper
    img = check_mnist_style(digit_from_array(faint))
    strong = digit_from_array(_stroke(40, 40, 8, 8)).reshape(28, 28)
    np.testing.assert_allclose(img, strong, atol=0.03)


def test_small_digits_are_enlarged_and_far_off_centre_ones_centred():
    tiny = _stroke(200, 300, 185, 5, zoom=0.5)  # 10 px in a corner of a big page
    check_mnist_style(digit_from_array(tiny))


def test_a_blank_image_is_an_error():
    with pytest.raises(ImageError, match="image: the image is blank"):
        digit_from_array(np.full((30, 40), 128, dtype=np.uint8))


def test_mnist_digits_come_back_unchanged(digits):
    X, _ = digits
    out = np.stack([digit_from_array(x.reshape(28, 28)) for x in X])
    exact = (out == preprocess(X)).all(axis=1)
    assert exact.mean() >= 0.9  # 914 of 1000 measured; the rest had 254 as brightest pixel
    np.testing.assert_allclose(out, preprocess(X), atol=1.01 / 255)
    assert (X[~exact].max(axis=1) == 254).all()


def test_resize_averages_areas_and_interpolates():
    rng = np.random.default_rng(0)
    img = rng.random((40, 40))
    np.testing.assert_allclose(resize(img, 28, 28).mean(), img.mean(), rtol=1e-12)
    block = np.kron(np.eye(3), np.ones((3, 3)))
    np.testing.assert_allclose(resize(block, 3, 3), np.eye(3))
    # centres at -0.25, 0.25, 0.75, 1.25 input pixels, clamped to [0, 1]
    np.testing.assert_allclose(resize(np.array([[0.0, 1.0]]), 1, 4), [[0.0, 0.25, 0.75, 1.0]])


# --------------------------------------------------------------- real digits, same class
@pytest.fixture(scope="module")
def small_model() -> xpnet.Sequential:
    X, y = load_dataset("mnist-sample", "train")
    model = xpnet.Sequential([Dense(784, 64), ReLU(), Dense(64, 10)], seed=0)
    model.compile("softmax_cross_entropy", xpnet.optim.Adam(lr=2e-3))
    model.fit(preprocess(X), y, epochs=4, batch_size=64, seed=0, verbose=False)
    return model


@pytest.mark.parametrize("kind", ["png", "jpeg", "ink-on-paper-3x.jpeg", "off-centre.png"])
def test_real_digits_predict_the_same_class_as_the_array(Image, tmp_path, digits, small_model,
                                                         kind):
    X, _ = digits
    rows = range(0, 1000, 10)  # 100 digits
    files = []
    for i in rows:
        pixels = X[i].reshape(28, 28)
        if kind.startswith("ink"):
            pixels = np.kron(255 - pixels, np.ones((3, 3), dtype=np.uint8))
        elif kind.startswith("off"):
            page = np.zeros((64, 96), dtype=np.uint8)
            page[30:58, 5:33] = pixels
            pixels = page
        path = tmp_path / f"{i}.{kind.rsplit('.', 1)[-1]}"
        Image.fromarray(pixels).save(path, **({"quality": 90} if "jpeg" in kind else {}))
        files.append(path)
    expected = small_model.predict(preprocess(X[list(rows)]))
    got = small_model.predict(np.stack([digit_from_file(p) for p in files]))
    agree = float((got == expected).mean())
    assert agree >= (1.0 if kind.endswith("png") else 0.97), agree


# ------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("content,message", [
    (b"", r"x\.img: an empty file \(0 bytes\), not an image"),
    (b"hello, world\nsecond line", r"x\.img: a text file, not an image \(it starts with "
                                   r"'hello, world second line'\)"),
    (b"<?xml version='1.0'?><svg></svg>", r"an SVG \(vector\) image"),
    (b"%PDF-1.7\n", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", r"x\.img: a truncated or corrupt PNG file"),
    (b"\x00\x01\x02\x03\xfe\xff\x00\x10", r"not an image format Pillow can read \(it starts "
                                          r"with bytes 00 01 02 03 fe ff 00 10\)"),
])
def test_unreadable_files_say_what_they_are(Image, tmp_path, content, message):
    path = tmp_path / "x.img"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        digit_from_file(path)


def test_truncated_png_and_jpeg(Image, tmp_path, digits):
    for suffix, fmt in ((".png", "PNG"), (".jpg", "JPEG")):
        path = tmp_path / f"cut{suffix}"
        Image.fromarray(digits[0][0].reshape(28, 28)).save(path)
        path.write_bytes(path.read_bytes()[:-60])
        with pytest.raises(ImageError, match=rf"cut\{suffix}: a truncated or corrupt {fmt} file"):
            digit_from_file(path)


def test_missing_and_directory(tmp_path):
    with pytest.raises(ImageError, match=r"absent\.png: not found"):
        digit_from_file(tmp_path / "absent.png")
    with pytest.raises(ImageError, match="a directory, not an image file"):
        digit_from_file(tmp_path)


def test_without_pillow_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    path = tmp_path / "d.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImagesUnavailableError, match=r'pip install "xpnet\[images\]"'):
        digit_from_file(Path(path))
    # arrays need no Pillow
    check_mnist_style(digit_from_array(_stroke(30, 30, 5, 5)))
