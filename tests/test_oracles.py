"""xpnet against the NumPy oracles of ``oracles.py``: every function, layer and optimizer, on
every backend, whether or not torch is installed.

The oracles are float64 NumPy transcriptions of the book's ``common/`` code and of the update
rules in torch.optim's documentation, written without xpnet.  They are checked themselves three
ways: by central differences (every layer's backward), by each other where the sources say they
agree (the book's Momentum and torch's SGD, ...), and, where torch is installed, against
``torch.optim`` and autograd (the only tests here that skip without torch).

Float32 runs feed the oracle the same float32 inputs (upcast) and compare with a tolerance for
float32 arithmetic, relative to the result's scale.
"""

from __future__ import annotations

import ast
import doctest
import pathlib

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import (
    OPTIMIZER_KERNEL_SLOTS,
    assert_on_backend,
    fused_paths,
    numerical_grad,
)
from xpnet import functions as F
from xpnet.layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Elu,
    GroupNormalization,
    InstanceNormalization,
    LayerNormalization,
    LeakyRelu,
    Maxout,
    Pooling,
    PRelu,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    SpatialBatchNormalization,
    Tanh,
)
from xpnet.optim import SGD, AdaGrad, Adam, AdamW, Momentum, Nesterov, RMSprop

DTYPES = ["float64", "float32"]
#: relative tolerance of one elementwise result; ``factor`` widens it for long chains
RTOL = {"float64": 1e-10, "float32": 2e-5}


def check(be, got, want, dtype, err_msg="", factor=1.0):
    """``got`` (a ``be`` array of ``dtype``) equals the float64 oracle ``want`` within the
    dtype's tolerance, the absolute part scaled by the size of ``want``."""
    want = np.asarray(want, dtype=np.float64)
    assert_on_backend(be, got, dtype=dtype, shape=want.shape)
    rtol = RTOL[dtype] * factor
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    np.testing.assert_allclose(np.asarray(be.to_numpy(got), dtype=np.float64), want, rtol=rtol,
                               atol=rtol * scale, err_msg=err_msg)


def host(rng, shape, dtype, scale=1.0, shift=0.0):
    """Random host data in ``dtype`` (what the backend gets and, upcast, the oracle gets)."""
    return (scale * rng.standard_normal(shape) + shift).astype(dtype)


# ------------------------------------------------------------------------------------------
# the oracles themselves: independent, and right
# ------------------------------------------------------------------------------------------


