"""What every library's room shares: the :class:`Backend` base, the generator and kernel bases,
and the registry that maps names and arrays to the room that owns them.

A room (``_numpy.py``, ``_torch.py``, ``_cupy.py``, ``_strict.py``) subclasses :class:`Backend`,
:class:`Generator` and :class:`Kernels`, and registers its backend class with :func:`register`.
Nothing here imports torch or CuPy; the rooms import them lazily, inside their methods, so that
``import xpnet`` stays cheap and works without them.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any, ClassVar

import array_api_compat
import numpy as np

from xpnet.backend._defaults import check_dtype


class BackendUnavailableError(RuntimeError):
    """The backend's package is missing, or it has no usable device."""


BackendUnavailableError.__module__ = "xpnet"  # where users import it from


# --------------------------------------------------------------------------------------------
# Fused fast paths
# --------------------------------------------------------------------------------------------


class Kernels:
    """Optional fused implementations of hot operations, one subclass per library.

    The portable code in :mod:`xpnet.optim` and :mod:`xpnet.layers` is the reference; a kernel
    here must compute the same numbers (up to rounding) with fewer passes over memory or fewer
    Python-level operations.  A slot left as ``None`` means "use the portable code".  Tests
    compare every kernel with the portable path.

    Optimizer kernels update ``p`` and the state arrays in place.
    """

    name = "portable"
    #: ``matmul_into(a, b, out)``: ``out[...] = a @ b`` without a temporary
    matmul_into = None
    #: ``adam(p, g, m, v, lr_t, beta1, beta2, eps, decay=1.0)``: the book's Adam step
    #: ``m += (1 - beta1) * (g - m); v += (1 - beta2) * (g*g - v);
    #: p = decay * p - lr_t * m / (sqrt(v) + eps)`` (``decay``: AdamW's ``1 - lr * wd``;
    #: torch's eps placement is this with ``eps * sqrt(1 - beta2**t)``)
    adam = None
    #: ``rmsprop(p, g, h, lr, decay_rate, eps)``
    rmsprop = None
    #: ``adagrad(p, g, h, lr, eps)``
    adagrad = None
    #: ``momentum(p, g, v, lr, momentum)``
    momentum = None
    #: ``relu_(x)``: ``max(x, 0)`` in place, returns ``x``
    relu_ = None
    #: ``relu(x)``: ``max(x, 0)``, a fresh array; :attr:`relu_backward` then gets this output
    #: (or None to decline, and the portable code runs)
    relu = None
    #: ``relu_backward(dout, saved)``: ``where(x > 0, dout, 0)``, where ``saved`` is the output
    #: of :attr:`relu` -- or, where :attr:`relu` is None, the boolean mask ``x > 0``
    relu_backward = None

    # -- whole layers, in as few library calls as the library allows (on a GPU each call is a
    # kernel launch, which costs more than a small layer's arithmetic)
    #: ``affine(x, W, b)``: ``x @ W + b`` for 2-D ``x``
    affine = None
    #: ``batchnorm_train(x, gamma, beta, eps, running_mean, running_var, momentum)``: batch
    #: norm's training pass over the rows of 2-D ``x`` with the book's conventions:
    #: ``(out, mean, inv_std, new_running_mean, new_running_var)`` with ``inv_std =
    #: 1 / sqrt(var + eps)`` (biased variance) and ``new = momentum * old + (1 - momentum) *
    #: batch`` (out of place), or None to decline (the portable code runs); set together with
    #: :attr:`batchnorm_backward`
    batchnorm_train = None
    #: ``batchnorm_backward(dout, x, mean, inv_std, gamma, eps, dgamma_out, dbeta_out)``:
    #: ``(dx, dgamma, dbeta)`` of :attr:`batchnorm_train`, ``dgamma``/``dbeta`` written into
    #: the ``*_out`` arrays when given
    batchnorm_backward = None
    #: ``softmax_cross_entropy(x, t)``: ``(loss, y)`` -- ``y = softmax(x)`` over the rows and the
    #: book's loss ``-sum(log(y[i, t[i]] + 1e-7)) / N`` for integer labels ``t`` of shape
    #: ``(N,)``; None to decline (one-hot labels), and the portable code runs
    softmax_cross_entropy = None
    #: ``softmax_cross_entropy_backward(y, t, dout)``: ``(y - onehot(t)) * dout / N``
    softmax_cross_entropy_backward = None
    #: ``col_dot(a, b, out=None)``: ``sum(a * b, axis=0)`` of two 2-D arrays of the same shape,
    #: into ``out`` when given
    col_dot = None
    #: ``col_sum(x, out=None)``: ``sum(x, axis=0)`` of a 2-D array, into ``out`` when given
    col_sum = None

    # -- convolution and pooling (chapter 7).  Two levels: a library with a convolution of its
    # own replaces the whole layer (``conv2d`` + ``conv2d_backward``: no column matrix is ever
    # built); one without replaces the data movement of the im2col formulation (``im2col``,
    # ``col2im``), the part a fused kernel speeds up, and keeps the layer's GEMMs.
    #: ``conv2d(x, W, b, stride, pad)``: the convolution layer's output ``(N, FN, OH, OW)`` of
    #: ``x (N, C, H, W)``, ``W (FN, C, FH, FW)``, ``b (FN,)`` (cross-correlation, zero padding:
    #: ``torch.nn.functional.conv2d``); set together with ``conv2d_backward``
    conv2d = None
    #: ``conv2d_backward(dout, x, W, stride, pad, need_dx)``: ``(dx, dW, db)`` of
    #: :attr:`conv2d` for ``dout (N, FN, OH, OW)``; ``dx`` is None when ``need_dx`` is False
    conv2d_backward = None
    #: ``im2col(x, filter_h, filter_w, stride, pad)``: :func:`xpnet.functions.im2col`'s matrix
    #: ``(N*OH*OW, C*FH*FW)`` in the book's layout, a fresh array
    im2col = None
    #: ``col2im(col, input_shape, filter_h, filter_w, stride, pad)``:
    #: :func:`xpnet.functions.col2im` (overlaps summed, padding dropped), a fresh array
    col2im = None
    #: ``max_pool2d(x, pool_h, pool_w, stride, pad)``: ``(out, state)``, ``out`` as
    #: :func:`xpnet.functions.max_pool2d` (``-inf`` padding, ties to the first maximum) and
    #: ``state`` whatever :attr:`max_pool2d_backward` needs -- or None for a geometry it does not
    #: handle, and the portable code runs; set together with :attr:`max_pool2d_backward`
    max_pool2d = None
    #: ``max_pool2d_backward(dout, state, input_shape, pool_h, pool_w, stride, pad)``: the
    #: input gradient, each window's ``dout`` to its maximum (summed where windows overlap)
    max_pool2d_backward = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


