"""Input preparation for fit / evaluate / predict: checked once, moved to the device once.

* :func:`prepare_inputs` and :func:`prepare_targets` accept NumPy arrays, arrays of the
  model's backend and any array speaking DLPack (read without a copy, see
  :mod:`xpnet.backends.dlpack`); they validate ``X`` (shape against the model's
  first layer, real numbers, no NaN/inf, nothing that overflows the model's dtype) and ``y``
  (rows, and what the loss accepts: label ranges, one-hot rows...), and move them to the
  model's backend; every error names the argument and what was expected.
* :class:`Batches` hands out an epoch's minibatches, from the device when the data set fits
  there (one host->device copy of the epoch's order, none per step), else gathered on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .._checks import positive_int
from ..backends import Array, Backend, dtype_kind
from ..backends.dlpack import is_dlpack
from ..layers.base import format_shape, shapes_agree

if TYPE_CHECKING:
    from ..model import Sequential


def check_batch_size(batch_size: Any) -> int:
    return positive_int("batch_size", batch_size)


def read_foreign(be: Backend, data: Any, name: str) -> Any:
    """``data`` unchanged, unless it is another library's array speaking DLPack (a PyTorch
    tensor, a JAX array...): then a view of it, without a copy, from :meth:`Backend.from_dlpack`
    (a host NumPy array, or an array of ``be`` on its device), checked like any other."""
    if isinstance(data, np.ndarray) or be.is_array(data) or not is_dlpack(data):
        return data
    return be.from_dlpack(data, name)


def host_view(data: Any, name: str) -> np.ndarray | None:
    """``data`` as a host array if it is host data, None if it is already a device array."""
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "__cuda_array_interface__") or hasattr(data, "device") and not isinstance(
        data, (list, tuple)
    ):
        return None
    try:
        return np.asarray(data)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array, got {type(data).__name__}: {exc}") from exc


def _first_layer(model: Sequential) -> str:
    return model.layers[0].name if model.layers else "the model"


def prepare_inputs(model: Sequential, X: Any, name: str = "X") -> Array:
    """Validate ``X`` (N, *input_shape) of real numbers and move it to the model's backend."""
    be = model.backend
    X = read_foreign(be, X, name)
    host = host_view(X, name)
    kind = host.dtype.kind if host is not None else dtype_kind(X)
    if kind not in "fiu":
        raise TypeError(
            f"{name} must hold real numbers: {_first_layer(model)} expects input of shape "
            f"{_expected(model)}, got dtype {host.dtype if host is not None else X.dtype}"
        )
    if host is not None:
        check_shape(model, tuple(host.shape), name)
        if host.dtype.kind == "f":
            check_finite(host, name, be.dtype_name)
        return be.asarray(host, dtype=be.dtype)
    if not be.is_array(X):
        raise TypeError(f"{name} is a {type(X).__name__}, not a host array or a {be.name} array")
    check_shape(model, tuple(X.shape), name)
    Xd = be.asarray(X, dtype=be.dtype)
    if not be.to_float(be.xp.all(be.xp.isfinite(Xd))):
        raise ValueError(f"{name} contains NaN or infinity")
    return Xd


def check_finite(host: np.ndarray, name: str, dtype: str) -> None:
    """Raise a ValueError naming ``name`` and the first bad index if ``host`` holds NaN/inf,
    or values that would overflow to infinity when cast to ``dtype`` (float64 -> float32)."""
    ok = np.isfinite(host)
    if not ok.all():
        bad = tuple(int(i) for i in np.argwhere(~ok)[0])
        raise ValueError(f"{name} contains NaN or infinity (first at index {bad})")
    limit = np.finfo(dtype).max
    if host.dtype.itemsize > np.dtype(dtype).itemsize and host.size:
        big = np.abs(host) > limit
        if big.any():
            bad = tuple(int(i) for i in np.argwhere(big)[0])
            raise ValueError(
                f"{name} holds {float(host[bad])!r} (index {bad}), beyond the largest {dtype} "
                f"({float(limit):.4g}); it would become infinity"
            )


