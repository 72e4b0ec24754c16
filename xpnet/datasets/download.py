"""Download a file from a list of mirrors into a folder, verified by SHA-256, written atomically.

Only the standard library is used (``urllib.request``). The file is streamed into a temporary
file in the destination folder, its digest is checked, and only then is it renamed into place
with :func:`os.replace`, so a failed, truncated or corrupt transfer never leaves a file that a
later run would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..progress import ProgressBar
from .errors import DatasetError

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 16


class DownloadError(DatasetError):
    """Every mirror failed; ``failures`` holds one ``(url, reason)`` per mirror tried."""

    def __init__(self, message: str, failures: Sequence[tuple[str, str]]) -> None:
        super().__init__(message)
        self.failures = list(failures)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect: {exc.reason}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, DatasetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _fetch_one(
    url: str,
    dest: Path,
    sha256: str,
    *,
    timeout: float,
    progress: bool | None,
    stream: TextIO | None,
) -> None:
    """Fetch ``url`` into ``dest`` or raise; on any failure nothing is left at ``dest``."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            header = resp.headers.get("Content-Length")
            declared = int(header) if header and header.isdigit() else None
            bar = ProgressBar(
                declared or 0, dest.name, unit="bytes", file=stream or sys.stderr, enabled=progress
            )
            with bar:
                while chunk := resp.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        # http.client does not raise when the server closes early, it just stops: check.
        if declared is not None and received != declared:
            raise DatasetError(
                f"truncated transfer: server announced {declared} bytes, received {received}"
            )
        got = digest.hexdigest()
        if got != sha256:
            raise DatasetError(f"SHA-256 mismatch: expected {sha256}, got {got} ({received} bytes)")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def download(
    filename: str,
    dest_dir: str | os.PathLike[str],
    mirrors: Sequence[str],
    sha256: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool | None = None,
    stream: TextIO | None = None,
) -> Path:
    """Fetch ``filename`` from the first mirror that serves it with the right SHA-256.

    ``mirrors`` are base URLs (``filename`` is appended); they are tried in order. The result
    lands at ``dest_dir/filename`` (the folder is created). ``progress=None`` draws a progress
    bar on ``stream`` (default stderr) only when it is a terminal. Raises :class:`DownloadError`
    listing every mirror and why it failed.
    """
    folder = Path(dest_dir)
    dest = folder / filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"{filename}: cannot create the download folder {str(folder)!r}: {exc}", []
        ) from exc
    failures: list[tuple[str, str]] = []
    for base in mirrors:
        url = base if base.endswith(filename) else base.rstrip("/") + "/" + filename
        try:
            _fetch_one(url, dest, sha256, timeout=timeout, progress=progress, stream=stream)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # OSError covers URLError/HTTPError, refused connections, time-outs and resets;
            # HTTPException malformed replies; DatasetError (a ValueError) truncation and digests.
            failures.append((url, _describe(exc)))
            continue
        return dest
    lines = "\n".join(f"  - {url}: {reason}" for url, reason in failures) or "  (no mirrors given)"
    raise DownloadError(f"{filename}: download failed from every mirror:\n{lines}", failures)
