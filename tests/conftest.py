"""Shared test fixtures: one ``backend`` fixture over every array library xpnet supports.

Backends (fixture ids):

- ``numpy``
- ``array_api_strict`` -- the reference namespace on its default device
- ``array_api_strict-device1`` -- the same on a second, non-default device: an array created on the
  wrong device makes the next operation raise ("arrays from two different devices")
- ``array_api_strict-strictest`` -- default device, run under
  ``ArrayAPIStrictFlags(boolean_indexing=False, data_dependent_shapes=False)``
- ``torch`` -- PyTorch on the CPU
- ``cupy`` -- CuPy on the current CUDA device

A backend whose package or device is missing is *skipped* with the reason given by
:class:`xpnet.BackendUnavailableError`.  The environment variable ``XPNET_TEST_BACKENDS`` (a comma
list of fixture ids or base names, e.g. ``numpy,torch`` or ``array_api_strict``) selects a subset,
like SciPy's ``SCIPY_ARRAY_API`` machinery; a backend named there that cannot be used makes its
tests *fail*, so that a CI session for that backend cannot pass without touching it.

Helpers (import them with ``from conftest import ...``): data is built with NumPy from a seed,
moved with ``backend.asarray`` and compared with :func:`assert_close` after ``backend.to_numpy``;
:func:`assert_on_backend` checks that a result is an array of the requested namespace on the
requested device (not silently NumPy) and, optionally, of a given dtype.
"""

from __future__ import annotations

import os

# The tests use small shapes, where thread pools only cost: on a shared 2-core machine under
# load, OpenMP/BLAS workers spinning against other processes made single tests up to 50x slower
# (a 150-step torch training loop: 0.26 s with one thread, 12 s with the default pool).  Set
# before NumPy/torch are imported; an explicit setting in the environment wins.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
# The tests choose their backends explicitly; a default chosen in the shell that runs them must
# not leak into tests of the defaults (tests/test_defaults.py sets these itself).
for _var in ("XPNET_BACKEND", "XPNET_DEVICE", "XPNET_DTYPE"):
    os.environ.pop(_var, None)

import contextlib  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import array_api_compat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import xpnet  # noqa: E402
from xpnet.backend import kernels_for  # noqa: E402


@dataclass(frozen=True)
class BackendSpec:
    id: str
    name: str  # xpnet backend name
    device: Any = None  # passed to get_backend (a string for array_api_strict's Device)
    strictest: bool = False


BACKEND_SPECS = (
    BackendSpec("numpy", "numpy"),
    BackendSpec("array_api_strict", "array_api_strict"),
    BackendSpec("array_api_strict-device1", "array_api_strict", device="device1"),
    BackendSpec("array_api_strict-strictest", "array_api_strict", strictest=True),
    BackendSpec("torch", "torch"),
    BackendSpec("cupy", "cupy"),
)


def _requested() -> set[str] | None:
    """The fixture ids named in XPNET_TEST_BACKENDS, or None when it is unset/empty."""
    raw = os.environ.get("XPNET_TEST_BACKENDS", "").strip()
    if not raw:
        return None
    names = {n.strip() for n in raw.split(",") if n.strip()}
    known = {s.id for s in BACKEND_SPECS} | {s.name for s in BACKEND_SPECS}
    unknown = names - known
    if unknown:
        raise pytest.UsageError(
            f"XPNET_TEST_BACKENDS names unknown backends {sorted(unknown)}; "
            f"known: {sorted(known)}"
        )
    return {s.id for s in BACKEND_SPECS if s.id in names or s.name in names}


REQUESTED = _requested()
SELECTED_SPECS = tuple(s for s in BACKEND_SPECS if REQUESTED is None or s.id in REQUESTED)


def make_backend(spec: BackendSpec) -> xpnet.Backend:
    """Build the backend of ``spec``; skip (or fail, when explicitly requested) if unusable."""
    try:
        return xpnet.get_backend(spec.name, device=spec.device)
    except xpnet.BackendUnavailableError as exc:
        if REQUESTED is not None:
            pytest.fail(
                f"backend {spec.id!r} was requested in XPNET_TEST_BACKENDS but is unusable: {exc}",
                pytrace=False,
            )
        pytest.skip(f"backend {spec.id!r} unavailable: {exc}")


@pytest.fixture(params=SELECTED_SPECS, ids=lambda s: s.id)
def backend(request):
    """An :class:`xpnet.Backend` for each selected array library / device.

    A test may choose the specs itself with ``@pytest.mark.parametrize("backend", specs,
    indirect=True)`` (see :func:`fused_paths` and :func:`kernel_specs`).
    """
    spec: BackendSpec = request.param
    be = make_backend(spec)
    if spec.strictest:
        import array_api_strict

        ctx = array_api_strict.ArrayAPIStrictFlags(
            boolean_indexing=False, data_dependent_shapes=False
        )
    else:
        ctx = contextlib.nullcontext()
    with ctx:
        yield be


#: The :class:`xpnet.backend.Kernels` slot each optimizer's fused path calls (None: it has
#: none, so ``fused=True`` runs the portable code).  ``test_oracles`` pins this table.
OPTIMIZER_KERNEL_SLOTS: dict[str, str | None] = {
    "SGD": None,
    "Momentum": "momentum",
    "Nesterov": None,
    "AdaGrad": "adagrad",
    "RMSprop": "rmsprop",
    "Adam": "adam",
    "AdamW": "adam",
}


def has_kernel(spec: BackendSpec | str, *slots: str | None) -> bool:
    """Whether the backend of ``spec`` (or of a backend name) has a fused kernel in any of
    ``slots`` (then its fast path runs code other than the portable one)."""
    kernels = kernels_for(spec if isinstance(spec, str) else spec.name)
    return any(s is not None and getattr(kernels, s, None) is not None for s in slots)


