"""im2col / col2im, Convolution and Pooling (issue 11) on every backend.

Oracles: hand-checked small cases; float64 numerical gradients; ``torch.nn.functional.conv2d``
/ ``max_pool2d`` with autograd where torch is installed; and the NumPy transcriptions in
``oracles.py`` (the book's ``im2col``/``col2im``, convolution and max pooling by definition),
which ``test_oracles.py`` compares every layer and function with.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
from conftest import assert_close, assert_on_backend, numerical_grad
from test_layers import check_layer_gradients
from xpnet.functions import (
    col2im,
    conv_output_size,
    im2col,
    max_pool2d,
    max_pool2d_backward,
)
from xpnet.layers import Convolution, Pooling

# (N, C, H, W, FN, FH, FW, stride, pad): strides 1-2, pads 0-2, odd and non-square sizes
CONV_CASES = [
    (2, 3, 7, 6, 4, 3, 3, 1, 0),
    (2, 2, 7, 7, 3, 3, 3, 2, 1),
    (1, 3, 6, 9, 2, 2, 4, 2, 2),
    (3, 1, 5, 5, 5, 5, 5, 1, 2),
    (2, 4, 9, 8, 3, 1, 1, 2, 0),
    (2, 2, 8, 7, 2, 3, 2, 1, 1),
]
CONV_IDS = ["N{}C{}H{}W{}-F{}x{}x{}-s{}p{}".format(*(c[:4] + c[4:7] + c[7:])) for c in CONV_CASES]

# (N, C, H, W, pool_h, pool_w, stride, pad); torch needs pad <= pool/2
POOL_CASES = [
    (2, 3, 6, 6, 2, 2, 2, 0),
    (2, 2, 7, 7, 2, 2, 2, 0),
    (2, 2, 7, 5, 3, 3, 1, 1),
    (1, 3, 9, 8, 3, 2, 2, 1),
    (2, 1, 5, 6, 2, 2, 1, 1),
    (2, 2, 8, 8, 4, 4, 3, 2),
]
POOL_IDS = ["N{}C{}H{}W{}-{}x{}-s{}p{}".format(*c) for c in POOL_CASES]


def _torch_conv(x, W, b, stride, pad, dout):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    wt = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=pad)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def _torch_pool(x, ph, pw, stride, pad, dout):
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.max_pool2d(xt, (ph, pw), stride=stride, padding=pad)
    out.backward(torch.tensor(dout, dtype=torch.float64))
    return out.detach().numpy(), xt.grad.numpy()


def _distinct(rng, shape, gap=1e-3):
    """Values with every pair at least ``gap`` apart (no ties, numerical gradients safe)."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * gap + gap * 0.25 * rng.random(n) - n * gap / 2).reshape(shape)


# ------------------------------------------------------------------------------------------
# conv_output_size, im2col, col2im
# ------------------------------------------------------------------------------------------


def test_conv_output_size():
    assert conv_output_size(28, 5) == 24
    assert conv_output_size(7, 3, stride=2, pad=1) == 4
    assert conv_output_size(6, 2, 2) == 3
    assert conv_output_size(7, 2, 2) == 3  # floor, where the book returns 3.5
    assert conv_output_size(1, 3, pad=1) == 1
    assert isinstance(conv_output_size(10, 3, 2, 1), int)
    with pytest.raises(ValueError, match="filter_size"):
        conv_output_size(3, 5)
    with pytest.raises(ValueError, match="stride"):
        conv_output_size(5, 3, stride=0)
    with pytest.raises(ValueError, match="pad"):
        conv_output_size(5, 3, pad=-1)
    with pytest.raises(TypeError, match="stride"):
        conv_output_size(5, 3, stride=1.5)


def test_im2col_hand_checked(backend):
    # x[0, c] = [[9c+0, 9c+1, 9c+2], [9c+3, 9c+4, 9c+5], [9c+6, 9c+7, 9c+8]], 2x2 windows:
    # row = window (0,0), (0,1), (1,0), (1,1); columns = channel 0's 2x2 then channel 1's
    x = np.arange(18.0).reshape(1, 2, 3, 3)
    expected = np.array([
        [0, 1, 3, 4, 9, 10, 12, 13],
        [1, 2, 4, 5, 10, 11, 13, 14],
        [3, 4, 6, 7, 12, 13, 15, 16],
        [4, 5, 7, 8, 13, 14, 16, 17],
    ], dtype=np.float64)
    col = im2col(backend.asarray(x), 2, 2)
    assert_on_backend(backend, col, dtype="float64", shape=(4, 8))
    np.testing.assert_array_equal(backend.to_numpy(col), expected)

    # stride 2, pad 1: the padded image is 5x5 with the input in its middle 3x3
    x1 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected1 = np.array([
        [0, 0, 0, 1],  # rows 0-1, cols 0-1 of the padded image
        [0, 0, 2, 3],  # rows 0-1, cols 2-3
        [0, 4, 0, 7],  # rows 2-3, cols 0-1
        [5, 6, 8, 9],  # rows 2-3, cols 2-3
    ], dtype=np.float64)
    col1 = im2col(backend.asarray(x1), 2, 2, stride=2, pad=1)
    np.testing.assert_array_equal(backend.to_numpy(col1), expected1)


