"""Arrays of other libraries (PyTorch, JAX, ...) read through DLPack, without a copy.

Any object with ``__dlpack__`` and ``__dlpack_device__`` can be passed as ``X`` or ``y`` to
``fit`` / ``evaluate`` / ``predict`` / ``predict_proba``. :meth:`Backend.from_dlpack
<xpnet.backends.base.Backend.from_dlpack>` reads it where it lives:

* in host memory: ``numpy.from_dlpack``, a view of the same memory; it is then checked and
  cast exactly like the NumPy array of the same dtype (so a float32 tensor is used in place,
  a float64 or integer one is cast to the model's dtype, int64 labels stay int64, a bool ``X``
  is refused as a NumPy bool array is);
* on a GPU: by the backend that computes there (the CuPy backend shares the device memory);
  a NumPy model refuses it with a message saying how to move it.

The other way works too: a parameter such as ``layer.params["W"]`` is a NumPy (or CuPy)
array, so ``torch.from_dlpack(layer.params["W"])`` is a tensor *sharing* its memory; writing
through it changes the layer, and the optimizer's in-place updates show in the tensor. The
sharing lasts until the layer replaces the array (``model.to(...)``, ``xpnet.load``, assigning
``params``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: DLPack ``DLDeviceType`` codes -> readable names (for messages)
DEVICE_NAMES = {1: "CPU", 2: "CUDA", 3: "CUDA host", 4: "OpenCL", 7: "Vulkan", 8: "Metal",
                9: "VPI", 10: "ROCm", 11: "ROCm host", 12: "ext_dev", 13: "CUDA managed",
                14: "oneAPI", 15: "WebGPU", 16: "Hexagon", 17: "MAIA"}
#: device types whose memory the CPU reads directly (NumPy can view it)
HOST_DEVICES = (1, 3, 11)
#: device types CUDA kernels can read
CUDA_DEVICES = (2, 13)


def is_dlpack(x: Any) -> bool:
    """Whether ``x`` speaks DLPack (has ``__dlpack__`` and ``__dlpack_device__``)."""
    return hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__")


def device_of(x: Any) -> tuple[int, int]:
    """``(device type, device id)`` of a DLPack producer, as plain ints."""
    kind, index = x.__dlpack_device__()
    return int(kind), int(index)


def describe(x: Any) -> str:
    """``"a torch.Tensor on CUDA device 0"``: what ``x`` is, for error messages."""
    cls = type(x)
    module = cls.__module__.split(".")[0]
    kind, index = device_of(x)
    where = DEVICE_NAMES.get(kind, f"device type {kind}")
    return f"a {module}.{cls.__name__} on {where} device {index}"


def on_host(x: Any) -> bool:
    """Whether the DLPack producer ``x`` lives in memory the CPU can read."""
    return device_of(x)[0] in HOST_DEVICES


def host_from_dlpack(x: Any, name: str) -> np.ndarray:
    """A NumPy view (no copy) of ``x`` in host memory, any shape and strides.

    Raises TypeError naming ``name`` when the producer cannot export it (a tensor that
    requires grad, a dtype NumPy lacks such as bfloat16...).
    """
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        dtype = getattr(x, "dtype", "?")
        raise TypeError(
            f"{name}: {describe(x)} of dtype {dtype} cannot be read through DLPack ({exc}); "
            "pass a detached tensor of a NumPy dtype (float32, float64, an integer or bool), "
            "e.g. X.detach().float()"
        ) from None


__all__ = ["describe", "device_of", "host_from_dlpack", "is_dlpack", "on_host"]
