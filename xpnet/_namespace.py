"""The clone-folder trap: ``import xpnet`` finding a clone of the repository, not the package.

A clone of the repository is a folder named ``xpnet`` holding the package folder ``xpnet/``.
Started from the folder above the clone, Python finds the clone first on ``sys.path`` (the
current directory comes first) and, since it has no ``__init__.py``, imports it as an empty
namespace package: ``xpnet.__file__`` is None, ``xpnet.Sequential`` does not exist and
``importlib.resources`` looks for the shipped data in the clone's root. The installed
package's subpackages (``xpnet.layers``...) still import, so those are where this is caught:
they warn, and the loader of the shipped MNIST sample raises with the same explanation.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

#: The real package folder: the one this module is in.
PACKAGE_DIR = Path(__file__).resolve().parent

_warned = False


def shadowing_message() -> str | None:
    """What went wrong and what to do, when ``xpnet`` was imported as a namespace package;
    None when it is the real package (or not imported)."""
    top = sys.modules.get("xpnet")
    if top is None or getattr(top, "__file__", None) is not None:
        return None
    found = [str(p) for p in getattr(top, "__path__", [])]
    folder = Path(found[0]) if found else None
    if folder is None:
        where = "a folder without __init__.py"
    else:
        where = f"the folder {folder}"
    started = ""
    if folder is not None and folder.parent == Path(os.getcwd()).resolve():
        started = f"Python was started in {folder.parent}, the folder above it, and "
    return (
        f"'import xpnet' found {where} (a clone of the repository?) instead of the package "
        f"inside it, {PACKAGE_DIR}: {started}a folder named xpnet on the module search path "
        "(the current directory comes first) that has no __init__.py is imported as an empty "
        "namespace package, which hides the installed xpnet: xpnet.Sequential, xpnet.load "
        "and the data shipped in xpnet/data are missing from it. Run Python from another "
        f"folder (inside the clone, {folder or 'the clone'}, works too) or rename the clone's "
        "folder."
    )


def warn_if_shadowed() -> None:
    """Warn once per process when ``xpnet`` is a namespace package (see the module doc)."""
    global _warned
    message = shadowing_message()
    if message is not None and not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=3)


__all__ = ["PACKAGE_DIR", "shadowing_message", "warn_if_shadowed"]