def _expected(model: Sequential) -> str:
    shape = model.input_shape
    return format_shape(shape) if shape is not None else "(batch, features)"


def check_shape(model: Sequential, shape: tuple[int, ...], name: str) -> None:
    """``shape`` (batch first) must fit the model's per-sample input shape."""
    required = model.input_shape
    wrong = ValueError(
        f"{name}: {_first_layer(model)} expects input of shape {_expected(model)}, got {shape}"
    )
    if len(shape) < 2 or required is not None and len(shape) != len(required) + 1:
        raise wrong
    if shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    if required is not None and not shapes_agree(required, shape[1:]):
        raise wrong


def prepare_targets(model: Sequential, y: Any, n: int, name: str = "y") -> Array:
    """Validate targets against the loss (labels in range, shapes) and move them to the device."""
    assert model.loss is not None
    be = model.backend
    y = read_foreign(be, y, name)
    host = host_view(y, name)
    if host is None:
        host = be.to_host(y)
    if host.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold numbers, got dtype {host.dtype}")
    if host.ndim == 0 or host.shape[0] != n:
        raise ValueError(f"{name} has {host.shape[0] if host.ndim else 0} rows but X has {n}")
    if host.dtype.kind == "f":
        check_finite(host, name, be.dtype_name)
    out = model.out_features
    pred_shape = (n, out if out is not None else (host.shape[1] if host.ndim == 2 else 1))
    try:
        model.loss.check_target(pred_shape, host)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
    kind = host.dtype.kind
    return be.asarray(host, dtype=None if kind in "iu" else be.dtype)


def prepare_validation(model: Sequential, data: Any) -> tuple[Array, Array] | None:
    """``validation_data=(X_val, y_val)`` checked and on the device, or None."""
    if data is None:
        return None
    if not isinstance(data, tuple) or len(data) != 2:
        raise TypeError("validation_data must be a tuple (X_val, y_val)")
    Xv = prepare_inputs(model, data[0], "validation X")
    return Xv, prepare_targets(model, data[1], int(Xv.shape[0]), "validation y")


class Batches:
    """An epoch's minibatches ``(rows, X[rows], y[rows])`` in the order of :meth:`start_epoch`.

    The data stays on the device when it fits in half its free memory (always on the CPU);
    otherwise it is kept on the host and each batch is moved as it is used.
    """

    def __init__(
        self, be: Backend, X: Array, y: Array, batch_size: int,
        rows: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        self.be = be
        self.batch_size = batch_size
        #: which rows of the global batch ``[lo, hi)`` this process takes (data-parallel)
        self.rows = rows if rows is not None else _all_rows
        self.n = int(X.shape[0])
        self.on_device = be.is_host or be.fits_on_device(be.nbytes(X) + be.nbytes(y))
        self.X: Array = X if self.on_device else be.to_host(X)
        self.y: Array = y if self.on_device else be.to_host(y)
        self.order = np.arange(self.n)
        self._dev_order: Array | None = None

    def start_epoch(self, order: np.ndarray) -> None:
        """Use ``order`` (a permutation of the rows) for the epoch's batches."""
        self.order = order
        # A GPU gets the epoch's order once: a host->device copy per step would sync.
        on_gpu = self.on_device and not self.be.is_host
        self._dev_order = self.be.index_array(order) if on_gpu else None

    def get(self, step: int) -> tuple[np.ndarray, Array, Array]:
        """Batch ``step`` of the epoch: its row indices (host) and the rows of X and y."""
        be = self.be
        lo, hi = self.rows(step * self.batch_size, min((step + 1) * self.batch_size, self.n))
        idx = self.order[lo:hi]
        if not self.on_device:
            return idx, be.asarray(np.take(self.X, idx, axis=0)), be.asarray(
                np.take(self.y, idx, axis=0)
            )
        di = be.index_array(idx) if self._dev_order is None else self._dev_order[lo:hi]
        return idx, be.take_rows(self.X, di), be.take_rows(self.y, di)


def _all_rows(lo: int, hi: int) -> tuple[int, int]:
    return lo, hi
