"""The one package that knows concrete array libraries.

Everything above it (functions, layers, optimizers, networks) talks to an array namespace ``xp``
that follows the Python Array API standard, obtained through ``array-api-compat``.  This package
maps a user's choice -- ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, a
namespace module, or a :class:`Backend` -- to that namespace, a device, a seeded random generator
that draws on the device, host<->device copies and a ``synchronize()`` for timing.

Each library has one room, a private module holding everything xpnet knows about it -- how it is
built and probed, its array type, host copies, synchronization, memory, its generator and its
:class:`Kernels` (fused fast paths; a slot left ``None`` means the portable code):
``_numpy.py``, ``_torch.py``, ``_cupy.py``, ``_strict.py``.  ``_base.py`` holds what they share and
the registry that dispatches by class (as Thinc's ``get_ops``); ``_threads.py`` the threads of
the NumPy kernels.

Examples
--------
>>> import xpnet
>>> be = xpnet.get_backend("numpy")
>>> x = be.asarray([[1.0, 2.0]], dtype="float32")
>>> be.to_numpy(x * 2).tolist()
[[2.0, 4.0]]
>>> resolve_name("PyTorch")
'torch'
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import array_api_compat

from xpnet.backend import _cupy, _defaults, _numpy, _strict, _torch  # noqa: F401  (the rooms register)
from xpnet.backend._base import (
    ALIASES,
    PORTABLE,
    REGISTRY,
    Backend,
    BackendUnavailableError,
    Generator,
    Kernels,
    check_usable,
    library_of,
    to_host,
    value_range,
)
from xpnet.backend._defaults import check_dtype
from xpnet.backend._threads import get_num_threads, set_num_threads

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "Generator",
    "Kernels",
    "available_backends",
    "backend_of",
    "check_dtype",
    "check_usable",
    "default_backend",
    "default_dtype",
    "get_backend",
    "get_num_threads",
    "kernels_for",
    "kernels_of",
    "resolve_name",
    "set_default_backend",
    "set_num_threads",
    "to_host",
    "value_range",
]

#: The backend names xpnet knows, in the order they are tried by :func:`available_backends`.
BACKEND_NAMES: tuple[str, ...] = ("numpy", "cupy", "torch", "array_api_strict")
assert set(REGISTRY) == set(BACKEND_NAMES), "every room registers itself"


def resolve_name(name: str) -> str:
    """The canonical backend name for ``name`` (case-insensitive; aliases ``"np"``, ``"cp"``,
    ``"pytorch"``, ``"strict"``, ``"array-api-strict"``).

    Raises
    ------
    ValueError
        For a name xpnet does not know, listing the valid ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"a backend name must be a string, not {type(name).__name__}")
    canonical = ALIASES.get(name.strip().lower())
    if canonical is None:
        raise ValueError(
            f"unknown backend {name!r}; valid names are: {', '.join(BACKEND_NAMES)}"
        )
    return canonical


def get_backend(backend: Any = None, device: Any = None) -> Backend:
    """Resolve a backend choice to a :class:`Backend`.

    Parameters
    ----------
    backend : str, module, Backend or None
        ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"array_api_strict"`` (aliases: ``"np"``,
        ``"cp"``, ``"pytorch"``, ``"strict"``); an array namespace module (``numpy``,
        ``array_api_compat.torch``, ``array_api_strict``, ...); a :class:`Backend`, returned
        as is when ``device`` is None; or None for the default backend (see
        :func:`set_default_backend`: a :func:`default_backend` context, the setter, the
        ``XPNET_BACKEND`` / ``XPNET_DEVICE`` environment variables, else NumPy).
    device : optional
        The device arrays are created on.  NumPy: ``"cpu"``.  CuPy: an int, ``"cuda:1"`` or a
        ``cupy.cuda.Device``.  torch: anything ``torch.device`` takes (default ``"cpu"``).
        array_api_strict: an ``array_api_strict.Device`` or its name (``"CPU_DEVICE"``,
        ``"device1"``, ...).

    Raises
    ------
    ValueError
        For an unknown name or a device the library doesn't know.
    BackendUnavailableError
        When the library is not installed, or (CuPy) when no CUDA device is visible.
    """
    if backend is None:
        return _default(device)
    if isinstance(backend, Backend):
        if device is None:
            return backend
        return type(backend).build(device)
    if isinstance(backend, ModuleType):
        for name in BACKEND_NAMES:
            if REGISTRY[name].owns_namespace(backend):
                return REGISTRY[name].build(device)
        raise ValueError(f"{backend.__name__!r} is not a namespace xpnet knows "
                         f"({', '.join(BACKEND_NAMES)})")
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a name, an array namespace module or a Backend, not {type(backend)}"
        )
    return REGISTRY[resolve_name(backend)].build(device)