def fused_paths(items, slots_of, id_of=str) -> list:
    """``pytest.param(spec, item, fused)`` for every selected backend and item: the portable
    path (``fused=False``) always, the fused path only where the backend has a kernel for it
    (elsewhere ``fused=True`` would run the portable code again).  Use with
    ``@pytest.mark.parametrize("backend, <item>, fused", ..., indirect=["backend"])``."""
    params = []
    for spec in SELECTED_SPECS:
        for item in items:
            params.append(pytest.param(spec, item, False, id=f"{spec.id}-{id_of(item)}-portable"))
            if has_kernel(spec, *slots_of(item)):
                params.append(pytest.param(spec, item, True, id=f"{spec.id}-{id_of(item)}-fused"))
    return params


def kernel_specs(items, slots_of, id_of=str) -> list:
    """``pytest.param(spec, item)`` only where ``spec``'s backend has a fused kernel for a slot
    of ``item``: the cases where "fused vs portable" compares two different codes.  Use with
    ``@pytest.mark.parametrize("backend, <item>", ..., indirect=["backend"])``."""
    return [pytest.param(spec, item, id=f"{spec.id}-{id_of(item)}")
            for spec in SELECTED_SPECS for item in items if has_kernel(spec, *slots_of(item))]


@pytest.fixture
def rng():
    """A seeded NumPy generator for building test data on the host."""
    return np.random.default_rng(20260601)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


#: every way an array_api_strict array reaches the host (a device-to-host copy on a GPU)
HOST_READS = ("__float__", "__int__", "__bool__", "__index__", "__dlpack__", "__array__",
              "tolist", "item")


@contextlib.contextmanager
def counting_host_reads():
    """Count the host reads of array_api_strict arrays inside the block: yields the list that
    each read appends its method's name to (the methods are restored on exit)."""
    strict = pytest.importorskip("array_api_strict")
    array_cls = type(strict.asarray(0.0))
    calls: list[str] = []
    missing = object()
    saved = {}
    for name in HOST_READS:
        original = getattr(array_cls, name, None)
        if original is None:
            continue
        saved[name] = array_cls.__dict__.get(name, missing)

        def counting(self, *args, _original=original, _name=name, **kwargs):
            calls.append(_name)
            return _original(self, *args, **kwargs)

        setattr(array_cls, name, counting)
    try:
        yield calls
    finally:
        for name, before in saved.items():
            if before is missing:
                delattr(array_cls, name)
            else:
                setattr(array_cls, name, before)


def dtype_name(be: xpnet.Backend, dtype: Any) -> str:
    """'float32' / 'float64' / 'int64' ... for a dtype of ``be``'s namespace."""
    for name in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "bool"):
        if hasattr(be.xp, name) and dtype == getattr(be.xp, name):
            return name
    return str(dtype)


_TOL = {
    "float16": (1e-3, 1e-3),
    "float32": (2e-5, 1e-6),
    "float64": (1e-10, 1e-12),
}


def tolerances(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for results computed in ``dtype`` (a name or NumPy dtype)."""
    name = np.dtype(dtype).name if not isinstance(dtype, str) else dtype
    return _TOL.get(name, (0.0, 0.0))


def to_numpy(be: xpnet.Backend, x: Any) -> np.ndarray:
    """``be.to_numpy``, also accepting Python numbers."""
    if isinstance(x, (int, float)):
        return np.asarray(x)
    return np.asarray(be.to_numpy(x))


def assert_close(be, actual, expected, *, dtype=None, rtol=None, atol=None, err_msg=""):
    """Compare a backend result with a NumPy reference, with tolerances for ``dtype``.

    ``dtype`` defaults to the host dtype of ``actual``.
    """
    got = to_numpy(be, actual)
    if dtype is None:
        dtype = got.dtype if got.dtype.kind == "f" else np.float64
    r, a = tolerances(dtype)
    np.testing.assert_allclose(
        got,
        np.asarray(expected),
        rtol=r if rtol is None else rtol,
        atol=a if atol is None else atol,
        err_msg=err_msg,
    )


def assert_on_backend(be: xpnet.Backend, x: Any, dtype: Any = None, shape=None) -> None:
    """``x`` is an array of ``be``'s library on ``be``'s device (and of ``dtype``/``shape``)."""
    assert be.is_array(x), f"expected a {be.name} array, got {type(x)}"
    if be.name == "numpy":
        # NumPy reductions give NumPy scalars (0-d), which is NumPy's own convention
        assert isinstance(x, np.ndarray) or (isinstance(x, np.generic) and x.ndim == 0), (
            f"expected numpy.ndarray, got {type(x)}"
        )
    elif be.name == "array_api_strict":
        import array_api_strict

        assert array_api_compat.array_namespace(x) is array_api_strict
    elif be.name == "torch":
        assert array_api_compat.is_torch_array(x)
    elif be.name == "cupy":
        assert array_api_compat.is_cupy_array(x)
    dev = array_api_compat.device(x)
    assert str(dev) == str(be.device), f"array on device {dev!r}, expected {be.device!r}"
    if dtype is not None:
        want = be.dtype(dtype) if isinstance(dtype, str) else dtype
        assert x.dtype == want, f"dtype {x.dtype}, expected {want}"
    if shape is not None:
        assert tuple(x.shape) == tuple(shape), f"shape {tuple(x.shape)}, expected {shape}"


def numerical_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of the scalar function ``f(x_host)`` at ``x`` (float64)."""
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.zeros_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = f(x.copy())
        flat[i] = old - h
        fm = f(x.copy())
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad
