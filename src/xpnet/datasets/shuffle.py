"""The book's ``shuffle_dataset`` (``common/util.py``): one permutation for inputs and labels."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

__all__ = ["shuffle_dataset"]


def shuffle_dataset(x: Any, t: Any, *, seed: int | np.random.Generator | None = None
                    ) -> tuple[Any, Any]:
    """Shuffle the rows of ``x`` and ``t`` with one random permutation.

    Parameters
    ----------
    x : array, shape (N, ...)
        Inputs: ``(N, D)`` rows or ``(N, C, H, W)`` images (any number of dimensions >= 1).
        NumPy arrays (the book's case) or arrays of any xpnet backend.
    t : array, shape (N, ...)
        Labels: integers ``(N,)`` or one-hot rows ``(N, C)``.
    seed : int or numpy.random.Generator, optional
        Where the permutation comes from.  None (the default) draws it from NumPy's global
        random state (``np.random.permutation``), as the book does, so ``np.random.seed(...)``
        at the top of a script makes it repeatable.

    Returns
    -------
    x, t : new arrays (the inputs are not changed), of the inputs' library and device.

    Raises
    ------
    ValueError
        If ``x`` and ``t`` have a different number of rows, or ``x`` is 0-d.

    Notes
    -----
    The book handles 2-D and 4-D ``x``; here any number of dimensions works.  The permutation
    is drawn on the host; arrays of other libraries are gathered on their device with
    ``take``.

    Examples
    --------
    >>> x = np.arange(6.0).reshape(3, 2)
    >>> t = np.array([0, 1, 2])
    >>> xs, ts = shuffle_dataset(x, t, seed=0)
    >>> bool(np.all(xs[:, 0] == 2 * ts))
    True
    """
    if getattr(x, "ndim", None) is None:
        x = np.asarray(x)
    if getattr(t, "ndim", None) is None:
        t = np.asarray(t)
    if x.ndim < 1 or t.ndim < 1:
        raise ValueError(f"x and t must have rows, got shapes {tuple(x.shape)} and "
                         f"{tuple(t.shape)}")
    n = int(x.shape[0])
    if int(t.shape[0]) != n:
        raise ValueError(f"x has {n} rows but t has {t.shape[0]}")
    if seed is None:
        permutation = np.random.permutation(n)  # noqa: NPY002  (the book's global stream)
    elif isinstance(seed, np.random.Generator):
        permutation = seed.permutation(n)
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        permutation = np.random.default_rng(int(seed)).permutation(n)
    else:
        raise TypeError(f"seed must be an int, a numpy.random.Generator or None, not {seed!r}")
    return _take_rows(x, permutation), _take_rows(t, permutation)


def _take_rows(a: Any, permutation: np.ndarray) -> Any:
    if isinstance(a, np.ndarray):
        return a[permutation]
    from xpnet.backend import backend_of

    be = backend_of(a)
    return be.xp.take(a, be.asarray(permutation), axis=0)