def test_col2im_hand_checked(backend):
    # col2im of ones counts how many windows hold each pixel
    got = col2im(backend.asarray(np.ones((4, 4))), (1, 1, 3, 3), 2, 2)
    assert_on_backend(backend, got, dtype="float64", shape=(1, 1, 3, 3))
    np.testing.assert_array_equal(backend.to_numpy(got)[0, 0],
                                  [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    # 3x3 windows, pad 1 over 3x3: each axis counts [2, 3, 2]; 2 channels, 2 images
    got = col2im(backend.asarray(np.ones((2 * 9, 2 * 9))), (2, 2, 3, 3), 3, 3, 1, 1)
    np.testing.assert_array_equal(backend.to_numpy(got),
                                  np.broadcast_to(np.outer([2, 3, 2], [2, 3, 2]), (2, 2, 3, 3)))
    # stride 2 over 5x5 with 2x2 windows: the last row and column belong to no window
    got = backend.to_numpy(col2im(backend.asarray(np.ones((4, 4))), (1, 1, 5, 5), 2, 2, 2))
    expected = np.ones((5, 5))
    expected[4, :] = expected[:, 4] = 0
    np.testing.assert_array_equal(got[0, 0], expected)


@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_col2im_is_the_adjoint_of_im2col(backend, rng, case):
    """<im2col(x), c> == <x, col2im(c)> for every x and c: col2im sums exactly what im2col
    copied (a property, independent of both implementations)."""
    n, c, h, w, _, fh, fw, s, p = case
    x = rng.standard_normal((n, c, h, w))
    col = backend.to_numpy(im2col(backend.asarray(x), fh, fw, s, p))
    c_h = rng.standard_normal(col.shape)
    img = backend.to_numpy(col2im(backend.asarray(c_h), x.shape, fh, fw, s, p))
    np.testing.assert_allclose(np.sum(col * c_h), np.sum(x * img), rtol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_im2col_col2im_keep_dtype_and_inputs(backend, rng, dtype):
    x_h = rng.standard_normal((2, 3, 5, 4)).astype(dtype)
    x = backend.asarray(x_h)
    col = im2col(x, 3, 2, 1, 1)
    assert_on_backend(backend, col, dtype=dtype, shape=(2 * 5 * 5, 3 * 3 * 2))
    c_h = rng.standard_normal((50, 18)).astype(dtype)
    c = backend.asarray(c_h)
    img = col2im(c, x_h.shape, 3, 2, 1, 1)
    assert_on_backend(backend, img, dtype=dtype, shape=x_h.shape)
    np.testing.assert_array_equal(backend.to_numpy(x), x_h)
    np.testing.assert_array_equal(backend.to_numpy(c), c_h)


def test_im2col_col2im_bad_arguments(backend):
    x = backend.asarray(np.zeros((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        im2col(backend.asarray(np.zeros((3, 5, 5))), 2, 2)
    with pytest.raises(ValueError, match="filter_size"):
        im2col(x, 6, 2)
    with pytest.raises(ValueError, match="stride"):
        im2col(x, 2, 2, stride=0)
    with pytest.raises(ValueError, match="filter_h"):
        im2col(x, 0, 2)
    with pytest.raises(ValueError, match="col must have shape"):
        col2im(backend.asarray(np.zeros((32, 13))), (2, 3, 5, 5), 2, 2)
    with pytest.raises(ValueError, match="input_shape"):
        col2im(backend.asarray(np.zeros((32, 12))), (3, 5, 5), 2, 2)


# ------------------------------------------------------------------------------------------
# Convolution
# ------------------------------------------------------------------------------------------


def _conv_data(rng, case, dtype="float64"):
    n, c, h, w, fn, fh, fw, s, p = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    W = (0.5 * rng.standard_normal((fn, c, fh, fw))).astype(dtype)
    b = rng.standard_normal(fn).astype(dtype)
    oh = (h + 2 * p - fh) // s + 1
    ow = (w + 2 * p - fw) // s + 1
    dout = rng.standard_normal((n, fn, oh, ow)).astype(dtype)
    return x, W, b, dout


def _run_conv(backend, x, W, b, s, p, dout):
    layer = Convolution(backend.asarray(W), backend.asarray(b), stride=s, pad=p)
    x_be, dout_be = backend.asarray(x), backend.asarray(dout)
    out = layer.forward(x_be)
    dx = layer.backward(dout_be)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)  # inputs untouched
    np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)
    return layer, out, dx


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_convolution_against_torch(backend, rng, case, dtype):
    x, W, b, dout = _conv_data(rng, case, dtype)
    s, p = case[7], case[8]
    refs = _torch_conv(x, W, b, s, p, dout)
    layer, out, dx = _run_conv(backend, x, W, b, s, p, dout)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=2e-5)
    for name, got, ref in zip(("out", "dx", "dW", "db"), (out, dx, layer.dW, layer.db), refs,
                              strict=True):
        assert_on_backend(backend, got, dtype=dtype, shape=ref.shape)
        np.testing.assert_allclose(backend.to_numpy(got), ref, **tol, err_msg=name)


@pytest.mark.parametrize("case", [(1,) + CONV_CASES[i][1:] for i in (1, 2, 5)],
                         ids=["N1" + CONV_IDS[i][2:] for i in (1, 2, 5)])
def test_convolution_numerical_gradients(backend, rng, case):
    x, W, b, dout = _conv_data(rng, case)
    layer = Convolution(backend.asarray(W), backend.asarray(b), stride=case[7], pad=case[8])
    check_layer_gradients(backend, layer, x, dout, params=[("W", "dW"), ("b", "db")])


def test_convolution_keeps_parameters_by_reference_and_writes_into_out(backend, rng):
    x, W, b, dout = _conv_data(rng, CONV_CASES[0])
    W_be, b_be = backend.asarray(W), backend.asarray(b)
    layer = Convolution(W_be, b_be)
    assert layer.W is W_be and layer.b is b_be
    dW_out = backend.asarray(np.zeros(W.shape))
    db_out = backend.asarray(np.zeros(b.shape))
    layer.dW_out, layer.db_out = dW_out, db_out
    layer.need_dx = False
    layer.forward(backend.asarray(x))
    assert layer.backward(backend.asarray(dout)) is None
    assert layer.dW is dW_out and layer.db is db_out
    _, ref_dW, ref_db = O.convolution_backward(x, W, dout)
    assert_close(backend, dW_out, ref_dW)
    assert_close(backend, db_out, ref_db)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_convolution_keeps_dtype(backend, rng, dtype):
    x, W, b, dout = _conv_data(rng, CONV_CASES[1], dtype)
    layer, out, dx = _run_conv(backend, x, W, b, 2, 1, dout)
    for a in (out, dx, layer.dW, layer.db):
        assert_on_backend(backend, a, dtype=dtype)


def test_convolution_bad_arguments(backend):
    W = backend.asarray(np.zeros((4, 3, 3, 3)))
    b = backend.asarray(np.zeros(4))
    with pytest.raises(ValueError, match=r"W must have shape \(FN, C, FH, FW\)"):
        Convolution(backend.asarray(np.zeros((4, 3, 3))), b)
    with pytest.raises(ValueError, match=r"b must have shape \(FN,\)"):
        Convolution(W, backend.asarray(np.zeros(3)))
    with pytest.raises(ValueError, match="stride"):
        Convolution(W, b, stride=0)
    with pytest.raises(ValueError, match="pad"):
        Convolution(W, b, pad=-1)
    with pytest.raises(TypeError, match="stride"):
        Convolution(W, b, stride=1.5)
    layer = Convolution(W, b)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        layer.forward(backend.asarray(np.zeros((2, 27))))
    with pytest.raises(ValueError, match="C = 3"):
        layer.forward(backend.asarray(np.zeros((2, 2, 5, 5))))
    with pytest.raises(ValueError, match="filter_size"):
        layer.forward(backend.asarray(np.zeros((2, 3, 2, 5))))
    assert layer.x is None  # nothing was kept from the refused calls


# ------------------------------------------------------------------------------------------
# Pooling
# ------------------------------------------------------------------------------------------


def _pool_data(rng, case, dtype="float64", distinct=True):
    n, c, h, w, ph, pw, s, p = case
    x = _distinct(rng, (n, c, h, w)) if distinct else rng.standard_normal((n, c, h, w))
    oh = (h + 2 * p - ph) // s + 1
    ow = (w + 2 * p - pw) // s + 1
    return x.astype(dtype), rng.standard_normal((n, c, oh, ow)).astype(dtype)


def _run_pool(backend, x, case, dout):
    _, _, _, _, ph, pw, s, p = case
    layer = Pooling(ph, pw, stride=s, pad=p)
    x_be, dout_be = backend.asarray(x), backend.asarray(dout)
    out = layer.forward(x_be)
    dx = layer.backward(dout_be)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    np.testing.assert_array_equal(backend.to_numpy(dout_be), dout)
    return layer, out, dx


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_pooling_against_torch(backend, rng, case, dtype):
    x, dout = _pool_data(rng, case, dtype, distinct=False)
    ref_out, ref_dx = _torch_pool(x, *case[4:], dout)
    _, out, dx = _run_pool(backend, x, case, dout)
    assert_on_backend(backend, out, dtype=dtype, shape=ref_out.shape)
    assert_on_backend(backend, dx, dtype=dtype, shape=x.shape)
    tol = dict(rtol=1e-15, atol=0) if dtype == "float64" else dict(rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(out), ref_out, **tol)
    np.testing.assert_allclose(backend.to_numpy(dx), ref_dx, **tol)


@pytest.mark.parametrize("case", [(1,) + c[1:] for c in (POOL_CASES[1], POOL_CASES[2],
                                                          POOL_CASES[5])],
                         ids=["N1" + POOL_IDS[i][2:] for i in (1, 2, 5)])
def test_pooling_numerical_gradients(backend, rng, case):
    x, dout = _pool_data(rng, case)  # values 1e-3 apart: the argmax survives h = 1e-6
    _, _, _, _, ph, pw, s, p = case
    check_layer_gradients(backend, Pooling(ph, pw, stride=s, pad=p), x, dout)


def _tied_input():
    """2x2 windows (stride 2) with ties: window A all equal, B two equal maxima on the second
    row, C equal maxima at the first and last positions, D a single maximum."""
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, :2, :2] = 5.0  # A: [[5, 5], [5, 5]]
    x[0, 0, :2, 2:] = [[1.0, 0.0], [7.0, 7.0]]  # B
    x[0, 0, 2:, :2] = [[3.0, -1.0], [-2.0, 3.0]]  # C
    x[0, 0, 2:, 2:] = [[0.0, 2.0], [1.0, 0.0]]  # D
    return x


def test_pooling_ties_go_to_the_first_maximum(backend):
    x = _tied_input()
    dout = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    _, out, dx = _run_pool(backend, x, (1, 1, 4, 4, 2, 2, 2, 0), dout)
    np.testing.assert_array_equal(backend.to_numpy(out), [[[[5.0, 7.0], [3.0, 2.0]]]])
    expected = np.zeros((1, 1, 4, 4))
    expected[0, 0, 0, 0] = 10.0  # A: the top-left of four equal values
    expected[0, 0, 1, 2] = 20.0  # B: the left of the two 7s
    expected[0, 0, 2, 0] = 30.0  # C: the first 3, not the last
    expected[0, 0, 2, 3] = 40.0  # D
    np.testing.assert_array_equal(backend.to_numpy(dx), expected)
    # exactly one element per window receives the gradient
    assert np.count_nonzero(backend.to_numpy(dx)) == 4
    np.testing.assert_array_equal(O.max_pool_backward(x, 2, 2, 2, 0, dout), expected)


def test_pooling_ties_match_torch(backend, rng):
    torch = pytest.importorskip("torch")
    # integers in 0..2: most windows tie; overlapping windows (stride 1) share elements
    x = rng.integers(0, 3, (2, 3, 6, 7)).astype(np.float64)
    for ph, pw, s, p in ((2, 2, 2, 0), (3, 3, 1, 1), (2, 3, 1, 0)):
        case = (2, 3, 6, 7, ph, pw, s, p)
        _, dout = _pool_data(rng, case)
        _, out, dx = _run_pool(backend, x, case, dout)
        ref_out, ref_dx = _torch_pool(x, ph, pw, s, p, dout)
        np.testing.assert_array_equal(backend.to_numpy(out), ref_out)
        np.testing.assert_allclose(backend.to_numpy(dx), ref_dx, rtol=1e-15, atol=1e-15)
    assert torch.__version__  # the reference ran


def test_pooling_one_hot_has_one_entry_per_window(backend, rng):
    x = rng.integers(0, 2, (3, 2, 6, 6)).astype(np.float64)  # many ties
    layer = Pooling(3, 2, stride=1, pad=1)
    out = layer.forward(backend.asarray(x))
    arg = backend.to_numpy(layer.arg_max)
    assert arg.shape == tuple(out.shape)
    assert arg.min() >= 0 and arg.max() < 6
    ones = np.ones(tuple(out.shape))
    dx = backend.to_numpy(layer.backward(backend.asarray(ones)))
    # every window sends exactly its one unit of gradient somewhere inside the input
    assert dx.sum() == pytest.approx(ones.sum())


def test_pooling_padding_is_minus_infinity(backend):
    x = -np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # all negative: zero padding would win
    layer = Pooling(2, 2, stride=2, pad=1)
    out = backend.to_numpy(layer.forward(backend.asarray(x)))
    np.testing.assert_array_equal(out, [[[[-1.0, -2.0], [-4.0, -5.0]]]])


def test_pooling_1x1_is_a_copy(backend, rng):
    x_h = rng.standard_normal((2, 2, 3, 3))
    x = backend.asarray(x_h)
    out = Pooling(1, 1, stride=1).forward(x)
    np.testing.assert_array_equal(backend.to_numpy(out), x_h)
    out[...] = 0.0
    np.testing.assert_array_equal(backend.to_numpy(x), x_h)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pooling_keeps_dtype_and_follows_the_input(backend, rng, dtype):
    x, dout = _pool_data(rng, POOL_CASES[3], dtype)
    _, out, dx = _run_pool(backend, x, POOL_CASES[3], dout)
    assert_on_backend(backend, out, dtype=dtype, shape=dout.shape)
    assert_on_backend(backend, dx, dtype=dtype, shape=x.shape)
    fixed = Pooling(2, 2, backend=backend)
    assert_on_backend(backend, fixed.forward(backend.asarray(x)), dtype=dtype)


def test_pooling_bad_arguments(backend):
    with pytest.raises(ValueError, match="pad must be smaller"):
        Pooling(2, 2, pad=2)
    with pytest.raises(ValueError, match="pool_h"):
        Pooling(0, 2)
    with pytest.raises(ValueError, match="stride"):
        Pooling(2, 2, stride=0)
    with pytest.raises(TypeError, match="pool_w"):
        Pooling(2, 2.0)
    layer = Pooling(2, 2)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        layer.forward(backend.asarray(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="filter_size"):
        layer.forward(backend.asarray(np.zeros((1, 1, 1, 4))))
    assert layer.arg_max is None


def test_max_pool2d_functions(backend, rng):
    case = (2, 3, 7, 6, 3, 2, 2, 1)
    x, dout = _pool_data(rng, case, distinct=False)
    out, arg = max_pool2d(backend.asarray(x), 3, 2, stride=2, pad=1)
    dx = max_pool2d_backward(backend.asarray(dout), arg, x.shape, 3, 2, 2, 1)
    ref_out = O.max_pool_forward(x, 3, 2, 2, 1)[0]
    ref_dx = O.max_pool_backward(x, 3, 2, 2, 1, dout)
    assert_on_backend(backend, arg, shape=ref_out.shape)
    np.testing.assert_array_equal(backend.to_numpy(out), ref_out)
    np.testing.assert_allclose(backend.to_numpy(dx), ref_dx, rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match=r"arg_max must have shape \(N, C, out_h, out_w\)"):
        max_pool2d_backward(backend.asarray(dout[:1]), arg, x.shape, 3, 2, 2, 1)
    with pytest.raises(ValueError, match="pad must be smaller"):
        max_pool2d(backend.asarray(x), 2, 2, pad=2)
    with pytest.raises(ValueError, match="pad must be smaller"):
        max_pool2d_backward(backend.asarray(dout), arg, x.shape, 2, 2, 2, 2)


def test_conv_pool_stack_numerical_gradient(backend, rng):
    """Convolution then Pooling, as in SimpleConvNet: the chained backward against central
    differences of the chained forward (float64)."""
    x = rng.standard_normal((2, 2, 7, 7))
    W = 0.5 * rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(3)
    conv = Convolution(backend.asarray(W), backend.asarray(b), stride=1, pad=1)
    pool = Pooling(2, 2, stride=2)
    dout = rng.standard_normal((2, 3, 3, 3))

    def f(x_h):
        return float(np.sum(backend.to_numpy(pool.forward(conv.forward(backend.asarray(x_h))))
                            * dout))

    num = numerical_grad(f, x)
    pool.forward(conv.forward(backend.asarray(x)))
    dx = conv.backward(pool.backward(backend.asarray(dout)))
    np.testing.assert_allclose(backend.to_numpy(dx), num, rtol=1e-6, atol=1e-8)