def available_backends() -> list[str]:
    """Names of the backends that import here and, for CuPy, see a CUDA device."""
    names = []
    for name in BACKEND_NAMES:
        try:
            REGISTRY[name].build()
        except (BackendUnavailableError, ImportError):
            continue
        names.append(name)
    return names


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` (library and device) an array lives on.

    Raises
    ------
    TypeError
        If ``x`` is not an array of a library xpnet knows.
    """
    cls = library_of(x)
    if cls is None:
        raise TypeError(f"not an array of a backend xpnet knows: {type(x)}")
    return cls.build(array_api_compat.device(x))


def kernels_of(x: Any) -> Kernels:
    """The fused kernels of the library ``x`` is an array of (portable ones for others)."""
    cls = library_of(x)
    return PORTABLE if cls is None else cls.get_kernels()


def kernels_for(name: str) -> Kernels:
    """The fused kernels of a backend name (a portable set, every slot None, for others)."""
    cls = REGISTRY.get(ALIASES.get(str(name).lower(), ""))
    return PORTABLE if cls is None else cls.get_kernels()


# --------------------------------------------------------------------------------------------
# The default backend (code that names none)
# --------------------------------------------------------------------------------------------


def _default(device: Any) -> Backend:
    """The default backend, on ``device`` when given."""
    choice = _defaults.chosen()
    backend = "numpy" if choice.backend is None else choice.backend
    dev = choice.device if device is None else device
    if isinstance(backend, Backend):
        return backend if dev is None else get_backend(backend, dev)
    try:
        return get_backend(backend, dev)
    except (ValueError, BackendUnavailableError) as exc:
        if not choice.from_environment:
            raise
        names = f"XPNET_BACKEND={os.environ.get('XPNET_BACKEND', '')!r}"
        if choice.device is not None:
            names += f", XPNET_DEVICE={choice.device!r}"
        raise type(exc)(f"the environment asks for what cannot be used ({names}): "
                        f"{exc}") from exc


def set_default_backend(backend: Any = None, device: Any = None, dtype: Any = None) -> None:
    """Set the backend (and device, dtype) that objects use when given no ``backend=``.

    Checked at once (an unknown name or device, a missing library or an unsupported dtype
    raises here).  ``set_default_backend()`` with no argument goes back to the environment's
    choice (``XPNET_BACKEND``, ``XPNET_DEVICE``, ``XPNET_DTYPE``), else NumPy in float32.

    >>> import xpnet
    >>> xpnet.set_default_backend("array_api_strict", dtype="float64")
    >>> xpnet.MultiLayerNet(4, [3], 2).backend.name
    'array_api_strict'
    >>> xpnet.set_default_backend()
    """
    be = None if backend is None and device is None else get_backend(backend, device)
    dt = None if dtype is None else check_dtype(dtype)
    _defaults.set_state(be, None, dt)


def default_backend(backend: Any = None, device: Any = None, dtype: Any = None):
    """A context manager: inside it, objects given no ``backend=`` use this one (and ``dtype``
    when given).  Contexts nest; the innermost wins, over :func:`set_default_backend`.

    >>> import xpnet
    >>> with xpnet.default_backend("array_api_strict"):
    ...     net = xpnet.MultiLayerNet(4, [3], 2)
    >>> net.backend.name
    'array_api_strict'
    """
    be = None if backend is None and device is None else get_backend(backend, device)
    dt = None if dtype is None else check_dtype(dtype)
    return _defaults.push(be, None, dt)


def default_dtype(fallback: str = "float32") -> str:
    """The default float dtype's name: a :func:`default_backend` context's, the one given to
    :func:`set_default_backend`, ``XPNET_DTYPE``, else ``fallback``."""
    return _defaults.chosen().dtype or fallback
