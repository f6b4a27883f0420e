"""xpnet.backend: resolving names, error messages, host<->device copies, the device generator."""

from __future__ import annotations

import importlib
import sys
import types

import numpy as np
import pytest

import xpnet
from conftest import assert_close, assert_on_backend, dtype_name
from xpnet import backend as backend_mod

# ------------------------------------------------------------------------------------------
# resolving a backend
# ------------------------------------------------------------------------------------------


def test_unknown_name_raises_value_error_listing_valid_names():
    with pytest.raises(ValueError) as info:
        xpnet.get_backend("tensorflow-ish")
    msg = str(info.value)
    assert "tensorflow-ish" in msg
    for name in ("numpy", "cupy", "torch", "array_api_strict"):
        assert name in msg, f"{name!r} missing from: {msg}"


def test_names_are_case_insensitive_and_backend_passes_through():
    be = xpnet.get_backend("NumPy")
    assert be.name == "numpy"
    assert xpnet.get_backend(be) is be


def test_get_backend_accepts_namespace_modules():
    import array_api_compat.numpy as compat_np

    assert xpnet.get_backend(np).name == "numpy"
    assert xpnet.get_backend(compat_np).name == "numpy"


def test_get_backend_accepts_the_strict_namespace_module():
    strict = pytest.importorskip("array_api_strict")
    assert xpnet.get_backend(strict).name == "array_api_strict"


def test_available_backends_lists_what_imports_here():
    names = xpnet.available_backends()
    assert "numpy" in names
    for mod, name in (("torch", "torch"), ("array_api_strict", "array_api_strict")):
        if importlib.util.find_spec(mod) is not None:
            assert name in names
    assert set(names) <= {"numpy", "cupy", "torch", "array_api_strict"}


def _hide_cupy(monkeypatch):
    """Make ``import cupy`` fail as if CuPy were not installed."""
    monkeypatch.setitem(sys.modules, "cupy", None)  # None in sys.modules -> ImportError


def _fake_cupy(monkeypatch, get_device_count):
    """Install a fake ``cupy`` whose CUDA runtime reports/raises via ``get_device_count``."""
    cupy = types.ModuleType("cupy")
    cuda = types.ModuleType("cupy.cuda")
    runtime = types.ModuleType("cupy.cuda.runtime")

    class CUDARuntimeError(RuntimeError):
        pass

    runtime.CUDARuntimeError = CUDARuntimeError
    runtime.getDeviceCount = lambda: get_device_count(CUDARuntimeError)
    cuda.runtime = runtime
    cuda.is_available = lambda: False
    cupy.cuda = cuda
    cupy.ndarray = type("ndarray", (), {})
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.runtime", runtime)


def test_cupy_not_installed_says_so(monkeypatch):
    _hide_cupy(monkeypatch)
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        xpnet.get_backend("cupy")
    msg = str(info.value).lower()
    assert "not installed" in msg
    assert "pip install" in msg  # how to fix it
    assert "cuda device" not in msg  # ... and it does not blame the GPU
    assert "cupy" not in xpnet.available_backends()


def _raise_no_driver(err):
    raise err("cudaErrorNoDevice: no CUDA-capable device is detected")


@pytest.mark.parametrize(
    "count", [_raise_no_driver, lambda err: 0], ids=["runtime-error", "zero-devices"]
)
def test_cupy_without_gpu_says_no_device(monkeypatch, count):
    _fake_cupy(monkeypatch, count)
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        xpnet.get_backend("cupy")
    msg = str(info.value).lower()
    assert "cuda device" in msg or "gpu" in msg
    assert "not installed" not in msg  # it is installed; the device is what is missing
    assert "cupy" not in xpnet.available_backends()


def test_real_cupy_is_usable_or_raises_backend_unavailable():
    try:
        be = xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError as exc:
        found = importlib.util.find_spec("cupy") is not None
        assert ("not installed" in str(exc).lower()) != found, str(exc)
    else:
        assert be.name == "cupy"


def test_strict_unknown_device_is_value_error():
    pytest.importorskip("array_api_strict")
    with pytest.raises(ValueError):
        xpnet.get_backend("array_api_strict", device="no_such_device")


def test_numpy_rejects_gpu_device():
    with pytest.raises(ValueError):
        xpnet.get_backend("numpy", device="cuda:0")


def test_error_class_is_exported():
    assert xpnet.BackendUnavailableError is backend_mod.BackendUnavailableError
    assert issubclass(xpnet.BackendUnavailableError, Exception)


# ------------------------------------------------------------------------------------------
# per backend: copies, dtypes, devices
# ------------------------------------------------------------------------------------------


def test_fixture_backend_device(backend, request):
    """The device1 variant really is on the non-default device, and the strictest variant runs
    under the strictest flags (guards the fixture itself)."""
    if "device1" in request.node.callspec.id:
        assert str(backend.device) == str(backend.module.Device("device1"))
        default = xpnet.get_backend("array_api_strict")
        assert str(default.device) != str(backend.device)
    if "strictest" in request.node.callspec.id:
        flags = backend.module.get_array_api_strict_flags()
        assert flags["boolean_indexing"] is False
        assert flags["data_dependent_shapes"] is False


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_asarray_round_trip_float(backend, rng, dtype):
    host = rng.standard_normal((3, 4)).astype(dtype)
    x = backend.asarray(host)
    assert_on_backend(backend, x, dtype=dtype, shape=(3, 4))
    back = backend.to_numpy(x)
    assert isinstance(back, np.ndarray)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, host)


