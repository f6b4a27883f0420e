"""The one module that knows concrete array libraries.

Everything below this module (functions, layers, optimizers, networks) talks to an array namespace
``xp`` that follows the Python Array API standard, obtained through ``array-api-compat``.  This
module maps a user's choice -- ``"numpy"``, ``"cupy"``, ``"torch"``, ``"array_api_strict"``, a
namespace module, or a :class:`Backend` -- to that namespace, a device, a seeded random generator
that draws on the device, host<->device copies and a ``synchronize()`` for timing.

Examples
--------
>>> import xpnet
>>> be = xpnet.get_backend("numpy")
>>> x = be.asarray([[1.0, 2.0]], dtype="float32")
>>> be.to_numpy(x * 2).tolist()
[[2.0, 4.0]]
"""

from __future__ import annotations

import concurrent.futures
import importlib
import math
import os
import threading
from types import ModuleType
from typing import Any

import array_api_compat
import numpy as np

__all__ = [
    "BACKEND_NAMES",
    "Backend",
    "BackendUnavailableError",
    "Generator",
    "available_backends",
    "get_backend",
    "backend_of",
    "kernels_for",
    "Kernels",
    "get_num_threads",
    "set_num_threads",
]

#: The backend names xpnet knows, in the order they are tried by :func:`available_backends`.
BACKEND_NAMES = ("numpy", "cupy", "torch", "array_api_strict")

_ALIASES = {
    "np": "numpy",
    "cp": "cupy",
    "pytorch": "torch",
    "strict": "array_api_strict",
    "array-api-strict": "array_api_strict",
}

_INSTALL_HINT = {
    "cupy": "pip install 'xpnet[cupy]'  (CuPy for CUDA 12: cupy-cuda12x)",
    "torch": "pip install 'xpnet[torch]'  (on CPU-only machines: pip install torch==2.13.0)",
    "array_api_strict": "pip install 'xpnet[strict]'  (array-api-strict)",
}


class BackendUnavailableError(RuntimeError):
    """The backend's package is missing, or it has no usable device."""


# --------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------


