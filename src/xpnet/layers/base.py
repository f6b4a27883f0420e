"""What every layer shares: where its array namespace comes from."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

from xpnet.backend import Backend, backend_of, get_backend


class Layer:
    """Base of the book's layers: ``forward(x[, train_flg])`` and ``backward(dout)``.

    A layer built from parameter arrays takes its namespace from them.  A layer without
    parameters takes it from its first input and keeps it until an input of another array type
    arrives; ``backend=`` fixes it instead.  The lookup is cached so a training step pays for it
    once per layer, not once per call.
    """

    def __init__(self, backend: Any = None):
        self._backend: Backend | None = None if backend is None else get_backend(backend)
        self._fixed = backend is not None
        self._xp = None if self._backend is None else self._backend.xp
        self._xp_type: type | None = None

    def _ns(self, x: Any) -> Any:
        """The array namespace for input ``x`` (cached per input type)."""
        if self._backend is not None:
            return self._xp
        if type(x) is not self._xp_type:
            self._xp = array_namespace(x)
            self._xp_type = type(x)
        return self._xp

    def _backend_for(self, x: Any) -> Backend:
        """The :class:`~xpnet.backend.Backend` (library and device) of input ``x``."""
        be = self._backend
        if not self._fixed and (
            be is None or not be.is_array(x) or _device(x) != be.device
        ):
            be = self._backend = backend_of(x)
            self._xp = be.xp
            self._xp_type = type(x)
        return be

    # Portable column reductions of 2-D arrays; a backend's ``Kernels.col_sum`` / ``col_dot``
    # replace them where they exist.

    def _portable_col_sum(self, x: Any, out: Any = None) -> Any:
        """``sum(x, axis=0)``, into ``out`` when given."""
        return write_into(out, self._xp.sum(x, axis=0))

    def _portable_col_dot(self, a: Any, b: Any, out: Any = None) -> Any:
        """``sum(a * b, axis=0)``, into ``out`` when given.  (``vecdot(a, b, axis=0)`` would
        save the temporary, but NumPy's took about 6 ms and array_api_compat's torch one
        10-12 ms at 512x1024, against 0.2 ms for this: ``python bench/micro.py``.)"""
        return write_into(out, self._xp.sum(a * b, axis=0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def write_into(out: Any, value: Any) -> Any:
    """``value``, written into ``out`` when ``out`` is given."""
    if out is None:
        return value
    out[...] = value
    return out
