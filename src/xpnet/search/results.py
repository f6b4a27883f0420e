"""The results file of a search: JSON Lines, one finished trial per line, safe against crashes.

Line 1 is a header that says which search the file belongs to::

    {"kind": "header", "format": "xpnet.search/1", "seed": 0, "space": {...},
     "space_hash": "...", "objective": {...}, "metric": "val_acc", "mode": "max",
     "halving": null, "n_trials": 100, "xpnet_version": "...", "created": "..."}

then one line per finished trial (``"kind": "trial"``, see :func:`xpnet.search.random_search`)
and, with successive halving, one per decided rung (``"kind": "rung"``: its budget, its trials,
those promoted).  Only the driver process writes; each line is written whole, flushed and
``fsync``-ed before the next trial is looked at, and the file is locked (``flock``, where the
OS has it) while a search holds it, so two searches cannot interleave their lines.

Reading it back: a last line without its newline (a crash in the middle of a write) is ignored
and cut off before anything is appended; a broken line anywhere else is an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from xpnet.io import to_jsonable

__all__ = ["FORMAT", "ResultsFile", "read_results"]

#: The format tag of the header line.
FORMAT = "xpnet.search/1"

#: Header fields that must match for a search to resume from a file (n_trials: with halving).
IDENTITY = ("seed", "space", "objective", "metric", "mode", "halving")


def dumps(obj: Any) -> str:
    """One JSON line (no newline): NumPy values as Python ones, NaN as null, compact."""
    return json.dumps(to_jsonable(obj), allow_nan=False, separators=(",", ":"))


def _parse(data: bytes, path: Path) -> tuple[list[dict], int]:
    """The complete lines of ``data`` as dicts, and the byte length they span."""
    records: list[dict] = []
    pos = 0
    lines = data.split(b"\n")
    # every element but the last ended with a newline; the last is b"" or a torn line
    for i, raw in enumerate(lines[:-1]):
        end = pos + len(raw) + 1
        try:
            rec = json.loads(raw.decode("utf-8"))
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
        except (UnicodeDecodeError, ValueError) as exc:
            if i == len(lines) - 2 and lines[-1] == b"":
                break  # the last line, garbled by a crash: dropped like a torn one
            raise ValueError(f"{path}: line {i + 1} is not a JSON object ({exc}); the file is "
                             "damaged (only its last line may be cut short by a crash)") from None
        records.append(rec)
        pos = end
    return records, pos


def read_results(path: str | os.PathLike[str]) -> tuple[dict | None, list[dict]]:
    """Read a results file: ``(header, records)``; ``(None, [])`` for a missing or empty file.

    A torn last line is ignored (the file is not changed).

    Raises
    ------
    ValueError
        When the first line is not an xpnet search header, or a line other than the last is
        not JSON.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, []
    records, _ = _parse(data, path)
    if not records:
        return None, []
    header, rest = records[0], records[1:]
    _check_format(header, path)
    return header, rest


def _check_format(header: Mapping[str, Any], path: Path) -> None:
    if header.get("kind") != "header" or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an xpnet search results file (its first line is not a "
                         f"{FORMAT!r} header)")


def _describe_difference(name: str, old: Any, new: Any) -> str:
    if name == "space" and isinstance(old, dict) and isinstance(new, dict):
        parts = []
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                parts.append(f"{key}: {_short(old.get(key))} in the file, "
                             f"{_short(new.get(key))} now")
        return "; ".join(parts)
    if isinstance(old, dict) and isinstance(new, dict):
        keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        return "; ".join(f"{k}: {_short(old.get(k))} in the file, {_short(new.get(k))} now"
                         for k in keys)
    return f"{_short(old)} in the file, {_short(new)} now"


def _short(v: Any, limit: int = 80) -> str:
    text = "absent" if v is None else json.dumps(v, sort_keys=True)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class ResultsFile:
    """The results file of one running search (or an in-memory stand-in when ``path`` is None).

    Opening it writes the header to a new or empty file, or reads an existing one: its header
    must match ``header`` (seed, space, objective, metric, mode, halving, and with halving the
    number of trials) or a ``ValueError`` naming the first field that differs is raised before
    anything is written.  :attr:`records` then holds the lines already there.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str] | None, header: Mapping[str, Any]):
        self.path = None if path is None else Path(path)
        self.header = json.loads(dumps(header))  # as it reads back (tuples -> lists, ...)
        self.records: list[dict] = []
        self._file: IO[bytes] | None = None
        if self.path is None:
            return
        if self.path.is_dir():
            raise ValueError(f"results must be a file, and {self.path} is a directory")
        f = open(self.path, "a+b")  # creates it; never truncates what is there
        try:
            _lock(f, self.path)
            f.seek(0)
            data = f.read()
            records, good = _parse(data, self.path)
            if records:
                _check_format(records[0], self.path)
                self._check_identity(records[0])
                self.header = records[0]
                self.records = records[1:]
            if good != len(data):  # a torn last line (or a header cut short): cut it off
                f.truncate(good)
                _sync(f)
            if not records:
                f.write((dumps(self.header) + "\n").encode())
                _sync(f)
        except BaseException:
            f.close()
            raise
        self._file = f

    def _check_identity(self, old: Mapping[str, Any]) -> None:
        new = self.header
        names = list(IDENTITY)
        if new.get("halving") is not None:
            names.append("n_trials")
        for name in names:
            o, n = old.get(name), new.get(name)
            if o != n:
                raise ValueError(
                    f"results file {self.path} holds another search: its {name} differs "
                    f"({_describe_difference(name, o, n)}).  Resume with the same {name}, or "
                    "give a new results file.")

    def append(self, record: Mapping[str, Any]) -> dict:
        """Write one record as a line (flushed and ``fsync``-ed); returns it as plain JSON."""
        line = dumps(record)
        rec = json.loads(line)
        if self._file is not None:
            self._file.write((line + "\n").encode())
            _sync(self._file)
        self.records.append(rec)
        return rec

    def close(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock
            self._file = None

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _sync(f: IO[bytes]) -> None:
    f.flush()
    os.fsync(f.fileno())


def _lock(f: IO[bytes], path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        with contextlib.suppress(OSError):
            f.close()
        raise RuntimeError(f"results file {path} is in use by another running search") from exc
