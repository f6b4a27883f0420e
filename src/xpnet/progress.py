"""One progress bar for the whole library: tqdm when installed and wanted, else a silent stand-in.

The :class:`~xpnet.Trainer`, the experiments and the MNIST downloader all draw their bars with
:func:`progress`, so one switch turns them all off: ``XPNET_PROGRESS=0`` in the environment.

>>> from xpnet.progress import progress
>>> total = 0
>>> for i in progress(range(3), desc="demo", enabled=False):
...     total += i
>>> total
3
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["SilentProgress", "progress", "progress_wanted"]

_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def progress_wanted(enabled: bool | None = None) -> bool:
    """Whether a bar should be drawn.

    Parameters
    ----------
    enabled : bool or None
        True or False decide; None (the default) asks the environment: the variable
        ``XPNET_PROGRESS`` set to ``0``/``false``/``no``/``off`` turns bars off and
        ``1``/``true``/``yes``/``on`` turns them on (for logs and CI); otherwise a bar is drawn
        when standard error is a terminal.

    Returns
    -------
    bool
    """
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get("XPNET_PROGRESS", "").strip().lower()
    if env in _OFF:
        return False
    if env in _ON:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (ValueError, OSError):  # a closed or detached stream
        return False


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             unit: str = "it", enabled: bool | None = None, leave: bool = False,
             **kw: Any) -> Any:
    """A progress bar over ``iterable`` (or a manual one of ``total`` steps).

    Parameters
    ----------
    iterable : iterable, optional
        Items to pass through.  Without it, the caller advances the bar with ``update(n)``.
    total : int, optional
        Number of steps (defaults to ``len(iterable)`` where it has one).
    desc : str
        Label in front of the bar.
    unit : str
        What one step is (``"it"``, ``"step"``, ``"B"``...).
    enabled : bool or None
        Force the bar on (True) or off (False); None decides as :func:`progress_wanted` does
        (terminal, ``XPNET_PROGRESS``).
    leave : bool
        Keep the finished bar on screen.
    **kw
        Further ``tqdm`` options (``unit_scale``, ``unit_divisor``, ``position``...); ignored
        by the stand-in.

    Returns
    -------
    tqdm.tqdm or SilentProgress
        A ``tqdm.auto.tqdm`` bar writing to standard error when tqdm is installed and a bar is
        wanted; otherwise a :class:`SilentProgress` with the same methods (``update``,
        ``set_postfix``, ``set_description``, ``close``, iteration, context manager) that draws
        nothing.  ``bar.disable`` is True exactly when nothing is drawn.

    Notes
    -----
    tqdm is an optional dependency (``pip install xpnet[progress]``); without it, code that
    uses bars runs the same, silently.

    Examples
    --------
    >>> with progress(total=10, desc="download", unit="B", enabled=False) as bar:
    ...     bar.update(4)
    ...     bar.n
    4
    """
    if progress_wanted(enabled):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            pass
        else:
            kw.setdefault("file", sys.stderr)
            kw.setdefault("dynamic_ncols", True)
            return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave,
                        disable=False, **kw)
    return SilentProgress(iterable, total=total, desc=desc)


class SilentProgress:
    """A progress bar that draws nothing: what :func:`progress` returns when no bar is wanted.

    It keeps the count (``n``) and ``total`` like a tqdm bar, and passes ``iterable`` through
    unchanged.
    """

    disable = True

    def __init__(self, iterable: Iterable | None = None, *, total: int | None = None,
                 desc: str = ""):
        self.iterable = iterable
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        self.total = total
        self.desc = desc
        self.n = 0

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable; use update()")
        for item in self.iterable:
            yield item
            self.n += 1

    def __len__(self) -> int:
        if self.total is None:
            raise TypeError("this progress bar has no total")
        return int(self.total)

    def __enter__(self) -> SilentProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
        pass

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        if args:
            self.desc = str(args[0])

    def refresh(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass
