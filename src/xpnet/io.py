"""Writing files safely: plain-JSON conversion and atomic writes.

Every file xpnet writes for a user (experiment results, the ``xpnet train`` history, benchmark
reports, downloaded data sets, checkpoints) goes through :func:`atomic_write`, so a file under
its final name is always complete: an error, a full disk or Ctrl-C half-way leaves the previous
version (or nothing) in place, never half a file.

>>> import tempfile, pathlib
>>> from xpnet.io import write_json
>>> path = pathlib.Path(tempfile.mkdtemp()) / "result.json"
>>> _ = write_json(path, {"loss": [0.5, float("nan")]})
>>> path.read_text()
'{\\n "loss": [\\n  0.5,\\n  null\\n ]\\n}\\n'
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import array_api_compat
import numpy as np

__all__ = ["atomic_write", "to_jsonable", "write_json"]

_MODES = ("w", "wt", "wb")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", *,
                 encoding: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one step.

    The temporary file is created in the same folder (so the final :func:`os.replace` is a
    rename on the same file system, atomic on POSIX and Windows), named ``.NAME.XXXXXXXX.tmp``.
    When the ``with`` block ends normally its content is flushed and ``fsync``-ed before the
    rename; when the block raises (any exception, ``KeyboardInterrupt`` included) the temporary
    file is removed, ``path`` is left as it was, and the exception propagates.

    Parameters
    ----------
    path : str or os.PathLike
        The final file.  Its folder must exist.
    mode : {"wb", "w", "wt"}
        Binary (default) or text.
    encoding : str, optional
        Text mode only; default ``"utf-8"`` (not the locale's encoding).
    newline : str, optional
        Text mode only, as for :func:`open`.

    Yields
    ------
    file object
        Opened for writing.

    Notes
    -----
    A new file gets the permissions :func:`open` would give it (``0o666`` less the umask);
    a file that is replaced keeps its permission bits.  Unlike ``tempfile.mkstemp`` (``0o600``)
    a cache or result file stays readable by others where the umask allows it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
    >>> with atomic_write(path) as f:
    ...     _ = f.write(b"\\x00\\x01")
    >>> path.read_bytes()
    b'\\x00\\x01'
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    binary = "b" in mode
    if binary and (encoding is not None or newline is not None):
        raise ValueError("encoding and newline apply to text mode only")
    path = Path(path)
    try:
        perms = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        perms = None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        if perms is not None:
            os.chmod(tmp, perms)
        f = os.fdopen(fd, mode, **({} if binary else {
            "encoding": encoding or "utf-8", "newline": newline}))
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the OS allows (POSIX); best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` to plain JSON types (dict, list, str, int, float, bool, None).

    Parameters
    ----------
    obj
        Mappings (keys become strings as :func:`json.dumps` makes them), lists, tuples, sets,
        NumPy arrays and scalars, Python numbers, paths, strings, None.  Anything else becomes
        ``str(obj)``.

    Returns
    -------
    object
        The same structure with NumPy values as Python ones, tuples and arrays as lists,
        paths as strings and non-finite floats (NaN, ±inf) as None, so that
        ``json.dumps(..., allow_nan=False)`` accepts it and any JSON reader can parse it.

    Raises
    ------
    TypeError
        For an array of another library (torch, CuPy, array_api_strict): copy it to the host
        first (``backend.to_numpy``), since that may be a device synchronization.

    Examples
    --------
    >>> import numpy as np
    >>> to_jsonable({"acc": np.float32(0.5), "curve": np.array([1, 2]), 3: float("inf")})
    {'acc': 0.5, 'curve': [1, 2], '3': None}
    """
    if isinstance(obj, Mapping):
        return {_key(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return [to_jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, (np.ndarray, np.generic)):
        return to_jsonable(obj.tolist())
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj if obj is None else str(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if array_api_compat.is_array_api_obj(obj):
        raise TypeError(
            f"to_jsonable got an array of {type(obj).__module__}.{type(obj).__name__}: copy it "
            "to the host first (backend.to_numpy(x) or backend.to_float(x))"
        )
    return str(obj)


def _key(k: Any) -> str:
    """A mapping key as ``json.dumps`` would write it (``1`` -> ``"1"``, ``True`` -> ``"true"``)."""
    if isinstance(k, str):
        return k
    v = to_jsonable(k)
    if v is None or isinstance(v, (bool, int, float)):
        return json.dumps(v)
    return str(v)


def _rounded(obj: Any, digits: int) -> Any:
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v, digits) for v in obj]
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}")
    return obj


def write_json(path: str | os.PathLike[str], obj: Any, *, indent: int | None = 1,
               digits: int | None = None) -> Path:
    """Write ``obj`` as JSON to ``path``, atomically; return the path.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its folder must exist.
    obj
        Anything :func:`to_jsonable` takes; it is converted first, so NumPy values, tuples and
        paths are fine and NaN is written as ``null`` (the file is always valid JSON).
    indent : int or None
        As for :func:`json.dumps`.
    digits : int, optional
        Round every float to this many significant digits (smaller, readable files).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_json(pathlib.Path(tempfile.mkdtemp()) / "a.json", {"x": 1 / 3}, digits=3)
    >>> p.read_text()
    '{\\n "x": 0.333\\n}\\n'
    """
    if digits is not None and (isinstance(digits, bool) or not isinstance(digits, int)
                               or digits < 1):
        raise ValueError(f"digits must be a positive integer or None, got {digits!r}")
    data = to_jsonable(obj)
    if digits is not None:
        data = _rounded(data, digits)
    text = json.dumps(data, indent=indent, allow_nan=False) + "\n"
    path = Path(path)
    with atomic_write(path, "w") as f:
        f.write(text)
    return path
