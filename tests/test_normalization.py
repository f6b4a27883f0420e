"""cs231n lecture 7's normalizations (issue 10): layer, group, instance and spatial batch norm.

Oracles, on every backend: float64 numerical gradients; ``torch.nn.functional.layer_norm`` /
``group_norm`` / ``instance_norm`` / ``batch_norm`` with autograd where torch is installed; and
the NumPy transcriptions of ``oracles.py`` (the forward formulas and the book's step-by-step
batch-norm backward along rows), compared with every layer in ``test_oracles.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
from conftest import assert_close, assert_on_backend
from test_layers import check_layer_gradients
from xpnet.layers import (
    BatchNormalization,
    GroupNormalization,
    InstanceNormalization,
    LayerNormalization,
    SpatialBatchNormalization,
)


def layer_norm_ref(x, gamma, beta, eps, dout):
    out, cache = O.layernorm_forward(x, gamma, beta, eps)
    return (out, *O.layernorm_backward(cache, dout))


def group_norm_ref(x, gamma, beta, groups, eps, dout):
    out, cache = O.groupnorm_forward(x, gamma, beta, groups, eps)
    return (out, *O.groupnorm_backward(cache, dout))


def _affine(rng, c, dtype="float64"):
    return ((1.0 + 0.3 * rng.standard_normal(c)).astype(dtype),
            rng.standard_normal(c).astype(dtype))


# layer: (name, input shape, make(gamma, beta, eps), oracle(x, gamma, beta, eps, dout))
CASES = [
    ("layer-4x6", (4, 6), lambda g, b, e: LayerNormalization(g, b, eps=e), layer_norm_ref),
    ("layer-3x10", (3, 10), lambda g, b, e: LayerNormalization(g, b, e), layer_norm_ref),
    ("group1", (2, 6, 3, 4), lambda g, b, e: GroupNormalization(g, b, 1, eps=e),
     lambda x, g, b, e, d: group_norm_ref(x, g, b, 1, e, d)),
    ("group2", (3, 4, 3, 3), lambda g, b, e: GroupNormalization(g, b, num_groups=2, eps=e),
     lambda x, g, b, e, d: group_norm_ref(x, g, b, 2, e, d)),
    ("group3", (2, 6, 2, 5), lambda g, b, e: GroupNormalization(g, b, 3, e),
     lambda x, g, b, e, d: group_norm_ref(x, g, b, 3, e, d)),
    ("instance", (2, 3, 4, 5), lambda g, b, e: InstanceNormalization(g, b, eps=e),
     lambda x, g, b, e, d: group_norm_ref(x, g, b, x.shape[1], e, d)),
    ("instance-1x2x3x3", (1, 2, 3, 3), lambda g, b, e: InstanceNormalization(g, b, e),
     lambda x, g, b, e, d: group_norm_ref(x, g, b, x.shape[1], e, d)),
]
CASE_IDS = [c[0] for c in CASES]


def _data(rng, shape, dtype="float64"):
    return ((2.0 * rng.standard_normal(shape) + 1.0).astype(dtype),
            rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("name, shape, make, ref", CASES, ids=CASE_IDS)
def test_row_norms_by_reference_and_shapes(backend, rng, name, shape, make, ref):
    x, dout = _data(rng, shape)
    gamma, beta = _affine(rng, shape[1])
    g_be, b_be = backend.asarray(gamma), backend.asarray(beta)
    layer = make(g_be, b_be, 1e-2)
    assert layer.gamma is g_be and layer.beta is b_be
    x_be, dout_be = backend.asarray(x), backend.asarray(dout)
    out = layer.forward(x_be)
    dx = layer.backward(dout_be)
    for what, got, r in zip(("out", "dx", "dgamma", "dbeta"),
                            (out, dx, layer.dgamma, layer.dbeta), ref(x, gamma, beta, 1e-2, dout),
                            strict=True):
        assert_on_backend(backend, got, dtype="float64", shape=r.shape)
        np.testing.assert_allclose(backend.to_numpy(got), r, rtol=1e-12, atol=1e-12,
                                   err_msg=what)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)


@pytest.mark.parametrize("name, shape, make, ref", CASES, ids=CASE_IDS)
def test_row_norms_numerical_gradients(backend, rng, name, shape, make, ref):
    x, dout = _data(rng, shape)
    gamma, beta = _affine(rng, shape[1])
    layer = make(backend.asarray(gamma), backend.asarray(beta), 1e-3)
    check_layer_gradients(backend, layer, x, dout,
                          params=[("gamma", "dgamma"), ("beta", "dbeta")], train_flg=True)


def _torch_ref(name, x, gamma, beta, eps, dout):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    if name.startswith("layer"):
        out = tF.layer_norm(xt, (x.shape[1],), wt, bt, eps)
    elif name.startswith("group"):
        out = tF.group_norm(xt, int(name[5]), wt, bt, eps)
    else:
        out = tF.instance_norm(xt, weight=wt, bias=bt, eps=eps)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, shape, make, ref", CASES, ids=CASE_IDS)
def test_row_norms_against_torch(backend, rng, name, shape, make, ref, dtype):
    eps = 1e-3  # not the default
    x, dout = _data(rng, shape, dtype)
    gamma, beta = _affine(rng, shape[1], dtype)
    refs = _torch_ref(name, x, gamma, beta, eps, dout)
    layer = make(backend.asarray(gamma), backend.asarray(beta), eps)
    out = layer.forward(backend.asarray(x), True)
    dx = layer.backward(backend.asarray(dout))
    ev = layer.forward(backend.asarray(x), False)
    tol = dict(rtol=1e-11, atol=1e-11) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)
    for what, got, r in zip(("out", "dx", "dgamma", "dbeta"),
                            (out, dx, layer.dgamma, layer.dbeta), refs, strict=True):
        assert_on_backend(backend, got, dtype=dtype, shape=r.shape)
        np.testing.assert_allclose(backend.to_numpy(got), r, **tol, err_msg=what)
    np.testing.assert_allclose(backend.to_numpy(ev), refs[0], **tol, err_msg="eval")


def test_instance_norm_is_group_norm_with_one_channel_per_group(backend, rng):
    x, dout = _data(rng, (2, 4, 3, 3))
    gamma, beta = _affine(rng, 4)
    a = InstanceNormalization(backend.asarray(gamma), backend.asarray(beta))
    b = GroupNormalization(backend.asarray(gamma), backend.asarray(beta), num_groups=4)
    c = GroupNormalization(backend.asarray(gamma), backend.asarray(beta), num_groups=2)
    outs = [backend.to_numpy(m.forward(backend.asarray(x))) for m in (a, b, c)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])  # fewer groups: a different normalization
    assert a.num_groups == 4 and a.eps == 1e-5


def test_row_norms_write_into_out_buffers(backend, rng):
    x, dout = _data(rng, (3, 4, 2, 2))
    gamma, beta = _affine(rng, 4)
    layer = GroupNormalization(backend.asarray(gamma), backend.asarray(beta), 2)
    layer.dgamma_out = backend.asarray(np.zeros(4))
    layer.dbeta_out = backend.asarray(np.zeros(4))
    layer.forward(backend.asarray(x))
    layer.backward(backend.asarray(dout))
    assert layer.dgamma is layer.dgamma_out and layer.dbeta is layer.dbeta_out
    _, _, dg, db = group_norm_ref(x, gamma, beta, 2, 1e-5, dout)
    assert_close(backend, layer.dgamma_out, dg, rtol=1e-12, atol=1e-12)
    assert_close(backend, layer.dbeta_out, db, rtol=1e-12, atol=1e-12)


def test_row_norms_std_attribute(backend, rng):
    x = 3.0 * rng.standard_normal((5, 4))
    layer = LayerNormalization(backend.asarray(np.ones(4)), backend.asarray(np.zeros(4)),
                               eps=0.5)
    assert layer.std is None
    layer.forward(backend.asarray(x))
    np.testing.assert_allclose(backend.to_numpy(layer.std)[:, 0], np.sqrt(x.var(axis=1) + 0.5),
                               rtol=1e-13)


# ------------------------------------------------------------------------------------------
# SpatialBatchNormalization
# ------------------------------------------------------------------------------------------


def test_spatial_bn_numerical_gradients(backend, rng):
    x, dout = _data(rng, (3, 2, 2, 3))
    gamma, beta = _affine(rng, 2)
    layer = SpatialBatchNormalization(backend.asarray(gamma), backend.asarray(beta))
    check_layer_gradients(backend, layer, x, dout,
                          params=[("gamma", "dgamma"), ("beta", "dbeta")], train_flg=True)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (2, 5, 4, 4)], ids=["4x3x3x2", "2x5x4x4"])
def test_spatial_bn_against_torch(backend, rng, shape, dtype):
    torch = pytest.importorskip("torch")
    tF = torch.nn.functional
    n, c, h, w = shape
    eps = 1e-4
    gamma, beta = _affine(rng, c, dtype)
    layer = SpatialBatchNormalization(backend.asarray(gamma), backend.asarray(beta),
                                      momentum=0.9, eps=eps)
    t_rm = torch.zeros(c, dtype=torch.float64)
    t_rv = torch.zeros(c, dtype=torch.float64)
    wt = torch.tensor(gamma, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(beta, dtype=torch.float64, requires_grad=True)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    for _ in range(3):
        x, dout = _data(rng, shape, dtype)
        out = layer.forward(backend.asarray(x), train_flg=True)
        dx = layer.backward(backend.asarray(dout))
        xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        wt.grad = bt.grad = None
        ot = tF.batch_norm(xt, t_rm, t_rv, wt, bt, training=True, momentum=0.1, eps=eps)
        ot.backward(torch.tensor(dout, dtype=torch.float64))
        for what, got, r in (("out", out, ot.detach()), ("dx", dx, xt.grad),
                             ("dgamma", layer.dgamma, wt.grad), ("dbeta", layer.dbeta, bt.grad)):
            assert_on_backend(backend, got, dtype=dtype, shape=tuple(r.shape))
            np.testing.assert_allclose(backend.to_numpy(got), r.numpy(), **tol, err_msg=what)
    m = n * h * w
    rm = backend.to_numpy(layer.running_mean)
    rv = backend.to_numpy(layer.running_var)
    np.testing.assert_allclose(rm, t_rm.numpy(), **tol)
    # torch's running variance is the unbiased one: m / (m - 1) times the book's
    np.testing.assert_allclose(rv * m / (m - 1), t_rv.numpy(), **tol)
    x, _ = _data(rng, shape, dtype)
    ev = layer.forward(backend.asarray(x), train_flg=False)
    ref = tF.batch_norm(torch.tensor(x, dtype=torch.float64), torch.tensor(rm, dtype=torch.float64),
                        torch.tensor(rv, dtype=torch.float64), wt.detach(), bt.detach(),
                        training=False, eps=eps)
    assert_on_backend(backend, ev, dtype=dtype, shape=shape)
    np.testing.assert_allclose(backend.to_numpy(ev), ref.numpy(), **tol, err_msg="eval")


def test_spatial_bn_is_per_channel_unlike_the_books(backend, rng):
    x, _ = _data(rng, (4, 2, 3, 3))
    ones, zeros = backend.asarray(np.ones(2)), backend.asarray(np.zeros(2))
    out = backend.to_numpy(SpatialBatchNormalization(ones, zeros).forward(backend.asarray(x)))
    # every channel has mean 0 and variance ~1 over (N, H, W); single positions do not
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)
    assert np.abs(out.mean(axis=0)).max() > 0.1
    book = BatchNormalization(backend.asarray(np.ones(18)), backend.asarray(np.zeros(18)))
    np.testing.assert_allclose(backend.to_numpy(book.forward(backend.asarray(x))).mean(axis=0),
                               0.0, atol=1e-12)


# ------------------------------------------------------------------------------------------
# dtype, bad arguments
# ------------------------------------------------------------------------------------------


def _all_layers(backend, dtype, c=4):
    def g():
        return backend.asarray(np.ones(c, dtype=dtype))

    def b():
        return backend.asarray(np.zeros(c, dtype=dtype))

    return [
        ((5, c), LayerNormalization(g(), b())),
        ((2, c, 3, 3), GroupNormalization(g(), b(), 2)),
        ((2, c, 3, 3), InstanceNormalization(g(), b())),
        ((2, c, 3, 3), SpatialBatchNormalization(g(), b())),
    ]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_norms_keep_dtype_and_do_not_mutate(backend, rng, dtype):
    for shape, layer in _all_layers(backend, dtype):
        x_h, dout_h = _data(rng, shape, dtype)
        x, dout = backend.asarray(x_h), backend.asarray(dout_h)
        for train in (True, False):
            out = layer.forward(x, train)
            assert_on_backend(backend, out, dtype=dtype, shape=shape)
        layer.forward(x, True)
        dx = layer.backward(dout)
        assert_on_backend(backend, dx, dtype=dtype, shape=shape)
        for a in (layer.dgamma, layer.dbeta):
            assert_on_backend(backend, a, dtype=dtype, shape=(4,))
        np.testing.assert_array_equal(backend.to_numpy(x), x_h)
        np.testing.assert_array_equal(backend.to_numpy(dout), dout_h)


def test_norms_bad_arguments(backend):
    g = backend.asarray(np.ones(4))
    b = backend.asarray(np.zeros(4))
    for make in (lambda e: LayerNormalization(g, b, eps=e),
                 lambda e: GroupNormalization(g, b, 2, eps=e),
                 lambda e: InstanceNormalization(g, b, eps=e),
                 lambda e: SpatialBatchNormalization(g, b, eps=e)):
        for bad in (0.0, -1e-5, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="eps must be (> 0|a finite number)"):
                make(bad)
        with pytest.raises(TypeError, match="eps must be a real number"):
            make("small")
    for cls in (LayerNormalization, InstanceNormalization, SpatialBatchNormalization):
        with pytest.raises(ValueError, match="gamma and beta must be arrays of the same shape"):
            cls(g, backend.asarray(np.zeros(3)))
        with pytest.raises(ValueError, match=r"same shape \(D,\)"):
            cls(backend.asarray(np.ones((2, 2))), backend.asarray(np.zeros((2, 2))))
    with pytest.raises(ValueError, match="num_groups must be a positive divisor of the 4"):
        GroupNormalization(g, b, 3)
    with pytest.raises(ValueError, match="num_groups"):
        GroupNormalization(g, b, 0)
    with pytest.raises(TypeError, match="num_groups must be an integer"):
        GroupNormalization(g, b, 2.0)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(4,\)"):
        SpatialBatchNormalization(g, b, running_mean=backend.asarray(np.zeros(3)))

    ln = LayerNormalization(g, b)
    with pytest.raises(ValueError, match=r"LayerNormalization expects input of shape \(N, 4\)"):
        ln.forward(backend.asarray(np.zeros((2, 4, 1, 1))))
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        ln.forward(backend.asarray(np.zeros((2, 5))))
    for layer in (GroupNormalization(g, b, 2), InstanceNormalization(g, b),
                  SpatialBatchNormalization(g, b)):
        with pytest.raises(ValueError, match=r"expects input of shape \(N, 4, H, W\)"):
            layer.forward(backend.asarray(np.zeros((2, 4))))
        with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
            layer.forward(backend.asarray(np.zeros((2, 3, 2, 2))))
        assert layer.dgamma is None
    sbn = SpatialBatchNormalization(g, b)
    with pytest.raises(ValueError, match=r"\(N, 4, H, W\)"):
        sbn.forward_inplace(backend.asarray(np.zeros((2, 16))))
    assert sbn.running_mean is None  # refused before any state changed
