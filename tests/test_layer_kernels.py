"""Whole-layer kernels (``Kernels.affine``, ``relu``/``relu_backward``, ``batchnorm_train``/
``batchnorm_backward``, ``softmax_cross_entropy``/``..._backward``, the generator's
``bernoulli_mask``) against the book's formulas in ``tests/oracles.py``, on every library that
has them -- and the layers that use them equal to the same layers run by the portable code.

The portable code is the reference; a kernel may only save calls (on a GPU each call is a kernel
launch), never change a number beyond rounding.  (The layers that call these kernels are checked
against the same oracles on every backend in ``tests/test_oracles.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import assert_close
from xpnet.backend import kernels_for
from xpnet.layers import BatchNormalization

SLOTS = ("affine", "relu", "batchnorm_train", "softmax_cross_entropy")
LIBRARIES = [name for name in xpnet.backend.BACKEND_NAMES
             if any(getattr(kernels_for(name), s) is not None for s in SLOTS)]


@pytest.fixture(params=LIBRARIES)
def kbackend(request, monkeypatch):
    """A backend with layer kernels; NumPy's split work over threads only on large arrays
    (they decline below that): here they take tiny ones, on three threads."""
    try:
        be = xpnet.get_backend(request.param)
    except xpnet.BackendUnavailableError as exc:
        pytest.skip(f"backend {request.param!r} unavailable: {exc}")
    if be.name == "numpy":
        import xpnet.backend._threads as T
        from xpnet.backend._numpy import NumpyKernels

        monkeypatch.setattr(NumpyKernels, "min_per_thread", 4)
        monkeypatch.setattr(T, "_num_threads", 3)
    return be


def _kernel(be, slot):
    k = getattr(be.kernels, slot)
    if k is None:
        pytest.skip(f"{be.name} has no {slot} kernel")
    return k


DTYPES = {"float64": (1e-12, 1e-12), "float32": (2e-5, 2e-6)}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_affine_kernel(kbackend, rng, dtype):
    rtol, atol = DTYPES[dtype]
    x, W, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 3)), rng.standard_normal(3)
    got = _kernel(kbackend, "affine")(*(kbackend.asarray(a, dtype=dtype) for a in (x, W, b)))
    assert_close(kbackend, got, O.affine_forward(x, W, b), rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_relu_kernels(kbackend, rng, dtype):
    x = rng.standard_normal((6, 9))
    x[0, :3] = 0.0  # the book's convention at 0: no gradient
    dout = rng.standard_normal((6, 9))
    xd = kbackend.asarray(x, dtype=dtype)
    out = _kernel(kbackend, "relu")(xd)
    assert_close(kbackend, out, O.relu_forward(x))
    got = kbackend.kernels.relu_backward(kbackend.asarray(dout, dtype=dtype), out)
    assert_close(kbackend, got, O.relu_backward(x, dout))
    np.testing.assert_array_equal(kbackend.to_numpy(xd), x.astype(dtype))  # not written


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("with_out", [False, True])
def test_batchnorm_kernels(kbackend, rng, dtype, with_out):
    rtol, atol = DTYPES[dtype]
    n, d, eps, momentum = 11, 4, 1e-6, 0.9
    x = rng.standard_normal((n, d)) * 3 + 1
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    rm, rv = rng.standard_normal(d), rng.random(d)
    dout = rng.standard_normal((n, d))
    a = {k: kbackend.asarray(v, dtype=dtype) for k, v in
         dict(x=x, gamma=gamma, beta=beta, rm=rm, rv=rv, dout=dout).items()}
    out, mean, inv_std, new_rm, new_rv = _kernel(kbackend, "batchnorm_train")(
        a["x"], a["gamma"], a["beta"], eps, a["rm"], a["rv"], momentum)
    want, want_rm, want_rv, cache = O.batchnorm_forward(x, gamma, beta, rm, rv,
                                                        momentum=momentum, eps=eps)
    for got, ref in ((out, want), (mean, x.mean(axis=0)), (inv_std, 1.0 / cache["std"]),
                     (new_rm, want_rm), (new_rv, want_rv)):
        assert_close(kbackend, got, ref, rtol=rtol, atol=atol)
    # out of place: the old running statistics are untouched
    assert_close(kbackend, a["rm"], rm.astype(dtype), rtol=0, atol=0)
    dg_out = kbackend.asarray(np.full(d, np.nan), dtype=dtype) if with_out else None
    db_out = kbackend.asarray(np.full(d, np.nan), dtype=dtype) if with_out else None
    dx, dgamma, dbeta = kbackend.kernels.batchnorm_backward(
        a["dout"], a["x"], mean, inv_std, a["gamma"], eps, dg_out, db_out)
    want_dx, want_dg, want_db = O.batchnorm_backward(cache, dout)
    for got, ref in ((dx, want_dx), (dgamma, want_dg), (dbeta, want_db)):
        assert_close(kbackend, got, ref, rtol=10 * rtol, atol=10 * atol)
    if with_out:
        assert dgamma is dg_out and dbeta is db_out


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_softmax_cross_entropy_kernels(kbackend, rng, dtype):
    rtol, atol = DTYPES[dtype]
    x = rng.standard_normal((9, 5)) * 4
    t = rng.integers(0, 5, 9)
    fused = _kernel(kbackend, "softmax_cross_entropy")(
        kbackend.asarray(x, dtype=dtype), kbackend.asarray(t))
    assert fused is not None
    loss, y = fused
    want_loss, want_y = O.softmax_with_loss_forward(x, t)
    assert_close(kbackend, y, want_y, rtol=rtol, atol=atol)
    assert_close(kbackend, loss, want_loss, rtol=rtol, atol=atol)
    for dout in (1, 0.5):
        got = kbackend.kernels.softmax_cross_entropy_backward(y, kbackend.asarray(t), dout)
        assert_close(kbackend, got, O.softmax_with_loss_backward(want_y, t, dout),
                     rtol=rtol, atol=atol)
    # one-hot labels: declined, the portable code runs
    hot = kbackend.asarray(np.eye(5)[t], dtype=dtype)
    assert kbackend.kernels.softmax_cross_entropy(kbackend.asarray(x, dtype=dtype), hot) is None


def test_bernoulli_mask_is_zeros_and_ones_at_the_keep_rate(kbackend):
    gen = kbackend.random(3)
    mask = kbackend.to_numpy(gen.bernoulli_mask((200, 300), keep=0.8, dtype="float32"))
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert abs(mask.mean() - 0.8) < 0.01  # 60,000 draws: 5 standard deviations is 0.008
    again = kbackend.to_numpy(kbackend.random(3).bernoulli_mask((200, 300), keep=0.8))
    np.testing.assert_array_equal(mask, again)  # seeded


def test_batchnorm_book_attributes_on_the_kernel_path(kbackend, rng):
    """``xc``, ``std`` and ``xn`` (the book's names) mean the same when a kernel ran."""
    _kernel(kbackend, "batchnorm_train")
    x = rng.standard_normal((8, 3))
    bn = BatchNormalization(kbackend.asarray(np.ones(3)), kbackend.asarray(np.zeros(3)))
    bn.forward(kbackend.asarray(x))
    std = np.sqrt(x.var(axis=0) + bn.eps)
    assert_close(kbackend, bn.xc, x - x.mean(axis=0))
    assert_close(kbackend, bn.std, std)
    assert_close(kbackend, bn.xn, (x - x.mean(axis=0)) / std)


def test_numpy_layer_kernels_decline_small_arrays_and_one_thread(monkeypatch):
    """Splitting a layer over threads gains nothing on small arrays or one thread: NumPy's
    kernels return None there and the portable code runs."""
    import xpnet.backend._threads as T

    k = kernels_for("numpy")
    x = np.ones((100, 100), np.float32)
    d = np.ones(100, np.float32)
    monkeypatch.setattr(T, "_num_threads", 2)
    assert k.relu(x) is None  # 10,000 values: below 2 * min_per_thread
    assert k.batchnorm_train(x, d, d, 1e-6, d, d, 0.9) is None
    big = np.ones((1024, 1024), np.float32)
    assert k.relu(big) is not None
    monkeypatch.setattr(T, "_num_threads", 1)
    assert k.relu(big) is None


def test_numpy_relu_kernels_on_non_contiguous_feature_maps(monkeypatch):
    """A 4-D input that is a transposed view (spatial batch norm's output is one): the result
    lands in the returned array, not in a temporary copy."""
    import xpnet.backend._threads as T
    from xpnet.backend._numpy import NumpyKernels

    monkeypatch.setattr(NumpyKernels, "min_per_thread", 4)
    monkeypatch.setattr(T, "_num_threads", 2)
    rng = np.random.default_rng(1)
    x = np.transpose(rng.standard_normal((6, 5, 4, 3)), (0, 3, 1, 2))  # (6, 3, 5, 4), a view
    dout = np.transpose(rng.standard_normal((6, 5, 4, 3)), (0, 3, 1, 2))
    k = kernels_for("numpy")
    out = k.relu(x)
    np.testing.assert_array_equal(out, O.relu_forward(x))
    np.testing.assert_array_equal(k.relu_backward(dout, out), O.relu_backward(x, dout))
