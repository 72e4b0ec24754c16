"""Images for ``xpnet predict``: any common image file -> the 28x28 digit an MNIST model expects.

Files are read with Pillow (``pip install "xpnet[images]"``), imported lazily here and nowhere
else: PNG (8 or 16 bits), JPEG, BMP, GIF (first frame), TIFF, WebP..., in any mode (gray,
RGB, RGBA, gray+alpha, palette with or without transparency) and any size. A JPEG's EXIF
orientation is applied, as a photo viewer does; images over 1024 pixels a side are first
box-averaged by a whole factor (a photo's digit ends up 20 pixels tall anyway).

:func:`digit_from_gray` then does what MNIST did to its digits (LeCun et al.):

1. gray levels in [0, 1] (ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``); transparent
   pixels show the background, taken as white as a viewer shows it, except for light ink on
   a mostly transparent canvas, where it is black (so ink drawn in either colour on a
   transparent layer reads as ink);
2. the background is the median of the outermost pixels; when it is light the image is
   inverted (MNIST digits are white ink on black), then the background level is subtracted and
   the contrast stretched so the strongest ink is 1;
3. scaled so the ink's bounding box (pixels above 0.2) is 20 pixels on its longer side,
   keeping the aspect ratio (area averaging when shrinking, bilinear when enlarging); the
   faint edges around the box come along;
4. pasted into a 28x28 black square with its centre of mass at pixel (14, 14) (the sample's
   measured mean is 13.99, 14.00), moved by whole pixels (kept inside the square);
5. rounded to 0..255 and scaled like :func:`xpnet.datasets.preprocess`: float32 in [0, 1].

A 28x28 MNIST digit saved as PNG comes back unchanged, or within one gray level where its
brightest pixel is 254 rather than 255 (the stretch); of the shipped 1000 test digits 914
are bit-identical. A uniform image (no ink at all) is an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

SIZE = 28
#: the longer side of the digit's bounding box, as in MNIST
BOX = 20
#: a pixel counts as ink for the bounding box above this (after stretching to [0, 1])
INK = 0.2
#: less contrast than this between the ink and the background: a blank image
MIN_CONTRAST = 0.05
LUMA = np.array([0.299, 0.587, 0.114])
#: larger images are first box-averaged by a whole factor to at most this many pixels a side
MAX_SIDE = 1024

#: file signatures -> format names, to say what an unreadable file is
SIGNATURES = ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
              (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


class ImageError(ValueError):
    """A file that cannot be used as an image; the message names the file and what it is."""


class ImagesUnavailableError(ImportError):
    """Pillow, needed to read image files, is not installed."""


def pillow() -> Any:
    """``PIL.Image``, imported lazily, or an error that says how to install it."""
    try:
        from PIL import Image, ImageOps  # noqa: F401
    except ImportError as exc:
        raise ImagesUnavailableError(
            f'reading images needs Pillow, which is not installed: pip install "xpnet[images]" '
            f"({exc})"
        ) from None
    return Image


def read_gray(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as (H, W) float64 gray levels in [0, 1], transparency resolved."""
    return gray_from_channels(read_channels(path))