def test_asarray_casts_and_accepts_lists(backend):
    x = backend.asarray([[1, 2], [3, 4]], dtype="float32")
    assert_on_backend(backend, x, dtype="float32", shape=(2, 2))
    y = backend.asarray(np.arange(6, dtype=np.float64).reshape(2, 3), dtype="float32")
    assert_on_backend(backend, y, dtype="float32")
    assert_close(backend, y, np.arange(6).reshape(2, 3))
    labels = backend.asarray(np.array([0, 2, 1], dtype=np.int64))
    assert_on_backend(backend, labels)
    assert dtype_name(backend, labels.dtype) == "int64"
    np.testing.assert_array_equal(backend.to_numpy(labels), [0, 2, 1])


def test_asarray_of_own_array_stays(backend, rng):
    x = backend.asarray(rng.standard_normal(5))
    y = backend.asarray(x)
    assert_on_backend(backend, y)
    np.testing.assert_array_equal(backend.to_numpy(y), backend.to_numpy(x))


def test_arrays_work_together_on_the_device(backend, rng):
    """Arithmetic between two arrays made by asarray works (same device)."""
    a = backend.asarray(rng.standard_normal((2, 3)))
    b = backend.asarray(rng.standard_normal((3, 2)))
    c = a @ b + backend.xp.ones((2, 2), dtype=a.dtype, device=backend.device)
    assert_on_backend(backend, c, shape=(2, 2))
    assert_close(backend, c, backend.to_numpy(a) @ backend.to_numpy(b) + 1.0)


def test_to_float_and_synchronize(backend):
    x = backend.asarray(np.array(2.5))
    assert backend.to_float(x) == 2.5
    assert type(backend.to_float(x)) is float
    backend.synchronize()  # a no-op on CPU backends; must not raise


# ------------------------------------------------------------------------------------------
# the device random generator
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_generator_same_seed_same_numbers(backend, dtype):
    a = backend.random(123).normal((200,), dtype=dtype)
    b = backend.random(123).normal((200,), dtype=dtype)
    c = backend.random(124).normal((200,), dtype=dtype)
    assert_on_backend(backend, a, dtype=dtype, shape=(200,))
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(b))
    assert not np.array_equal(backend.to_numpy(a), backend.to_numpy(c))
    u1 = backend.random(5).uniform((50,), dtype=dtype)
    u2 = backend.random(5).uniform((50,), dtype=dtype)
    assert_on_backend(backend, u1, dtype=dtype)
    np.testing.assert_array_equal(backend.to_numpy(u1), backend.to_numpy(u2))


def test_generator_successive_draws_differ(backend):
    g = backend.random(0)
    a = backend.to_numpy(g.uniform((100,)))
    b = backend.to_numpy(g.uniform((100,)))
    assert not np.array_equal(a, b)


def test_generator_distributions(backend):
    g = backend.random(7)
    n = backend.to_numpy(g.normal((100_000,), dtype="float64"))
    assert abs(n.mean()) < 0.02
    assert abs(n.std() - 1.0) < 0.02
    u = backend.to_numpy(g.uniform((100_000,), dtype="float64"))
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01


@pytest.mark.parametrize("keep", [0.2, 0.7])
def test_bernoulli_mask_mean_is_keep(backend, keep):
    m = backend.random(3).bernoulli_mask((200, 500), keep, dtype="float32")
    assert_on_backend(backend, m, dtype="float32", shape=(200, 500))
    host = backend.to_numpy(m)
    assert set(np.unique(host).tolist()) <= {0.0, 1.0}
    assert abs(host.mean() - keep) < 0.01  # 100,000 draws: sd ~ 0.0015


def test_generator_integers(backend):
    idx = backend.random(1).integers(10, 1000)
    assert_on_backend(backend, idx, shape=(1000,))
    host = backend.to_numpy(idx)
    assert host.min() >= 0 and host.max() < 10
    assert len(np.unique(host)) == 10


@pytest.mark.parametrize(
    "value", [2.5, np.float64(2.5), np.array(2.5)], ids=["py", "np-scalar", "0d"]
)
def test_asarray_keeps_zero_dimensional_shape(backend, value):
    x = backend.asarray(value)
    assert_on_backend(backend, x, shape=())
    assert float(backend.to_numpy(x)) == 2.5


def test_torch_cuda_without_gpu_is_unavailable():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(xpnet.BackendUnavailableError) as info:
        xpnet.get_backend("torch", device="cuda")
    assert "cuda" in str(info.value).lower()


# ------------------------------------------------------------------------------------------
# the test matrix itself: XPNET_TEST_BACKENDS selects, and fails on unusable requests
# ------------------------------------------------------------------------------------------


def _run_pytest_with(backends: str, *extra: str):
    import os
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, XPNET_TEST_BACKENDS=backends)
    test = os.path.join(here, "test_backend.py") + "::test_asarray_of_own_array_stays"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", test, *extra],
        env=env, capture_output=True, text=True, timeout=300, cwd=here,
    )


def test_selected_backends_only():
    proc = _run_pytest_with("numpy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[numpy]" in proc.stdout
    assert "[torch]" not in proc.stdout and "[array_api_strict" not in proc.stdout


def test_requested_but_unusable_backend_fails_not_skips():
    try:
        xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError:
        pass
    else:
        pytest.skip("CuPy is usable here")
    proc = _run_pytest_with("cupy")
    assert proc.returncode != 0, proc.stdout
    assert "requested" in proc.stdout and "skipped" not in proc.stdout.lower()
