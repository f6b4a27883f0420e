"""Checksummed, atomic downloads from a list of mirrors.

A file is streamed into a temporary file in the destination directory
(:func:`xpnet.io.atomic_write`), its checksum is checked, and only then is it renamed
(:func:`os.replace`) to its final name.  Whatever happens in between (network error, bad
checksum, Ctrl-C), the temporary file is removed, so a file under the final name is always
complete and verified.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from xpnet.io import atomic_write
from xpnet.progress import progress

_CHUNK = 1 << 16
TIMEOUT = 30.0
_USER_AGENT = "xpnet (https://pypi.org/project/xpnet/) python-urllib"


class DownloadError(RuntimeError):
    """A file could not be obtained from any mirror (network error or bad checksum)."""


def file_digest(path: str | os.PathLike[str], algorithm: str = "md5") -> str:
    """Return the hex digest of a file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    algorithm : str, optional
        A :mod:`hashlib` algorithm name.

    Returns
    -------
    str
        Lower-case hex digest.
    """
    digest = _new_hash(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _new_hash(algorithm: str):
    try:
        return hashlib.new(algorithm, usedforsecurity=False)
    except TypeError:  # pragma: no cover - very old OpenSSL builds
        return hashlib.new(algorithm)


class _ChecksumMismatch(Exception):
    """Raised inside the atomic write to throw a wrong download away."""


def fetch(url: str, out: BinaryIO, *, desc: str = "", timeout: float | None = None) -> None:
    """Stream ``url`` into the open binary file ``out``, with a progress bar on terminals.

    Parameters
    ----------
    url : str
        Any URL :func:`urllib.request.urlopen` accepts (``https://``, ``file://``...).
    out : file object
        Destination, opened for binary writing.
    desc : str, optional
        Label of the progress bar (see :func:`xpnet.progress.progress`; ``XPNET_PROGRESS=0``
        turns it off).
    timeout : float, optional
        Socket timeout in seconds (default :data:`TIMEOUT`).

    Raises
    ------
    OSError
        On any network or I/O failure (:class:`urllib.error.URLError` is a subclass).
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT if timeout is None else timeout) as r:
        length = r.headers.get("Content-Length") if getattr(r, "headers", None) else None
        total = int(length) if length and length.isdigit() else None
        with progress(total=total, desc=desc, unit="B", unit_scale=True,
                      unit_divisor=1024) as bar:
            for chunk in iter(lambda: r.read(_CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))


def download(
    filename: str,
    directory: str | os.PathLike[str],
    mirrors: Sequence[str],
    checksum: str,
    *,
    algorithm: str = "md5",
) -> Path:
    """Download ``filename`` into ``directory``, trying each mirror until one verifies.

    Parameters
    ----------
    filename : str
        Name of the file, appended to each mirror's base URL and used as the local name.
    directory : str or os.PathLike
        Destination directory (created if needed).
    mirrors : sequence of str
        Base URLs, each ending with ``/``, tried in order.
    checksum : str
        Expected hex digest of the downloaded bytes.
    algorithm : str, optional
        The :mod:`hashlib` algorithm of ``checksum``.

    Returns
    -------
    pathlib.Path
        The final, verified file.

    Raises
    ------
    DownloadError
        If no mirror delivered bytes with the expected checksum; the message names the
        file and what went wrong with each mirror.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / filename
    failures = []
    for base in mirrors:
        url = base + filename
        try:
            with atomic_write(final, "wb") as out:
                digest = _new_hash(algorithm)
                fetch(url, _HashingWriter(out, digest), desc=filename)
                if digest.hexdigest() != checksum.lower():
                    raise _ChecksumMismatch(
                        f"{url}: checksum mismatch ({algorithm} {digest.hexdigest()}, "
                        f"expected {checksum})"
                    )
            return final
        except _ChecksumMismatch as exc:
            failures.append(str(exc))
        except OSError as exc:
            failures.append(f"{url}: {exc}")
    detail = "\n  ".join(failures) if failures else "no mirrors configured"
    raise DownloadError(f"could not download {filename} into {directory}:\n  {detail}")


class _HashingWriter:
    """Minimal binary writer that hashes what passes through it."""

    def __init__(self, out: BinaryIO, digest):
        self._out = out
        self._digest = digest

    def write(self, data: bytes) -> int:
        self._digest.update(data)
        return self._out.write(data)