#: The kernels of a backend without fast paths (every slot None).
PORTABLE = Kernels()


# --------------------------------------------------------------------------------------------
# Random numbers on the device
# --------------------------------------------------------------------------------------------


class Generator:
    """Seeded random numbers drawn on a backend's device; each room subclasses it.

    Streams differ between libraries: the same seed gives the same *distribution*, not the same
    numbers.  Where identical numbers matter (initial weights), draw on the host with NumPy and
    copy -- see :mod:`xpnet.init`.
    """

    def __init__(self, backend: Backend, seed: int | None = None):
        self.backend = backend
        self.seed = seed

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        """Samples from U[0, 1) of the given shape, on the device."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    def normal(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        """Standard normal samples of the given shape, on the device."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    def integers(self, high: int, size: int) -> Any:
        """``size`` integers from ``[0, high)`` on the device (int64)."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    def bernoulli_mask(self, shape: tuple[int, ...], keep: float, dtype: Any = "float32") -> Any:
        """A mask of 1.0 (probability ``keep``) and 0.0 of the given shape and float dtype.

        Drawn as ``uniform > 1 - keep``, the book's ``np.random.rand(*x.shape) > ratio``.
        """
        dt = self.backend.dtype(dtype)
        u = self.uniform(shape, dt)
        return self.backend.xp.astype(u > (1.0 - keep), dt)

    #: what kind of stream :meth:`get_state` describes; a state of another kind cannot be set
    kind: str = ""

    def get_state(self) -> dict[str, Any]:
        """The generator's state as plain JSON types: ``{"kind": ..., ...}``.

        :meth:`set_state` on a generator of the same :attr:`kind` continues the stream exactly
        where this one is.  Kinds differ between libraries (and, for torch, between CPU and
        CUDA): the state of one cannot be set on another.
        """
        raise NotImplementedError  # pragma: no cover - each room implements it

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state returned by :meth:`get_state`.

        Raises
        ------
        ValueError
            If ``state`` is of another :attr:`kind` or malformed (the generator is unchanged).
        """
        raise NotImplementedError  # pragma: no cover - each room implements it

    def _check_kind(self, state: Any) -> None:
        kind = state.get("kind") if isinstance(state, dict) else None
        if kind != self.kind:
            raise ValueError(
                f"a {self.kind} generator cannot continue the stream of a "
                f"{kind or type(state).__name__} generator (random states do not carry over "
                "between libraries or device types)"
            )


