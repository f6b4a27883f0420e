"""cs231n lecture 7's activations (issue 10): LeakyRelu, Elu, PRelu, Maxout, on every backend.

Oracles: float64 numerical gradients, ``torch.nn.functional`` with autograd where torch is
installed, and the NumPy transcriptions of the formulas in ``oracles.py`` (compared with every
layer in ``test_oracles.py``; used here for the edge cases).
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
from conftest import assert_on_backend
from test_layers import check_layer_gradients
from xpnet.layers import Elu, LeakyRelu, Maxout, PRelu


def _away_from_zero(rng, shape, dtype="float64"):
    """Normal values with none within 1e-3 of 0 (the kink), so central differences are exact."""
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5
    return x.astype(dtype)


def leaky_ref(x, alpha, dout):
    return O.leaky_relu_forward(x, alpha), O.leaky_relu_backward(x, dout, alpha)


def elu_ref(x, alpha, dout):
    return O.elu_forward(x, alpha), O.elu_backward(x, dout, alpha)


# ------------------------------------------------------------------------------------------
# LeakyRelu and Elu
# ------------------------------------------------------------------------------------------

ELEMENTWISE = [
    ("LeakyRelu", lambda a: LeakyRelu(a), leaky_ref, [0.01, 0.2, 0.0, 1.0]),
    ("Elu", lambda a: Elu(a), elu_ref, [1.0, 0.3, 0.0, 2.5]),
]


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 4, 5)], ids=["2d", "4d"])
@pytest.mark.parametrize("name, make, ref, alphas", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_edges_against_numpy(backend, rng, name, make, ref, alphas, shape):
    """Every alpha (0 and 1 too), x == 0 and tiny values (the negative side's gradient), and
    +-800 without an overflow."""
    for alpha in alphas:
        x = 3.0 * rng.standard_normal(shape)
        x.flat[:4] = [0.0, -0.0, 1e-300, -1e-300]  # the kink: x == 0 takes the negative side
        x.flat[4:6] = [800.0, -800.0]  # no overflow in exp
        dout = rng.standard_normal(shape)
        layer = make(alpha)
        x_be, dout_be = backend.asarray(x), backend.asarray(dout)
        with np.errstate(over="raise", invalid="raise"):  # a NumPy overflow fails the test
            out = layer.forward(x_be)
            dx = layer.backward(dout_be)
        ref_out, ref_dx = ref(x, alpha, dout)
        assert_on_backend(backend, out, dtype="float64", shape=shape)
        assert_on_backend(backend, dx, dtype="float64", shape=shape)
        np.testing.assert_allclose(backend.to_numpy(out), ref_out, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(backend.to_numpy(dx), ref_dx, rtol=1e-14, atol=1e-300)
        np.testing.assert_array_equal(backend.to_numpy(x_be), x)
        np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)


@pytest.mark.parametrize("name, make, ref, alphas", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_numerical_gradients(backend, rng, name, make, ref, alphas):
    x = _away_from_zero(rng, (3, 2, 2, 3))
    check_layer_gradients(backend, make(alphas[1]), x, rng.standard_normal(x.shape))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ["LeakyRelu", "Elu"])
def test_elementwise_against_torch(backend, rng, name, dtype):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    for shape, alpha in (((6, 5), 0.05), ((2, 3, 4, 4), 0.7)):
        x = (3.0 * rng.standard_normal(shape)).astype(dtype)
        x.flat[0] = 0.0
        dout = rng.standard_normal(shape).astype(dtype)
        layer = LeakyRelu(alpha) if name == "LeakyRelu" else Elu(alpha)
        out = layer.forward(backend.asarray(x))
        dx = layer.backward(backend.asarray(dout))
        assert_on_backend(backend, out, dtype=dtype, shape=shape)
        assert_on_backend(backend, dx, dtype=dtype, shape=shape)
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        ot = (tF.leaky_relu(xt, negative_slope=alpha) if name == "LeakyRelu"
              else tF.elu(xt, alpha=alpha))
        ot.backward(torch.tensor(dout, dtype=torch.float64))
        tol = dict(rtol=1e-13, atol=1e-15) if dtype == "float64" else dict(rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(out), ot.detach().numpy(), **tol)
        np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), **tol)


@pytest.mark.parametrize("cls", [LeakyRelu, Elu])
def test_elementwise_bad_alpha(cls):
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"{cls.__name__}: alpha"):
            cls(bad)
    with pytest.raises(TypeError, match="alpha must be a real number"):
        cls("0.1x")


@pytest.mark.parametrize("cls", [LeakyRelu, Elu])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_keep_dtype_and_follow_the_input(backend, rng, cls, dtype):
    x_h = rng.standard_normal((3, 4)).astype(dtype)
    for layer in (cls(), cls(backend=backend)):
        out = layer.forward(backend.asarray(x_h))
        assert_on_backend(backend, out, dtype=dtype, shape=(3, 4))
        dx = layer.backward(backend.asarray(np.ones((3, 4), dtype=dtype)))
        assert_on_backend(backend, dx, dtype=dtype, shape=(3, 4))


# ------------------------------------------------------------------------------------------
# PRelu
# ------------------------------------------------------------------------------------------

PRELU_CASES = [((6, 5), 5), ((3, 4, 3, 2), 4), ((4, 3), 1), ((2, 3, 5), 3)]
PRELU_IDS = ["2d", "4d-per-channel", "shared", "3d"]


@pytest.mark.parametrize("shape, d", PRELU_CASES, ids=PRELU_IDS)
def test_prelu_by_reference_and_shapes(backend, rng, shape, d):
    x = 2.0 * rng.standard_normal(shape)
    x.flat[0] = 0.0
    alpha = 0.25 + 0.3 * rng.standard_normal(d)  # negative slopes too: they are learned
    dout = rng.standard_normal(shape)
    alpha_be = backend.asarray(alpha)
    layer = PRelu(alpha_be)
    assert layer.alpha is alpha_be
    x_be, dout_be = backend.asarray(x), backend.asarray(dout)
    out = layer.forward(x_be)
    dx = layer.backward(dout_be)
    ref_out = O.prelu_forward(x, alpha)
    ref_dx, ref_da = O.prelu_backward(x, alpha, dout)
    assert_on_backend(backend, out, dtype="float64", shape=shape)
    assert_on_backend(backend, dx, dtype="float64", shape=shape)
    assert_on_backend(backend, layer.dalpha, dtype="float64", shape=(d,))
    np.testing.assert_allclose(backend.to_numpy(out), ref_out, rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(dx), ref_dx, rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(layer.dalpha), ref_da, rtol=1e-12)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)


@pytest.mark.parametrize("shape, d", PRELU_CASES, ids=PRELU_IDS)
def test_prelu_numerical_gradients(backend, rng, shape, d):
    x = _away_from_zero(rng, shape)
    layer = PRelu(backend.asarray(0.25 + 0.1 * rng.standard_normal(d)))
    check_layer_gradients(backend, layer, x, rng.standard_normal(shape),
                          params=[("alpha", "dalpha")])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape, d", PRELU_CASES, ids=PRELU_IDS)
def test_prelu_against_torch(backend, rng, shape, d, dtype):
    torch = pytest.importorskip("torch")
    x = (2.0 * rng.standard_normal(shape)).astype(dtype)
    x.flat[0] = 0.0
    alpha = np.full(d, 0.25, dtype=dtype) + (0.1 * rng.standard_normal(d)).astype(dtype)
    dout = rng.standard_normal(shape).astype(dtype)
    layer = PRelu(backend.asarray(alpha))
    out = layer.forward(backend.asarray(x))
    dx = layer.backward(backend.asarray(dout))
    for a, s in ((out, shape), (dx, shape), (layer.dalpha, (d,))):
        assert_on_backend(backend, a, dtype=dtype, shape=s)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    at = torch.tensor(alpha, dtype=torch.float64, requires_grad=True)
    ot = torch.nn.functional.prelu(xt, at)
    ot.backward(torch.tensor(dout, dtype=torch.float64))
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(out), ot.detach().numpy(), **tol)
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(backend.to_numpy(layer.dalpha), at.grad.numpy(), **tol)


def test_prelu_bad_arguments(backend):
    with pytest.raises(ValueError, match=r"alpha must be an array of shape \(D,\)"):
        PRelu(backend.asarray(np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"alpha must be an array of shape \(D,\)"):
        PRelu(0.25)
    layer = PRelu(backend.asarray(np.full(4, 0.25)))
    with pytest.raises(ValueError, match=r"PRelu expects input of shape \(N, 4, \.\.\.\)"):
        layer.forward(backend.asarray(np.ones((3, 5))))
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        layer.forward(backend.asarray(np.ones(4)))
    assert layer.x is None


def test_prelu_writes_dalpha_out(backend, rng):
    layer = PRelu(backend.asarray(np.full(3, 0.25)))
    buf = backend.asarray(np.zeros(3))
    layer.dalpha_out = buf
    x = rng.standard_normal((4, 3))
    dout = rng.standard_normal((4, 3))
    layer.forward(backend.asarray(x))
    layer.backward(backend.asarray(dout))
    assert layer.dalpha is buf
    np.testing.assert_allclose(backend.to_numpy(buf),
                               O.prelu_backward(x, np.full(3, 0.25), dout)[1])


# ------------------------------------------------------------------------------------------
# Maxout
# ------------------------------------------------------------------------------------------

MAXOUT_CASES = [((5, 4), 3, 2), ((4, 6), 2, 3), ((3, 5), 4, 1), ((2, 2, 2, 2), 3, 2)]
MAXOUT_IDS = ["2in4-3x2", "6-2x3", "pieces1", "4d-input"]


def _maxout_data(rng, x_shape, d_out, pieces, dtype="float64"):
    d_in = int(np.prod(x_shape[1:]))
    x = rng.standard_normal(x_shape).astype(dtype)
    W = rng.standard_normal((d_in, d_out * pieces)).astype(dtype)
    b = rng.standard_normal(d_out * pieces).astype(dtype)
    dout = rng.standard_normal((x_shape[0], d_out)).astype(dtype)
    return x, W, b, dout


@pytest.mark.parametrize("x_shape, d_out, pieces", MAXOUT_CASES, ids=MAXOUT_IDS)
def test_maxout_by_reference_and_shapes(backend, rng, x_shape, d_out, pieces):
    x, W, b, dout = _maxout_data(rng, x_shape, d_out, pieces)
    W_be, b_be = backend.asarray(W), backend.asarray(b)
    layer = Maxout(W_be, b_be, pieces=pieces)
    assert layer.W is W_be and layer.b is b_be
    x_be, dout_be = backend.asarray(x), backend.asarray(dout)
    out = layer.forward(x_be)
    dx = layer.backward(dout_be)
    ref = (O.maxout_forward(x, W, b, pieces), *O.maxout_backward(x, W, b, dout, pieces))
    for name, got, r in zip(("out", "dx", "dW", "db"), (out, dx, layer.dW, layer.db), ref,
                              strict=True):
        assert_on_backend(backend, got, dtype="float64", shape=r.shape)
        np.testing.assert_allclose(backend.to_numpy(got), r, rtol=1e-12, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)


@pytest.mark.parametrize("x_shape, d_out, pieces", MAXOUT_CASES, ids=MAXOUT_IDS)
def test_maxout_numerical_gradients(backend, rng, x_shape, d_out, pieces):
    x, W, b, dout = _maxout_data(rng, x_shape, d_out, pieces)
    layer = Maxout(backend.asarray(W), backend.asarray(b), pieces=pieces)
    check_layer_gradients(backend, layer, x, dout, params=[("W", "dW"), ("b", "db")])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_maxout_against_torch(backend, rng, dtype):
    torch = pytest.importorskip("torch")
    for x_shape, d_out, pieces in MAXOUT_CASES:
        x, W, b, dout = _maxout_data(rng, x_shape, d_out, pieces, dtype)
        layer = Maxout(backend.asarray(W), backend.asarray(b), pieces=pieces)
        out = layer.forward(backend.asarray(x))
        dx = layer.backward(backend.asarray(dout))
        ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, W, b)]
        z = ts[0].reshape(x_shape[0], -1) @ ts[1] + ts[2]
        ot = z.view(x_shape[0], d_out, pieces).max(dim=-1).values
        ot.backward(torch.tensor(dout, dtype=torch.float64))
        tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(backend.to_numpy(out), ot.detach().numpy(), **tol)
        for got, t in zip((dx, layer.dW, layer.db), ts, strict=True):
            assert_on_backend(backend, got, dtype=dtype, shape=tuple(t.shape))
            np.testing.assert_allclose(backend.to_numpy(got), t.grad.numpy(), **tol)


def test_maxout_column_ownership_and_ties(backend):
    """Column k of W belongs to unit k // pieces; equal pieces send the gradient to the first."""
    # one input feature; 2 units x 3 pieces; z = x * [1, 2, 3, -1, -1, 0]
    W = np.array([[1.0, 2.0, 3.0, -1.0, -1.0, 0.0]])
    layer = Maxout(backend.asarray(W), backend.asarray(np.zeros(6)), pieces=3)
    out = layer.forward(backend.asarray(np.array([[1.0], [-1.0]])))
    # x = 1: unit 0 = max(1, 2, 3) = 3 (column 2), unit 1 = max(-1, -1, 0) = 0 (column 5)
    # x = -1: unit 0 = max(-1, -2, -3) = -1 (column 0), unit 1 = max(1, 1, 0) = 1 (column 3:
    # the first of the tied columns 3 and 4)
    np.testing.assert_array_equal(backend.to_numpy(out), [[3.0, 0.0], [-1.0, 1.0]])
    layer.backward(backend.asarray(np.array([[10.0, 20.0], [30.0, 40.0]])))
    np.testing.assert_array_equal(backend.to_numpy(layer.db), [30.0, 0.0, 10.0, 40.0, 0.0, 20.0])
    np.testing.assert_array_equal(backend.to_numpy(layer.arg_max), [[2, 2], [0, 0]])


def test_maxout_bad_arguments(backend):
    W = backend.asarray(np.zeros((3, 6)))
    b = backend.asarray(np.zeros(6))
    with pytest.raises(ValueError, match="pieces must be >= 1"):
        Maxout(W, b, pieces=0)
    with pytest.raises(TypeError, match="pieces must be an integer"):
        Maxout(W, b, pieces=2.0)
    with pytest.raises(ValueError, match=r"W must have shape \(D_in, D_out \* pieces\)"):
        Maxout(W, b, pieces=4)
    with pytest.raises(ValueError, match=r"W must have shape"):
        Maxout(backend.asarray(np.zeros(6)), b)
    with pytest.raises(ValueError, match=r"b must have shape \(6,\)"):
        Maxout(W, backend.asarray(np.zeros(3)))
    layer = Maxout(W, b)
    with pytest.raises(ValueError, match=r"Maxout expects input of shape \(N, 3\)"):
        layer.forward(backend.asarray(np.zeros((2, 4))))
    assert layer.x is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameter_activations_keep_dtype(backend, rng, dtype):
    x, W, b, dout = _maxout_data(rng, (4, 3), 2, 2, dtype)
    layer = Maxout(backend.asarray(W), backend.asarray(b))
    assert_on_backend(backend, layer.forward(backend.asarray(x)), dtype=dtype, shape=(4, 2))
    assert_on_backend(backend, layer.backward(backend.asarray(dout)), dtype=dtype, shape=(4, 3))
    for g in (layer.dW, layer.db):
        assert_on_backend(backend, g, dtype=dtype)
    p = PRelu(backend.asarray(np.full(3, 0.25, dtype=dtype)))
    assert_on_backend(backend, p.forward(backend.asarray(x)), dtype=dtype, shape=(4, 3))
    assert_on_backend(backend, p.backward(backend.asarray(x)), dtype=dtype, shape=(4, 3))
    assert_on_backend(backend, p.dalpha, dtype=dtype, shape=(3,))
