"""Save and load models: one ``.npz`` file with a JSON header, no pickle, written atomically.

* :mod:`~xpnet.serialization.files`: the file format, :func:`save`, :func:`read_file`;
* :mod:`~xpnet.serialization.restore`: :func:`load`, :func:`load_weights`, the registries that
  rebuild layers, losses, optimizers and models (never code from the file).
"""

from .files import FORMAT, HEADER_KEY, VERSION, ModelFileError, digest, read_file, save
from .restore import MODEL_TYPES, ModelParts, load, load_weights, register_model

_digest = digest  # the name older tests and tools use

__all__ = [
    "FORMAT",
    "HEADER_KEY",
    "MODEL_TYPES",
    "VERSION",
    "ModelFileError",
    "ModelParts",
    "digest",
    "load",
    "load_weights",
    "read_file",
    "register_model",
    "save",
]