def test_oracles_import_nothing_but_numpy_and_the_standard_library():
    tree = ast.parse(pathlib.Path(O.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.partition(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add((node.module or "").partition(".")[0])
    assert imported <= {"__future__", "collections", "typing", "numpy"}, imported


def test_oracle_docstring_examples():
    result = doctest.testmod(O)
    assert result.failed == 0 and result.attempted >= 2


LAYER_ORACLES = ["affine-2d", "affine-4d", "relu", "sigmoid", "tanh", "softmax_with_loss-int",
                 "softmax_with_loss-one-hot", "batchnorm-2d", "batchnorm-4d", "dropout"]


def _oracle_layer(name, rng):
    """(forward f(x) -> out, backward(x, dout) -> dx, x, dout) of one layer oracle."""
    if name.startswith("affine"):
        x = rng.standard_normal((4, 6) if name == "affine-2d" else (4, 2, 1, 3))
        W, b = rng.standard_normal((6, 3)), rng.standard_normal(3)
        return (lambda x: O.affine_forward(x, W, b),
                lambda x, d: O.affine_backward(x, W, d)[0], x, rng.standard_normal((4, 3)))
    if name in ("relu", "sigmoid", "tanh"):
        x = rng.standard_normal((3, 5))
        x[np.abs(x) < 1e-3] = 0.5
        fwd = getattr(O, f"{name}_forward")
        from_output = getattr(O, f"{name}_backward")  # relu's takes x, the others the output

        def bwd(x, d):
            return from_output(x if name == "relu" else fwd(x), d)

        return fwd, bwd, x, rng.standard_normal((3, 5))
    if name.startswith("softmax_with_loss"):
        t = rng.integers(0, 4, 5)
        if name.endswith("one-hot"):
            t = np.eye(4)[t]
        return (lambda x: O.softmax_with_loss_forward(x, t)[0],
                lambda x, d: O.softmax_with_loss_backward(O.softmax(x), t, d),
                rng.standard_normal((5, 4)), np.array(1.0))
    if name.startswith("batchnorm"):
        shape = (6, 4) if name == "batchnorm-2d" else (5, 2, 1, 2)
        gamma, beta = 1.0 + 0.3 * rng.standard_normal(4), rng.standard_normal(4)
        rm, rv = rng.standard_normal(4), rng.random(4) + 0.5  # (ignored while training)

        def fwd(x):
            return O.batchnorm_forward(x, gamma, beta, rm, rv)[0]

        def bwd(x, d):
            return O.batchnorm_backward(O.batchnorm_forward(x, gamma, beta, rm, rv)[3], d)[0]

        return fwd, bwd, 2.0 * rng.standard_normal(shape) + 1.0, rng.standard_normal(shape)
    if name == "dropout":
        mask = (rng.random((4, 5)) > 0.4).astype(np.float64)
        return (lambda x: O.dropout_forward(x, mask, 0.4),
                lambda x, d: O.dropout_backward(mask, d), rng.standard_normal((4, 5)),
                rng.standard_normal((4, 5)))
    raise AssertionError(name)


@pytest.mark.parametrize("name", LAYER_ORACLES)
def test_layer_oracle_backward_is_the_numerical_gradient(rng, name):
    """Each layer oracle's backward against central differences of its own forward."""
    fwd, bwd, x, dout = _oracle_layer(name, rng)
    num = numerical_grad(lambda x_: float(np.sum(fwd(x_) * dout)), x)
    # the book's loss, log(y + 1e-7), has a gradient ~1e-7 / y away from (y - t) / N
    tol = (1e-5, 1e-6) if name.startswith("softmax") else (1e-6, 1e-8)
    np.testing.assert_allclose(bwd(x, dout), num, rtol=tol[0], atol=tol[1])


def test_function_oracle_gradients_are_numerical_gradients(rng):
    x = rng.standard_normal(7)
    x[np.abs(x) < 1e-3] = 0.5
    for f, df in ((O.sigmoid, O.sigmoid_grad), (O.relu, O.relu_grad), (O.tanh, None)):
        num = numerical_grad(lambda v, f=f: float(np.sum(f(v))), x)
        want = 1.0 - O.tanh(x) ** 2 if df is None else df(x)
        np.testing.assert_allclose(want, num, rtol=1e-6, atol=1e-8)


# the oracles of chapter 7 and cs231n lecture 7: backward and parameter gradients against
# central differences, and against torch autograd where torch is installed

LECTURE7_ORACLES = ["convolution", "max_pool", "leaky_relu", "elu", "prelu", "prelu-shared",
                    "maxout", "layernorm", "groupnorm", "instancenorm", "spatial_batchnorm",
                    "inverted_dropout"]


def _lecture7_oracle(name, rng):
    """``(forward(x, **params) -> out, backward(x, dout, **params) -> (dx, {param: grad}),
    x, dout, params)`` of one oracle of chapter 7 / lecture 7."""
    if name == "convolution":
        x, p = rng.standard_normal((2, 2, 5, 4)), {"W": rng.standard_normal((3, 2, 3, 2)),
                                                    "b": rng.standard_normal(3)}

        def bwd(x, d, W, b):
            dx, dW, db = O.convolution_backward(x, W, d, 2, 1)
            return dx, {"W": dW, "b": db}

        return (lambda x, W, b: O.convolution_forward(x, W, b, 2, 1), bwd, x,
                rng.standard_normal((2, 3, 3, 3)), p)
    if name == "max_pool":
        x = (rng.permutation(2 * 2 * 5 * 5) * 1e-2).reshape(2, 2, 5, 5)  # no ties
        return (lambda x: O.max_pool_forward(x, 3, 2, 2, 1)[0],
                lambda x, d: (O.max_pool_backward(x, 3, 2, 2, 1, d), {}), x,
                rng.standard_normal((2, 2, 3, 3)), {})
    if name in ("leaky_relu", "elu"):
        x = rng.standard_normal((3, 2, 2, 2))
        x[np.abs(x) < 1e-3] = 0.5
        fwd, back = getattr(O, f"{name}_forward"), getattr(O, f"{name}_backward")
        return (lambda x: fwd(x, 0.3), lambda x, d: (back(x, d, 0.3), {}), x,
                rng.standard_normal(x.shape), {})
    if name.startswith("prelu"):
        x = rng.standard_normal((3, 4, 2, 2))
        x[np.abs(x) < 1e-3] = 0.5
        alpha = 0.25 + 0.1 * rng.standard_normal(1 if name.endswith("shared") else 4)

        def bwd(x, d, alpha):
            dx, da = O.prelu_backward(x, alpha, d)
            return dx, {"alpha": da}

        return O.prelu_forward, bwd, x, rng.standard_normal(x.shape), {"alpha": alpha}
    if name == "maxout":
        p = {"W": rng.standard_normal((6, 6)), "b": rng.standard_normal(6)}

        def bwd(x, d, W, b):
            dx, dW, db = O.maxout_backward(x, W, b, d, pieces=3)
            return dx, {"W": dW, "b": db}

        return (lambda x, W, b: O.maxout_forward(x, W, b, pieces=3), bwd,
                rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2)), p)
    if name in ("layernorm", "groupnorm", "instancenorm", "spatial_batchnorm"):
        shape = (4, 6) if name == "layernorm" else (3, 4, 2, 3)
        c = shape[1]
        p = {"gamma": 1.0 + 0.3 * rng.standard_normal(c), "beta": rng.standard_normal(c)}
        if name == "layernorm":
            fwd, back = (lambda x, gamma, beta: O.layernorm_forward(x, gamma, beta, 1e-3),
                         O.layernorm_backward)
        elif name == "spatial_batchnorm":
            fwd, back = (lambda x, gamma, beta: O.spatial_batchnorm_forward(
                x, gamma, beta, eps=1e-3)[::3], O.spatial_batchnorm_backward)
        else:
            groups = 2 if name == "groupnorm" else c
            fwd, back = (lambda x, gamma, beta: O.groupnorm_forward(x, gamma, beta, groups,
                                                                    1e-3),
                         O.groupnorm_backward)

        def bwd(x, d, gamma, beta):
            dx, dg, db = back(fwd(x, gamma, beta)[1], d)
            return dx, {"gamma": dg, "beta": db}

        return (lambda x, gamma, beta: fwd(x, gamma, beta)[0], bwd,
                2.0 * rng.standard_normal(shape) + 1.0, rng.standard_normal(shape), p)
    if name == "inverted_dropout":
        mask = (rng.random((4, 5)) > 0.3).astype(np.float64)
        return (lambda x: O.inverted_dropout_forward(x, mask, 0.3),
                lambda x, d: (O.inverted_dropout_backward(mask, d, 0.3), {}),
                rng.standard_normal((4, 5)), rng.standard_normal((4, 5)), {})
    raise AssertionError(name)


@pytest.mark.parametrize("name", LECTURE7_ORACLES)
def test_lecture7_oracle_gradients_are_numerical_gradients(rng, name):
    """Each oracle's input and parameter gradients against central differences of its own
    forward."""
    fwd, bwd, x, dout, params = _lecture7_oracle(name, rng)
    dx, grads = bwd(x, dout, **params)
    num = numerical_grad(lambda x_: float(np.sum(fwd(x_, **params) * dout)), x)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8, err_msg="dx")
    assert set(grads) == set(params)
    for key, value in params.items():
        def f(v, key=key):
            return float(np.sum(fwd(x, **{**params, key: v}) * dout))

        np.testing.assert_allclose(grads[key], numerical_grad(f, value), rtol=1e-6, atol=1e-8,
                                   err_msg=key)


