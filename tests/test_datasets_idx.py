"""IDX reader/writer: round trips, every kind of corruption, and random-byte fuzzing."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from xpnet.datasets import DatasetError, parse_idx, read_idx, write_idx
from xpnet.datasets.idx import encode_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _mnist_like(n: int = 3) -> np.ndarray:
    return (np.arange(n * 28 * 28) % 256).astype(np.uint8).reshape(n, 28, 28)


def test_dataset_error_is_a_value_error() -> None:
    assert issubclass(DatasetError, ValueError)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", [".gz", ""])
def test_round_trip_every_type_code(tmp_path: Path, dtype: type, suffix: str) -> None:
    array: np.ndarray = (np.arange(24).reshape(2, 3, 4) - 7).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


@given(
    hnp.arrays(
        dtype=st.sampled_from([np.dtype(d) for d in DTYPES]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    )
)
def test_round_trip_random_arrays(array: np.ndarray) -> None:
    back = parse_idx(encode_idx(array), "random")
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)  # NaNs compare equal here


def test_header_layout_matches_the_mnist_format() -> None:
    data = encode_idx(_mnist_like(2))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", data[4:16]) == (2, 28, 28)
    assert len(data) == 16 + 2 * 784


def test_gzip_is_detected_by_magic_not_by_name(tmp_path: Path) -> None:
    array = _mnist_like()
    compressed = tmp_path / "train-images-idx3-ubyte"  # gzip data, no .gz in the name
    compressed.write_bytes(gzip.compress(encode_idx(array)))
    raw = tmp_path / "raw-idx3-ubyte.gz"  # raw data under a .gz name
    raw.write_bytes(encode_idx(array))
    np.testing.assert_array_equal(read_idx(compressed), array)
    np.testing.assert_array_equal(read_idx(raw), array)


def test_written_gzip_is_reproducible(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.gz", _mnist_like())
    write_idx(tmp_path / "b.gz", _mnist_like())
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def _write(tmp_path: Path, data: bytes, name: str = "train-images-idx3-ubyte.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(data))
    return path


def _corrupt(good: bytes, fault: str) -> tuple[bytes, str]:
    """A corrupted variant of ``good`` and a fragment the error message must contain."""
    if fault == "bad magic":
        return b"\x01\x02" + good[2:], "bad magic number 0x0102"
    if fault == "type code":
        return good[:2] + b"\x07" + good[3:], "unknown IDX type code 0x07"
    if fault == "zero dims":
        return good[:3] + b"\x00", "0 dimensions"
    if fault == "wrong ndim":
        # Says 4 dimensions: the first payload bytes become a fourth size, so sizes disagree.
        return good[:3] + b"\x04" + good[4:], "truncated"
    if fault == "short header":
        return good[:10], "truncated header: 3 dimensions need 12 bytes, file has 6"
    if fault == "empty":
        return b"", "too short for an IDX header"
    if fault == "truncated":
        return good[:-100], "header says 3x28x28 = 2352 bytes of ubyte data, file has 2252"
    if fault == "extra":
        return good + b"\x00" * 7, "7 unexpected bytes after the 3x28x28 = 2352 bytes"
    raise AssertionError(fault)


FAULTS = [
    "bad magic",
    "type code",
    "zero dims",
    "wrong ndim",
    "short header",
    "empty",
    "truncated",
    "extra",
]


@pytest.mark.parametrize("compressed", [True, False])
@pytest.mark.parametrize("fault", FAULTS)
def test_corrupt_file_names_file_and_fault(tmp_path: Path, fault: str, compressed: bool) -> None:
    data, fragment = _corrupt(encode_idx(_mnist_like()), fault)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(DatasetError) as info:
        read_idx(path)
    message = str(info.value)
    assert message.startswith("train-images-idx3-ubyte.gz: ")
    assert fragment in message


def test_truncated_gzip_stream(tmp_path: Path) -> None:
    whole = gzip.compress(encode_idx(_mnist_like()))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DatasetError, match=r"^t10k-images-idx3-ubyte\.gz: damaged gzip stream"):
        read_idx(path)


def test_missing_gzip_trailer(tmp_path: Path) -> None:
    whole = gzip.compress(encode_idx(_mnist_like()))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(whole[:-8])  # CRC and length gone, deflate data complete
    with pytest.raises(DatasetError, match="damaged gzip stream"):
        read_idx(path)


def test_bad_gzip_crc(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(encode_idx(_mnist_like())))
    whole[-8] ^= 0xFF  # first byte of the CRC-32 trailer
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\.gz: damaged gzip.*CRC"):
        read_idx(path)


def test_corrupt_deflate_data(tmp_path: Path) -> None:
    whole = bytearray(gzip.compress(encode_idx(_mnist_like())))
    for i in range(12, 40):
        whole[i] ^= 0x5A
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(whole))
    with pytest.raises(DatasetError, match=r"^x\.gz: "):
        read_idx(path)


def test_unreadable_path_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope.gz: cannot read"):
        read_idx(tmp_path / "nope.gz")


def test_huge_header_does_not_allocate() -> None:
    # 4 dimensions of 2**32-1: ~3e38 bytes announced, 3 present. Must fail fast, not OOM.
    data = b"\x00\x00\x0e\x04" + b"\xff" * 16 + b"abc"
    with pytest.raises(DatasetError, match="truncated: header says 4294967295x"):
        parse_idx(data, "huge")


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot store dtype complex128"):
        write_idx(tmp_path / "c.gz", np.zeros(3, dtype=np.complex128))
    with pytest.raises(DatasetError, match="1 to 255 dimensions"):
        write_idx(tmp_path / "s.gz", np.array(5, dtype=np.uint8))


@given(st.binary(max_size=200))
def test_fuzz_random_bytes_only_raise_dataset_error(data: bytes) -> None:
    for blob in (data, gzip.compress(data), b"\x1f\x8b" + data):
        try:
            parse_idx(blob, "fuzz")
        except DatasetError as exc:
            assert str(exc).startswith("fuzz: ")


@given(st.data())
def test_fuzz_mutated_valid_files(data: st.DataObject) -> None:
    good = bytearray(gzip.compress(encode_idx(_mnist_like(2))))
    raw = data.draw(st.booleans())
    if raw:
        good = bytearray(encode_idx(_mnist_like(2)))
    n = data.draw(st.integers(1, 6))
    for _ in range(n):
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    try:
        array = parse_idx(bytes(good[:cut]), "mutated")
    except DatasetError as exc:
        assert str(exc).startswith("mutated: ")
    else:
        assert isinstance(array, np.ndarray)


def test_a_header_with_zero_rows_but_an_unrepresentable_shape_is_a_clear_error(
    tmp_path: Path,
) -> None:
    # Found by the fuzz test: 0 x 768 x 721420288 x 16777216 holds no data, yet NumPy cannot
    # build an array of that shape.
    path = tmp_path / "huge.idx"
    path.write_bytes(bytes([0, 0, 8, 4]) + struct.pack(">4I", 0, 768, 0x2B000000, 1 << 24))
    with pytest.raises(DatasetError, match="huge.idx.*cannot hold"):
        read_idx(path)
