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

from types import ModuleType
from typing import Any

import array_api_compat

from xpnet.backend import _cupy, _numpy, _strict, _torch  # noqa: F401  (registers the rooms)
from xpnet.backend._base import (
    ALIASES,
    PORTABLE,
    REGISTRY,
    Backend,
    BackendUnavailableError,
    Generator,
    Kernels,
    library_of,
    to_host,
)
from xpnet.backend._threads import get_num_threads, set_num_threads

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "Generator",
    "Kernels",
    "available_backends",
    "backend_of",
    "get_backend",
    "get_num_threads",
    "kernels_for",
    "kernels_of",
    "resolve_name",
    "set_num_threads",
    "to_host",
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


def get_backend(backend: Any = "numpy", device: Any = None) -> Backend:
    """Resolve a backend choice to a :class:`Backend`.

    Parameters
    ----------
    backend : str, module or Backend
        ``"numpy"``, ``"cupy"``, ``"torch"`` or ``"array_api_strict"`` (aliases: ``"np"``,
        ``"cp"``, ``"pytorch"``, ``"strict"``); an array namespace module (``numpy``,
        ``array_api_compat.torch``, ``array_api_strict``, ...); or a :class:`Backend`, returned
        as is when ``device`` is None.
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