def read_channels(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file as (H, W, C) float64 in [0, 1]: C is 1 (gray), 2 (gray+alpha),
    3 (RGB) or 4 (RGBA). Raises :class:`ImageError` naming the file and what is wrong."""
    p = Path(path)
    head = _head(p)
    Image = pillow()
    from PIL import ImageOps

    try:
        img = Image.open(p)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{p}: too large to read safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # UnidentifiedImageError is an OSError
        raise ImageError(f"{p}: {_what_is(head, exc)}") from None
    with img:
        fmt = img.format or "image"
        try:
            img.load()  # the first frame of a GIF or other animation
            return channels(ImageOps.exif_transpose(img) or img)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{p}: a truncated or corrupt {fmt} file ({exc})") from None


def _head(p: Path) -> bytes:
    """The file's first bytes; an ImageError for what cannot be an image file at all."""
    if p.is_dir():
        raise ImageError(f"{p}: a directory, not an image file")
    try:
        with open(p, "rb") as f:
            head = f.read(512)
    except FileNotFoundError:
        raise ImageError(f"{p}: not found") from None
    except OSError as exc:
        raise ImageError(f"{p}: cannot read the file ({exc.strerror or exc})") from None
    if not head:
        raise ImageError(f"{p}: an empty file (0 bytes), not an image")
    return head


def _what_is(head: bytes, exc: BaseException) -> str:
    """What a file Pillow cannot identify is, from its first bytes."""
    for magic, fmt in SIGNATURES:
        if head.startswith(magic):
            return f"a truncated or corrupt {fmt} file ({exc})"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (such as an .npz model file), not an image"
    if head.startswith(b"%PDF"):
        return "a PDF document, not an image; export the page as PNG or JPEG"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc"):
        return "a HEIC/HEIF image, which Pillow cannot read; convert it to PNG or JPEG"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and "\x00" not in text:
        if "<svg" in text:
            return "an SVG (vector) image, not a bitmap; export it as PNG"
        first = " ".join(text.split())[:40]
        return f"a text file, not an image (it starts with {first!r})"
    return f"not an image format Pillow can read (it starts with bytes {head[:8].hex(' ')})"


def channels(img: Any) -> np.ndarray:
    """A Pillow image as (H, W, C) float64 in [0, 1] (see :func:`read_channels`)."""
    mode = img.mode
    if mode.startswith("I"):  # 16-bit gray (PNG, TIFF) and 32-bit integer images
        a = np.asarray(_shrink(img), dtype=np.float64) / 65535.0
        return np.clip(a, 0.0, 1.0)[..., None]
    if mode == "F":  # float images: [0, 1], or 0..255 when larger values appear
        a = np.asarray(_shrink(img), dtype=np.float64)
        return np.clip(a / 255.0 if a.max() > 1.0 else a, 0.0, 1.0)[..., None]
    alpha = "A" in mode or "a" in mode or "transparency" in img.info
    gray = mode in ("1", "L", "LA", "La")
    target = ("LA" if gray else "RGBA") if alpha else ("L" if gray else "RGB")
    a = np.asarray(_shrink(img.convert(target)), dtype=np.float64) / 255.0
    return a[..., None] if a.ndim == 2 else a


def _shrink(img: Any) -> Any:
    """``img`` box-averaged by a whole factor to at most ``MAX_SIDE`` pixels a side: a phone
    photo (4000x3000) would otherwise take ~1 GB as float64, for a 20-pixel digit."""
    factor = -(-max(img.size) // MAX_SIDE)
    return img.reduce(factor) if factor > 1 else img


def gray_from_channels(image: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) -> (H, W) float64 gray in [0, 1], alpha composited (module doc).

    uint8 input is read as 0..255, 16-bit as 0..65535, floats as [0, 1].
    """
    a = np.asarray(image)
    if a.dtype.kind in "ui":
        a = a / (65535.0 if a.dtype == np.uint16 else 255.0)
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or 0 in a.shape:
        raise ValueError(f"image must be (H, W) or (H, W, 1..4), got shape {np.shape(image)}")
    has_alpha = a.shape[2] in (2, 4)
    color = a[..., :-1] if has_alpha else a
    gray = color @ LUMA if color.shape[2] == 3 else color[..., 0]
    if not has_alpha:
        return gray
    alpha = a[..., -1]
    seen = float(alpha.sum())
    light_ink = seen > 0 and float((gray * alpha).sum()) / seen > 0.5 and alpha.mean() < 0.5
    background = 0.0 if light_ink else 1.0
    return gray * alpha + background * (1.0 - alpha)


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights mapping a 1-D signal to ``n_out`` samples; rows sum to 1.

    Shrinking: each output pixel is the mean of the input interval it covers (area averaging,
    partial pixels weighted by their overlap). Enlarging: bilinear interpolation between the two
    nearest input pixel centres (centres aligned, edges clamped).
    """
    w = np.zeros((n_out, n_in))
    if n_out <= n_in:
        scale = n_in / n_out
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
                w[i, j] = min(hi, j + 1) - max(lo, j)
    else:
        centres = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        centres = np.clip(centres, 0.0, n_in - 1)
        left = np.floor(centres).astype(int)
        right = np.minimum(left + 1, n_in - 1)
        frac = centres - left
        np.add.at(w, (np.arange(n_out), left), 1.0 - frac)
        np.add.at(w, (np.arange(n_out), right), frac)
    return w / w.sum(axis=1, keepdims=True)


def resize(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (H, W) float image to (height, width), separably (see :func:`_resample_matrix`)."""
    rows = _resample_matrix(gray.shape[0], height)
    cols = _resample_matrix(gray.shape[1], width)
    return rows @ gray @ cols.T


def normalize_polarity(gray: np.ndarray, where: str = "image") -> np.ndarray:
    """(H, W) gray -> white ink on a black background, contrast stretched to [0, 1].

    The background is the median of the outermost pixels; a light one is inverted. Raises
    :class:`ImageError` naming ``where`` when the image has no ink (one uniform level).
    """
    g = np.asarray(gray, dtype=np.float64)
    border = np.concatenate([g[0], g[-1], g[:, 0], g[:, -1]])
    background = float(np.median(border))
    if background > 0.5:  # dark ink on light paper: MNIST is white on black
        g, background = 1.0 - g, 1.0 - background
    peak = float(g.max())
    if peak - background < MIN_CONTRAST:
        raise ImageError(f"{where}: the image is blank (one uniform level, no digit to read)")
    return np.clip((g - background) / (peak - background), 0.0, 1.0)


def centre_digit(ink: np.ndarray, size: int = SIZE, box: int = BOX) -> np.ndarray:
    """White-on-black (H, W) in [0, 1] -> (size, size): the ink's bounding box scaled so its
    longer side is ``box`` pixels, centre of mass moved to pixel ``(size/2, size/2)``."""
    rows = np.flatnonzero(ink.max(axis=1) > INK)
    cols = np.flatnonzero(ink.max(axis=0) > INK)
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    scale = box / max(r1 - r0, c1 - c0)
    # A margin of the (size - box) / 2 pixels MNIST leaves, so the faint edges of strokes
    # (below INK) come along instead of being cut off at the box.
    m = int(np.ceil((size - box) / 2 / scale))
    top0, left0 = max(r0 - m, 0), max(c0 - m, 0)
    crop = ink[top0 : min(r1 + m, ink.shape[0]), left0 : min(c1 + m, ink.shape[1])]
    nh, nw = (max(1, int(np.floor(n * scale + 0.5))) for n in crop.shape)
    patch = np.clip(resize(crop, nh, nw), 0.0, 1.0)
    mass = float(patch.sum())
    cy = float(patch.sum(axis=1) @ np.arange(nh)) / mass
    cx = float(patch.sum(axis=0) @ np.arange(nw)) / mass
    # Whole-pixel moves, as MNIST did; clamped so the ink's box stays inside the square.
    top = _clamp(size / 2 - cy, (r0 - top0) * scale, (r1 - top0) * scale, size)
    left = _clamp(size / 2 - cx, (c0 - left0) * scale, (c1 - left0) * scale, size)
    out = np.zeros((size, size))
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + nh, size), min(left + nw, size)
    out[y0:y1, x0:x1] = patch[y0 - top : y1 - top, x0 - left : x1 - left]
    return out


def _clamp(shift: float, lo: float, hi: float, size: int) -> int:
    """``shift`` rounded to whole pixels, so that ``[lo, hi)`` moved by it stays in the square."""
    whole = int(np.floor(shift + 0.5))
    return min(max(whole, -int(np.floor(lo))), size - int(np.ceil(hi)))


def digit_from_gray(gray: np.ndarray, where: str = "image") -> np.ndarray:
    """(H, W) gray levels in [0, 1] -> float32 (784,) MNIST-style digit (module docstring)."""
    from .datasets import preprocess

    digit = centre_digit(normalize_polarity(gray, where))
    return preprocess(np.rint(digit * 255.0).astype(np.uint8).reshape(-1))


def digit_from_array(image: np.ndarray) -> np.ndarray:
    """An image array (H, W) or (H, W, 1..4), uint8/uint16 or float in [0, 1] -> float32
    (784,) MNIST-style digit; needs no Pillow."""
    return digit_from_gray(gray_from_channels(image))


def digit_from_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image file (any format Pillow reads) -> float32 (784,) MNIST-style digit."""
    return digit_from_gray(read_gray(path), where=str(path))


__all__ = [
    "ImageError",
    "ImagesUnavailableError",
    "centre_digit",
    "digit_from_array",
    "digit_from_file",
    "digit_from_gray",
    "gray_from_channels",
    "normalize_polarity",
    "read_channels",
    "read_gray",
    "resize",
]