class Backend:
    """An array library plus a device: everything xpnet needs to create and move arrays.

    Do not build one directly; call :func:`get_backend`.

    Attributes
    ----------
    name : str
        One of :data:`BACKEND_NAMES`.
    xp : module
        The Array API namespace (the ``array_api_compat`` wrapper for numpy, cupy and torch;
        ``array_api_strict`` itself).
    device : object
        The device arrays are created on (``"cpu"`` for NumPy, a ``cupy.cuda.Device``, a
        ``torch.device``, an ``array_api_strict.Device``).
    """

    def __init__(self, name: str, xp: ModuleType, device: Any, module: ModuleType):
        self.name = name
        self.xp = xp
        self.device = device
        self.module = module  # the raw library (numpy, cupy, torch, array_api_strict)
        self._array_type = _array_type(name, module)
        self._dtype_cache: dict[Any, Any] = {}
        #: fused fast paths for this library (see :class:`Kernels`)
        self.kernels = kernels_for(name)

    # -- identity ---------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self.name == other.name and str(self.device) == str(other.device)

    def __hash__(self) -> int:
        return hash((self.name, str(self.device)))

    # -- dtypes -----------------------------------------------------------------------------

    def dtype(self, dtype: Any = "float32") -> Any:
        """Resolve ``"float32"``, ``"float64"``, a NumPy dtype or a namespace dtype to ``xp``'s."""
        try:
            return self._dtype_cache[dtype]
        except (KeyError, TypeError):
            pass
        resolved = self._resolve_dtype(dtype)
        try:
            self._dtype_cache[dtype] = resolved
        except TypeError:
            pass
        return resolved

    def _resolve_dtype(self, dtype: Any) -> Any:
        if dtype is None:
            dtype = "float32"
        if isinstance(dtype, str) or isinstance(dtype, (np.dtype, type)):
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = None
            if name is not None and hasattr(self.xp, name):
                return getattr(self.xp, name)
            if isinstance(dtype, str):
                raise ValueError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'")
        return dtype  # already a dtype of this namespace

    # -- moving arrays ----------------------------------------------------------------------

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's library (on any device)."""
        return isinstance(x, self._array_type)

    def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None) -> Any:
        """Host data (NumPy array, list, scalar) or an array of this library -> this device.

        Arrays already of this library, on this device and dtype, are returned as they are
        (no copy unless ``copy=True``).  ``dtype`` may be a string such as ``"float32"``.
        """
        xp = self.xp
        dt = None if dtype is None else self.dtype(dtype)
        if self.is_array(x):
            if dt is not None and x.dtype != dt:
                x = xp.astype(x, dt)
            dev = array_api_compat.device(x)
            if dev != self.device and str(dev) != str(self.device):
                x = xp.asarray(x, device=self.device) if self.name == "numpy" else (
                    array_api_compat.to_device(x, self.device)
                )
            return xp.asarray(x, copy=True) if copy else x
        if self.name == "numpy":
            return np.array(x, dtype=dt, copy=True) if copy else np.asarray(x, dtype=dt)
        host = _to_host(x)
        if self.name == "torch":
            import torch

            if not host.flags.c_contiguous or not host.flags.writeable:
                host = host.copy()  # (np.ascontiguousarray would turn 0-d into 1-d)
            t = torch.from_numpy(host)
            return t.to(device=self.device, dtype=dt, copy=bool(copy))
        if self.name == "cupy":
            with self.device:
                return self.module.asarray(host, dtype=dt)
        # array_api_strict: goes through the buffer protocol
        return xp.asarray(host, dtype=dt, device=self.device, copy=copy)

    def labels(self, t: Any, float_dtype: Any) -> Any:
        """Class labels to this device: integers (any int type, lists) as int64, one-hot rows
        (floats) in ``float_dtype``."""
        if not self.is_array(t):
            t = np.asarray(t)
            if t.dtype.kind in "fc":
                return self.asarray(t, dtype=float_dtype)
            return self.asarray(t.astype(np.int64, copy=False))
        if self.xp.isdtype(t.dtype, "real floating"):
            return self.asarray(t, dtype=float_dtype)
        return self.asarray(t)

    def to_numpy(self, x: Any) -> np.ndarray:
        """Copy an array of this backend (or anything array-like) to a host NumPy array."""
        if isinstance(x, np.ndarray):
            return x
        if self.name == "torch" and self.is_array(x):
            return x.detach().cpu().numpy()
        if self.name == "cupy" and self.is_array(x):
            return x.get()
        if self.name == "array_api_strict" and self.is_array(x):
            return np.from_dlpack(x)
        return _to_host(x)

    def to_float(self, x: Any) -> float:
        """A 0-d array (or number) -> Python float.  Synchronizes with the device."""
        if isinstance(x, (int, float)):
            return float(x)
        return float(self.to_numpy(x))

    # -- device work ------------------------------------------------------------------------

    def synchronize(self) -> None:
        """Wait for all work queued on the device (CuPy and torch CUDA launch asynchronously)."""
        if self.name == "cupy":
            self.module.cuda.get_current_stream().synchronize()
        elif self.name == "torch" and self.device.type == "cuda":
            self.module.cuda.synchronize(self.device)
        elif self.name == "torch" and self.device.type == "mps":
            self.module.mps.synchronize()

    def random(self, seed: int | None = None) -> Generator:
        """A seeded random generator that draws on this backend's device."""
        return Generator(self, seed)

    def memory_in_use(self) -> int | None:
        """Bytes currently allocated on the device, where the library reports it, else None."""
        if self.name == "cupy":
            return int(self.module.get_default_memory_pool().used_bytes())
        if self.name == "torch" and self.device.type == "cuda":
            return int(self.module.cuda.memory_allocated(self.device))
        return None


# --------------------------------------------------------------------------------------------
# Random numbers on the device
# --------------------------------------------------------------------------------------------


