"""Parameters as views into one flat buffer.

A network keeps all of its parameters (and, separately, all of its gradients) in one contiguous
1-D array and hands out ``dict`` entries that are reshaped views into it.  To a reader of the
book nothing changes -- ``net.params['W1']`` is an array of shape ``(784, 100)`` and an optimizer
may update it in place -- but an optimizer that sees two :class:`ParamDict` of the same layout can
update *all* parameters with a few whole-buffer operations instead of a few per parameter, which
is most of an optimizer step's cost on small layers.

Views of a slice are views in NumPy, CuPy, torch and array-api-strict; :func:`flat_views` checks
that writes through a view reach the buffer and reports when they don't, so a library with other
semantics falls back to separate arrays.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["Layout", "ParamDict", "allocate", "flat_views", "non_finite_names"]


class Layout:
    """Names, shapes and offsets of arrays packed into one flat buffer (in insertion order)."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = {k: tuple(int(n) for n in s) for k, s in shapes.items()}
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for key, shape in self.shapes.items():
            size = math.prod(shape)
            self.offsets[key] = (start, start + size)
            start += size
        self.size = start

    def views(self, xp: Any, flat: Any) -> dict[str, Any]:
        """Reshaped views of ``flat`` for every name."""
        return {
            key: xp.reshape(flat[a:b], self.shapes[key])
            for key, (a, b) in self.offsets.items()
        }

    def __repr__(self) -> str:
        return f"Layout({len(self.shapes)} arrays, {self.size} elements)"


class ParamDict(dict):
    """A ``dict`` of arrays that are views into one flat buffer ``flat`` laid out by ``layout``.

    It behaves as a plain dict.  :meth:`flat_view` returns the buffer only while every entry is
    still the original view (replacing an entry by another array, adding or removing keys makes
    it return None), so whole-buffer updates are never applied to arrays the dict no longer
    holds.
    """

    def __init__(self, xp: Any, flat: Any, layout: Layout):
        views = layout.views(xp, flat)
        super().__init__(views)
        self.flat = flat
        self.layout = layout
        self._views = views

    def new_dict(self) -> ParamDict:
        """A new :class:`ParamDict` object over the same buffer and the same views.

        Replacing an entry of the new dict leaves this one (and the buffer) alone; the arrays
        themselves are shared.
        """
        new = dict.__new__(ParamDict)
        dict.__init__(new, self._views)
        new.flat, new.layout, new._views = self.flat, self.layout, self._views
        return new

    def flat_view(self) -> Any:
        """The flat buffer, if the entries are still exactly its views; else None."""
        if len(self) != len(self._views):
            return None
        get = dict.get
        for key, view in self._views.items():
            if get(self, key) is not view:
                return None
        return self.flat


def flat_views(xp: Any, flat: Any, layout: Layout) -> ParamDict | None:
    """A :class:`ParamDict` over ``flat``, or None if views don't alias the buffer here."""
    pd = ParamDict(xp, flat, layout)
    if layout.size == 0:
        return pd
    first = next(iter(pd._views.values()))
    idx = (0,) * first.ndim
    before = float(flat[0])
    first[idx] = before + 1.0
    aliased = float(flat[0]) != before
    first[idx] = before
    if not aliased:
        return None
    return pd


def non_finite_names(xp: Any, arrays: dict[str, Any], *, flat: Any = None,
                     extra: dict[str, Any] | None = None) -> list[str]:
    """Names of the arrays that hold NaN or infinity (``[]`` when all are finite).

    One device synchronization when everything is finite: the checks are combined on the
    device and read once (``flat``, when given, is the buffer all of ``arrays`` are views of,
    checked in one pass instead of per array).  Only when something is non-finite are the
    arrays checked one by one, to name them.

    Parameters
    ----------
    xp : namespace
    arrays : dict of str to array
    flat : array, optional
        A buffer that ``arrays`` are views of (a :class:`ParamDict`'s ``flat``).
    extra : dict of str to array, optional
        More arrays to check and name first (a loss).

    >>> import numpy as np
    >>> import array_api_compat.numpy as xp
    >>> non_finite_names(xp, {"W": np.array([1.0, np.nan]), "b": np.zeros(2)})
    ['W']
    """
    named = dict(extra or {})
    checks = [xp.all(xp.isfinite(a)) for a in named.values()]
    if flat is not None:
        checks.append(xp.all(xp.isfinite(flat)))
    else:
        checks.extend(xp.all(xp.isfinite(a)) for a in arrays.values())
    if not checks:
        return []
    ok = checks[0]
    for c in checks[1:]:
        ok = xp.logical_and(ok, c)
    if bool(ok):
        return []
    named.update(arrays)
    return [k for k, a in named.items() if not bool(xp.all(xp.isfinite(a)))]


def allocate(backend: Any, flat_host: Any, shapes: dict[str, tuple[int, ...]], dtype: Any
             ) -> tuple[dict[str, Any], ParamDict | None]:
    """A network's parameters on ``backend``'s device and its gradient buffer.

    ``flat_host`` (host values of every parameter, packed in the order of ``shapes``) is copied
    to the device once, in ``dtype``.  Returns ``(params, grads)``: two :class:`ParamDict` of
    the same :class:`Layout`, the gradients zero -- or, where views of a slice do not alias
    the buffer (:func:`flat_views` says so), separate parameter arrays and ``grads=None``, and
    the network keeps the layers' own gradient arrays.
    """
    xp = backend.xp
    layout = Layout(shapes)
    flat = backend.asarray(flat_host, dtype=dtype)
    params = flat_views(xp, flat, layout)
    if params is None:
        views = layout.views(xp, flat)
        return {k: xp.asarray(v, copy=True) for k, v in views.items()}, None
    grads = flat_views(xp, xp.zeros_like(params.flat), layout)
    return params, grads
