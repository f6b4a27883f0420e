"""Per-step scalars kept on the device and copied to the host in batches.

``float(loss)`` on every step makes a GPU wait for the host: the device finishes the step, the
host reads the number, and only then is the next step queued.  :class:`DeviceLog` keeps the
0-d arrays as they come and copies many of them at once (one ``stack`` and one transfer), and
:func:`to_floats` does the same for any list of scalars.

>>> import xpnet
>>> from xpnet.devicelog import DeviceLog
>>> be = xpnet.get_backend("numpy")
>>> log = DeviceLog(be)
>>> for v in (0.5, 0.25):
...     log.append(be.asarray(v))
>>> log.values()
[0.5, 0.25]
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import array_api_compat
import numpy as np

__all__ = ["DeviceLog", "to_floats"]


def _is_host(v: Any) -> bool:
    return isinstance(v, (numbers.Number, np.generic, np.ndarray))


def to_floats(values: Iterable[Any], backend: Any = None) -> list[float]:
    """Python floats from a list of scalars, with one device transfer per library and device.

    Parameters
    ----------
    values : iterable
        Python numbers, NumPy scalars or arrays of one element, and 0-d (or one-element)
        arrays of any backend, in any mix.
    backend : xpnet.Backend, optional
        The backend of the device arrays, if known (saves looking it up).  Arrays of another
        library or device are still converted, each group with its own backend.

    Returns
    -------
    list of float
        In the order of ``values``.

    Notes
    -----
    Host values (Python and NumPy) are converted directly.  Device arrays are grouped by
    library and device; each group is stacked on its device and copied to the host at once
    (``xp.stack`` then ``backend.to_numpy``), so a list of 2,000 step losses costs one
    synchronization, not 2,000.

    Examples
    --------
    >>> import numpy as np
    >>> to_floats([1, np.float32(0.5), np.asarray(2.0)])
    [1.0, 0.5, 2.0]
    """
    values = list(values)
    out: list[float | None] = [None] * len(values)
    groups: dict[tuple, list[int]] = {}
    for i, v in enumerate(values):
        if _is_host(v):
            if isinstance(v, np.ndarray) and v.size != 1:
                raise ValueError(f"values[{i}] has shape {v.shape}; expected a scalar")
            out[i] = float(v.reshape(()) if isinstance(v, np.ndarray) else v)
            continue
        if not array_api_compat.is_array_api_obj(v):
            raise TypeError(f"values[{i}] is a {type(v).__name__}, not a number or an array")
        groups.setdefault((type(v), str(array_api_compat.device(v))), []).append(i)
    for idx in groups.values():
        be = _backend_for(values[idx[0]], backend)
        xp = be.xp
        arrs = []
        for i in idx:
            a = values[i]
            if a.ndim:
                if math.prod(a.shape) != 1:
                    raise ValueError(f"values[{i}] has shape {tuple(a.shape)}; expected a scalar")
                a = xp.reshape(a, ())
            arrs.append(a)
        host = np.asarray(be.to_numpy(xp.stack(arrs)), dtype=np.float64).tolist()
        for i, v in zip(idx, host, strict=True):
            out[i] = v
    return out  # type: ignore[return-value]


def _backend_for(x: Any, backend: Any) -> Any:
    if backend is not None and backend.is_array(x):
        dev = array_api_compat.device(x)
        if dev == backend.device or str(dev) == str(backend.device):
            return backend
    from xpnet.backend import backend_of

    return backend_of(x)


class DeviceLog:
    """A list of per-step scalars that stay on the device until read.

    Parameters
    ----------
    backend : xpnet.Backend, optional
        The backend the values come from (looked up from the first array when None).
    flush_every : int, optional
        Copy to the host every this-many appended values, bounding how many device scalars are
        held; None (default) copies only when :meth:`flush` or :meth:`values` is called.

    Notes
    -----
    ``append`` never synchronizes with the device.  ``flush`` converts whatever is pending with
    :func:`to_floats` (one transfer); ``values`` flushes and returns every value so far.  The
    :class:`~xpnet.Trainer` flushes once per epoch; the experiments every 200 steps.

    Examples
    --------
    >>> log = DeviceLog(flush_every=2)
    >>> for v in (1.0, 2.0, 3.0):
    ...     log.append(v)
    >>> len(log), log.values()
    (3, [1.0, 2.0, 3.0])
    """

    def __init__(self, backend: Any = None, flush_every: int | None = None):
        if flush_every is not None and (isinstance(flush_every, bool)
                                        or not isinstance(flush_every, int) or flush_every < 1):
            raise ValueError(f"flush_every must be a positive integer or None, got {flush_every!r}")
        self.backend = backend
        self.flush_every = flush_every
        self._pending: list[Any] = []
        self._host: list[float] = []

    def append(self, value: Any) -> None:
        """Add one scalar (a 0-d device array or a number); no device synchronization."""
        self._pending.append(value)
        if self.flush_every is not None and len(self._pending) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Copy the pending values to the host in one transfer."""
        if not self._pending:
            return
        converted = to_floats(self._pending, self.backend)  # on error, nothing is lost
        self._pending = []
        self._host.extend(converted)

    def values(self) -> list[float]:
        """Every value so far as Python floats (flushes first)."""
        self.flush()
        return list(self._host)

    def __len__(self) -> int:
        return len(self._host) + len(self._pending)
