"""The PNG reader/writer and the digit preprocessing behind ``xpnet predict``."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from xpnet.datasets import load_dataset
from xpnet.png import (
    PNGError,
    digit_from_image,
    digit_from_png,
    read_png,
    resize,
    to_gray,
    write_png,
)


# ---------------------------------------------------------------- an independent encoder
def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(
        ">I", zlib.crc32(kind + payload)
    )


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _filter_row(row: list[int], prev: list[int], bpp: int, ftype: int) -> list[int]:
    """Encode one row with PNG filter ``ftype``, byte by byte, straight from the spec."""
    out = []
    for x, value in enumerate(row):
        a = row[x - bpp] if x >= bpp else 0
        b = prev[x]
        c = prev[x - bpp] if x >= bpp else 0
        pred = [0, a, b, (a + b) // 2, _paeth(a, b, c)][ftype]
        out.append((value - pred) % 256)
    return out


def encode_png(
    pixels: np.ndarray,
    ctype: int,
    filters: list[int],
    *,
    depth: int = 8,
    interlace: int = 0,
    extra: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    width: int | None = None,
) -> bytes:
    """A PNG with the given color type and one filter type per row (cycled). ``pixels`` are
    the row bytes: (H, W) or (H, W, bytes per pixel); ``width`` overrides W for packed rows."""
    height = pixels.shape[0]
    bpp = 1 if pixels.ndim == 2 else pixels.shape[2]
    stride = pixels.shape[1] * bpp
    rows = pixels.reshape(height, stride).astype(int).tolist()
    width = pixels.shape[1] if width is None else width
    raw = bytearray()
    prev = [0] * stride
    for y, row in enumerate(rows):
        ftype = filters[y % len(filters)]
        raw.append(ftype)
        raw.extend(_filter_row(row, prev, bpp, ftype))
        prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, depth, ctype, 0, 0, interlace)
    body = b"".join(_chunk(k, p) for k, p in extra)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + body
            + _chunk(b"IDAT", zlib.compress(bytes(raw))) + _chunk(b"IEND", b""))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ---------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("ftype", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("ctype,channels", [(0, 1), (4, 2), (2, 3), (6, 4)])
def test_every_filter_and_color_type_decodes_exactly(ftype, ctype, channels, rng):
    shape = (7, 9) if channels == 1 else (7, 9, channels)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    got = read_png(encode_png(img, ctype, [ftype]))
    assert got.shape == (7, 9, channels)
    np.testing.assert_array_equal(got.reshape(img.shape), img)


def test_mixed_filters_within_one_image(rng):
    img = rng.integers(0, 256, size=(12, 5, 3), dtype=np.uint8)
    got = read_png(encode_png(img, 2, [4, 3, 1, 0, 2]))
    np.testing.assert_array_equal(got, img)


def test_palette_expands_to_rgb_and_rgba(rng):
    palette = rng.integers(0, 256, size=(6, 3), dtype=np.uint8)
    index = rng.integers(0, 6, size=(4, 5), dtype=np.uint8)
    plte = [(b"PLTE", palette.tobytes())]
    got = read_png(encode_png(index, 3, [1], extra=plte))
    np.testing.assert_array_equal(got, palette[index])
    # tRNS may list fewer alphas than entries: the rest are opaque.
    alpha = np.array([0, 128, 255], dtype=np.uint8)
    got = read_png(encode_png(index, 3, [2], extra=plte + [(b"tRNS", alpha.tobytes())]))
    full = np.array([0, 128, 255, 255, 255, 255], dtype=np.uint8)
    np.testing.assert_array_equal(got[..., :3], palette[index])
    np.testing.assert_array_equal(got[..., 3], full[index])


def test_write_then_read_round_trips(tmp_path, rng):
    for shape in [(3, 4), (3, 4, 2), (3, 4, 3), (3, 4, 4)]:
        img = rng.integers(0, 256, size=shape, dtype=np.uint8)
        path = write_png(tmp_path / "x.png", img)
        got = read_png(path)
        np.testing.assert_array_equal(got.reshape(img.shape), img)


def test_reads_files_written_by_pillow(rng):
    Image = pytest.importorskip("PIL.Image")
    smooth = np.cumsum(rng.integers(0, 9, size=(20, 30, 3)), axis=1).astype(np.uint8)
    for mode, arr in [("L", smooth[..., 0]), ("RGB", smooth),
                      ("RGBA", np.dstack([smooth, smooth[..., :1]]))]:
        buf = io.BytesIO()
        Image.fromarray(arr, mode).save(buf, "PNG")
        np.testing.assert_array_equal(read_png(buf.getvalue()).reshape(arr.shape), arr)
    pal = Image.fromarray(smooth).convert("P", palette=Image.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    pal.save(buf, "PNG")
    np.testing.assert_array_equal(read_png(buf.getvalue()), np.asarray(pal.convert("RGB")))


# ------------------------------------------------------------------------------ errors
def _valid(rng) -> bytes:
    return encode_png(rng.integers(0, 256, size=(4, 4), dtype=np.uint8), 0, [0])


def test_not_a_png(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(PNGError, match=r"notes\.txt: not a PNG file"):
        read_png(path)


def test_missing_file(tmp_path):
    with pytest.raises(PNGError, match="cannot read the file"):
        read_png(tmp_path / "absent.png")


def test_crc_mismatch_is_reported(rng):
    data = bytearray(_valid(rng))
    data[20] ^= 0x01  # inside IHDR's payload
    with pytest.raises(PNGError, match="CRC mismatch in chunk 'IHDR'"):
        read_png(bytes(data))


@pytest.mark.parametrize("cut", [10, 30, -5])
def test_truncated_file(cut, rng):
    with pytest.raises(PNGError, match="truncated"):
        read_png(_valid(rng)[:cut])


def test_undecompressable_image_data():
    ihdr = struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"not zlib")
            + _chunk(b"IEND", b""))
    with pytest.raises(PNGError, match="does not decompress"):
        read_png(data)


def test_wrong_amount_of_image_data():
    ihdr = struct.pack(">IIBBBBB", 3, 3, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 5)) + _chunk(b"IEND", b""))
    with pytest.raises(PNGError, match="image data holds 5 bytes"):
        read_png(data)


def test_unknown_filter_type(rng):
    img = rng.integers(0, 256, size=(2, 3), dtype=np.uint8)
    raw = b"\x07" + img[0].tobytes() + b"\x00" + img[1].tobytes()
    ihdr = struct.pack(">IIBBBBB", 3, 2, 8, 0, 0, 0, 0)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))
    with pytest.raises(PNGError, match="unknown filter type 7 on row 0"):
        read_png(data)


def test_interlace_and_invalid_bit_depths_are_named(rng):
    img = rng.integers(0, 256, size=(4, 4), dtype=np.uint8)
    with pytest.raises(PNGError, match="interlaced"):
        read_png(encode_png(img, 0, [0], interlace=1))
    with pytest.raises(PNGError, match="bit depth 4 is not valid for RGB"):
        read_png(encode_png(img, 2, [0], depth=4))


def _pack(values: np.ndarray, depth: int) -> np.ndarray:
    """Pack (H, W) samples of ``depth`` bits into PNG rows, most significant bits first."""
    bits = ((values[..., None] >> np.arange(depth - 1, -1, -1)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(values.shape[0], -1), axis=1)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_depth_gray_and_palette(depth, rng):
    levels = 1 << depth
    values = rng.integers(0, levels, size=(5, 7)).astype(np.uint8)  # 7 px: a partial byte
    got = read_png(encode_png(_pack(values, depth), 0, [1, 4], depth=depth, width=7))
    np.testing.assert_array_equal(got[..., 0], values.astype(int) * 255 // (levels - 1))
    palette = rng.integers(0, 256, size=(levels, 3), dtype=np.uint8)
    got = read_png(encode_png(_pack(values, depth), 3, [2], depth=depth, width=7,
                              extra=[(b"PLTE", palette.tobytes())]))
    np.testing.assert_array_equal(got, palette[values])


def test_sixteen_bit_keeps_the_high_byte(rng):
    img16 = rng.integers(0, 65536, size=(3, 4, 3)).astype(">u2")
    as_bytes = img16.view(np.uint8).reshape(3, 4, 6)
    got = read_png(encode_png(as_bytes, 2, [3], depth=16))  # 6 bytes per pixel
    np.testing.assert_array_equal(got, (img16 >> 8).astype(np.uint8))


def test_palette_errors(rng):
    index = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    with pytest.raises(PNGError, match="without a PLTE"):
        read_png(encode_png(index, 3, [0]))
    short = [(b"PLTE", bytes(range(6)))]  # two entries; pixels use up to index 3
    with pytest.raises(PNGError, match="past the end of the palette"):
        read_png(encode_png(index, 3, [0], extra=short))


def test_write_png_rejects_bad_input():
    with pytest.raises(TypeError, match="uint8"):
        write_png("unused.png", np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        write_png("unused.png", np.zeros((2, 2, 5), dtype=np.uint8))


# ----------------------------------------------------------------- digit preprocessing
def test_mnist_digit_round_trips_unchanged(tmp_path):
    X, _ = load_dataset("mnist-sample", "test")
    for row in X[:5]:
        path = write_png(tmp_path / "d.png", row.reshape(28, 28))
        np.testing.assert_array_equal(digit_from_png(path), row)


def test_dark_ink_on_white_is_inverted_to_mnist_polarity():
    X, _ = load_dataset("mnist-sample", "test")
    digit = X[0]
    paper = (255 - digit).reshape(28, 28)
    assert paper.mean() > 127
    np.testing.assert_array_equal(digit_from_image(paper[..., None]), digit)


def test_rgb_uses_luma_and_alpha_composites_over_white():
    rgb = np.zeros((28, 28, 3), dtype=np.uint8)
    rgb[..., 0] = 100  # pure red 100: luma 0.299 * 100 = 29.9
    np.testing.assert_allclose(to_gray(rgb), 29.9 / 255)
    # Black ink on a transparent background: transparent counts as white paper, so the
    # digit comes out white on black.
    rgba = np.zeros((28, 28, 4), dtype=np.uint8)
    rgba[10:18, 12:16, 3] = 255
    out = digit_from_image(rgba).reshape(28, 28)
    assert (out[10:18, 12:16] == 255).all()
    out[10:18, 12:16] = 0
    assert (out == 0).all()


def test_shrinking_averages_areas():
    X, _ = load_dataset("mnist-sample", "test")
    digit = X[3].reshape(28, 28)
    big = np.kron(digit, np.ones((3, 3), dtype=np.uint8))  # 84x84, each pixel a 3x3 block
    np.testing.assert_array_equal(digit_from_image(big[..., None]), digit.reshape(-1))
    # A non-integer factor: 40 -> 28 keeps a constant image constant and the mean intact.
    rng = np.random.default_rng(0)
    img = rng.random((40, 40))
    out = resize(img, 28, 28)
    assert out.shape == (28, 28)
    np.testing.assert_allclose(out.mean(), img.mean(), rtol=1e-12)
    np.testing.assert_allclose(resize(np.full((40, 33), 0.25), 28, 28), 0.25)


def test_enlarging_is_bilinear():
    small = np.array([[0.0, 1.0]])
    out = resize(small, 1, 4)
    # Centers at -0.25, 0.25, 0.75, 1.25 in input pixels, clamped to [0, 1].
    np.testing.assert_allclose(out, [[0.0, 0.25, 0.75, 1.0]])
    np.testing.assert_allclose(resize(np.full((14, 7), 0.6), 28, 28), 0.6)


def test_non_square_images_are_resized_to_28x28(tmp_path):
    img = np.zeros((50, 20), dtype=np.uint8)
    img[10:40, 8:12] = 255
    out = digit_from_png(write_png(tmp_path / "tall.png", img))
    assert out.shape == (784,) and out.dtype == np.uint8
    assert out.max() > 0 and out.reshape(28, 28)[:, :5].max() == 0


def test_png_files_are_read_from_a_path_object(tmp_path):
    path = Path(write_png(tmp_path / "p.png", np.full((2, 2), 7, dtype=np.uint8)))
    assert read_png(str(path)).tolist() == [[[7], [7]], [[7], [7]]]
