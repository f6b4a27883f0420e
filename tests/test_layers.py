"""xpnet.layers: numerical gradients on every backend, and torch.nn.functional as a reference
(where torch is installed; ``test_oracles.py`` compares every layer with NumPy transcriptions of
the book's layers everywhere).

Gradient checks run in float64: the scalar ``L = sum(forward(x) * dout)`` is differentiated by
central differences over the input and over every parameter (each parameter is replaced by a
perturbed copy on the backend, then restored), and compared with ``backward(dout)`` and the
layer's ``dW``/``db``/``dgamma``/``dbeta``.
"""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from conftest import assert_close, assert_on_backend, numerical_grad
from xpnet.layers import (
    Affine,
    BatchNormalization,
    Dropout,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    Tanh,
)

GRAD_RTOL = 1e-6
GRAD_ATOL = 1e-8


def _forward(layer, x, train_flg):
    return layer.forward(x) if train_flg is None else layer.forward(x, train_flg)


def check_layer_gradients(be, layer, x_host, dout_host, params=(), train_flg=None):
    """Numerical vs analytic gradients of ``sum(forward(x) * dout)`` (float64).

    ``params`` are (attribute, gradient attribute) pairs, e.g. ``("W", "dW")``.
    """
    dout_h = np.asarray(dout_host, dtype=np.float64)

    def objective(x_h):
        out = _forward(layer, be.asarray(x_h), train_flg)
        return float(np.sum(be.to_numpy(out) * dout_h))

    num_dx = numerical_grad(objective, x_host)
    num_params = {}
    x_be = be.asarray(x_host)
    for attr, _ in params:
        original = getattr(layer, attr)
        p_host = be.to_numpy(original).astype(np.float64)

        def objective_p(p_h, attr=attr):
            setattr(layer, attr, be.asarray(p_h))
            out = _forward(layer, x_be, train_flg)
            return float(np.sum(be.to_numpy(out) * dout_h))

        num_params[attr] = numerical_grad(objective_p, p_host)
        setattr(layer, attr, original)

    out = _forward(layer, be.asarray(x_host), train_flg)
    assert_on_backend(be, out, dtype="float64")
    dout = be.asarray(dout_h)
    dx = layer.backward(dout)
    assert_on_backend(be, dx, dtype="float64", shape=x_host.shape)
    # the layer must not have written into dout
    np.testing.assert_array_equal(be.to_numpy(dout), dout_h)
    np.testing.assert_allclose(be.to_numpy(dx), num_dx, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                               err_msg="dx")
    for attr, gattr in params:
        g = getattr(layer, gattr)
        assert_on_backend(be, g, dtype="float64", shape=num_params[attr].shape)
        np.testing.assert_allclose(be.to_numpy(g), num_params[attr], rtol=GRAD_RTOL,
                                   atol=GRAD_ATOL, err_msg=gattr)


# ------------------------------------------------------------------------------------------
# numerical gradients, every layer, every backend
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("x_shape", [(4, 6), (3, 2, 2, 3)], ids=["2d", "4d"])
def test_affine_gradients(backend, rng, x_shape):
    d = int(np.prod(x_shape[1:]))
    W = backend.asarray(rng.standard_normal((d, 5)))
    b = backend.asarray(rng.standard_normal(5))
    layer = Affine(W, b)
    x = rng.standard_normal(x_shape)
    dout = rng.standard_normal((x_shape[0], 5))
    out = layer.forward(backend.asarray(x))
    assert_on_backend(backend, out, dtype="float64", shape=(x_shape[0], 5))
    x2 = x.reshape(x_shape[0], -1)
    assert_close(backend, out, x2 @ backend.to_numpy(W) + backend.to_numpy(b))
    check_layer_gradients(backend, layer, x, dout, params=[("W", "dW"), ("b", "db")])