@pytest.mark.parametrize("name", [n for n in LECTURE7_ORACLES if n != "inverted_dropout"])
def test_lecture7_oracles_equal_torch_autograd(rng, name):
    """Where torch is installed: the oracles' forward and gradients equal
    ``torch.nn.functional`` and autograd (maxout: ``max`` over the grouped columns)."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    fwd, bwd, x, dout, params = _lecture7_oracle(name, rng)
    xt = torch.tensor(x, requires_grad=True)
    pt = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    if name == "convolution":
        ot = tF.conv2d(xt, pt["W"], pt["b"], stride=2, padding=1)
    elif name == "max_pool":
        ot = tF.max_pool2d(xt, (3, 2), stride=2, padding=1)
    elif name == "leaky_relu":
        ot = tF.leaky_relu(xt, 0.3)
    elif name == "elu":
        ot = tF.elu(xt, 0.3)
    elif name.startswith("prelu"):
        ot = tF.prelu(xt, pt["alpha"])
    elif name == "maxout":
        z = xt.reshape(4, -1) @ pt["W"] + pt["b"]
        ot = z.view(4, 2, 3).max(dim=-1).values
    elif name == "layernorm":
        ot = tF.layer_norm(xt, (6,), pt["gamma"], pt["beta"], 1e-3)
    elif name == "groupnorm":
        ot = tF.group_norm(xt, 2, pt["gamma"], pt["beta"], 1e-3)
    elif name == "instancenorm":
        ot = tF.instance_norm(xt, weight=pt["gamma"], bias=pt["beta"], eps=1e-3)
    else:
        ot = tF.batch_norm(xt, None, None, pt["gamma"], pt["beta"], training=True, eps=1e-3)
    ot.backward(torch.from_numpy(dout))
    dx, grads = bwd(x, dout, **params)
    np.testing.assert_allclose(fwd(x, **params), ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, g in grads.items():
        np.testing.assert_allclose(g, pt[k].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


def test_lecture7_oracles_break_ties_at_the_first_maximum():
    x = np.array([[[[5.0, 5.0], [5.0, 5.0]]]])
    out, arg = O.max_pool_forward(x, 2, 2)
    assert out.item() == 5.0 and arg.item() == 0
    np.testing.assert_array_equal(O.max_pool_backward(x, 2, 2, 2, 0, np.ones((1, 1, 1, 1))),
                                  [[[[1.0, 0.0], [0.0, 0.0]]]])
    W = np.array([[1.0, 1.0]])
    dx, dW, db = O.maxout_backward(np.array([[2.0]]), W, np.zeros(2), np.array([[3.0]]))
    np.testing.assert_array_equal(db, [3.0, 0.0])


def _grad_stream(rng, shapes, steps):
    return [{k: rng.standard_normal(s) for k, s in shapes.items()} for _ in range(steps)]


SHAPES = {"W": (4, 3), "b": (3,)}


@pytest.mark.parametrize(
    "book, torch_form, hp, torch_hp",
    [
        (O.sgd, O.torch_sgd, {"lr": 0.1}, {"lr": 0.1}),
        (O.momentum, O.torch_sgd, {"lr": 0.05, "momentum": 0.8},
         {"lr": 0.05, "momentum": 0.8}),
        (O.nesterov, O.torch_sgd, {"lr": 0.05, "momentum": 0.8},
         {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
        (O.adagrad, O.torch_adagrad, {"lr": 0.3}, {"lr": 0.3, "eps": 1e-7}),
        (O.rmsprop, O.torch_rmsprop, {"lr": 0.02, "decay_rate": 0.9},
         {"lr": 0.02, "alpha": 0.9, "eps": 1e-7}),
        (O.adam, O.torch_adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 0.0},
         {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 0.0}),
    ],
    ids=["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam-eps0"],
)
def test_book_and_torch_documented_oracles_agree_where_the_sources_say_so(
        rng, book, torch_form, hp, torch_hp):
    """Two transcriptions of two sources give the same numbers where the sources are the same
    algorithm: a slip in either transcription shows up here (no torch needed)."""
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = _grad_stream(rng, SHAPES, 40)
    a = O.run_optimizer(book, init, grads, **hp)
    b = O.run_optimizer(torch_form, init, grads, **torch_hp)
    for k in init:
        assert not np.allclose(a[k], init[k])
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-13, err_msg=k)


def test_oracles_differ_where_the_sources_differ(rng):
    """The documented differences are real: the book's printed Nesterov is not the paper's,
    and the book's Adam adds eps before the bias correction, torch's after it."""
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = _grad_stream(rng, SHAPES, 20)
    paper = O.run_optimizer(O.nesterov, init, grads, lr=0.05, momentum=0.8)
    printed = O.run_optimizer(O.nesterov_book_printed, init, grads, lr=0.05, momentum=0.8)
    assert not np.allclose(paper["W"], printed["W"], rtol=1e-3)
    small = [{k: 1e-6 * g for k, g in step.items()} for step in grads]
    book = O.run_optimizer(O.adam, init, small, eps=1e-7)
    torch_form = O.run_optimizer(O.torch_adam, init, small, eps=1e-7)
    moved_book = np.abs(book["W"] - init["W"])
    moved_torch = np.abs(torch_form["W"] - init["W"])
    assert not np.allclose(moved_book, moved_torch, rtol=1e-3)


TORCH_OPTIM_CASES = [
    ("SGD", O.torch_sgd, {"lr": 0.1, "weight_decay": 0.1}),
    ("SGD-momentum", O.torch_sgd, {"lr": 0.05, "momentum": 0.8, "dampening": 0.3,
                                   "weight_decay": 0.05}),
    ("SGD-nesterov", O.torch_sgd, {"lr": 0.05, "momentum": 0.8, "nesterov": True}),
    ("Adagrad", O.torch_adagrad, {"lr": 0.3, "lr_decay": 0.01, "weight_decay": 0.05,
                                  "initial_accumulator_value": 0.1, "eps": 1e-7}),
    ("RMSprop", O.torch_rmsprop, {"lr": 0.02, "alpha": 0.9, "eps": 1e-7,
                                  "weight_decay": 0.05}),
    ("Adam", O.torch_adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3,
                            "weight_decay": 0.05}),
    ("AdamW", O.torch_adamw, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3,
                              "weight_decay": 0.3}),
]


def _torch_opt(torch, name, tparams, hp):
    o = torch.optim
    hp = dict(hp)
    if name.startswith("SGD"):
        return o.SGD(tparams, **hp)
    if name == "Adagrad":
        return o.Adagrad(tparams, **hp)
    if name == "RMSprop":
        return o.RMSprop(tparams, **hp)
    b1, b2 = hp.pop("beta1"), hp.pop("beta2")
    return (o.AdamW if name == "AdamW" else o.Adam)(tparams, betas=(b1, b2), **hp)


@pytest.mark.parametrize("name, step, hp", TORCH_OPTIM_CASES, ids=[c[0] for c in TORCH_OPTIM_CASES])
def test_torch_documented_oracles_equal_torch_optim(rng, name, step, hp):
    """Where torch is installed: the transcriptions of torch's documented update rules (with
    their options) equal ``torch.optim`` itself."""
    torch = pytest.importorskip("torch")
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    grads = _grad_stream(rng, SHAPES, 30)
    want = O.run_optimizer(step, init, grads, **hp)
    tparams = [torch.tensor(init[k], requires_grad=True) for k in SHAPES]
    topt = _torch_opt(torch, name, tparams, hp)
    for g in grads:
        for tp, k in zip(tparams, SHAPES, strict=True):
            tp.grad = torch.from_numpy(g[k].copy())
        topt.step()
    for tp, k in zip(tparams, SHAPES, strict=True):
        np.testing.assert_allclose(tp.detach().numpy(), want[k], rtol=1e-12, atol=1e-13,
                                   err_msg=k)


@pytest.mark.parametrize("name", ["batchnorm", "softmax_with_loss", "sigmoid", "tanh", "relu",
                                  "affine"])
def test_layer_oracles_equal_torch_autograd(rng, name):
    """Where torch is installed: forward and backward of the layer oracles equal
    ``torch.nn.functional`` and autograd (with the book's conventions passed to torch)."""
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    n, d = 7, 5
    x = 2.0 * rng.standard_normal((n, d)) + 0.5
    dout = rng.standard_normal((n, d))
    xt = torch.tensor(x, requires_grad=True)
    if name == "batchnorm":
        gamma, beta = 1.0 + 0.3 * rng.standard_normal(d), rng.standard_normal(d)
        rm, rv = rng.standard_normal(d), rng.random(d) + 0.5
        out, new_rm, new_rv, cache = O.batchnorm_forward(x, gamma, beta, rm, rv, momentum=0.8)
        dx, dgamma, dbeta = O.batchnorm_backward(cache, dout)
        w, b = torch.tensor(gamma, requires_grad=True), torch.tensor(beta, requires_grad=True)
        t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
        ot = tF.batch_norm(xt, t_rm, t_rv, w, b, training=True, momentum=0.2, eps=1e-6)
        ot.backward(torch.from_numpy(dout))
        np.testing.assert_allclose(dgamma, w.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dbeta, b.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(new_rm, t_rm.numpy(), rtol=1e-12)
        # torch's running variance takes the unbiased batch variance, the book's the biased
        batch_var = x.var(axis=0)
        np.testing.assert_allclose(new_rv + 0.2 * batch_var * (n / (n - 1) - 1), t_rv.numpy(),
                                   rtol=1e-12)
        ev = O.batchnorm_forward(x, gamma, beta, new_rm, new_rv, train_flg=False)[0]
        ev_t = tF.batch_norm(torch.from_numpy(x), torch.tensor(new_rm), torch.tensor(new_rv),
                             torch.tensor(gamma), torch.tensor(beta), training=False, eps=1e-6)
        np.testing.assert_allclose(ev, ev_t.numpy(), rtol=1e-12, atol=1e-12)
    elif name == "softmax_with_loss":
        t = rng.integers(0, d, n)
        loss, y = O.softmax_with_loss_forward(x, t)
        # the book's loss, -mean(log(softmax + 1e-7)); its gradient is that of the exact loss
        ref = tF.nll_loss(torch.log(torch.softmax(xt, dim=1) + 1e-7), torch.from_numpy(t))
        np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
        tF.cross_entropy(xt, torch.from_numpy(t)).backward()
        np.testing.assert_allclose(O.softmax_with_loss_backward(y, t), xt.grad.numpy(),
                                   rtol=1e-12, atol=1e-14)
        return
    elif name == "affine":
        W, b = rng.standard_normal((d, 3)), rng.standard_normal(3)
        dout = rng.standard_normal((n, 3))
        out = O.affine_forward(x, W, b)
        dx, dW, db = O.affine_backward(x, W, dout)
        wt, bt = torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)
        ot = tF.linear(xt, wt.T, bt)
        ot.backward(torch.from_numpy(dout))
        np.testing.assert_allclose(dW, wt.grad.numpy(), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-13)
    else:
        out = getattr(O, f"{name}_forward")(x)
        dx = (O.relu_backward(x, dout) if name == "relu"
              else getattr(O, f"{name}_backward")(out, dout))
        ot = getattr(torch, name)(xt)
        ot.backward(torch.from_numpy(dout))
    np.testing.assert_allclose(out, ot.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# xpnet.functions
# ------------------------------------------------------------------------------------------

ELEMENTWISE = ["identity_function", "step_function", "sigmoid", "sigmoid_grad", "relu",
               "relu_grad", "tanh", "softmax"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_functions_match_the_book(backend, rng, dtype, name):
    x = host(rng, (4, 6), dtype, scale=3.0)
    if name in ("step_function", "relu_grad"):
        x[np.abs(x) < 1e-3] = 0.5  # x == 0: see test_relu_grad_at_zero_is_the_books
    got = getattr(F, name)(backend.asarray(x))
    check(backend, got, getattr(O, name)(x), dtype, err_msg=name)
    if name == "softmax":  # one sample: the last axis
        check(backend, F.softmax(backend.asarray(x[1])), O.softmax(x[1]), dtype)


def test_relu_grad_at_zero_is_the_books():
    """The book's common/functions.py relu_grad sets grad[x >= 0] = 1 (only its Relu layer
    gives 0 at x == 0)."""
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(F.relu_grad(x), O.relu_grad(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", ["int", "one-hot"])
@pytest.mark.parametrize("single", [False, True], ids=["batch", "one-sample"])
def test_cross_entropy_error_matches_the_book(backend, rng, dtype, labels, single):
    n, c = 6, 4
    z = rng.standard_normal((n, c))
    y = (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(dtype)
    t = rng.integers(0, c, n)
    if single:
        y, t = y[0], t[:1].reshape(())
    t_h = t if labels == "int" else np.eye(c, dtype=dtype)[t]
    got = F.cross_entropy_error(backend.asarray(y), backend.asarray(t_h))
    check(backend, got, O.cross_entropy_error(y, t_h), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mean_squared_error_and_one_hot_match_the_book(backend, rng, dtype):
    t = rng.integers(0, 10, 5)
    y = host(rng, (5, 10), dtype)
    t_hot = F.one_hot(backend.asarray(t), 10, dtype=backend.dtype(dtype))
    check(backend, t_hot, O.one_hot(t, 10), dtype)
    got = F.mean_squared_error(backend.asarray(y), t_hot)
    check(backend, got, O.mean_squared_error(y, O.one_hot(t, 10)), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", ["int", "one-hot"])
def test_labels_as_one_hot_matches_the_book(backend, rng, dtype, labels):
    y = host(rng, (5, 4), dtype)
    t = rng.integers(0, 4, 5)
    t_h = t if labels == "int" else np.eye(4, dtype=dtype)[t]
    got = F.labels_as_one_hot(backend.asarray(y), backend.asarray(t_h))
    check(backend, got, O.labels_as_one_hot(y, t_h), dtype)


# ------------------------------------------------------------------------------------------
# layers: forward and backward
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("x_shape", [(5, 6), (5, 2, 1, 3)], ids=["2d", "4d"])
def test_affine_matches_the_book(backend, rng, dtype, x_shape):
    W, b = host(rng, (6, 4), dtype), host(rng, (4,), dtype)
    x, dout = host(rng, x_shape, dtype), host(rng, (5, 4), dtype)
    layer = Affine(backend.asarray(W), backend.asarray(b))
    check(backend, layer.forward(backend.asarray(x)), O.affine_forward(x, W, b), dtype,
          "forward")
    dx, dW, db = O.affine_backward(x, W, dout)
    check(backend, layer.backward(backend.asarray(dout)), dx, dtype, "dx")
    check(backend, layer.dW, dW, dtype, "dW")
    check(backend, layer.db, db, dtype, "db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cls", [Relu, Sigmoid, Tanh], ids=lambda c: c.__name__)
def test_activation_layers_match_the_book(backend, rng, dtype, cls):
    x = host(rng, (4, 7), dtype, scale=3.0)
    x[0, :4] = [0.0, -0.0, 40.0, -40.0]  # Relu's kink (gradient 0 there), saturation
    dout = host(rng, (4, 7), dtype)
    name = cls.__name__.lower()
    out = getattr(O, f"{name}_forward")(x)
    dx = O.relu_backward(x, dout) if cls is Relu else getattr(O, f"{name}_backward")(out, dout)
    layer = cls()
    check(backend, layer.forward(backend.asarray(x)), out, dtype, "forward")
    check(backend, layer.backward(backend.asarray(dout)), dx, dtype, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("labels", ["int", "one-hot"])
def test_softmax_with_loss_matches_the_book(backend, rng, dtype, labels):
    n, c = 7, 5
    x = host(rng, (n, c), dtype, scale=2.0)
    t = rng.integers(0, c, n)
    t_h = t if labels == "int" else np.eye(c, dtype=dtype)[t]
    loss, y = O.softmax_with_loss_forward(x, t_h)
    layer = SoftmaxWithLoss()
    check(backend, layer.forward(backend.asarray(x), backend.asarray(t_h)), loss, dtype, "loss")
    check(backend, layer.backward(), O.softmax_with_loss_backward(y, t_h), dtype, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.9, 0.6])
@pytest.mark.parametrize("x_shape", [(8, 5), (6, 2, 3, 2)], ids=["2d", "4d"])
def test_batchnorm_matches_the_book(backend, rng, dtype, momentum, x_shape):
    """Training steps (output, xn, the backward pass, running statistics kept at the given
    fraction), then inference with the running statistics, which it leaves alone."""
    d = int(np.prod(x_shape[1:]))
    gamma, beta = host(rng, (d,), dtype, 0.3, 1.0), host(rng, (d,), dtype)
    layer = BatchNormalization(backend.asarray(gamma), backend.asarray(beta), momentum=momentum)
    rm = rv = None  # the book starts the running statistics at zero
    loose = 10.0  # float32: statistics and the backward pass are reductions over the batch
    for step in range(3):
        x = host(rng, x_shape, dtype, 3.0, step)
        dout = host(rng, x_shape, dtype)
        out, rm, rv, cache = O.batchnorm_forward(x, gamma, beta, rm, rv, momentum=momentum)
        check(backend, layer.forward(backend.asarray(x), train_flg=True), out, dtype,
              f"forward {step}", loose)
        check(backend, layer.xn, cache["xn"], dtype, f"xn {step}", loose)
        dx, dgamma, dbeta = O.batchnorm_backward(cache, dout)
        check(backend, layer.backward(backend.asarray(dout)), dx, dtype, f"dx {step}", loose)
        check(backend, layer.dgamma, dgamma, dtype, f"dgamma {step}", loose)
        check(backend, layer.dbeta, dbeta, dtype, f"dbeta {step}", loose)
        check(backend, layer.running_mean, rm, dtype, f"running_mean {step}", loose)
        check(backend, layer.running_var, rv, dtype, f"running_var {step}", loose)
    x = host(rng, x_shape, dtype)
    out = O.batchnorm_forward(x, gamma, beta, rm, rv, train_flg=False)[0]
    check(backend, layer.forward(backend.asarray(x), train_flg=False), out, dtype, "eval", loose)
    check(backend, layer.running_mean, rm, dtype, "running_mean after eval", loose)
    check(backend, layer.running_var, rv, dtype, "running_var after eval", loose)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_matches_the_book_for_its_mask(backend, rng, dtype):
    """Training multiplies by the layer's 0/1 mask (no rescaling), backward by the same mask
    (also one assigned by hand, as the book's attribute allows), inference by 1 - ratio."""
    ratio = 0.3
    x, dout = host(rng, (20, 30), dtype), host(rng, (20, 30), dtype)
    layer = Dropout(ratio, seed=3)
    out = layer.forward(backend.asarray(x), train_flg=True)
    mask = np.asarray(backend.to_numpy(layer.mask), dtype=np.float64)
    assert set(np.unique(mask).tolist()) == {0.0, 1.0}
    assert abs(mask.mean() - (1 - ratio)) < 0.06  # 600 draws: sd 0.019
    check(backend, out, O.dropout_forward(x, mask, ratio), dtype, "forward")
    check(backend, layer.backward(backend.asarray(dout)), O.dropout_backward(mask, dout), dtype,
          "dx")
    given = (rng.random((20, 30)) > ratio).astype(dtype)
    layer.mask = backend.asarray(given)
    check(backend, layer.backward(backend.asarray(dout)), O.dropout_backward(given, dout), dtype,
          "dx (given mask)")
    check(backend, layer.forward(backend.asarray(x), train_flg=False),
          O.dropout_forward(x, None, ratio, train_flg=False), dtype, "eval")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["Relu", "Dropout", "BatchNorm", "BatchNorm-scaled"])
def test_in_place_inference_matches_the_book(backend, rng, dtype, name):
    """``forward_inplace`` (what ``predict(train_flg=False)`` runs) gives the book's
    inference output; batch norm's ``scale`` multiplies it (a following dropout's 1 - ratio)."""
    x = host(rng, (6, 4), dtype, scale=2.0)
    xb = backend.asarray(x.copy())  # (written to; asarray may share the host memory)
    if name == "Relu":
        got, want = Relu().forward_inplace(xb), O.relu_forward(x)
    elif name == "Dropout":
        got = Dropout(0.3).forward_inplace(xb)
        want = O.dropout_forward(x, None, 0.3, train_flg=False)
    else:
        gamma, beta = host(rng, (4,), dtype, 0.3, 1.0), host(rng, (4,), dtype)
        rm, rv = host(rng, (4,), dtype), (rng.random(4) + 0.5).astype(dtype)
        layer = BatchNormalization(backend.asarray(gamma), backend.asarray(beta),
                                   running_mean=backend.asarray(rm),
                                   running_var=backend.asarray(rv))
        scale = 0.7 if name == "BatchNorm-scaled" else 1.0
        got = layer.forward_inplace(xb, scale=scale)
        want = scale * O.batchnorm_forward(x, gamma, beta, rm, rv, train_flg=False)[0]
    check(backend, got, want, dtype)


# ------------------------------------------------------------------------------------------
# chapter 7 and cs231n lecture 7: convolution, pooling, activations, normalizations
# ------------------------------------------------------------------------------------------

#: (N, C, H, W, FN, FH, FW, stride, pad): strides 1-2, pads 0-2, odd and non-square sizes
CONV_CASES = [(2, 3, 7, 6, 4, 3, 3, 1, 0), (2, 2, 7, 7, 3, 3, 3, 2, 1),
              (1, 3, 6, 9, 2, 2, 4, 2, 2), (3, 1, 5, 5, 5, 5, 5, 1, 2)]
#: (N, C, H, W, pool_h, pool_w, stride, pad)
POOL_CASES = [(2, 3, 6, 6, 2, 2, 2, 0), (2, 2, 7, 5, 3, 3, 1, 1), (1, 3, 9, 8, 3, 2, 2, 1),
              (2, 2, 7, 7, 3, 3, 2, 2)]


def _case_id(case):
    return "x".join(map(str, case))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_conv_functions_match_the_book(backend, rng, dtype, case):
    n, c, h, w, _, fh, fw, s, p = case
    x = host(rng, (n, c, h, w), dtype)
    col = O.im2col(x, fh, fw, s, p)
    check(backend, F.im2col(backend.asarray(x), fh, fw, s, p), col, dtype, "im2col")
    c_h = host(rng, col.shape, dtype)
    check(backend, F.col2im(backend.asarray(c_h), x.shape, fh, fw, s, p),
          O.col2im(c_h, x.shape, fh, fw, s, p), dtype, "col2im", factor=10.0)
    for size, f in ((h, fh), (w, fw)):  # the book's float, floored as its im2col does
        assert F.conv_output_size(size, f, s, p) == int(O.conv_output_size(size, f, s, p))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_max_pool_functions_match_the_definition(backend, rng, dtype, case):
    n, c, h, w, ph, pw, s, p = case
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)  # small integers: many ties
    out, arg = O.max_pool_forward(x, ph, pw, s, p)
    got, got_arg = F.max_pool2d(backend.asarray(x), ph, pw, s, p)
    check(backend, got, out, dtype, "out")
    np.testing.assert_array_equal(backend.to_numpy(got_arg), arg)
    dout = host(rng, out.shape, dtype)
    check(backend, F.max_pool2d_backward(backend.asarray(dout), got_arg, x.shape, ph, pw, s, p),
          O.max_pool_backward(x, ph, pw, s, p, dout), dtype, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=_case_id)
def test_convolution_matches_the_definition(backend, rng, dtype, case):
    n, c, h, w, fn, fh, fw, s, p = case
    x, W, b = host(rng, (n, c, h, w), dtype), host(rng, (fn, c, fh, fw), dtype, 0.5), host(
        rng, (fn,), dtype)
    layer = Convolution(backend.asarray(W), backend.asarray(b), stride=s, pad=p)
    out = O.convolution_forward(x, W, b, s, p)
    check(backend, layer.forward(backend.asarray(x)), out, dtype, "forward", factor=10.0)
    dout = host(rng, out.shape, dtype)
    dx, dW, db = O.convolution_backward(x, W, dout, s, p)
    check(backend, layer.backward(backend.asarray(dout)), dx, dtype, "dx", factor=10.0)
    check(backend, layer.dW, dW, dtype, "dW", factor=10.0)
    check(backend, layer.db, db, dtype, "db", factor=10.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=_case_id)
def test_pooling_matches_the_definition(backend, rng, dtype, case):
    n, c, h, w, ph, pw, s, p = case
    x = rng.integers(-3, 4, (n, c, h, w)).astype(dtype)  # ties: the first maximum wins
    layer = Pooling(ph, pw, stride=s, pad=p)
    out = O.max_pool_forward(x, ph, pw, s, p)[0]
    check(backend, layer.forward(backend.asarray(x)), out, dtype, "forward")
    dout = host(rng, out.shape, dtype)
    check(backend, layer.backward(backend.asarray(dout)),
          O.max_pool_backward(x, ph, pw, s, p, dout), dtype, "dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["LeakyRelu", "Elu", "PRelu", "PRelu-shared", "Maxout",
                                  "Maxout-4d"])
def test_lecture7_activations_match_their_formulas(backend, rng, dtype, name):
    x = host(rng, (4, 6, 2, 2) if name in ("PRelu", "Maxout-4d") else (5, 6), dtype, 3.0)
    x.flat[:4] = [0.0, -0.0, 40.0, -40.0]  # the kink (the negative side at 0), saturation
    params = {}
    if name == "LeakyRelu":
        layer = LeakyRelu(0.15)
        out = O.leaky_relu_forward(x, 0.15)
    elif name == "Elu":
        layer = Elu(0.8)
        out = O.elu_forward(x, 0.8)
    elif name.startswith("PRelu"):
        alpha = host(rng, (1 if name.endswith("shared") else 6,), dtype, 0.2, 0.25)
        layer = PRelu(backend.asarray(alpha))
        out = O.prelu_forward(x, alpha)
    else:
        pieces = 3
        W, b = host(rng, (int(np.prod(x.shape[1:])), 4 * pieces), dtype), host(rng, (12,), dtype)
        layer = Maxout(backend.asarray(W), backend.asarray(b), pieces=pieces)
        out = O.maxout_forward(x, W, b, pieces)
    check(backend, layer.forward(backend.asarray(x)), out, dtype, "forward", factor=10.0)
    dout = host(rng, out.shape, dtype)
    dx = layer.backward(backend.asarray(dout))
    if name == "LeakyRelu":
        want = O.leaky_relu_backward(x, dout, 0.15)
    elif name == "Elu":
        want = O.elu_backward(x, dout, 0.8)
    elif name.startswith("PRelu"):
        want, params["dalpha"] = O.prelu_backward(x, alpha, dout)
    else:
        want, params["dW"], params["db"] = O.maxout_backward(x, W, b, dout, pieces)
    check(backend, dx, want, dtype, "dx", factor=10.0)
    for attr, value in params.items():
        check(backend, getattr(layer, attr), value, dtype, attr, factor=10.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
@pytest.mark.parametrize("name", ["LayerNormalization", "GroupNormalization-1",
                                  "GroupNormalization-2", "InstanceNormalization"])
def test_row_normalizations_match_their_formulas(backend, rng, dtype, eps, name):
    """Training and inference are the same computation (no running statistics)."""
    shape = (5, 6) if name == "LayerNormalization" else (3, 4, 3, 2)
    c = shape[1]
    gamma, beta = host(rng, (c,), dtype, 0.3, 1.0), host(rng, (c,), dtype)
    g, b = backend.asarray(gamma), backend.asarray(beta)
    if name == "LayerNormalization":
        layer = LayerNormalization(g, b, eps=eps)
        forward, backward = (lambda x: O.layernorm_forward(x, gamma, beta, eps),
                             O.layernorm_backward)
    else:
        groups = c if name == "InstanceNormalization" else int(name[-1])
        layer = (InstanceNormalization(g, b, eps=eps) if name == "InstanceNormalization"
                 else GroupNormalization(g, b, groups, eps=eps))
        forward, backward = (lambda x: O.groupnorm_forward(x, gamma, beta, groups, eps),
                             O.groupnorm_backward)
    x = host(rng, shape, dtype, 2.0, 1.0)
    out, cache = forward(x)
    check(backend, layer.forward(backend.asarray(x), train_flg=True), out, dtype, "train",
          factor=10.0)
    check(backend, layer.xn, cache["xn"], dtype, "xn", factor=10.0)
    dout = host(rng, shape, dtype)
    dx, dgamma, dbeta = backward(cache, dout)
    check(backend, layer.backward(backend.asarray(dout)), dx, dtype, "dx", factor=10.0)
    check(backend, layer.dgamma, dgamma, dtype, "dgamma", factor=10.0)
    check(backend, layer.dbeta, dbeta, dtype, "dbeta", factor=10.0)
    check(backend, layer.forward(backend.asarray(x), train_flg=False), out, dtype, "eval",
          factor=10.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("momentum", [0.9, 0.6])
@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (2, 5, 4, 4)], ids=_case_id)
def test_spatial_batchnorm_matches_the_book_per_channel(backend, rng, dtype, momentum, shape):
    """The book's batch norm per channel: training steps (running statistics kept at the given
    fraction, biased variance), inference with the running statistics, and the in-place
    inference (with a scale) that networks run."""
    c = shape[1]
    gamma, beta = host(rng, (c,), dtype, 0.3, 1.0), host(rng, (c,), dtype)
    layer = SpatialBatchNormalization(backend.asarray(gamma), backend.asarray(beta),
                                      momentum=momentum, eps=1e-4)
    rm = rv = None
    for step in range(3):
        x, dout = host(rng, shape, dtype, 3.0, step), host(rng, shape, dtype)
        out, rm, rv, cache = O.spatial_batchnorm_forward(x, gamma, beta, rm, rv,
                                                         momentum=momentum, eps=1e-4)
        check(backend, layer.forward(backend.asarray(x), train_flg=True), out, dtype,
              f"forward {step}", 10.0)
        dx, dgamma, dbeta = O.spatial_batchnorm_backward(cache, dout)
        check(backend, layer.backward(backend.asarray(dout)), dx, dtype, f"dx {step}", 10.0)
        check(backend, layer.dgamma, dgamma, dtype, f"dgamma {step}", 10.0)
        check(backend, layer.dbeta, dbeta, dtype, f"dbeta {step}", 10.0)
        check(backend, layer.running_mean, rm, dtype, f"running_mean {step}", 10.0)
        check(backend, layer.running_var, rv, dtype, f"running_var {step}", 10.0)
    x = host(rng, shape, dtype)
    want = O.spatial_batchnorm_forward(x, gamma, beta, rm, rv, train_flg=False, eps=1e-4)[0]
    check(backend, layer.forward(backend.asarray(x), train_flg=False), want, dtype, "eval", 10.0)
    check(backend, layer.forward_inplace(backend.asarray(x.copy())), want, dtype, "in place",
          10.0)
    check(backend, layer.forward_inplace(backend.asarray(x.copy()), scale=0.7), 0.7 * want,
          dtype, "in place, scaled", 10.0)
    check(backend, layer.running_mean, rm, dtype, "running_mean after eval", 10.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inverted_dropout_matches_its_formula(backend, rng, dtype):
    ratio = 0.3
    x, dout = host(rng, (20, 30), dtype), host(rng, (20, 30), dtype)
    layer = Dropout(ratio, inverted=True, seed=5)
    out = layer.forward(backend.asarray(x), train_flg=True)
    mask = np.asarray(backend.to_numpy(layer.mask), dtype=np.float64)
    assert set(np.unique(mask).tolist()) == {0.0, 1.0}
    check(backend, out, O.inverted_dropout_forward(x, mask, ratio), dtype, "forward")
    check(backend, layer.backward(backend.asarray(dout)),
          O.inverted_dropout_backward(mask, dout, ratio), dtype, "dx")
    check(backend, layer.forward(backend.asarray(x), train_flg=False),
          O.inverted_dropout_forward(x, None, ratio, train_flg=False), dtype, "eval")
    check(backend, layer.forward_inplace(backend.asarray(x.copy())), x, dtype, "in place")


#: every public layer and function, and the test comparing it with its oracle
LAYER_TESTS = {
    "Affine": test_affine_matches_the_book,
    "BatchNormalization": test_batchnorm_matches_the_book,
    "Dropout": test_dropout_matches_the_book_for_its_mask,
    "Relu": test_activation_layers_match_the_book,
    "Sigmoid": test_activation_layers_match_the_book,
    "Tanh": test_activation_layers_match_the_book,
    "SoftmaxWithLoss": test_softmax_with_loss_matches_the_book,
    "Convolution": test_convolution_matches_the_definition,
    "Pooling": test_pooling_matches_the_definition,
    **dict.fromkeys(["LeakyRelu", "Elu", "PRelu", "Maxout"],
                    test_lecture7_activations_match_their_formulas),
    **dict.fromkeys(["LayerNormalization", "GroupNormalization", "InstanceNormalization"],
                    test_row_normalizations_match_their_formulas),
    "SpatialBatchNormalization": test_spatial_batchnorm_matches_the_book_per_channel,
}
FUNCTION_TESTS = {
    **dict.fromkeys(ELEMENTWISE, test_functions_match_the_book),
    "cross_entropy_error": test_cross_entropy_error_matches_the_book,
    "mean_squared_error": test_mean_squared_error_and_one_hot_match_the_book,
    "one_hot": test_mean_squared_error_and_one_hot_match_the_book,
    "labels_as_one_hot": test_labels_as_one_hot_matches_the_book,
    **dict.fromkeys(["im2col", "col2im", "conv_output_size"], test_conv_functions_match_the_book),
    **dict.fromkeys(["max_pool2d", "max_pool2d_backward"],
                    test_max_pool_functions_match_the_definition),
}


def test_every_public_layer_and_function_has_an_oracle_test():
    """A layer or function added to xpnet fails here until it is compared with an oracle."""
    assert set(xpnet.layers.__all__) - {"Layer"} == set(LAYER_TESTS)
    assert set(F.__all__) == set(FUNCTION_TESTS)
    assert xpnet.optim.OPTIMIZERS == OPTIMIZERS


# ------------------------------------------------------------------------------------------
# optimizers: plain dicts and a network's flat parameters, portable and fused
# ------------------------------------------------------------------------------------------

OPTIMIZERS = {"SGD": SGD, "Momentum": Momentum, "Nesterov": Nesterov, "AdaGrad": AdaGrad,
              "RMSprop": RMSprop, "Adam": Adam, "AdamW": AdamW}
#: hyperparameters away from the defaults (a swapped argument shows up)
CUSTOM = {
    "SGD": {"lr": 0.1},
    "Momentum": {"lr": 0.05, "momentum": 0.8},
    "Nesterov": {"lr": 0.05, "momentum": 0.7},
    "AdaGrad": {"lr": 0.3, "eps": 1e-3},
    "RMSprop": {"lr": 0.02, "decay_rate": 0.9, "eps": 1e-3},
    "Adam": {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3},
    "AdamW": {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3, "weight_decay": 0.3},
}
PATHS = fused_paths(list(OPTIMIZERS), lambda n: (OPTIMIZER_KERNEL_SLOTS[n],))


def test_kernel_slot_table_is_what_the_optimizers_call(monkeypatch):
    """conftest.OPTIMIZER_KERNEL_SLOTS decides which fused cases exist: it must name the slot
    each optimizer really calls (a new kernel would otherwise never be tested fused)."""
    called = []
    kernels = xpnet.backend.Kernels()
    for slot in dir(kernels):
        if not slot.startswith("_") and getattr(kernels, slot) is None:
            setattr(kernels, slot, lambda *args, slot=slot: called.append(slot))
    # where xpnet.optim finds a backend's kernels (adjust here if that moves)
    monkeypatch.setattr(xpnet.optim, "kernels_of", lambda x: kernels)
    for name, cls in OPTIMIZERS.items():
        called.clear()
        cls(fused=True).update({"w": np.ones(3)}, {"w": np.ones(3)})
        slot = OPTIMIZER_KERNEL_SLOTS[name]
        assert called == ([] if slot is None else [slot]), name


@pytest.mark.parametrize("hp", ["defaults", "custom"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend, name, fused", PATHS, indirect=["backend"])
def test_optimizer_on_a_dict_matches_the_book(backend, rng, name, fused, dtype, hp):
    """30 updates of a plain dict with random gradients, in place, against the book's formula
    (the book's defaults, then other values)."""
    kwargs = {} if hp == "defaults" else CUSTOM[name]
    init = {k: host(rng, s, dtype) for k, s in SHAPES.items()}
    params = {k: backend.asarray(v.copy()) for k, v in init.items()}
    arrays = dict(params)
    opt = OPTIMIZERS[name](**kwargs, fused=fused)
    oracle = O.OptimizerRun(O.OPTIMIZER_ORACLES[name], init, **kwargs)
    for _ in range(30):
        g = {k: host(rng, s, dtype, shift=0.3) for k, s in SHAPES.items()}
        opt.update(params, {k: backend.asarray(v) for k, v in g.items()})
        oracle.update(g)
    for k in params:
        assert params[k] is arrays[k]  # updated in place
        assert not np.allclose(oracle.params[k], init[k])
        check(backend, params[k], oracle.params[k], dtype, k, factor=5.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend, name, fused", PATHS, indirect=["backend"])
def test_optimizer_on_network_params_matches_the_book(backend, rng, name, fused, dtype):
    """``opt.update(net.params, net.gradient(x, t))``: the whole-buffer path networks take,
    step after step, against the book's formula fed the same gradients."""
    net = xpnet.MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, weight_decay_lambda=0.05,
                                    dtype=dtype, seed=2, backend=backend)
    assert net.params.flat_view() is not None  # (else this would test the per-key path)
    kwargs = CUSTOM[name]
    opt = OPTIMIZERS[name](**kwargs, fused=fused)
    oracle = O.OptimizerRun(O.OPTIMIZER_ORACLES[name],
                            {k: backend.to_numpy(v) for k, v in net.params.items()}, **kwargs)
    x, t = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    for step in range(12):
        batch = slice(5 * (step % 2), 5 * (step % 2) + 5)
        grads = net.gradient(x[batch], t[batch])
        oracle.update({k: backend.to_numpy(g).copy() for k, g in grads.items()})
        opt.update(net.params, grads)
        for k in net.params:
            check(backend, net.params[k], oracle.params[k], dtype, f"{k} step {step}", 5.0)
    for i in (1, 2, 3):
        assert net.params[f"W{i}"] is net.layers[f"Affine{i}"].W


# ------------------------------------------------------------------------------------------
# a whole network
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("batchnorm, dropout", [(True, False), (True, True), (False, False)],
                         ids=["bn", "bn-dropout", "plain"])
def test_network_gradient_is_the_books_backprop(backend, rng, activation, batchnorm, dropout):
    """``MultiLayerNetExtend.gradient`` (float64) against the book's layers composed by the
    oracle: loss and every gradient.  With dropout the oracle uses the masks the network drew
    (checked to be 0/1 masks)."""
    lam = 0.1
    net = xpnet.MultiLayerNetExtend(5, [6, 4], 3, activation=activation, use_batchnorm=batchnorm,
                                    use_dropout=dropout, dropout_ratio=0.3,
                                    weight_decay_lambda=lam, dtype="float64", seed=5,
                                    backend=backend)
    for p in net.params.values():  # gamma != 1, beta != 0, biases != 0
        p += backend.asarray(0.3 * rng.standard_normal(tuple(p.shape)), dtype="float64")
    params = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    x, t = rng.standard_normal((8, 5)), rng.integers(0, 3, 8)
    grads = net.gradient(x, t)
    masks = None
    if dropout:
        masks = [np.asarray(backend.to_numpy(net.layers[f"Dropout{i}"].mask)) for i in (1, 2)]
        for m in masks:
            assert set(np.unique(m).tolist()) == {0.0, 1.0}
    loss, want = O.multi_layer_net_extend_gradient(
        params, x, t, 2, activation=activation, batchnorm=batchnorm, dropout_masks=masks,
        weight_decay_lambda=lam)
    check(backend, net.last_loss, loss, "float64", "loss")
    assert set(grads) == set(want)
    for k in want:
        check(backend, grads[k], want[k], "float64", k, factor=10.0)