class HostGenerator(Generator):
    """Draws with NumPy's SFC64 on the host (the fastest of NumPy's bit generators: dropout
    masks are drawn every step); :meth:`_place` puts the result on the backend's device."""

    def __init__(self, backend: Backend, seed: int | None = None):
        super().__init__(backend, seed)
        self._gen = np.random.Generator(np.random.SFC64(seed))

    kind = "numpy.SFC64"

    def _place(self, host: np.ndarray) -> Any:
        return self.backend.asarray(host)

    def get_state(self) -> dict[str, Any]:
        st = self._gen.bit_generator.state
        return {"kind": self.kind, "state": [int(v) for v in st["state"]["state"]],
                "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"])}

    def set_state(self, state: dict[str, Any]) -> None:
        self._check_kind(state)
        try:
            words = np.array(state["state"], dtype=np.uint64)
            if words.shape != (4,):
                raise ValueError(f"expected 4 state words, got shape {words.shape}")
            self._gen.bit_generator.state = {
                "bit_generator": "SFC64", "state": {"state": words},
                "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"]),
            }
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"malformed {self.kind} generator state: {exc}") from exc

    def _host_dtype(self, dtype: Any) -> Any:
        return np.float64 if self.backend.dtype(dtype) == self.backend.xp.float64 else np.float32

    def uniform(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        shape = tuple(int(s) for s in shape)
        return self._place(self._gen.random(shape, dtype=self._host_dtype(dtype)))

    def normal(self, shape: tuple[int, ...], dtype: Any = "float32") -> Any:
        shape = tuple(int(s) for s in shape)
        return self._place(self._gen.standard_normal(shape, dtype=self._host_dtype(dtype)))

    def integers(self, high: int, size: int) -> Any:
        return self._place(self._gen.integers(0, int(high), int(size)))

    def bernoulli_mask(self, shape: tuple[int, ...], keep: float, dtype: Any = "float32") -> Any:
        """As :meth:`Generator.bernoulli_mask`, from raw 32-bit draws compared with
        ``round((1 - keep) * 2**32)``: the same Bernoulli distribution (to 2**-32, finer than a
        float32 uniform's 2**-24) at half the cost."""
        n = math.prod(int(d) for d in shape)
        raw = self._gen.bit_generator.random_raw((n + 1) // 2)
        bits = raw.view(np.uint32)[:n].reshape(shape)
        threshold = min(round((1.0 - keep) * 2.0**32), 2**32 - 1)
        mask = np.empty(shape, self._host_dtype(dtype))
        np.greater_equal(bits, np.uint32(threshold), out=mask)  # 1.0 / 0.0, one pass
        return self._place(mask)


# --------------------------------------------------------------------------------------------
# Backend
# --------------------------------------------------------------------------------------------


class Backend:
    """An array library plus a device: everything xpnet needs to create and move arrays.

    Do not build one directly; call :func:`xpnet.get_backend`.  Each library has its own
    subclass (in its own module of :mod:`xpnet.backend`), which is the only code that knows the
    library.

    Attributes
    ----------
    name : str
        One of :data:`xpnet.backend.BACKEND_NAMES`.
    xp : module
        The Array API namespace (the ``array_api_compat`` wrapper for numpy, cupy and torch;
        ``array_api_strict`` itself).
    device : object
        The device arrays are created on (``"cpu"`` for NumPy, a ``cupy.cuda.Device``, a
        ``torch.device``, an ``array_api_strict.Device``).
    module : module
        The raw library (numpy, cupy, torch, array_api_strict).
    kernels : Kernels
        The library's fused fast paths (:class:`Kernels`; a slot left None is portable code).
    """

    #: the backend's name, and other names users may type for it
    name: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    #: the distribution to install, for error messages
    install_hint: ClassVar[str] = ""
    #: the name of the default device (what :attr:`device_name` is when none was asked for)
    default_device_name: ClassVar[str | None] = None
    #: the fast paths of this library (instantiated once per class)
    kernels_class: ClassVar[type[Kernels]] = Kernels
    generator_class: ClassVar[type[Generator]] = HostGenerator
    #: arrays are allocated by NumPy in host memory (``tracemalloc`` sees them)
    numpy_memory: ClassVar[bool] = False
    #: the library's arrays *are* host NumPy arrays: reading their values costs a pass over
    #: memory and never a transfer (True for NumPy only: array_api_strict models devices, and
    #: torch on the CPU behaves as torch on a GPU)
    host_native: ClassVar[bool] = False
    _kernels: ClassVar[Kernels | None] = None

    def __init__(self, xp: ModuleType, device: Any, module: ModuleType):
        self.xp = xp
        self.device = device
        self.module = module
        self._array_type = self.array_type(module)
        self._dtype_cache: dict[Any, Any] = {}
        self.kernels = type(self).get_kernels()

    # -- what each room provides --------------------------------------------------------------

    @classmethod
    def build(cls, device: Any = None) -> Backend:
        """Import the library, check the device and return a backend on it."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    @staticmethod
    def owns(x: Any) -> bool:
        """Whether ``x`` is an array of this library (without importing the library)."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    @classmethod
    def owns_namespace(cls, mod: ModuleType) -> bool:
        """Whether ``mod`` is this library or its array_api_compat namespace."""
        name = mod.__name__
        return (name == cls.name or name == f"array_api_compat.{cls.name}"
                or name.startswith(cls.name + "."))

    @staticmethod
    def array_type(module: ModuleType) -> type | tuple[type, ...]:
        """The library's array type(s), for :meth:`is_array`."""
        raise NotImplementedError  # pragma: no cover - each room implements it

    @staticmethod
    def array_to_numpy(x: Any) -> np.ndarray:
        """One of this library's arrays (on any device) to a host NumPy array."""
        return np.from_dlpack(x)

    @staticmethod
    def value_range(x: Any) -> tuple[Any, Any]:
        """``(min, max)`` of one of this library's non-empty arrays as NumPy scalars, in one
        transfer from the device."""
        xp = array_api_compat.array_namespace(x)
        lo, hi = to_host(xp.stack([xp.min(x), xp.max(x)]))
        return lo, hi

    @staticmethod
    def why_unusable(x: Any) -> str | None:
        """Why one of this library's arrays cannot be used as data (copied or computed on), as
        the end of a sentence starting with the argument's name; None when it can be."""
        return None

    def _from_host(self, host: np.ndarray, dt: Any, copy: bool | None) -> Any:
        """A host NumPy array to this device, in ``dt`` (None: keep the dtype)."""
        return self.xp.asarray(host, dtype=dt, device=self.device, copy=copy)

    def _to_this_device(self, x: Any) -> Any:
        """One of this library's arrays, on another device, moved to this one."""
        return array_api_compat.to_device(x, self.device)

    def synchronize(self) -> None:
        """Wait for all work queued on the device (CuPy and torch CUDA launch asynchronously)."""

    def memory_in_use(self) -> int | None:
        """Bytes currently allocated on the device, where the library reports it, else None."""
        return None

    @property
    def device_name(self) -> str:
        """The device as a string that :func:`xpnet.get_backend` takes back (and that pickles):
        ``"cpu"``, ``"cuda:0"``, ``"device1"``."""
        return str(self.device)

    @classmethod
    def describe_devices(cls, module: ModuleType) -> list[str]:
        """The devices this library offers here, for ``xpnet info``."""
        return []

    # -- identity ---------------------------------------------------------------------------

    @classmethod
    def get_kernels(cls) -> Kernels:
        """The library's :class:`Kernels` instance (one per class)."""
        k = cls.__dict__.get("_kernels")
        if k is None:
            k = cls.kernels_class()
            cls._kernels = k
        return k

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return type(self) is type(other) and self.device_name == other.device_name

    def __hash__(self) -> int:
        return hash((self.name, self.device_name))

    @property
    def has_float64(self) -> bool:
        """Whether the device supports float64 (array-api-strict's ``no_float64`` device and
        torch's MPS do not), from the namespace's inspection API.

        >>> from xpnet import get_backend
        >>> get_backend("numpy").has_float64
        True
        """
        try:
            info = self.xp.__array_namespace_info__()
            return "float64" in info.dtypes(device=self.device, kind="real floating")
        except Exception:  # a namespace without the inspection API: try it
            try:
                self.xp.zeros((1,), dtype=self.xp.float64, device=self.device)
            except Exception:
                return False
            return True

    @property
    def is_default_device(self) -> bool:
        """Whether arrays live on the library's default device."""
        return self.device_name == self.default_device_name

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
        if isinstance(dtype, (str, np.dtype, type)):
            try:
                name = np.dtype(dtype).name
            except TypeError:
                name = None
            if name is not None and hasattr(self.xp, name):
                return getattr(self.xp, name)
            if isinstance(dtype, str):
                raise ValueError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'")
        return dtype  # already a dtype of this namespace

    def float_dtype(self, dtype: Any = None, what: str = "dtype") -> Any:
        """A network's float dtype: ``'float32'`` (None) or ``'float64'`` -- given as a name, a
        NumPy dtype or this namespace's dtype -- as ``xp``'s dtype.  Anything else raises
        ``ValueError`` naming ``what`` and why (half precision, integers and complex numbers
        are refused; see :func:`xpnet.backend.check_dtype`)."""
        return self.dtype(check_dtype("float32" if dtype is None else dtype, what))

    def dtype_name(self, dtype: Any) -> str:
        """``'float32'``, ``'float64'``, ``'int64'``, ... for a dtype of this namespace."""
        for name in ("float32", "float64", "float16", "int64", "int32", "int16", "int8",
                     "uint8", "bool"):
            if dtype == getattr(self.xp, name, None):
                return name
        return str(dtype)

    # -- moving arrays ----------------------------------------------------------------------

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` is an array of this backend's library (on any device)."""
        return isinstance(x, self._array_type)

    def asarray(self, x: Any, dtype: Any = None, *, copy: bool | None = None) -> Any:
        """Host data (NumPy array, list, scalar) or an array of any backend -> this device.

        Arrays already of this library, on this device and dtype, are returned as they are
        (no copy unless ``copy=True``).  ``dtype`` may be a string such as ``"float32"``.
        """
        dt = None if dtype is None else self.dtype(dtype)
        if self.is_array(x):
            reason = self.why_unusable(x)
            if reason is not None:
                raise ValueError(f"the array {reason}")
            xp = self.xp
            if dt is not None and x.dtype != dt:
                x = xp.astype(x, dt)
            dev = array_api_compat.device(x)
            if dev != self.device and str(dev) != str(self.device):
                x = self._to_this_device(x)
            return xp.asarray(x, copy=True) if copy else x
        return self._from_host(to_host(x), dt, copy)

    def labels(self, t: Any, float_dtype: Any) -> Any:
        """Class labels to this device: integers (any int type, lists) as int64, one-hot rows
        (floats) in ``float_dtype``."""
        if not self.is_array(t):
            t = to_host(t)
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
        if self.is_array(x):
            return self.array_to_numpy(x)
        return to_host(x)

    def to_float(self, x: Any) -> float:
        """A 0-d array (or number) -> Python float.  Synchronizes with the device."""
        if isinstance(x, (int, float)):
            return float(x)
        return float(self.to_numpy(x))

    def random(self, seed: int | None = None) -> Generator:
        """A seeded random generator that draws on this backend's device."""
        return self.generator_class(self, seed)


# --------------------------------------------------------------------------------------------
# The registry: one backend class per library
# --------------------------------------------------------------------------------------------

#: name -> backend class, in the order :func:`xpnet.available_backends` tries them
REGISTRY: dict[str, type[Backend]] = {}
#: every name users may type -> the canonical name
ALIASES: dict[str, str] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: make a room's backend known by its name and aliases."""
    REGISTRY[cls.name] = cls
    for alias in (cls.name, *cls.aliases):
        ALIASES[alias.lower()] = cls.name
    return cls


def library_of(x: Any) -> type[Backend] | None:
    """The backend class whose library ``x`` is an array of, or None."""
    for cls in REGISTRY.values():
        if cls.owns(x):
            return cls
    return None


def import_library(name: str, install_hint: str) -> ModuleType:
    """Import a backend's library or raise :class:`BackendUnavailableError` saying how to get
    it."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BackendUnavailableError(
            f"backend {name!r} needs the package {name!r}, which is not installed: "
            f"{install_hint}"
        ) from exc


def check_usable(x: Any, name: str = "the array") -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` is an array xpnet cannot use as data (a
    torch tensor that requires grad, or lives on the meta device)."""
    cls = library_of(x)
    if cls is not None:
        reason = cls.why_unusable(x)
        if reason is not None:
            raise ValueError(f"{name} {reason}")


def value_range(x: Any) -> tuple[Any, Any]:
    """``(min, max)`` of a non-empty array of any library (or host data), as NumPy scalars:
    one pass on the host, or one transfer of two numbers from a device (which waits for it)."""
    cls = library_of(x)
    if cls is None:
        x = to_host(x)
        return x.min(), x.max()
    return cls.value_range(x)


def to_host(x: Any) -> np.ndarray:
    """Anything array-like (an array of any registered library, a list, a number) to a NumPy
    array on the host."""
    if isinstance(x, np.ndarray):
        return x
    cls = library_of(x)
    if cls is not None:
        reason = cls.why_unusable(x)
        if reason is not None:
            raise ValueError(f"the array {reason}")
        return cls.array_to_numpy(x)
    if hasattr(x, "__dlpack__") and not isinstance(x, (list, tuple)):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError):
            pass
    return np.asarray(x)