class Generator:
    """Seeded random numbers drawn on a backend's device.

    NumPy uses SFC64 (the fastest of NumPy's bit generators: dropout masks are drawn every step),
    CuPy its ``default_rng`` (XORWOW), torch a ``torch.Generator`` on the
    backend's device.  ``array_api_strict`` has no random module, so it draws with NumPy on the
    host and copies; that path exists for testing, not speed.

    Streams differ between libraries: the same seed gives the same *distribution*, not the same
    numbers.  Where identical numbers matter (initial weights), draw on the host with NumPy and
    copy -- see :mod:`xpnet.init`.
    """

    def __init__(self, backend: Backend, seed: int | None = None):
        self.backend = backend
        self.seed = seed
        name = backend.name
        if name == "torch":
            import torch

            self._gen = torch.Generator(device=backend.device)
            if seed is None:
                self._gen.seed()
            else:
                self._gen.manual_seed(int(seed))
        elif name == "cupy":
            with backend.device:
                self._gen = backend.module.random.default_rng(seed)
        else:
            self._gen = np.random.Generator(np.random.SFC64(seed))

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        """Samples from U[0, 1) of the given shape, on the device."""
        be = self.backend
        dt = be.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        if be.name == "torch":
            return be.module.rand(shape, generator=self._gen, device=be.device, dtype=dt)
        if be.name == "cupy":
            with be.device:
                return self._gen.random(shape, dtype=dt)
        if be.name == "numpy":
            return self._gen.random(shape, dtype=dt)
        host_dt = np.float64 if dt == be.xp.float64 else np.float32
        return be.asarray(self._gen.random(shape, dtype=host_dt))

    def normal(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        """Standard normal samples of the given shape, on the device."""
        be = self.backend
        dt = be.dtype(dtype)
        shape = tuple(int(s) for s in shape)
        if be.name == "torch":
            return be.module.randn(shape, generator=self._gen, device=be.device, dtype=dt)
        if be.name == "cupy":
            with be.device:
                return self._gen.standard_normal(shape, dtype=dt)
        if be.name == "numpy":
            return self._gen.standard_normal(shape, dtype=dt)
        host_dt = np.float64 if dt == be.xp.float64 else np.float32
        return be.asarray(self._gen.standard_normal(shape, dtype=host_dt))

    def bernoulli_mask(self, shape: tuple[int, ...], keep: float, dtype: Any = "float32") -> Any:
        """A mask of 1.0 (probability ``keep``) and 0.0 of the given shape and float dtype.

        Drawn as ``uniform > 1 - keep``, the book's ``np.random.rand(*x.shape) > ratio``.  On
        the host generators (NumPy, and array-api-strict which copies from it) the uniform is
        a raw 32-bit draw compared with ``round((1 - keep) * 2**32)``: the same Bernoulli
        distribution (to 2**-32, finer than a float32 uniform's 2**-24) at half the cost.
        """
        be = self.backend
        dt = be.dtype(dtype)
        if be.name in ("numpy", "array_api_strict"):
            n = math.prod(int(d) for d in shape)
            raw = self._gen.bit_generator.random_raw((n + 1) // 2)
            bits = raw.view(np.uint32)[:n].reshape(shape)
            threshold = min(round((1.0 - keep) * 2.0**32), 2**32 - 1)
            mask = np.empty(shape, np.float64 if dt == be.xp.float64 else np.float32)
            np.greater_equal(bits, np.uint32(threshold), out=mask)  # 1.0 / 0.0, one pass
            return mask if be.name == "numpy" else be.asarray(mask)
        u = self.uniform(shape, dt)
        return be.xp.astype(u > (1.0 - keep), dt)

    def integers(self, high: int, size: int) -> Any:
        """``size`` integers from ``[0, high)`` on the device (int64)."""
        be = self.backend
        if be.name == "torch":
            return be.module.randint(
                0, int(high), (int(size),), generator=self._gen, device=be.device
            )
        if be.name == "cupy":
            with be.device:
                return self._gen.integers(0, int(high), int(size))
        idx = self._gen.integers(0, int(high), int(size))
        return idx if be.name == "numpy" else be.asarray(idx)


# --------------------------------------------------------------------------------------------
# Resolving a user's choice
# --------------------------------------------------------------------------------------------


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
        backend = backend.name
    if isinstance(backend, ModuleType):
        backend = _name_of_module(backend)
    if not isinstance(backend, str):
        raise TypeError(
            f"backend must be a name, an array namespace module or a Backend, not {type(backend)}"
        )
    name = _ALIASES.get(backend.lower(), backend.lower())
    if name not in BACKEND_NAMES:
        raise ValueError(
            f"unknown backend {backend!r}; valid names are: {', '.join(BACKEND_NAMES)}"
        )
    return _BUILDERS[name](device)


def available_backends() -> list[str]:
    """Names of the backends that import here and, for CuPy, see a CUDA device."""
    names = []
    for name in BACKEND_NAMES:
        try:
            get_backend(name)
        except (BackendUnavailableError, ImportError):
            continue
        names.append(name)
    return names


def backend_of(x: Any) -> Backend:
    """The :class:`Backend` (library and device) an array lives on."""
    name = _name_of_array(x)
    dev = array_api_compat.device(x)
    return get_backend(name, device=dev)


# --------------------------------------------------------------------------------------------
# Builders, one per library
# --------------------------------------------------------------------------------------------


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} needs the package {name!r}, which is not installed: "
            f"{_INSTALL_HINT.get(name, 'pip install ' + name)}"
        ) from exc


