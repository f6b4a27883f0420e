"""Reading and writing MNIST's IDX files (gzip-compressed or raw), with strict checks.

The IDX format is a 4-byte big-endian magic number, one big-endian ``uint32`` per
dimension, then the data in C order.  MNIST uses two kinds of file, both of unsigned
bytes: images (magic 2051, three dimensions: count, rows, columns) and labels (magic
2049, one dimension: count).
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"

_KINDS = {
    "images": (IMAGES_MAGIC, 3),
    "labels": (LABELS_MAGIC, 1),
}


def decompress_if_gzip(raw: bytes, name: str) -> bytes:
    """Return ``raw`` decompressed when it is a gzip stream, unchanged otherwise.

    Parameters
    ----------
    raw : bytes
        File content.
    name : str
        File name used in error messages.

    Returns
    -------
    bytes
        The decompressed content.

    Raises
    ------
    ValueError
        If ``raw`` starts like a gzip stream but is damaged or truncated.
    """
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{name}: damaged or truncated gzip data ({exc})") from exc


def parse_idx(data: bytes, kind: str, name: str) -> np.ndarray:
    """Parse the (decompressed) bytes of an MNIST IDX file.

    Parameters
    ----------
    data : bytes
        The uncompressed file content.
    kind : {"images", "labels"}
        Which MNIST file this is; it fixes the expected magic number and rank.
    name : str
        File name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``uint8`` array of shape ``(n, rows, cols)`` for images or ``(n,)`` for labels.

    Raises
    ------
    ValueError
        If the magic number is wrong, the header is cut short, or the body is
        shorter or longer than the dimensions say.
    """
    magic, ndim = _KINDS[kind]
    header_len = 4 + 4 * ndim
    if len(data) < 4:
        raise ValueError(f"{name}: file too short ({len(data)} bytes) to hold an IDX magic number")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise ValueError(
            f"{name}: wrong magic number {found} (expected {magic} for an MNIST {kind} file)"
        )
    if len(data) < header_len:
        raise ValueError(
            f"{name}: truncated header ({len(data)} bytes, expected at least {header_len})"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(data) - header_len
    if body < expected:
        raise ValueError(
            f"{name}: truncated body: dimensions {dims} need {expected} bytes, found {body}"
        )
    if body > expected:
        raise ValueError(
            f"{name}: {body - expected} unexpected trailing bytes after {expected} bytes "
            f"of data for dimensions {dims}"
        )
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header_len).reshape(dims)


def read_idx(path: str | os.PathLike[str], kind: str) -> np.ndarray:
    """Read an MNIST IDX file, gzip-compressed or raw (detected from the content).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    kind : {"images", "labels"}
        Which MNIST file this is.

    Returns
    -------
    numpy.ndarray
        Read-only ``uint8`` array, ``(n, rows, cols)`` for images, ``(n,)`` for labels.

    Raises
    ------
    ValueError
        If the file is malformed; the message names the file.
    """
    path = Path(path)
    return parse_idx(decompress_if_gzip(path.read_bytes(), str(path)), kind, str(path))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None):
    """Write a ``uint8`` array as an MNIST IDX file (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or os.PathLike
        Destination.
    array : numpy.ndarray
        ``uint8`` array of rank 3 (images) or rank 1 (labels).
    compress : bool, optional
        Gzip the file; by default when ``path`` ends with ``.gz``.
    """
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = {3: IMAGES_MAGIC, 1: LABELS_MAGIC}[array.ndim]
    data = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
