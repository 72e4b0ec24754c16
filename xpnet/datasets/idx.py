"""Read and write IDX files (the MNIST container format), gzip-compressed or raw.

An IDX file is a 4-byte magic number ``00 00 <type code> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the array itself in C order and big-endian byte order. The type codes
are 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32 and 0x0E float64.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetError

GZIP_MAGIC = b"\x1f\x8b"

#: IDX type code -> (big-endian NumPy dtype, name used in messages).
TYPE_CODES: dict[int, tuple[np.dtype[Any], str]] = {
    0x08: (np.dtype(">u1"), "ubyte"),
    0x09: (np.dtype(">i1"), "byte"),
    0x0B: (np.dtype(">i2"), "short"),
    0x0C: (np.dtype(">i4"), "int"),
    0x0D: (np.dtype(">f4"), "float"),
    0x0E: (np.dtype(">f8"), "double"),
}

# Payloads are read in pieces so that a corrupt header announcing terabytes never makes us
# allocate them: we only ever hold what the file really contains.
_CHUNK = 1 << 20


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file into a native-byte-order array of the shape its header gives.

    Gzip compression is detected by the gzip magic bytes, not by the file name. Any fault
    (bad magic, unknown type code, truncated or over-long payload, damaged gzip stream) raises
    :class:`DatasetError` naming the file.
    """
    name = Path(path).name
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise DatasetError(f"{name}: cannot read {os.fspath(path)!r}: {exc}") from exc
    return parse_idx(data, name)


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of an IDX file (gzip or raw); ``name`` is used in error messages."""
    stream: io.BufferedIOBase
    if data[:2] == GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    else:
        stream = io.BytesIO(data)
    try:
        return _parse_stream(stream, name)
    except (OSError, EOFError, zlib.error) as exc:
        # gzip.BadGzipFile is an OSError; a truncated stream raises EOFError; a damaged
        # deflate block raises zlib.error.
        raise DatasetError(f"{name}: damaged gzip stream: {exc}") from exc
    finally:
        stream.close()


def _read_exactly(stream: io.BufferedIOBase, count: int) -> bytes:
    """Up to ``count`` bytes; fewer only at end of file."""
    out = bytearray()
    while len(out) < count:
        piece = stream.read(min(_CHUNK, count - len(out)))
        if not piece:
            break
        out += piece
    return bytes(out)


def _parse_stream(stream: io.BufferedIOBase, name: str) -> np.ndarray:
    magic = _read_exactly(stream, 4)
    if len(magic) < 4:
        raise DatasetError(
            f"{name}: too short for an IDX header: need 4 magic bytes, file has {len(magic)}"
        )
    if magic[0] != 0 or magic[1] != 0:
        raise DatasetError(
            f"{name}: bad magic number 0x{magic.hex()}: an IDX file starts with 0x0000 "
            "then a type code and the number of dimensions"
        )
    code, ndim = magic[2], magic[3]
    if code not in TYPE_CODES:
        known = ", ".join(f"0x{c:02X} ({n})" for c, (_, n) in TYPE_CODES.items())
        raise DatasetError(f"{name}: unknown IDX type code 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise DatasetError(f"{name}: IDX header says 0 dimensions; expected at least 1")
    raw_dims = _read_exactly(stream, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetError(
            f"{name}: truncated header: {ndim} dimensions need {4 * ndim} bytes, "
            f"file has {len(raw_dims)}"
        )
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype, type_name = TYPE_CODES[code]
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    shape = "x".join(str(d) for d in dims)
    payload = _read_exactly(stream, expected)
    if len(payload) < expected:
        raise DatasetError(
            f"{name}: truncated: header says {shape} = {expected} bytes of {type_name} data, "
            f"file has {len(payload)}"
        )
    extra = 0
    while piece := stream.read(_CHUNK):
        extra += len(piece)
    if extra:
        raise DatasetError(
            f"{name}: {extra} unexpected bytes after the {shape} = {expected} bytes of "
            f"{type_name} data the header announces"
        )
    try:
        array = np.frombuffer(payload, dtype=dtype).reshape(dims)
    except ValueError:  # e.g. 0 x 768 x 2**29: no data, but a shape NumPy cannot represent
        raise DatasetError(f"{name}: header says {shape}, a shape NumPy cannot hold") from None
    if dtype.itemsize == 1:
        return array.copy()
    return array.astype(dtype.newbyteorder("="))


def _type_code(dtype: np.dtype[Any]) -> int:
    for code, (known, _) in TYPE_CODES.items():
        if dtype.kind == known.kind and dtype.itemsize == known.itemsize:
            return code
    names = ", ".join(str(known.newbyteorder("=")) for known, _ in TYPE_CODES.values())
    raise DatasetError(f"IDX cannot store dtype {dtype}; expected one of {names}")


def encode_idx(array: np.ndarray) -> bytes:
    """The raw (uncompressed) IDX bytes of ``array`` (at least one dimension)."""
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise DatasetError(f"IDX needs 1 to 255 dimensions, got an array of shape {array.shape}")
    if any(d >= 2**32 for d in array.shape):
        raise DatasetError(f"IDX dimensions must be below 2**32, got shape {array.shape}")
    code = _type_code(array.dtype)
    big = TYPE_CODES[code][0]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big).tobytes()


def write_idx(
    path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None
) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``compress`` or the name ends ``.gz``.

    The gzip header carries no file name and a zero time stamp, so the same array always gives
    the same bytes (the shipped sample is reproducible).
    """
    data = encode_idx(array)
    if compress is None:
        compress = os.fspath(path).endswith(".gz")
    if compress:
        with (
            open(path, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz,
        ):
            gz.write(data)
    else:
        Path(path).write_bytes(data)
