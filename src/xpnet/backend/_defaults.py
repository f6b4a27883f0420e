"""The default backend, device and dtype for code that names none (the Keras convention).

In order of precedence: the innermost :func:`default_backend` context, then
:func:`set_default_backend`, then the environment variables ``XPNET_BACKEND``
(``numpy`` | ``cupy`` | ``torch`` | ``array_api_strict``), ``XPNET_DEVICE`` and ``XPNET_DTYPE``
(``float32`` | ``float64``), then NumPy on the CPU in float32.  The environment is read each time
a default is needed, so a script run as ``XPNET_BACKEND=cupy python script.py`` needs no change.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from typing import Any, NamedTuple

DTYPES = ("float32", "float64")

#: (backend, device, dtype) set by set_default_backend / default_backend; None where unset
_global: tuple[Any, Any, Any] | None = None
_context: contextvars.ContextVar[tuple[Any, Any, Any] | None] = contextvars.ContextVar(
    "xpnet_default_backend", default=None)


def dtype_name_of(dtype: Any) -> str:
    """The short name of a dtype of any library: ``'float32'`` for ``'float32'``,
    ``numpy.float32``, ``numpy.dtype('float32')``, ``torch.float32`` or
    ``array_api_strict.float32``."""
    if isinstance(dtype, str):
        return dtype.strip().lower()
    name = getattr(dtype, "name", None)  # a NumPy or CuPy dtype
    if isinstance(name, str):
        return name.lower()
    name = getattr(dtype, "__name__", None)  # numpy.float32, the scalar type
    if isinstance(name, str) and type(dtype) is type:
        return name.lower()
    # torch.float32 -> 'torch.float32', array_api_strict.float32 -> 'array_api_strict.float32'
    return str(dtype).rpartition(".")[2].strip().lower()


def check_dtype(dtype: Any, what: str = "dtype") -> str:
    """``dtype`` (a name or a dtype of any library) as ``'float32'`` / ``'float64'``, or a
    ValueError naming ``what`` and why.

    Half precision (float16, bfloat16) is refused, not emulated: batch-norm statistics,
    softmax and the optimizers' second moments lose too much in it (a float16 MNIST run ended
    near chance), and mixed precision (float32 statistics and master weights, loss scaling) is
    not implemented.  Integer, bool and complex dtypes are refused: networks compute in real
    floating point (int32 weights round to zero, complex ones are meaningless here).
    """
    name = dtype_name_of(dtype)
    if name in DTYPES:
        return name
    why = ""
    if name in ("float16", "bfloat16", "half"):
        why = ("; half precision is not supported (batch-norm statistics, softmax and "
               "optimizer moments need float32)")
    elif name.startswith(("int", "uint", "bool", "complex")):
        why = "; networks compute in real floating point"
    raise ValueError(f"{what} must be one of {', '.join(DTYPES)}, not {dtype!r}{why}")


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


class Choice(NamedTuple):
    """What chose the default: each field None where nothing did."""

    backend: Any
    device: Any
    dtype: str | None
    #: the backend and device come from XPNET_BACKEND / XPNET_DEVICE
    from_environment: bool


def chosen() -> Choice:
    """The (backend, device, dtype) chosen by the innermost context, the setter or the
    environment.  A device comes with its backend (from the same level); the dtype is chosen
    on its own.  ``XPNET_DTYPE`` is checked here, naming the variable."""
    backend = device = dtype = None
    from_env = False
    for level in (_context.get(), _global):
        if level is None:
            continue
        if backend is None and level[0] is not None:
            backend, device = level[0], level[1]
        if dtype is None and level[2] is not None:
            dtype = level[2]
    if backend is None:
        backend, device = _env("XPNET_BACKEND"), _env("XPNET_DEVICE")
        from_env = backend is not None or device is not None
    if dtype is None:
        env_dtype = _env("XPNET_DTYPE")
        dtype = None if env_dtype is None else check_dtype(env_dtype, "XPNET_DTYPE")
    return Choice(backend, device, dtype, from_env)


def set_state(backend: Any, device: Any, dtype: Any) -> None:
    global _global
    _global = None if backend is None and device is None and dtype is None else (
        backend, device, dtype)


@contextlib.contextmanager
def push(backend: Any, device: Any, dtype: Any) -> Iterator[None]:
    """A context level; what it leaves None comes from the enclosing context."""
    outer = _context.get() or (None, None, None)
    if backend is None:
        backend, device = outer[0], outer[1]
    if dtype is None:
        dtype = outer[2]
    token = _context.set((backend, device, dtype))
    try:
        yield
    finally:
        _context.reset(token)