@pytest.mark.parametrize("cls", [Relu, Sigmoid, Tanh])
def test_activation_gradients(backend, rng, cls):
    x = rng.standard_normal((4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep Relu's kink away from the difference step
    check_layer_gradients(backend, cls(), x, rng.standard_normal((4, 5)))


def test_relu_forward_and_zero_convention(backend):
    x = np.array([[-2.0, 0.0, 3.0]])
    layer = Relu()
    out = layer.forward(backend.asarray(x))
    assert_close(backend, out, [[0.0, 0.0, 3.0]])
    dx = layer.backward(backend.asarray(np.array([[5.0, 7.0, 11.0]])))
    assert_close(backend, dx, [[0.0, 0.0, 11.0]])  # the book: gradient 0 at x == 0


@pytest.mark.parametrize("shape", [(), (0, 4), (0,), (3,)], ids=["0-d", "no-rows", "empty", "1-d"])
def test_relu_on_scalars_and_empty_batches(backend, rng, shape):
    """The book's Relu takes arrays of any shape, a 0-d one or a batch of no rows included
    (NumPy's row-splitting kernels once raised on these: ``x.shape[0]`` of a 0-d array,
    ``reshape(0, -1)`` of an empty one)."""
    import oracles as O

    x = rng.standard_normal(shape)
    dout = rng.standard_normal(shape)
    layer = Relu()
    out = layer.forward(backend.asarray(x))
    assert_close(backend, out, O.relu_forward(x))
    dx = layer.backward(backend.asarray(dout))
    assert_on_backend(backend, dx, dtype="float64", shape=shape)
    assert_close(backend, dx, O.relu_backward(x, dout))


@pytest.mark.parametrize("n_labels", [4, 1, 6])
def test_softmax_with_loss_refuses_labels_of_another_batch_size(backend, rng, n_labels):
    """Integer labels of another length than the batch are refused with a ValueError naming
    ``t`` -- not broadcast (one label against five rows) nor gathered for the first rows only
    (torch's fused loss once returned a number for 4 labels and 5 rows)."""
    x = backend.asarray(rng.standard_normal((5, 3)))
    t = backend.asarray(rng.integers(0, 3, n_labels))
    with pytest.raises(ValueError, match=r"\bt\b.*5 rows"):
        SoftmaxWithLoss().forward(x, t)
    hot = backend.asarray(np.eye(3)[rng.integers(0, 3, n_labels)])
    with pytest.raises(ValueError, match=r"\bt\b.*5 rows"):
        SoftmaxWithLoss().forward(x, hot)


@pytest.mark.parametrize("labels", ["int", "one-hot"])
def test_softmax_with_loss_gradients(backend, rng, labels):
    n, c = 5, 4
    x = rng.standard_normal((n, c))
    t_int = rng.integers(0, c, n)
    t_host = t_int if labels == "int" else np.eye(c)[t_int]
    t = backend.asarray(t_host)
    layer = SoftmaxWithLoss()

    def loss(x_h):
        return float(be_to_np(layer.forward(backend.asarray(x_h), t)))

    def be_to_np(a):
        return backend.to_numpy(a)

    num = numerical_grad(loss, x)
    loss_val = layer.forward(backend.asarray(x), t)
    assert_on_backend(backend, loss_val, dtype="float64", shape=())
    dx = layer.backward()
    assert_on_backend(backend, dx, dtype="float64", shape=(n, c))
    # the book's loss, log(y + 1e-7), has a gradient that differs from (y - t)/N by ~1e-7
    np.testing.assert_allclose(backend.to_numpy(dx), num, rtol=1e-5, atol=1e-6)


def test_dropout_fixed_mask_backward(backend, rng):
    ratio = 0.3
    x = rng.standard_normal((40, 50)) + 5.0  # no zeros, so out / x recovers the mask
    layer = Dropout(ratio)
    out = layer.forward(backend.asarray(x), train_flg=True)
    assert_on_backend(backend, out, dtype="float64", shape=x.shape)
    mask = backend.to_numpy(out) / x
    np.testing.assert_allclose(mask, np.round(mask), atol=1e-12)  # 0 or 1: not inverted
    mask = np.round(mask)
    assert set(np.unique(mask).tolist()) <= {0.0, 1.0}
    assert abs(mask.mean() - (1 - ratio)) < 0.04  # 2,000 draws: sd ~ 0.01
    dout_h = rng.standard_normal(x.shape)
    dout = backend.asarray(dout_h)
    dx = layer.backward(dout)
    assert_on_backend(backend, dx, dtype="float64", shape=x.shape)
    np.testing.assert_array_equal(backend.to_numpy(dx), dout_h * mask)
    np.testing.assert_array_equal(backend.to_numpy(dout), dout_h)


def test_dropout_test_time_scales_by_keep(backend, rng):
    x = rng.standard_normal((3, 4))
    x_be = backend.asarray(x.copy())
    out = Dropout(0.3).forward(x_be, train_flg=False)
    assert_on_backend(backend, out, dtype="float64")
    assert_close(backend, out, x * 0.7)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)  # the input is left alone
    out32 = Dropout(0.5).forward(backend.asarray(x.astype(np.float32)), train_flg=False)
    assert_on_backend(backend, out32, dtype="float32")


def test_dropout_masks_change_and_seed_repeats(backend):
    x = backend.asarray(np.ones((30, 30)))
    layer = Dropout(0.5, seed=4)
    a = backend.to_numpy(layer.forward(x, train_flg=True))
    b = backend.to_numpy(layer.forward(x, train_flg=True))
    assert not np.array_equal(a, b)  # a fresh mask every step
    c = backend.to_numpy(Dropout(0.5, seed=4).forward(x, train_flg=True))
    np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("x_shape", [(6, 4), (4, 2, 2, 2)], ids=["2d", "4d"])
def test_batchnorm_gradients_train_mode(backend, rng, x_shape):
    d = int(np.prod(x_shape[1:]))  # the book flattens (N, C, H, W) to (N, C*H*W)
    gamma = backend.asarray(1.0 + 0.5 * rng.standard_normal(d))
    beta = backend.asarray(rng.standard_normal(d))
    layer = BatchNormalization(gamma, beta)
    x = 2.0 * rng.standard_normal(x_shape) + 1.0
    check_layer_gradients(backend, layer, x, rng.standard_normal(x_shape),
                          params=[("gamma", "dgamma"), ("beta", "dbeta")], train_flg=True)


# ------------------------------------------------------------------------------------------
# against torch.nn.functional
# ------------------------------------------------------------------------------------------

BN_EPS = 1e-6


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("x_shape", [(8, 5), (6, 2, 3, 2)], ids=["2d", "4d"])
def test_batchnorm_against_torch(backend, rng, dtype, x_shape):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    n = x_shape[0]
    d = int(np.prod(x_shape[1:]))
    gamma_h = (1.0 + 0.3 * rng.standard_normal(d)).astype(dtype)
    beta_h = rng.standard_normal(d).astype(dtype)
    layer = BatchNormalization(backend.asarray(gamma_h), backend.asarray(beta_h), momentum=0.9)
    assert layer.running_mean is None or np.all(backend.to_numpy(layer.running_mean) == 0)

    # torch with the book's conventions: momentum 1 - 0.9, eps 1e-6, stats starting at zero
    t_rm = torch.zeros(d, dtype=torch.float64)
    t_rv = torch.zeros(d, dtype=torch.float64)
    w = torch.tensor(gamma_h, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(beta_h, dtype=torch.float64, requires_grad=True)
    book_rm = np.zeros(d)
    book_rv = np.zeros(d)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)

    for step in range(4):
        x_h = (3.0 * rng.standard_normal(x_shape) + step).astype(dtype)
        dout_h = rng.standard_normal(x_shape).astype(dtype)
        out = layer.forward(backend.asarray(x_h), train_flg=True)
        assert_on_backend(backend, out, dtype=dtype, shape=x_shape)
        dx = layer.backward(backend.asarray(dout_h))
        assert_on_backend(backend, dx, dtype=dtype, shape=x_shape)

        xt = torch.tensor(x_h.reshape(n, d), dtype=torch.float64, requires_grad=True)
        w.grad = bias.grad = None
        ot = tF.batch_norm(xt, t_rm, t_rv, w, bias, training=True, momentum=0.1, eps=BN_EPS)
        ot.backward(torch.tensor(dout_h.reshape(n, d), dtype=torch.float64))

        np.testing.assert_allclose(backend.to_numpy(out).reshape(n, d), ot.detach().numpy(),
                                   **tol, err_msg="forward (train)")
        np.testing.assert_allclose(backend.to_numpy(dx).reshape(n, d), xt.grad.numpy(), **tol,
                                   err_msg="dx")
        np.testing.assert_allclose(backend.to_numpy(layer.dgamma), w.grad.numpy(), **tol,
                                   err_msg="dgamma")
        np.testing.assert_allclose(backend.to_numpy(layer.dbeta), bias.grad.numpy(), **tol,
                                   err_msg="dbeta")
        x64 = x_h.reshape(n, d).astype(np.float64)
        xn_ref = (x64 - x64.mean(axis=0)) / np.sqrt(x64.var(axis=0) + BN_EPS)
        np.testing.assert_allclose(backend.to_numpy(layer.xn), xn_ref, **tol, err_msg="xn")

        x2 = x_h.reshape(n, d).astype(np.float64)
        book_rm = 0.9 * book_rm + 0.1 * x2.mean(axis=0)
        book_rv = 0.9 * book_rv + 0.1 * x2.var(axis=0)  # biased (ddof=0), as in the book

    rm = backend.to_numpy(layer.running_mean)
    rv = backend.to_numpy(layer.running_var)
    np.testing.assert_allclose(rm, book_rm, **tol)
    np.testing.assert_allclose(rv, book_rv, **tol)
    # the same means as torch; torch's running variance is the unbiased one, N/(N-1) larger
    np.testing.assert_allclose(rm, t_rm.numpy(), **tol)
    np.testing.assert_allclose(rv * n / (n - 1), t_rv.numpy(), **tol)
    assert not np.allclose(rv, t_rv.numpy(), rtol=1e-3)

    # inference uses the running statistics
    x_h = rng.standard_normal(x_shape).astype(dtype)
    out = layer.forward(backend.asarray(x_h), train_flg=False)
    assert_on_backend(backend, out, dtype=dtype, shape=x_shape)
    ref = tF.batch_norm(torch.tensor(x_h.reshape(n, d), dtype=torch.float64),
                        torch.tensor(book_rm), torch.tensor(book_rv),
                        torch.tensor(gamma_h, dtype=torch.float64),
                        torch.tensor(beta_h, dtype=torch.float64), training=False, eps=BN_EPS)
    np.testing.assert_allclose(backend.to_numpy(out).reshape(n, d), ref.numpy(), **tol,
                               err_msg="forward (eval)")
    # inference does not move the running statistics
    np.testing.assert_array_equal(backend.to_numpy(layer.running_mean), rm)


@pytest.mark.parametrize("given", ["dgamma_out", "dbeta_out"])
def test_batchnorm_backward_writes_the_one_out_array_given(backend, rng, given):
    """``dgamma_out`` and ``dbeta_out`` are independent: with only one set, its gradient lands
    there (torch's fused backward once wrote neither unless both were set)."""
    import oracles as O

    n, d = 6, 4
    x, dout = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    gamma, beta = rng.random(d) + 0.5, rng.standard_normal(d)
    layer = BatchNormalization(backend.asarray(gamma), backend.asarray(beta))
    out_arr = backend.asarray(np.full(d, np.nan))
    setattr(layer, given, out_arr)
    layer.forward(backend.asarray(x), train_flg=True)
    layer.backward(backend.asarray(dout))
    _, _, _, cache = O.batchnorm_forward(x, gamma, beta, np.zeros(d), np.zeros(d), eps=BN_EPS)
    _, want_dgamma, want_dbeta = O.batchnorm_backward(cache, dout)
    want = want_dgamma if given == "dgamma_out" else want_dbeta
    assert_close(backend, out_arr, want)
    assert getattr(layer, given[:-4]) is out_arr


def test_batchnorm_xn_can_be_assigned_as_in_the_book(backend):
    """The book's layer assigns ``self.xn``; a subclass in that style keeps working, and the
    next training forward pass replaces the assigned value."""
    layer = BatchNormalization(backend.asarray(np.ones(3)), backend.asarray(np.zeros(3)))
    assert layer.xn is None
    marker = backend.asarray(np.full((2, 3), 7.0))
    layer.xn = marker
    assert layer.xn is marker
    layer.forward(backend.asarray(np.arange(6.0).reshape(2, 3)))
    np.testing.assert_allclose(backend.to_numpy(layer.xn), [[-1.0] * 3, [1.0] * 3], rtol=1e-5)


def test_batchnorm_given_running_stats_and_eps(backend, rng):
    d = 3
    rm = rng.standard_normal(d)
    rv = rng.random(d) + 0.5
    layer = BatchNormalization(backend.asarray(np.ones(d)), backend.asarray(np.zeros(d)),
                               running_mean=backend.asarray(rm), running_var=backend.asarray(rv))
    x = rng.standard_normal((2, d))
    out = layer.forward(backend.asarray(x), train_flg=False)
    assert_close(backend, out, (x - rm) / np.sqrt(rv + 1e-6))


@pytest.mark.parametrize("labels", ["int", "one-hot"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_softmax_with_loss_against_torch(backend, rng, dtype, labels):
    torch = pytest.importorskip("torch")
    n, c = 7, 5
    x_h = (2.0 * rng.standard_normal((n, c))).astype(dtype)
    t_int = rng.integers(0, c, n)
    t_h = t_int if labels == "int" else np.eye(c, dtype=dtype)[t_int]
    layer = SoftmaxWithLoss()
    loss = layer.forward(backend.asarray(x_h), backend.asarray(t_h))
    assert_on_backend(backend, loss, dtype=dtype, shape=())
    dx = layer.backward()
    assert_on_backend(backend, dx, dtype=dtype, shape=(n, c))

    xt = torch.tensor(x_h, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(xt, torch.from_numpy(t_int))
    ref.backward()
    # the book's loss: -mean(log(softmax + 1e-7))
    book = torch.nn.functional.nll_loss(
        torch.log(torch.softmax(xt.detach(), dim=1) + 1e-7), torch.from_numpy(t_int))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(backend.to_numpy(loss)), book.item(), **tol)
    np.testing.assert_allclose(float(backend.to_numpy(loss)), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(backend.to_numpy(dx), xt.grad.numpy(), **tol)
    np.testing.assert_allclose(float(backend.to_numpy(layer.loss)), book.item(), **tol)


# ------------------------------------------------------------------------------------------
# namespace and device come from the input; nothing is mutated
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [Relu, Sigmoid, Tanh, lambda: Dropout(0.3)],
                         ids=["Relu", "Sigmoid", "Tanh", "Dropout"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameterless_layers_follow_the_input(backend, rng, make, dtype):
    x_h = rng.standard_normal((3, 4)).astype(dtype)
    layer = make()
    x = backend.asarray(x_h)
    out = layer.forward(x)
    assert_on_backend(backend, out, dtype=dtype, shape=(3, 4))
    dout_h = rng.standard_normal((3, 4)).astype(dtype)
    dout = backend.asarray(dout_h)
    dx = layer.backward(dout)
    assert_on_backend(backend, dx, dtype=dtype, shape=(3, 4))
    np.testing.assert_array_equal(backend.to_numpy(x), x_h)
    np.testing.assert_array_equal(backend.to_numpy(dout), dout_h)


def test_softmax_with_loss_follows_the_input(backend, rng):
    layer = SoftmaxWithLoss()
    x_h = rng.standard_normal((3, 4)).astype(np.float32)
    loss = layer.forward(backend.asarray(x_h), backend.asarray(np.array([0, 3, 1])))
    assert_on_backend(backend, loss, dtype="float32", shape=())
    dx = layer.backward()
    assert_on_backend(backend, dx, dtype="float32", shape=(3, 4))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parameter_layers_keep_dtype_and_do_not_mutate(backend, rng, dtype):
    d = 4
    x_h = rng.standard_normal((5, d)).astype(dtype)
    dout_h = rng.standard_normal((5, d)).astype(dtype)
    for layer in (
        Affine(backend.asarray(rng.standard_normal((d, d)).astype(dtype)),
               backend.asarray(np.zeros(d, dtype=dtype))),
        BatchNormalization(backend.asarray(np.ones(d, dtype=dtype)),
                           backend.asarray(np.zeros(d, dtype=dtype))),
    ):
        x = backend.asarray(x_h)
        dout = backend.asarray(dout_h)
        out = layer.forward(x) if isinstance(layer, Affine) else layer.forward(x, True)
        dx = layer.backward(dout)
        for a in (out, dx):
            assert_on_backend(backend, a, dtype=dtype, shape=(5, d))
        np.testing.assert_array_equal(backend.to_numpy(x), x_h)
        np.testing.assert_array_equal(backend.to_numpy(dout), dout_h)
        if isinstance(layer, BatchNormalization):
            for a in (layer.dgamma, layer.dbeta, layer.running_mean, layer.running_var):
                assert_on_backend(backend, a, dtype=dtype, shape=(d,))
            ev = layer.forward(x, False)
            assert_on_backend(backend, ev, dtype=dtype, shape=(5, d))
            np.testing.assert_array_equal(backend.to_numpy(x), x_h)  # inference: no in-place


def test_one_dropout_layer_across_libraries_and_devices(rng):
    """A parameterless layer takes the backend of each input, including its device."""
    x_h = rng.standard_normal((4, 4)) + 3.0
    backends = [xpnet.get_backend("numpy")]
    for name, dev in (("torch", None), ("array_api_strict", None),
                      ("array_api_strict", "device1")):
        try:
            backends.append(xpnet.get_backend(name, device=dev))
        except xpnet.BackendUnavailableError:
            pass
    layer = Dropout(0.5)
    relu = Relu()
    for be in backends:
        x = be.asarray(x_h)
        out = layer.forward(x, train_flg=True)
        assert_on_backend(be, out, dtype="float64")
        assert_on_backend(be, layer.backward(x), dtype="float64")
        assert_on_backend(be, relu.forward(x), dtype="float64")


def test_relu_of_infinities(backend):
    """max(x, 0): -inf -> 0 and +inf -> inf, as the book's ``out[x <= 0] = 0`` gives (a 0/1
    mask multiplied in would turn -inf into nan).  Likewise no gradient passes where x <= 0."""
    x = np.array([[-np.inf, -1.0, 0.0, 2.0, np.inf]])
    layer = Relu()
    with np.errstate(invalid="ignore"):
        out = backend.to_numpy(layer.forward(backend.asarray(x)))
        dx = backend.to_numpy(layer.backward(backend.asarray(np.full((1, 5), np.inf))))
    np.testing.assert_array_equal(out, [[0.0, 0.0, 0.0, 2.0, np.inf]])
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 0.0, np.inf, np.inf]])


@pytest.mark.parametrize("make", [Relu, Sigmoid, Tanh, Dropout, SoftmaxWithLoss],
                         ids=lambda c: c.__name__)
def test_parameterless_layers_accept_a_fixed_backend(backend, rng, make):
    layer = make(backend=backend)
    x = backend.asarray(rng.standard_normal((3, 4)))
    if make is SoftmaxWithLoss:
        out = layer.forward(x, backend.asarray(np.array([0, 1, 3])))
        assert_on_backend(backend, out, dtype="float64", shape=())
        dx = layer.backward()
    else:
        out = layer.forward(x)
        assert_on_backend(backend, out, dtype="float64", shape=(3, 4))
        dx = layer.backward(backend.asarray(np.ones((3, 4))))
    assert_on_backend(backend, dx, dtype="float64", shape=(3, 4))


# ------------------------------------------------------------------------------------------
# inverted dropout (cs231n; PyTorch's semantics)
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dropout_inverted(backend, rng, dtype):
    ratio = 0.3
    x = (rng.standard_normal((40, 50)) + 5.0).astype(dtype)  # no zeros: out / x is the mask
    layer = Dropout(ratio, inverted=True, seed=3)
    x_be = backend.asarray(x)
    out = layer.forward(x_be, train_flg=True)
    assert_on_backend(backend, out, dtype=dtype, shape=x.shape)
    scaled = backend.to_numpy(out).astype(np.float64) / x
    keep = scaled > 0.5
    tol = 1e-12 if dtype == "float64" else 1e-6
    np.testing.assert_allclose(scaled[keep], 1.0 / (1.0 - ratio), rtol=tol)
    np.testing.assert_array_equal(scaled[~keep], 0.0)
    assert abs(keep.mean() - (1 - ratio)) < 0.04
    np.testing.assert_array_equal(backend.to_numpy(layer.mask), keep.astype(dtype))  # 0/1
    dout_h = rng.standard_normal(x.shape).astype(dtype)
    dout = backend.asarray(dout_h)
    dx = layer.backward(dout)
    assert_on_backend(backend, dx, dtype=dtype, shape=x.shape)
    np.testing.assert_allclose(backend.to_numpy(dx), dout_h * keep / (1.0 - ratio), rtol=tol)
    np.testing.assert_array_equal(backend.to_numpy(dout), dout_h)
    # inference: the input itself, as a fresh array
    ev = layer.forward(x_be, train_flg=False)
    assert_on_backend(backend, ev, dtype=dtype, shape=x.shape)
    np.testing.assert_array_equal(backend.to_numpy(ev), x)
    ev[...] = 0.0
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    y = backend.asarray(x.copy())
    np.testing.assert_array_equal(backend.to_numpy(layer.forward_inplace(y)), x)
    # the book's mode is unchanged beside it
    book = Dropout(ratio)
    assert not book.inverted
    assert_close(backend, book.forward(x_be, train_flg=False), x * (1 - ratio))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_dropout_inverted_scale_matches_torch(backend, rng, dtype):
    torch = pytest.importorskip("torch")
    ratio = 0.25
    ones = np.ones((64, 64), dtype=dtype)
    t_out = torch.nn.functional.dropout(torch.from_numpy(ones), p=ratio, training=True).numpy()
    t_scale = np.unique(t_out[t_out != 0])
    ours = backend.to_numpy(Dropout(ratio, inverted=True).forward(backend.asarray(ones)))
    our_scale = np.unique(ours[ours != 0])
    assert len(t_scale) == 1 and len(our_scale) == 1
    np.testing.assert_allclose(our_scale, t_scale, rtol=1e-15 if dtype == "float64" else 1e-7)
    t_eval = torch.nn.functional.dropout(torch.from_numpy(ones), p=ratio, training=False)
    ev = Dropout(ratio, inverted=True).forward(backend.asarray(ones), train_flg=False)
    np.testing.assert_array_equal(backend.to_numpy(ev), t_eval.numpy())


def test_dropout_inverted_bad_argument():
    with pytest.raises(TypeError, match="inverted must be True or False"):
        Dropout(0.5, inverted="yes")
    assert "inverted=True" in repr(Dropout(0.5, inverted=True))
