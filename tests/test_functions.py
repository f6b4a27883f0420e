"""xpnet.functions against plain NumPy formulas and torch.nn.functional."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conftest import assert_close, assert_on_backend
from xpnet import functions as F

DTYPES = ["float32", "float64"]


def _data(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "name, ref",
    [
        ("sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x))),
        ("relu", lambda x: np.maximum(x, 0.0)),
        ("tanh", np.tanh),
        ("step_function", lambda x: (x > 0).astype(np.float64)),
    ],
)
def test_elementwise_against_numpy(backend, rng, dtype, name, ref):
    host = _data(rng, (4, 7), dtype)
    host[0, :3] = [0.0, -0.0, 1e-30]  # the edges of step/relu
    y = getattr(F, name)(backend.asarray(host))
    assert_on_backend(backend, y, dtype=dtype, shape=host.shape)
    assert_close(backend, y, ref(host.astype(np.float64)), dtype=dtype, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_softmax_do_not_overflow(backend, dtype):
    host = np.array([[-1000.0, -100.0, -30.0, 0.0, 30.0, 100.0, 1000.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a NumPy overflow RuntimeWarning fails the test
        s = F.sigmoid(backend.asarray(host))
        p = F.softmax(backend.asarray(host))
        p_big = F.softmax(backend.asarray(np.array([[1000.0, 1001.0]], dtype=dtype)))
    s_h, p_h, pb = (backend.to_numpy(a) for a in (s, p, p_big))
    assert np.all(np.isfinite(s_h)) and np.all(np.isfinite(p_h)) and np.all(np.isfinite(pb))
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-host.astype(np.float64)))
    np.testing.assert_allclose(s_h, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p_h.sum(), 1.0, rtol=1e-6)
    assert p_h[0, -1] == pytest.approx(1.0)
    e = np.exp(np.array([-1.0, 0.0]))
    np.testing.assert_allclose(pb[0], e / e.sum(), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_against_torch(backend, rng, dtype):
    torch = pytest.importorskip("torch")
    host = _data(rng, (5, 6), dtype)
    y = F.softmax(backend.asarray(host))
    assert_on_backend(backend, y, dtype=dtype, shape=(5, 6))
    ref = torch.nn.functional.softmax(torch.from_numpy(host.astype(np.float64)), dim=-1)
    assert_close(backend, y, ref.numpy(), dtype=dtype)


def test_softmax_is_over_the_last_axis_and_single_sample(backend, rng):
    host = rng.standard_normal(6)
    y = F.softmax(backend.asarray(host))
    assert_on_backend(backend, y, shape=(6,))
    e = np.exp(host - host.max())
    assert_close(backend, y, e / e.sum())


def _probs(rng, n, c, dtype):
    z = rng.standard_normal((n, c))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return p.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_error_int_and_one_hot_labels(backend, rng, dtype):
    torch = pytest.importorskip("torch")
    n, c = 6, 4
    p = _probs(rng, n, c, dtype)
    t = rng.integers(0, c, n)
    t_hot = np.eye(c, dtype=dtype)[t]
    # the book: -sum(log(y[arange, t] + 1e-7)) / N  == torch nll_loss of log(p + 1e-7)
    ref = torch.nn.functional.nll_loss(torch.log(torch.from_numpy(p.astype(np.float64)) + 1e-7),
                                       torch.from_numpy(t)).item()
    np_ref = -np.mean(np.log(p.astype(np.float64)[np.arange(n), t] + 1e-7))
    assert ref == pytest.approx(np_ref, rel=1e-12)
    for labels in (backend.asarray(t), backend.asarray(t_hot)):
        e = F.cross_entropy_error(backend.asarray(p), labels)
        assert_on_backend(backend, e, shape=())
        assert_close(backend, e, ref, dtype=dtype)


def test_cross_entropy_error_single_sample(backend, rng):
    p = _probs(rng, 1, 5, "float64")[0]
    for t in (backend.asarray(np.array(3)), backend.asarray(np.eye(5)[3])):
        e = F.cross_entropy_error(backend.asarray(p), t)
        assert_close(backend, e, -np.log(p[3] + 1e-7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_squared_error_is_the_books_half_sum(backend, rng, dtype):
    y = _probs(rng, 3, 10, dtype)
    t = np.eye(10, dtype=dtype)[[2, 7, 0]]
    e = F.mean_squared_error(backend.asarray(y), backend.asarray(t))
    assert_on_backend(backend, e, shape=())
    assert_close(backend, e, 0.5 * np.sum((y.astype(np.float64) - t) ** 2), dtype=dtype)


def test_one_hot(backend):
    t = np.array([0, 3, 1, 3], dtype=np.int64)
    h = F.one_hot(backend.asarray(t), 5)
    assert_on_backend(backend, h, shape=(4, 5))
    np.testing.assert_array_equal(backend.to_numpy(h), np.eye(5)[t])
    h64 = F.one_hot(backend.asarray(t), 5, dtype=backend.dtype("float64"))
    assert_on_backend(backend, h64, dtype="float64")


def test_explicit_namespace_argument(backend, rng):
    host = rng.standard_normal((2, 3))
    x = backend.asarray(host)
    assert_close(backend, F.relu(x, xp=backend.xp), np.maximum(host, 0))
    assert_close(backend, F.softmax(x, xp=backend.xp),
                 np.exp(host) / np.exp(host).sum(axis=1, keepdims=True))


def test_functions_do_not_modify_input(backend, rng):
    host = rng.standard_normal((3, 4))
    x = backend.asarray(host)
    for f in (F.sigmoid, F.relu, F.tanh, F.softmax, F.step_function):
        f(x)
    np.testing.assert_array_equal(backend.to_numpy(x), host)


def test_device_code_does_not_import_numpy():
    """DESIGN: layers, functions and optimizers take ``xp`` from their arrays; importing NumPy
    there is how host work sneaks into the device path (array_api_strict catches most uses at
    run time; this catches the import itself)."""
    import ast
    import pathlib

    import xpnet

    root = pathlib.Path(xpnet.__file__).parent
    files = [root / "functions.py", root / "optim.py", *sorted((root / "layers").glob("*.py"))]
    offenders = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n == "numpy" or n.startswith("numpy.")]
    assert not offenders, offenders
