"""A small PNG reader and writer (zlib + NumPy only), and the digit preprocessing for predict.

Reading supports what digit images are saved as: non-interlaced grayscale, gray+alpha, RGB,
RGBA and palette images (with a ``tRNS`` transparency chunk for palettes), with every filter
type, at 8 bits per sample, and also the other depths PNG allows: 1, 2 and 4 bits (grayscale
and palette; gray levels are scaled to 0..255) and 16 bits (kept to the high byte). Adam7
interlacing, and any corrupt file (bad signature, CRC mismatch, truncated or undecodable data),
raise :class:`PNGError`.

:func:`digit_from_png` turns any such image into what the MNIST models were trained on:

1. color to gray with ITU-R 601 luma ``0.299 R + 0.587 G + 0.114 B``; transparent pixels are
   composited over white, as a viewer shows them;
2. resized to 28x28 when it is not: area averaging when shrinking, bilinear when enlarging
   (each axis separately); no cropping, centering or aspect-ratio correction, so frame the digit
   the way MNIST does (a digit about 20 pixels tall, centered in a square);
3. inverted when the image is mostly light (mean > 0.5): MNIST digits are white on black, and a
   digit drawn in dark ink on white paper becomes one;
4. rounded to uint8 0..255 and flattened to 784 values, ready for
   :func:`xpnet.datasets.preprocess` exactly like the training images.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: PNG color type -> (name, samples per pixel)
COLOR_TYPES = {0: ("grayscale", 1), 2: ("RGB", 3), 3: ("palette", 1), 4: ("gray+alpha", 2),
               6: ("RGBA", 4)}


class PNGError(ValueError):
    """A file is not a PNG, is corrupt, or uses a PNG feature this reader does not support."""


def read_png(source: str | os.PathLike[str] | bytes) -> np.ndarray:
    """Decode a PNG file (a path, or the file's bytes) to a uint8 array of shape (H, W, C).

    ``C`` is 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA); palette images come out as RGB, or
    RGBA when they carry a ``tRNS`` chunk.
    """
    if isinstance(source, (bytes, bytearray)):
        data, where = bytes(source), "PNG data"
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise PNGError(f"{where}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return _decode(data)
    except PNGError as exc:
        raise PNGError(f"{where}: {exc}") from None


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split the file into ``(type, payload)`` chunks, checking each CRC; stop at IEND."""
    if not data.startswith(SIGNATURE):
        raise PNGError("not a PNG file (the 8-byte PNG signature is missing)")
    out = []
    pos = len(SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise PNGError("file is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length + 4
        if end > len(data):
            raise PNGError(f"file is truncated (chunk {kind!r} runs past the end)")
        payload = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + payload) != crc:
            raise PNGError(f"file is corrupt (CRC mismatch in chunk {kind.decode('latin-1')!r})")
        out.append((kind, payload))
        if kind == b"IEND":
            return out
        pos = end


def _decode(data: bytes) -> np.ndarray:
    chunks = _chunks(data)
    if chunks[0][0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise PNGError("file is corrupt (the first chunk is not a valid IHDR)")
    width, height, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if ctype not in COLOR_TYPES:
        raise PNGError(f"file is corrupt (unknown color type {ctype})")
    name, channels = COLOR_TYPES[ctype]
    if width == 0 or height == 0:
        raise PNGError(f"file is corrupt (image size {width}x{height})")
    if comp != 0 or filt != 0:
        raise PNGError(f"file is corrupt (compression method {comp}, filter method {filt})")
    allowed = (1, 2, 4, 8, 16) if ctype == 0 else (1, 2, 4, 8) if ctype == 3 else (8, 16)
    if depth not in allowed:
        raise PNGError(f"file is corrupt (bit depth {depth} is not valid for {name} images)")
    if interlace != 0:
        raise PNGError("interlaced (Adam7) PNGs are not supported; re-save it non-interlaced")
    palette = alpha = None
    idat = []
    for kind, payload in chunks[1:]:
        if kind == b"PLTE":
            if len(payload) % 3 or not payload:
                raise PNGError("file is corrupt (PLTE length is not a multiple of 3)")
            palette = np.frombuffer(payload, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"tRNS" and ctype == 3:
            alpha = np.frombuffer(payload, dtype=np.uint8)
        elif kind == b"IDAT":
            idat.append(payload)
    if not idat:
        raise PNGError("file is corrupt (no IDAT image data)")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as exc:
        raise PNGError(f"file is corrupt (image data does not decompress: {exc})") from None
    stride = (width * channels * depth + 7) // 8
    if len(raw) != height * (stride + 1):
        raise PNGError(
            f"file is corrupt (image data holds {len(raw)} bytes, a {width}x{height} {name} "
            f"image needs {height * (stride + 1)})"
        )
    bpp = max(1, channels * depth // 8)  # filters work on whole bytes
    rows = _unfilter(np.frombuffer(raw, dtype=np.uint8).reshape(height, stride + 1), bpp)
    img = _samples(rows, width, channels, depth, scale=ctype == 0)
    if ctype == 3:
        if palette is None:
            raise PNGError("file is corrupt (palette image without a PLTE chunk)")
        index = img[..., 0]
        if int(index.max()) >= len(palette):
            raise PNGError("file is corrupt (pixel refers past the end of the palette)")
        if alpha is None:
            return palette[index]
        full_alpha = np.full(len(palette), 255, dtype=np.uint8)
        full_alpha[: min(len(alpha), len(palette))] = alpha[: len(palette)]
        return np.concatenate([palette[index], full_alpha[index][..., None]], axis=-1)
    return img


def _samples(rows: np.ndarray, width: int, channels: int, depth: int, scale: bool) -> np.ndarray:
    """Unfiltered rows (H, stride) -> uint8 samples (H, W, channels).

    16-bit samples keep their high byte (big-endian); 1/2/4-bit samples are unpacked from the
    most significant bits first and, for gray levels (``scale``), stretched to 0..255.
    """
    height = rows.shape[0]
    if depth == 8:
        return rows.reshape(height, width, channels)
    if depth == 16:
        return rows.reshape(height, width, channels, 2)[..., 0]
    bits = np.unpackbits(rows, axis=1).reshape(height, -1, depth)
    weights = (1 << np.arange(depth - 1, -1, -1)).astype(np.uint8)
    values = (bits * weights).sum(axis=2, dtype=np.uint16)[:, :width]
    if scale:
        values = values * 255 // ((1 << depth) - 1)
    return values.astype(np.uint8).reshape(height, width, 1)


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the per-row PNG filters (None, Sub, Up, Average, Paeth) on (H, 1 + stride) bytes.

    With ``a`` the byte ``bpp`` to the left, ``b`` the byte above and ``c`` above-left:
    Sub adds ``a``, Up adds ``b``, Average adds ``floor((a + b) / 2)``, Paeth adds whichever of
    ``a, b, c`` is nearest ``a + b - c``; all modulo 256.
    """
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        ftype = int(rows[y, 0])
        line = rows[y, 1:].astype(np.int32)
        if ftype == 0:
            cur = line
        elif ftype == 1:  # Sub: a running sum along each channel
            cur = np.cumsum(line.reshape(-1, bpp), axis=0).reshape(-1) & 0xFF
        elif ftype == 2:  # Up
            cur = (line + prev) & 0xFF
        elif ftype in (3, 4):  # Average, Paeth: each pixel needs its reconstructed left one
            cur = np.zeros(stride, dtype=np.int32)
            left = np.zeros(bpp, dtype=np.int32)
            upleft = np.zeros(bpp, dtype=np.int32)
            for x in range(0, stride, bpp):
                up = prev[x : x + bpp]
                if ftype == 3:
                    pred = (left + up) >> 1
                else:
                    p = left + up - upleft
                    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
                    pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
                left = (line[x : x + bpp] + pred) & 0xFF
                cur[x : x + bpp] = left
                upleft = up
        else:
            raise PNGError(f"file is corrupt (unknown filter type {ftype} on row {y})")
        out[y] = cur
        prev = cur
    return out


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a uint8 image (H, W) gray, (H, W, 2) gray+alpha, (H, W, 3) RGB or (H, W, 4) RGBA.

    Rows are stored unfiltered (filter type 0) and zlib-compressed.
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got dtype {img.dtype}")
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4) or 0 in img.shape:
        raise ValueError(f"image must be (H, W) or (H, W, 1..4), got shape {np.shape(image)}")
    height, width, channels = img.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = np.concatenate(
        [np.zeros((height, 1), dtype=np.uint8), img.reshape(height, width * channels)], axis=1
    )

    def chunk(kind: bytes, payload: bytes) -> bytes:
        head = struct.pack(">I", len(payload)) + kind
        return head + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, ctype, 0, 0, 0)
    blob = (
        SIGNATURE
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )
    path = Path(path)
    path.write_bytes(blob)
    return path


def to_gray(image: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (H, W) float64 gray in [0, 1]; alpha is composited over white."""
    img = image.astype(np.float64) / 255.0
    channels = img.shape[2]
    has_alpha = channels in (2, 4)
    color = img[..., : channels - 1] if has_alpha else img
    if color.shape[2] == 3:
        gray = color @ np.array([0.299, 0.587, 0.114])
    else:
        gray = color[..., 0]
    if has_alpha:
        a = img[..., -1]
        gray = gray * a + (1.0 - a)
    return gray


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights mapping a 1-D signal to ``n_out`` samples; rows sum to 1.

    Shrinking: each output pixel is the mean of the input interval it covers (area averaging,
    partial pixels weighted by their overlap). Enlarging: bilinear interpolation between the two
    nearest input pixel centers (centers aligned, edges clamped).
    """
    w = np.zeros((n_out, n_in))
    if n_out <= n_in:
        scale = n_in / n_out
        for i in range(n_out):
            lo, hi = i * scale, (i + 1) * scale
            for j in range(int(np.floor(lo)), min(int(np.ceil(hi)), n_in)):
                w[i, j] = min(hi, j + 1) - max(lo, j)
    else:
        centers = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        centers = np.clip(centers, 0.0, n_in - 1)
        left = np.floor(centers).astype(int)
        right = np.minimum(left + 1, n_in - 1)
        frac = centers - left
        np.add.at(w, (np.arange(n_out), left), 1.0 - frac)
        np.add.at(w, (np.arange(n_out), right), frac)
    return w / w.sum(axis=1, keepdims=True)


def resize(gray: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (H, W) float image to (height, width), separably (see :func:`_resample_matrix`)."""
    rows = _resample_matrix(gray.shape[0], height)
    cols = _resample_matrix(gray.shape[1], width)
    return rows @ gray @ cols.T


def digit_from_image(image: np.ndarray, size: int = 28) -> np.ndarray:
    """An (H, W, C) uint8 image -> uint8 (size * size,) white-on-black digit (module docstring)."""
    gray = to_gray(image)
    if gray.shape != (size, size):
        gray = resize(gray, size, size)
    if gray.mean() > 0.5:
        gray = 1.0 - gray
    return np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8).reshape(-1)


def digit_from_png(source: str | os.PathLike[str] | bytes, size: int = 28) -> np.ndarray:
    """Read a PNG and convert it to a uint8 (784,) MNIST-style digit (module docstring)."""
    return digit_from_image(read_png(source), size)


__all__ = [
    "PNGError",
    "digit_from_image",
    "digit_from_png",
    "read_png",
    "resize",
    "to_gray",
    "write_png",
]