def _build_numpy(device: Any) -> Backend:
    if device not in (None, "cpu") and str(device) != "cpu":
        raise ValueError(f"the numpy backend only has the device 'cpu', not {device!r}")
    import array_api_compat.numpy as xp

    return Backend("numpy", xp, "cpu", np)


def _build_torch(device: Any) -> Backend:
    torch = _import("torch")
    import array_api_compat.torch as xp

    try:
        dev = torch.device("cpu" if device is None else device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"torch does not know the device {device!r}: {exc}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError(
            f"torch device {str(dev)!r} asked for, but torch sees no CUDA device "
            "(this torch build or machine has no GPU); use device='cpu'"
        )
    return Backend("torch", xp, dev, torch)


def _build_cupy(device: Any) -> Backend:
    try:
        cupy = importlib.import_module("cupy")
    except ImportError as exc:
        raise BackendUnavailableError(
            "backend 'cupy' needs CuPy, which is not installed: " + _INSTALL_HINT["cupy"]
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError, missing driver libraries
        raise BackendUnavailableError(
            "CuPy is installed but sees no CUDA device "
            f"({type(exc).__name__}: {exc}); run on a machine with an NVIDIA GPU and driver, "
            "or choose backend='numpy' / 'torch'"
        ) from exc
    if count == 0:
        raise BackendUnavailableError(
            "CuPy is installed but sees no CUDA device; run on a machine with an NVIDIA GPU"
        )
    import array_api_compat.cupy as xp

    if device is None:
        dev = cupy.cuda.Device()
    elif isinstance(device, cupy.cuda.Device):
        dev = device
    else:
        s = str(device)
        if s.startswith("cuda"):
            s = s.partition(":")[2] or "0"
        try:
            dev = cupy.cuda.Device(int(s))
        except ValueError as exc:
            raise ValueError(f"CuPy device must be an int or 'cuda:N', not {device!r}") from exc
    if dev.id >= count:
        raise ValueError(f"CuPy sees {count} device(s); device {dev.id} does not exist")
    return Backend("cupy", xp, dev, cupy)


def _build_strict(device: Any) -> Backend:
    strict = _import("array_api_strict")
    if device is None:
        dev = strict.Device("CPU_DEVICE")
    elif isinstance(device, strict.Device):
        dev = device
    else:
        try:
            dev = strict.Device(str(device))
        except ValueError as exc:
            raise ValueError(f"array_api_strict does not know the device {device!r}") from exc
    return Backend("array_api_strict", strict, dev, strict)


_BUILDERS = {
    "numpy": _build_numpy,
    "cupy": _build_cupy,
    "torch": _build_torch,
    "array_api_strict": _build_strict,
}


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _array_type(name: str, module: ModuleType) -> type | tuple[type, ...]:
    if name == "numpy":
        return (np.ndarray, np.generic)
    if name == "torch":
        return module.Tensor
    if name == "cupy":
        return module.ndarray
    return module._array_object.Array


def _name_of_module(mod: ModuleType) -> str:
    modname = mod.__name__
    for name in BACKEND_NAMES:
        if modname == name or modname == f"array_api_compat.{name}" or modname.startswith(
            name + "."
        ):
            return name
    raise ValueError(f"{modname!r} is not a namespace xpnet knows ({', '.join(BACKEND_NAMES)})")


def _name_of_array(x: Any) -> str:
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    if array_api_compat.is_array_api_strict_namespace(array_api_compat.array_namespace(x)):
        return "array_api_strict"
    raise TypeError(f"not an array of a backend xpnet knows: {type(x)}")


def _to_host(x: Any) -> np.ndarray:
    """Anything array-like to a NumPy array (host)."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if hasattr(x, "__dlpack__") and not isinstance(x, (list, tuple)):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError):
            pass
    return np.asarray(x)


# --------------------------------------------------------------------------------------------
# Fused fast paths
# --------------------------------------------------------------------------------------------


class Kernels:
    """Optional fused implementations of hot operations, one subclass per library.

    The portable code in :mod:`xpnet.optim` and :mod:`xpnet.layers` is the reference; a kernel
    here must compute the same numbers (up to rounding) with fewer passes over memory or fewer
    Python-level operations.  A method left as ``None`` means "use the portable code".  Tests
    compare every kernel with the portable path.

    Optimizer kernels update ``p`` and the state arrays in place.
    """

    name = "portable"
    #: ``matmul_into(a, b, out)``: ``out[...] = a @ b`` without a temporary
    matmul_into = None
    #: ``adam(p, g, m, v, lr_t, beta1, beta2, eps)``
    adam = None
    #: ``rmsprop(p, g, h, lr, decay_rate, eps)``
    rmsprop = None
    #: ``adagrad(p, g, h, lr, eps)``
    adagrad = None
    #: ``momentum(p, g, v, lr, momentum)``
    momentum = None
    #: ``relu_(x)``: ``max(x, 0)`` in place, returns ``x``
    relu_ = None
    #: ``relu_backward(dout, mask)``: ``where(mask, dout, 0)`` for a boolean ``mask``
    relu_backward = None
    #: ``col_dot(a, b, out=None)``: ``sum(a * b, axis=0)`` of two 2-D arrays of the same shape,
    #: into ``out`` when given
    col_dot = None
    #: ``col_sum(x, out=None)``: ``sum(x, axis=0)`` of a 2-D array, into ``out`` when given
    col_sum = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class NumpyKernels(Kernels):
    """In-place ufuncs with ``out=`` into scratch buffers, blocked so that each optimizer
    update streams through memory once, and split across threads on large buffers.

    An unblocked in-place update still makes about a dozen passes over every state array; on a
    few million parameters that is memory-bound.  Working through blocks of ``block`` elements
    (about a MiB for all arrays together, so they stay in cache) makes the same
    dozen ufunc calls per block but reads and writes each array from main memory once.
    (numexpr was tried for this and was slower than blocked ufuncs here.)

    NumPy's ufuncs run on one core while its BLAS uses them all.  Buffers of at least
    ``2 * min_per_thread`` elements are cut into contiguous parts, one per thread of
    :func:`get_num_threads` (ufuncs release the GIL); each element is still updated by the
    same arithmetic, so the result does not depend on the number of threads.
    """

    name = "numpy"
    #: elements per block (measured on a 2-core EPYC over 2.9 M float32 parameters: 64-128 Ki
    #: beat 4-32 Ki and unblocked on one thread; 128-256 Ki were best on two, where smaller
    #: blocks lose to the GIL taken around every ufunc call)
    block = 131072
    #: fewest elements worth handing to another thread
    min_per_thread = 262144

    def __init__(self) -> None:
        # Scratch blocks are per thread: two optimizers updating at once from two threads (or
        # the parts of one update) must never share one.
        self._local = threading.local()

    def _tmp(self, n: int, dtype: np.dtype) -> np.ndarray:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = {}
        key = (n, np.dtype(dtype).str)
        buf = scratch.get(key)
        if buf is None:
            if len(scratch) > 8:
                scratch.clear()
            buf = scratch[key] = np.empty(n, dtype)
        return buf

    def _each_block(self, body, *arrays: np.ndarray) -> None:  # noqa: ANN001
        """Call ``body(block views of arrays..., scratch)`` over the flattened ``arrays``,
        in parallel parts when they are large (see the class docstring)."""
        if not all(a.flags.c_contiguous for a in arrays):
            # reshape(-1) would copy, and the in-place update would land in the copy: work on
            # the arrays as they are, in one piece (ufuncs handle any layout)
            body(*arrays, np.empty_like(arrays[0]))
            return
        flat = [a.reshape(-1) for a in arrays]
        n = flat[0].size
        parts = min(get_num_threads(), n // self.min_per_thread)
        if parts <= 1:
            self._run_part(body, flat, 0, n)
            return
        bounds = [n * i // parts for i in range(parts + 1)]
        futures = []
        pool = _thread_pool(parts - 1)
        for i in range(1, parts):
            try:
                futures.append(pool.submit(self._run_part, body, flat, bounds[i], bounds[i + 1]))
            except RuntimeError:  # the interpreter is shutting down its pools: do it here
                self._run_part(body, flat, bounds[i], bounds[i + 1])
        try:
            self._run_part(body, flat, bounds[0], bounds[1])
        finally:
            # every part has finished before anything is raised: none writes afterwards
            concurrent.futures.wait(futures)
        for f in futures:
            f.result()

    def _run_part(self, body, flat, start, stop):  # noqa: ANN001, ANN202
        n = stop - start
        # small buffers stay in cache anyway: one block saves the per-block calls
        step = (n if n <= 4 * self.block else self.block) or 1
        s = self._tmp(step, flat[0].dtype)
        for a in range(start, stop, step):
            b = min(a + step, stop)
            body(*(f[a:b] for f in flat), s[: b - a])

    @staticmethod
    def matmul_into(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.matmul(a, b, out=out)

    @staticmethod
    def relu_(x: np.ndarray) -> np.ndarray:
        return np.maximum(x, 0, out=x)

    @staticmethod
    def col_dot(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # ``np.vecdot(a, b, axis=0)`` took about 6 ms at 512x1024 float32 against 0.12 ms for
        # this einsum, and was no faster at 100x100 (``python bench/micro.py``).
        return np.einsum("ij,ij->j", a, b, out=out)

    @staticmethod
    def col_sum(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # the ufunc method itself: array_api_compat's ``sum`` wrapper costs 5 us a call
        return np.add.reduce(x, 0, out=out)

    _SAME_WIDTH_INT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}

    def relu_backward(self, dout: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # ``np.where(mask, dout, 0)`` is ~10x slower than this bitwise AND of dout's bits with
        # 0 / all-ones (same result, bit for bit: dout where mask, +0.0 elsewhere; inf and nan
        # are dropped where the mask is off, as ``where`` does).
        it = self._SAME_WIDTH_INT.get(dout.dtype)
        if it is None or mask.dtype != np.bool_:
            return np.where(mask, dout, dout.dtype.type(0))
        ones = np.negative(mask.view(np.int8), dtype=it)
        return np.bitwise_and(dout.view(it), ones).view(dout.dtype)

    def adam(self, p, g, m, v, lr_t, beta1, beta2, eps):  # noqa: ANN001, ANN201
        c = p.dtype.type
        b1c, b2c, eps, lr_t = c(1.0 - beta1), c(1.0 - beta2), c(eps), c(lr_t)

        def body(p_, g_, m_, v_, s):  # noqa: ANN001, ANN202
            np.subtract(g_, m_, out=s)  # m += (1 - beta1) * (g - m)
            s *= b1c
            m_ += s
            np.multiply(g_, g_, out=s)  # v += (1 - beta2) * (g * g - v)
            s -= v_
            s *= b2c
            v_ += s
            _rms_step(p_, m_, v_, s, lr_t, eps)  # p -= lr_t * m / (sqrt(v) + eps)

        self._each_block(body, p, g, m, v)

    def rmsprop(self, p, g, h, lr, decay_rate, eps):  # noqa: ANN001, ANN201
        c = p.dtype.type
        d, dc, lr, eps = c(decay_rate), c(1.0 - decay_rate), c(lr), c(eps)

        def body(p_, g_, h_, s):  # noqa: ANN001, ANN202
            h_ *= d  # h = decay * h + (1 - decay) * g * g
            np.multiply(g_, g_, out=s)
            s *= dc
            h_ += s
            _rms_step(p_, g_, h_, s, lr, eps)  # p -= lr * g / (sqrt(h) + eps)

        self._each_block(body, p, g, h)

    def adagrad(self, p, g, h, lr, eps):  # noqa: ANN001, ANN201
        c = p.dtype.type
        lr, eps = c(lr), c(eps)

        def body(p_, g_, h_, s):  # noqa: ANN001, ANN202
            np.multiply(g_, g_, out=s)  # h += g * g
            h_ += s
            _rms_step(p_, g_, h_, s, lr, eps)  # p -= lr * g / (sqrt(h) + eps)

        self._each_block(body, p, g, h)

    def momentum(self, p, g, v, lr, momentum):  # noqa: ANN001, ANN201
        c = p.dtype.type
        lr, mom = c(lr), c(momentum)

        def body(p_, g_, v_, s):  # noqa: ANN001, ANN202
            v_ *= mom  # v = momentum * v - lr * g
            np.multiply(g_, lr, out=s)
            v_ -= s
            p_ += v_  # p += v

        self._each_block(body, p, g, v)


def _rms_step(p, num, sq, s, lr, eps):  # noqa: ANN001, ANN202
    """``p -= lr * num / (sqrt(sq) + eps)`` in place, through the scratch block ``s``."""
    np.sqrt(sq, out=s)
    s += eps
    np.divide(num, s, out=s)
    s *= lr
    p -= s


class TorchKernels(Kernels):
    """torch's fused in-place tensor methods (``addcmul_``, ``addcdiv_``, ``out=``)."""

    name = "torch"

    @staticmethod
    def matmul_into(a, b, out):  # noqa: ANN001, ANN205
        import torch

        return torch.matmul(a, b, out=out)

    @staticmethod
    def relu_(x):  # noqa: ANN001, ANN205
        return x.relu_()

    @staticmethod
    def col_dot(a, b, out=None):  # noqa: ANN001, ANN205
        import torch

        # array_api_compat's vecdot(axis=-2) on torch took 10-12 ms at 512x1024, this 0.2 ms
        # (``python bench/micro.py``)
        return torch.linalg.vecdot(a, b, dim=0, out=out)

    @staticmethod
    def col_sum(x, out=None):  # noqa: ANN001, ANN205
        import torch

        return torch.sum(x, 0, out=out)

    @staticmethod
    def adam(p, g, m, v, lr_t, beta1, beta2, eps):  # noqa: ANN001, ANN205
        m.lerp_(g, 1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        p.addcdiv_(m, v.sqrt().add_(eps), value=-lr_t)


class CupyKernels(Kernels):
    """One fused CUDA ``ElementwiseKernel`` per optimizer update (compiled on first use)."""

    name = "cupy"

    def __init__(self) -> None:
        self._adam = None

    @staticmethod
    def relu_(x):  # noqa: ANN001, ANN205
        import cupy

        return cupy.maximum(x, 0, out=x)

    def adam(self, p, g, m, v, lr_t, beta1, beta2, eps):  # noqa: ANN001, ANN201
        import cupy

        if self._adam is None:
            self._adam = cupy.ElementwiseKernel(
                "T g, T lr_t, T b1c, T b2c, T eps", "T p, T m, T v",
                "m += b1c * (g - m); v += b2c * (g * g - v); p -= lr_t * m / (sqrt(v) + eps);",
                "xpnet_adam",
            )
        c = p.dtype.type
        self._adam(g, c(lr_t), c(1.0 - beta1), c(1.0 - beta2), c(eps), p, m, v)


_num_threads: int | None = None
_pool: Any = None
_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    # the child has none of the parent's threads, and a lock held at the fork stays held
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _default_num_threads() -> int:
    env = os.environ.get("XPNET_NUM_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"XPNET_NUM_THREADS must be a positive integer, got {env!r}") from None
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def get_num_threads() -> int:
    """Threads xpnet's own NumPy kernels may use (the optimizer updates of large buffers).

    The CPUs this process may run on, unless ``XPNET_NUM_THREADS`` or
    :func:`set_num_threads` says otherwise.  NumPy's BLAS and torch keep their own settings.
    """
    global _num_threads
    if _num_threads is None:
        _num_threads = _default_num_threads()
    return _num_threads


def set_num_threads(n: int) -> int:
    """Set the threads of xpnet's own NumPy kernels; returns the previous value."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be a positive integer, got {n!r}")
    old = get_num_threads()
    global _num_threads
    _num_threads = n
    return old


def _thread_pool(workers: int) -> Any:
    """A shared pool with at least ``workers`` threads.

    A pool is never shut down (another thread may be about to submit to it): a bigger one
    replaces it for new callers, and the old one ends when nobody holds it.  A forked child
    (``multiprocessing`` on Linux) inherits the pool object but not its threads, so a pool made
    in another process is replaced too.
    """
    global _pool
    pid = os.getpid()
    pool = _pool
    if pool is not None and pool[0] == pid and pool[1] >= workers:
        return pool[2]
    with _pool_lock:
        if _pool is None or _pool[0] != pid or _pool[1] < workers:
            _pool = (pid, workers, concurrent.futures.ThreadPoolExecutor(
                max_workers=workers, thread_name_prefix="xpnet-kernels"))
        return _pool[2]


def kernels_for(name: str) -> Kernels:
    """The fused kernels of a backend name (a portable no-op set for unknown ones)."""
    k = _KERNELS.get(name)
    if k is None:
        cls = {"numpy": NumpyKernels, "torch": TorchKernels, "cupy": CupyKernels}.get(
            name, Kernels
        )
        k = _KERNELS[name] = cls()
    return k


_KERNELS: dict[str, Kernels] = {}
