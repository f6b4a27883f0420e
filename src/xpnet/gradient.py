"""Numerical gradients by central differences: the book's ``common/gradient.py``, any backend.

``numerical_gradient(f, x)`` moves one element of ``x`` at a time by ``+h`` and ``-h`` (in
place, restoring it exactly afterwards) and returns ``(f(x + h) - f(x - h)) / (2h)`` for every
element, as the book does; ``numerical_gradient_2d`` is the book's row-by-row variant.  They are
slow by design -- two evaluations of ``f`` per element -- and meant for checking a backward pass
on small inputs, in float64.

What ``f`` returns may stay on the device: Python numbers, NumPy scalars and 0-d arrays of any
backend are all accepted, and device values are copied to the host together at the end (one
transfer per call, not one per evaluation).  The differences are taken on the host in float64.

Examples
--------
>>> import numpy as np
>>> from xpnet.gradient import numerical_gradient
>>> x = np.array([3.0, 4.0])
>>> numerical_gradient(lambda x: np.sum(x**2), x).round(6).tolist()
[6.0, 8.0]
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable
from typing import Any

import array_api_compat
import numpy as np

from xpnet.backend import backend_of, to_host
from xpnet.devicelog import to_floats

__all__ = ["numerical_gradient", "numerical_gradient_2d"]


def _check(x: Any, h: float) -> Any:
    if not array_api_compat.is_array_api_obj(x) or isinstance(x, np.generic):
        raise TypeError(
            f"x must be an array (it is changed in place, one element at a time), not "
            f"{type(x).__name__}"
        )
    xp = array_api_compat.array_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(f"x must have a real floating dtype, not {x.dtype}")
    if not (isinstance(h, numbers.Real) and math.isfinite(h) and h > 0):
        raise ValueError(f"h must be a finite number > 0, got {h!r}")
    return xp


def _host_float64(values: list[Any]) -> np.ndarray:
    """What ``f`` returned, as float64 on the host: one copy per library and device."""
    try:
        return np.asarray(to_floats(values), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"f must return a number or a 0-d array: {exc}") from exc


def _central_differences(f: Callable[[Any], Any], x: Any, h: float,
                         arg: Callable[[tuple[int, ...]], Any]) -> Any:
    """Gradient of ``f(arg(idx))`` with respect to every element ``x[idx]``."""
    _check(x, h)
    h = float(h)
    host = np.array(to_host(x), dtype=np.float64, copy=True)  # the exact values to restore
    plus: list[Any] = []
    minus: list[Any] = []
    for idx in itertools.product(*(range(int(n)) for n in x.shape)):
        orig = float(host[idx])
        try:
            x[idx] = orig + h
            plus.append(f(arg(idx)))
            x[idx] = orig - h
            minus.append(f(arg(idx)))
        finally:
            x[idx] = orig  # exactly as it was, also when f raises
    grad = ((_host_float64(plus) - _host_float64(minus)) / (2 * h)).reshape(host.shape)
    if isinstance(x, np.ndarray):
        return grad.astype(x.dtype, copy=False)
    return backend_of(x).asarray(grad, dtype=x.dtype)


def numerical_gradient(f: Callable[[Any], Any], x: Any, h: float = 1e-4) -> Any:
    """Central-difference gradient of the scalar function ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns a scalar: a Python number, a NumPy scalar or a 0-d array of any
        backend (it may ignore its argument and read ``x`` through a closure, as the book's
        ``lambda W: net.loss(x, t)`` does).
    x : array, any shape, real floating dtype
        Changed in place, one element at a time, and restored exactly (also when ``f``
        raises).
    h : float
        The step, ``1e-4`` as in the book.

    Returns
    -------
    array, shape of ``x``
        ``(f(x + h e_i) - f(x - h e_i)) / (2 h)`` for every element ``i``, in the namespace,
        device and dtype of ``x``.

    Raises
    ------
    TypeError
        If ``x`` is not an array with a real floating dtype (the book would silently round
        ``x + h`` to an integer), or ``f`` returns something other than a scalar.
    ValueError
        If ``h`` is not a finite number > 0.

    Notes
    -----
    The book's ``common/gradient.py`` computes ``x[idx] + h`` in the dtype of ``x`` and the
    difference in float64; here the perturbed values are computed in float64 and rounded to
    the dtype of ``x`` (the same numbers for float64 ``x``), and ``f``'s results are copied to
    the host in one batch.  For a loss in float32, expect errors of order
    ``1e-7 * |f| / h``: check gradients in float64.  PyTorch's ``torch.autograd.gradcheck``
    compares with the same central differences (and ``eps=1e-6``).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> x = xp.asarray([[1.0, 2.0]], dtype=xp.float64)
    >>> g = numerical_gradient(lambda x: xp.sum(x**3), x)
    >>> [round(float(v), 6) for v in g[0, :]]
    [3.0, 12.0]
    """
    return _central_differences(f, x, h, lambda idx: x)


def numerical_gradient_2d(f: Callable[[Any], Any], X: Any, h: float = 1e-4) -> Any:
    """The book's row-by-row numerical gradient: ``f`` is called with the row being varied.

    Parameters
    ----------
    f : callable
        ``f(row)`` returns a scalar (see :func:`numerical_gradient`).
    X : array, shape (n,) or (m, n)
        For a 1-D ``X`` this is :func:`numerical_gradient`; for a 2-D ``X`` the gradient of
        row ``i`` is that of ``f`` at ``X[i]`` (the rest of ``X`` fixed).
    h : float

    Returns
    -------
    array, shape of ``X``

    Raises
    ------
    ValueError
        If ``X`` has more than two dimensions (the book's version mixes up rows and
        elements there: use :func:`numerical_gradient`).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> numerical_gradient_2d(lambda row: np.sum(row**2), X).round(6).tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """
    _check(X, h)
    if X.ndim > 2:
        raise ValueError(
            f"numerical_gradient_2d takes 1-D or 2-D X, got shape {tuple(X.shape)}; use "
            "numerical_gradient"
        )
    if X.ndim < 2:
        return numerical_gradient(f, X, h)
    return _central_differences(f, X, h, lambda idx: X[idx[0], ...])
