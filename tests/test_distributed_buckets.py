"""Packing arrays into one flat buffer and back, on every backend; argument checks; polling."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xpnet.backends import Backend, get_backend
from xpnet.distributed.buckets import by_dtype, check_arrays, check_values, pack, poll, unpack

SHAPES = [(3, 4), (5,), (), (2, 1, 3)]


def _arrays(be: Backend, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [be.asarray(rng.normal(size=s)) for s in SHAPES]


def test_pack_lays_arrays_end_to_end_and_unpack_restores_them(xpnet_backend: Backend) -> None:
    be = xpnet_backend
    arrays = _arrays(be)
    host = [be.to_host(a).copy() for a in arrays]
    buf, n = pack(be, arrays, {})
    assert n == 12 + 5 + 1 + 6 and tuple(buf.shape) == (n,)
    flat = np.concatenate([h.reshape(-1) for h in host])
    np.testing.assert_array_equal(be.to_host(buf), flat)
    targets = [be.zeros(tuple(a.shape), a.dtype) for a in arrays]
    unpack(be, buf, targets)
    for t, h in zip(targets, host, strict=True):
        assert tuple(t.shape) == h.shape and t.dtype == arrays[0].dtype
        np.testing.assert_array_equal(be.to_host(t), h)


@pytest.mark.parametrize("weight", [0.0, 1.0, 3.0])
def test_pack_with_a_weight_scales_and_appends_it(weight: float) -> None:
    be = get_backend("numpy", "float64")
    arrays = _arrays(be)
    if weight == 0.0:
        arrays[1][...] = np.nan  # a rank with no rows: stale values, NaN or not, must vanish
    buf, n = pack(be, arrays, {}, weight=weight)
    assert buf.shape == (n + 1,) and buf[n] == weight
    want = 0.0 if weight == 0.0 else np.concatenate([a.reshape(-1) for a in arrays]) * weight
    np.testing.assert_array_equal(buf[:n], want)


def test_pack_reuses_its_buffer_from_step_to_step() -> None:
    be, cache = get_backend("numpy"), {}
    first, _ = pack(be, _arrays(be, 0), cache, weight=1.0)
    second, _ = pack(be, _arrays(be, 1), cache, weight=1.0)
    assert second is first and len(cache) == 1
    third, _ = pack(be, _arrays(be, 1), cache)  # no weight slot: another size, another buffer
    assert third is not first and len(cache) == 2


def test_pack_refuses_mixed_dtypes_naming_the_array() -> None:
    arrays = [np.zeros(3, np.float32), np.zeros(2, np.float64)]
    with pytest.raises(TypeError, match=r"arrays\[1\] is float64 but arrays\[0\] is float32"):
        pack(get_backend("numpy"), arrays, {})


def test_by_dtype_groups_in_first_seen_order() -> None:
    a, b, c, d = np.zeros(1, np.float64), np.zeros(2, np.float32), np.zeros(3), np.arange(2)
    groups = by_dtype([a, b, c, d])
    assert [[x is y for x, y in zip(g, w, strict=True)] for g, w in
            zip(groups, [[a, c], [b], [d]], strict=True)] == [[True, True], [True], [True]]


def test_check_arrays_names_the_bad_argument() -> None:
    with pytest.raises(TypeError, match="arrays must be a list of arrays, got ndarray"):
        check_arrays("arrays", np.zeros(3), None)
    with pytest.raises(TypeError, match=r"arrays\[1\] is a list, not a numpy array \(pass backend"):
        check_arrays("arrays", [np.zeros(1), [1.0]], None)
    with pytest.raises(TypeError, match="backend must be an xpnet Backend or None, got 'numpy'"):
        check_arrays("arrays", [], "numpy")  # type: ignore[arg-type]
    assert check_arrays("arrays", [np.zeros(2)], None).name == "numpy"


def test_check_values_quotes_the_bad_value() -> None:
    assert check_values([1, 2.5, np.float32(0.5)]) == [1.0, 2.5, 0.5]
    with pytest.raises(TypeError, match=r"values\[1\] must be a real number, got 'x'"):
        check_values([1.0, "x"])
    with pytest.raises(TypeError, match=r"values\[0\] must be a real number, got True"):
        check_values([True])
    with pytest.raises(TypeError, match="values must be a list of numbers, got float"):
        check_values(1.0)


@given(st.integers(0, 5))
def test_poll_returns_none_once_done(calls_needed: int) -> None:
    calls = []

    def done() -> bool:
        calls.append(1)
        return len(calls) > calls_needed

    assert poll(done, timeout=60.0) is None
    assert len(calls) == calls_needed + 1


def test_poll_gives_up_after_the_timeout_and_says_how_long_it_waited() -> None:
    start = time.monotonic()
    waited = poll(lambda: False, timeout=0.05)
    assert waited is not None and 0.05 < waited <= time.monotonic() - start
