"""Independent oracles: plain NumPy float64 transcriptions of the published formulas.

Nothing here imports xpnet (a test pins that), and nothing needs torch, so every layer, function
and optimizer has a reference on every machine that runs the tests.  Each function transcribes
one published formula and says where it comes from:

- the book, *Deep Learning from Scratch* (O'Reilly Japan), ``common/functions.py``,
  ``common/layers.py`` and ``common/optimizer.py``: :data:`BOOK`;
- the update rules of PyTorch's ``torch.optim`` as written in its documentation's pseudo-code
  (https://pytorch.org/docs/stable/optim.html): the ``torch_*`` optimizers;
- the papers the book cites where its printed code differs from them (Nesterov).

Arrays in, float64 arrays out; inputs are never modified.  Layers are written as pure
functions: a forward pass returns what its backward pass needs.  Optimizers share one
signature, ``step(p, g, state, t, **hyperparameters) -> new p``, where ``state`` is a dict the
step fills on first use (zeros, as every source starts) and ``t`` counts steps from 1;
:func:`run_optimizer` drives one over dicts of parameters.

>>> run_optimizer(sgd, {"w": [1.0]}, [{"w": [2.0]}], lr=0.5)["w"].tolist()
[0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

#: The book's reference code
BOOK = "https://github.com/oreilly-japan/deep-learning-from-scratch/blob/master/common/"
#: The torch.optim documentation (pseudo-code of every update rule)
TORCH_OPTIM = "https://pytorch.org/docs/stable/optim.html"

#: ``cross_entropy_error``'s ``1e-7`` inside the log (BOOK functions.py)
CROSS_ENTROPY_DELTA = 1e-7
#: ``BatchNormalization``'s ``10e-7`` added to the variance (BOOK layers.py)
BATCHNORM_EPS = 10e-7
#: the ``1e-7`` that AdaGrad, RMSprop and Adam add to the root (BOOK optimizer.py)
BOOK_EPS = 1e-7


def f64(x: Any) -> np.ndarray:
    """A float64 NumPy copy of ``x`` (the oracles never share memory with their inputs)."""
    return np.array(x, dtype=np.float64, copy=True)


# ------------------------------------------------------------------------------------------
# functions (BOOK functions.py)
# ------------------------------------------------------------------------------------------


def identity_function(x):
    """BOOK functions.py ``identity_function``: ``x``."""
    return f64(x)


def step_function(x):
    """BOOK functions.py ``step_function``: 1 where ``x > 0`` else 0 (the book's dtype is int;
    here float64)."""
    return (f64(x) > 0).astype(np.float64)


def sigmoid(x):
    """BOOK functions.py ``sigmoid``: ``1 / (1 + exp(-x))`` (overflow in exp gives the exact
    limits 0 and 1)."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-f64(x)))


def sigmoid_grad(x):
    """BOOK functions.py ``sigmoid_grad``: ``(1 - sigmoid(x)) * sigmoid(x)``."""
    s = sigmoid(x)
    return (1.0 - s) * s


def relu(x):
    """BOOK functions.py ``relu``: ``maximum(0, x)``."""
    return np.maximum(0.0, f64(x))


def relu_grad(x):
    """BOOK functions.py ``relu_grad``: ``grad[x >= 0] = 1`` -- note **1 at x == 0**, unlike
    the book's ``Relu`` layer, whose backward passes nothing where ``x <= 0``."""
    return (f64(x) >= 0).astype(np.float64)


def tanh(x):
    """``tanh(x)`` (the book's chapter-6 activation experiments use ``np.tanh``)."""
    return np.tanh(f64(x))


def softmax(x):
    """BOOK functions.py ``softmax``: ``exp(x - max) / sum(exp(x - max))`` over the last axis."""
    x = f64(x)
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    """BOOK functions.py ``cross_entropy_error``: ``-sum(log(y[arange(N), t] + 1e-7)) / N``.

    One sample ``(C,)`` is a batch of one; one-hot ``t`` (as many entries as ``y``) is turned
    into labels by ``argmax``.
    """
    y = f64(y)
    t = np.asarray(t)
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    t = t.reshape(-1).astype(np.int64)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + CROSS_ENTROPY_DELTA)) / batch_size


def mean_squared_error(y, t):
    """BOOK functions.py ``sum_squared_error`` (the book's ``mean_squared_error`` of chapter 4):
    ``0.5 * sum((y - t)**2)``."""
    return 0.5 * np.sum((f64(y) - f64(t)) ** 2)


def one_hot(t, num_classes):
    """Rows of the identity: ``eye(num_classes)[t]`` (the book's ``_change_one_hot_label`` in
    ``dataset/mnist.py``)."""
    return np.eye(num_classes)[np.asarray(t, dtype=np.int64).reshape(-1)]


def labels_as_one_hot(y, t):
    """Labels as one-hot rows, by the book's test in ``cross_entropy_error`` and
    ``SoftmaxWithLoss.backward``: ``t`` with as many entries as ``y`` is one-hot already,
    anything else is integer labels (:func:`one_hot` with ``y``'s number of columns)."""
    y, t = np.asarray(y), np.asarray(t)
    return f64(t).reshape(y.shape) if t.size == y.size else one_hot(t, y.shape[-1])


# ------------------------------------------------------------------------------------------
# layers (BOOK layers.py), as pure functions
# ------------------------------------------------------------------------------------------


def affine_forward(x, W, b):
    """BOOK layers.py ``Affine.forward``: ``x.reshape(N, -1) @ W + b``."""
    x = f64(x)
    return x.reshape(x.shape[0], -1) @ f64(W) + f64(b)


def affine_backward(x, W, dout):
    """BOOK layers.py ``Affine.backward``: ``dx = dout @ W.T`` (in ``x``'s shape),
    ``dW = x2.T @ dout``, ``db = sum(dout, axis=0)``.  Returns ``(dx, dW, db)``."""
    x, dout = f64(x), f64(dout)
    x2 = x.reshape(x.shape[0], -1)
    dx = (dout @ f64(W).T).reshape(x.shape)
    return dx, x2.T @ dout, np.sum(dout, axis=0)


def relu_forward(x):
    """BOOK layers.py ``Relu.forward``: a copy with ``out[x <= 0] = 0``."""
    out = f64(x)
    out[out <= 0] = 0.0
    return out


def relu_backward(x, dout):
    """BOOK layers.py ``Relu.backward``: ``dout`` with ``dout[x <= 0] = 0`` (0 at x == 0)."""
    dx = f64(dout)
    dx[f64(x) <= 0] = 0.0
    return dx


def sigmoid_forward(x):
    """BOOK layers.py ``Sigmoid.forward``: :func:`sigmoid`."""
    return sigmoid(x)


def sigmoid_backward(out, dout):
    """BOOK layers.py ``Sigmoid.backward``: ``dout * (1 - out) * out`` from the forward output."""
    out = f64(out)
    return f64(dout) * (1.0 - out) * out


def tanh_forward(x):
    """``tanh(x)``."""
    return tanh(x)


def tanh_backward(out, dout):
    """``d tanh(x) / dx = 1 - tanh(x)**2``, from the forward output."""
    out = f64(out)
    return f64(dout) * (1.0 - out**2)


def softmax_with_loss_forward(x, t):
    """BOOK layers.py ``SoftmaxWithLoss.forward``: ``cross_entropy_error(softmax(x), t)``.
    Returns ``(loss, y)``."""
    y = softmax(x)
    return cross_entropy_error(y, t), y


def softmax_with_loss_backward(y, t, dout=1.0):
    """BOOK layers.py ``SoftmaxWithLoss.backward``: ``(y - t) / N`` for one-hot ``t``, else
    ``y`` with 1 subtracted at ``[arange(N), t]``, divided by ``N``.

    The book ignores ``dout``; it is multiplied in here so that a scaled loss can be checked
    (``dout=1``, the only value the book uses, gives the book's numbers).
    """
    y = f64(y)
    t = np.asarray(t)
    batch_size = y.shape[0]
    if t.size == y.size:
        dx = (y - t) / batch_size
    else:
        dx = y.copy()
        dx[np.arange(batch_size), t.astype(np.int64)] -= 1
        dx = dx / batch_size
    return dx * dout


def batchnorm_forward(x, gamma, beta, running_mean=None, running_var=None, *, train_flg=True,
                      momentum=0.9, eps=BATCHNORM_EPS):
    """BOOK layers.py ``BatchNormalization.forward`` (Ioffe & Szegedy 2015,
    https://arxiv.org/abs/1502.03167).

    Input of more than 2 dimensions is flattened to ``(N, -1)``.  Running statistics start at
    zero (``None``).  Training: ``mu = mean(x)``, ``xc = x - mu``, ``var = mean(xc**2)``
    (biased), ``std = sqrt(var + eps)``, ``xn = xc / std``, and the running statistics keep
    ``momentum`` of themselves: ``running = momentum * running + (1 - momentum) * batch``.
    Inference: ``xn = (x - running_mean) / sqrt(running_var + eps)``.  ``out = gamma * xn +
    beta`` in ``x``'s shape.

    Returns ``(out, running_mean, running_var, cache)``; ``cache`` holds the book's ``xc``,
    ``xn``, ``std``, ``batch_size`` and ``input_shape`` for :func:`batchnorm_backward` (None
    at inference).
    """
    x = f64(x)
    input_shape = x.shape
    x = x.reshape(x.shape[0], -1)
    d = x.shape[1]
    running_mean = np.zeros(d) if running_mean is None else f64(running_mean)
    running_var = np.zeros(d) if running_var is None else f64(running_var)
    gamma, beta = f64(gamma), f64(beta)
    cache = None
    if train_flg:
        mu = x.mean(axis=0)
        xc = x - mu
        var = np.mean(xc**2, axis=0)
        std = np.sqrt(var + eps)
        xn = xc / std
        cache = {"xc": xc, "xn": xn, "std": std, "batch_size": x.shape[0],
                 "gamma": gamma, "input_shape": input_shape}
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var = momentum * running_var + (1 - momentum) * var
    else:
        xc = x - running_mean
        xn = xc / np.sqrt(running_var + eps)
    out = gamma * xn + beta
    return out.reshape(input_shape), running_mean, running_var, cache


def batchnorm_backward(cache, dout):
    """BOOK layers.py ``BatchNormalization.backward``, the chain of steps as printed:
    ``dbeta = sum(dout)``, ``dgamma = sum(xn * dout)``, ``dxn = gamma * dout``,
    ``dxc = dxn / std``, ``dstd = -sum(dxn * xc / std**2)``, ``dvar = 0.5 * dstd / std``,
    ``dxc += (2 / N) * xc * dvar``, ``dmu = sum(dxc)``, ``dx = dxc - dmu / N``.

    Returns ``(dx, dgamma, dbeta)``, ``dx`` in the input's shape.
    """
    dout = f64(dout)
    dout = dout.reshape(dout.shape[0], -1)
    xc, xn, std, n = cache["xc"], cache["xn"], cache["std"], cache["batch_size"]
    dbeta = dout.sum(axis=0)
    dgamma = np.sum(xn * dout, axis=0)
    dxn = cache["gamma"] * dout
    dxc = dxn / std
    dstd = -np.sum((dxn * xc) / (std * std), axis=0)
    dvar = 0.5 * dstd / std
    dxc += (2.0 / n) * xc * dvar
    dmu = np.sum(dxc, axis=0)
    dx = dxc - dmu / n
    return dx.reshape(cache["input_shape"]), dgamma, dbeta


def dropout_forward(x, mask, dropout_ratio=0.5, *, train_flg=True):
    """BOOK layers.py ``Dropout.forward`` for a given 0/1 ``mask`` (the book draws it as
    ``rand(*x.shape) > dropout_ratio``): ``x * mask`` while training, ``x * (1 -
    dropout_ratio)`` at inference (not inverted dropout)."""
    if train_flg:
        return f64(x) * f64(mask)
    return f64(x) * (1.0 - dropout_ratio)


def dropout_backward(mask, dout):
    """BOOK layers.py ``Dropout.backward``: ``dout * mask``."""
    return f64(dout) * f64(mask)


# ------------------------------------------------------------------------------------------
# chapter 7 (BOOK util.py, layers.py) and cs231n lecture 7: convolution, pooling, the other
# activations and normalizations
# ------------------------------------------------------------------------------------------

#: cs231n's notes on convolutional networks (the naive convolution and pooling by definition)
CS231N = "https://cs231n.github.io/convolutional-networks/"
#: PyTorch's functional documentation (the formulas of leaky_relu, elu, prelu, the norms)
TORCH_NN = "https://pytorch.org/docs/stable/nn.functional.html"


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    """BOOK util.py ``conv_output_size``: ``(input_size + 2*pad - filter_size) / stride + 1``
    (true division: a float, fractional when the stride does not divide)."""
    return (input_size + 2 * pad - filter_size) / stride + 1


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """BOOK util.py ``im2col``: ``np.pad``, the filter-offset loops, then
    ``transpose(0, 4, 5, 1, 2, 3).reshape(N*out_h*out_w, -1)``."""
    x = f64(input_data)
    N, C, H, W = x.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for xx in range(filter_w):
            x_max = xx + stride * out_w
            col[:, :, y, xx, :, :] = img[:, :, y:y_max:stride, xx:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """BOOK util.py ``col2im``: the reshape and transpose back, ``+=`` through the same
    strided slices into a zero image ``stride - 1`` larger, then the padding cut off."""
    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = f64(col).reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for xx in range(filter_w):
            x_max = xx + stride * out_w
            img[:, :, y:y_max:stride, xx:x_max:stride] += col[:, :, y, xx, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


def _windows(n_out_h, n_out_w, stride, fh, fw):
    for i in range(n_out_h):
        for j in range(n_out_w):
            yield i, j, slice(i * stride, i * stride + fh), slice(j * stride, j * stride + fw)


def convolution_forward(x, W, b, stride=1, pad=0):
    """A convolution layer by its definition, one output position at a time (CS231N; PyTorch's
    ``conv2d``): ``out[n, f, i, j] = b[f] + sum(x_pad[n, :, i*stride : i*stride + FH,
    j*stride : j*stride + FW] * W[f])``, zero padding."""
    x, W, b = f64(x), f64(W), f64(b)
    FN, _, FH, FW = W.shape
    xp_ = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    oh = (xp_.shape[2] - FH) // stride + 1
    ow = (xp_.shape[3] - FW) // stride + 1
    out = np.zeros((x.shape[0], FN, oh, ow))
    for i, j, rows, cols in _windows(oh, ow, stride, FH, FW):
        out[:, :, i, j] = np.einsum("nchw,fchw->nf", xp_[:, :, rows, cols], W) + b
    return out


def convolution_backward(x, W, dout, stride=1, pad=0):
    """The gradients of :func:`convolution_forward` by the same loop: every output position
    adds ``dout[n, f, i, j] * W[f]`` to its window of ``dx`` and ``dout[n, f, i, j]`` times
    the window to ``dW[f]``; ``db = sum(dout, axis=(0, 2, 3))``.  Returns ``(dx, dW, db)``."""
    x, W, dout = f64(x), f64(W), f64(dout)
    _, _, FH, FW = W.shape
    H, Wd = x.shape[2:]
    xp_ = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)])
    dxp = np.zeros_like(xp_)
    dW = np.zeros_like(W)
    for i, j, rows, cols in _windows(dout.shape[2], dout.shape[3], stride, FH, FW):
        dxp[:, :, rows, cols] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], W)
        dW += np.einsum("nf,nchw->fchw", dout[:, :, i, j], xp_[:, :, rows, cols])
    return dxp[:, :, pad:pad + H, pad:pad + Wd], dW, dout.sum(axis=(0, 2, 3))


def max_pool_forward(x, pool_h, pool_w, stride=2, pad=0):
    """Max pooling by its definition (CS231N; PyTorch's ``max_pool2d``, whose padding is
    ``-inf``): the maximum of every window, and ``np.argmax`` of the window -- the *first*
    maximum in row-major order, the book's ``arg_max``.  Returns ``(out, arg_max)``."""
    x = f64(x)
    xp_ = np.pad(x, [(0, 0), (0, 0), (pad, pad), (pad, pad)], constant_values=-np.inf)
    oh = (xp_.shape[2] - pool_h) // stride + 1
    ow = (xp_.shape[3] - pool_w) // stride + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    arg = np.zeros(out.shape, dtype=np.int64)
    for i, j, rows, cols in _windows(oh, ow, stride, pool_h, pool_w):
        win = xp_[:, :, rows, cols].reshape(x.shape[0], x.shape[1], -1)
        arg[:, :, i, j] = np.argmax(win, axis=2)
        out[:, :, i, j] = win.max(axis=2)
    return out, arg


def max_pool_backward(x, pool_h, pool_w, stride, pad, dout):
    """The gradient of :func:`max_pool_forward`: each window's ``dout`` to the element its
    ``arg_max`` names (summed where windows overlap)."""
    x, dout = f64(x), f64(dout)
    _, arg = max_pool_forward(x, pool_h, pool_w, stride, pad)
    N, C, H, W = x.shape
    dxp = np.zeros((N, C, H + 2 * pad, W + 2 * pad))
    for i, j, _, _ in _windows(dout.shape[2], dout.shape[3], stride, pool_h, pool_w):
        for n in range(N):
            for c in range(C):
                k = arg[n, c, i, j]
                dxp[n, c, i * stride + k // pool_w, j * stride + k % pool_w] += dout[n, c, i, j]
    return dxp[:, :, pad:pad + H, pad:pad + W]


def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU (TORCH_NN ``leaky_relu``): ``x`` where ``x > 0``, else ``alpha * x``."""
    x = f64(x)
    return np.where(x > 0, x, alpha * x)


def leaky_relu_backward(x, dout, alpha=0.01):
    """``dout`` where ``x > 0``, else ``alpha * dout`` (PyTorch's ``alpha`` at ``x == 0``)."""
    return np.where(f64(x) > 0, f64(dout), alpha * f64(dout))


def elu_forward(x, alpha=1.0):
    """ELU (Clevert et al. 2015; TORCH_NN ``elu``): ``x`` where ``x > 0``, else
    ``alpha * (exp(x) - 1)`` (``expm1``: no cancellation near 0)."""
    x = f64(x)
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


def elu_backward(x, dout, alpha=1.0):
    """``dout`` where ``x > 0``, else ``alpha * exp(x) * dout``."""
    x = f64(x)
    return np.where(x > 0, f64(dout), alpha * np.exp(np.minimum(x, 0.0)) * f64(dout))


def _per_feature(alpha, ndim):
    return f64(alpha).reshape((1, -1) + (1,) * (ndim - 2))


def prelu_forward(x, alpha):
    """PReLU (He et al. 2015; TORCH_NN ``prelu``): ``alpha`` per feature on axis 1 (one value:
    shared), ``x`` where ``x > 0`` else ``alpha * x``."""
    x = f64(x)
    return np.where(x > 0, x, _per_feature(alpha, x.ndim) * x)


def prelu_backward(x, alpha, dout):
    """``(dx, dalpha)``: ``dx = dout`` where ``x > 0`` else ``alpha * dout``; ``dalpha`` sums
    ``x * dout`` over ``x <= 0``, per feature (all of it for a shared ``alpha``)."""
    x, dout = f64(x), f64(dout)
    dx = np.where(x > 0, dout, _per_feature(alpha, x.ndim) * dout)
    contrib = np.where(x > 0, 0.0, x * dout)
    if np.size(alpha) == 1:
        return dx, np.array([contrib.sum()])
    return dx, contrib.sum(axis=tuple(i for i in range(x.ndim) if i != 1))


def maxout_forward(x, W, b, pieces=2):
    """Maxout (Goodfellow et al. 2013): ``z = x @ W + b`` (``x`` flattened to ``(N, -1)``),
    unit ``j`` the maximum of the columns ``j*pieces, ..., j*pieces + pieces - 1`` of ``z``."""
    z = f64(x).reshape(np.shape(x)[0], -1) @ f64(W) + f64(b)
    return z.reshape(z.shape[0], -1, pieces).max(axis=2)


def maxout_backward(x, W, b, dout, pieces=2):
    """``(dx, dW, db)`` of :func:`maxout_forward`, each unit's ``dout`` to its first maximal
    column (``np.argmax``), one sample and unit at a time."""
    x2 = f64(x).reshape(np.shape(x)[0], -1)
    W, dout = f64(W), f64(dout)
    z = x2 @ W + f64(b)
    dz = np.zeros_like(z)
    for n in range(z.shape[0]):
        for j in range(dout.shape[1]):
            k = int(np.argmax(z[n, j * pieces:(j + 1) * pieces]))
            dz[n, j * pieces + k] = dout[n, j]
    return (dz @ W.T).reshape(np.shape(x)), x2.T @ dz, dz.sum(axis=0)


def _rows_forward(z, eps):
    mu = z.mean(axis=1, keepdims=True)
    xc = z - mu
    var = np.mean(xc**2, axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    return xc / std, xc, std


def _rows_backward(dxn, xc, std):
    """The book's batch-norm chain of steps (:func:`batchnorm_backward`) along rows."""
    m = dxn.shape[1]
    dxc = dxn / std
    dstd = -np.sum((dxn * xc) / (std * std), axis=1, keepdims=True)
    dvar = 0.5 * dstd / std
    dxc = dxc + (2.0 / m) * xc * dvar
    dmu = np.sum(dxc, axis=1, keepdims=True)
    return dxc - dmu / m


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization (Ba et al. 2016; TORCH_NN ``layer_norm(x, (D,), gamma, beta,
    eps)``): every row of ``x (N, D)`` normalized by its own mean and biased variance, then
    ``gamma * xn + beta``.  Returns ``(out, cache)``."""
    x, gamma = f64(x), f64(gamma)
    xn, xc, std = _rows_forward(x, eps)
    return gamma * xn + f64(beta), {"xn": xn, "xc": xc, "std": std, "gamma": gamma}


def layernorm_backward(cache, dout):
    """``(dx, dgamma, dbeta)`` of :func:`layernorm_forward`: the book's batch-norm backward
    (:func:`batchnorm_backward`) transposed, over each row."""
    dout = f64(dout)
    dx = _rows_backward(cache["gamma"] * dout, cache["xc"], cache["std"])
    return dx, np.sum(dout * cache["xn"], axis=0), dout.sum(axis=0)


def groupnorm_forward(x, gamma, beta, num_groups, eps=1e-5):
    """Group normalization (Wu & He 2018; TORCH_NN ``group_norm``): ``x (N, C, H, W)`` as
    ``(N * num_groups, -1)`` rows of consecutive channels, each normalized, then per-channel
    ``gamma``/``beta``.  ``num_groups = C`` is instance normalization
    (TORCH_NN ``instance_norm``).  Returns ``(out, cache)``."""
    x = f64(x)
    n, c = x.shape[:2]
    g4 = f64(gamma).reshape(1, c, 1, 1)
    xn, xc, std = _rows_forward(x.reshape(n * num_groups, -1), eps)
    xn = xn.reshape(x.shape)
    return g4 * xn + f64(beta).reshape(1, c, 1, 1), {"xn": xn, "xc": xc, "std": std,
                                                      "gamma": g4}


def groupnorm_backward(cache, dout):
    """``(dx, dgamma, dbeta)`` of :func:`groupnorm_forward` (the book's chain along rows)."""
    dout = f64(dout)
    xc = cache["xc"]
    dx = _rows_backward((cache["gamma"] * dout).reshape(xc.shape), xc, cache["std"])
    return (dx.reshape(dout.shape), np.sum(dout * cache["xn"], axis=(0, 2, 3)),
            dout.sum(axis=(0, 2, 3)))


def spatial_batchnorm_forward(x, gamma, beta, running_mean=None, running_var=None, *,
                              train_flg=True, momentum=0.9, eps=BATCHNORM_EPS):
    """Spatial batch normalization (cs231n assignment 2's ``spatial_batchnorm_forward``;
    PyTorch's ``BatchNorm2d`` up to the book's conventions): ``x (N, C, H, W)`` moved to
    ``(N*H*W, C)`` and given to :func:`batchnorm_forward`, then moved back.  Returns ``(out,
    running_mean, running_var, cache)``."""
    x = f64(x)
    n, c, h, w = x.shape
    out, rm, rv, cache = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta,
                                           running_mean, running_var, train_flg=train_flg,
                                           momentum=momentum, eps=eps)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), rm, rv, cache


def spatial_batchnorm_backward(cache, dout):
    """``(dx, dgamma, dbeta)`` of :func:`spatial_batchnorm_forward` through
    :func:`batchnorm_backward` on ``(N*H*W, C)``."""
    dout = f64(dout)
    n, c, h, w = dout.shape
    dx, dgamma, dbeta = batchnorm_backward(cache, dout.transpose(0, 2, 3, 1).reshape(-1, c))
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def inverted_dropout_forward(x, mask, dropout_ratio=0.5, *, train_flg=True):
    """Inverted dropout (cs231n; TORCH_NN ``dropout``) for a given 0/1 ``mask``: ``x * mask /
    (1 - dropout_ratio)`` while training, ``x`` at inference."""
    if train_flg:
        return f64(x) * f64(mask) / (1.0 - dropout_ratio)
    return f64(x)


def inverted_dropout_backward(mask, dout, dropout_ratio=0.5):
    """``dout * mask / (1 - dropout_ratio)``."""
    return f64(dout) * f64(mask) / (1.0 - dropout_ratio)


# ------------------------------------------------------------------------------------------
# optimizers: step(p, g, state, t, **hyperparameters) -> new p
# ------------------------------------------------------------------------------------------


def _zeros(state, p, *names):
    for name in names:
        if name not in state:
            state[name] = np.zeros_like(p)
    return [state[name] for name in names]


def sgd(p, g, state, t=1, *, lr=0.01):
    """BOOK optimizer.py ``SGD``: ``p -= lr * g``."""
    return f64(p) - lr * f64(g)


def momentum(p, g, state, t=1, *, lr=0.01, momentum=0.9):
    """BOOK optimizer.py ``Momentum``: ``v = momentum * v - lr * g``, ``p += v``."""
    (v,) = _zeros(state, f64(p), "v")
    state["v"] = momentum * v - lr * f64(g)
    return f64(p) + state["v"]


def nesterov(p, g, state, t=1, *, lr=0.01, momentum=0.9):
    """Nesterov's accelerated gradient in the form of Bengio, Boulanger-Lewandowski & Pascanu,
    "Advances in optimizing recurrent networks", eq. (7) (https://arxiv.org/abs/1212.0901, the
    paper the book cites), with constant ``momentum``:
    ``v_t = momentum * v_{t-1} - lr * g``, ``p += -momentum * v_{t-1} + (1 + momentum) * v_t``.

    That is ``p += momentum**2 * v_{t-1} - (1 + momentum) * lr * g``: the *old* velocity moves
    the parameters, which equals ``torch.optim.SGD(nesterov=True)`` (see
    :func:`torch_sgd`).  The book's printed code updates ``v`` first; see
    :func:`nesterov_book_printed`.
    """
    (v_old,) = _zeros(state, f64(p), "v")
    v_new = momentum * v_old - lr * f64(g)
    state["v"] = v_new
    return f64(p) - momentum * v_old + (1.0 + momentum) * v_new


def nesterov_book_printed(p, g, state, t=1, *, lr=0.01, momentum=0.9):
    """BOOK optimizer.py ``Nesterov`` exactly as printed: ``v *= momentum; v -= lr * g;
    p += momentum**2 * v - (1 + momentum) * lr * g`` (the *new* velocity moves the parameters,
    which is not the paper's update)."""
    (v,) = _zeros(state, f64(p), "v")
    v = momentum * v - lr * f64(g)
    state["v"] = v
    return f64(p) + momentum * momentum * v - (1 + momentum) * lr * f64(g)


def adagrad(p, g, state, t=1, *, lr=0.01, eps=BOOK_EPS):
    """BOOK optimizer.py ``AdaGrad``: ``h += g * g``, ``p -= lr * g / (sqrt(h) + 1e-7)``."""
    (h,) = _zeros(state, f64(p), "h")
    g = f64(g)
    state["h"] = h + g * g
    return f64(p) - lr * g / (np.sqrt(state["h"]) + eps)


def rmsprop(p, g, state, t=1, *, lr=0.01, decay_rate=0.99, eps=BOOK_EPS):
    """BOOK optimizer.py ``RMSprop``: ``h = decay_rate * h + (1 - decay_rate) * g * g``,
    ``p -= lr * g / (sqrt(h) + 1e-7)``."""
    (h,) = _zeros(state, f64(p), "h")
    g = f64(g)
    state["h"] = decay_rate * h + (1 - decay_rate) * g * g
    return f64(p) - lr * g / (np.sqrt(state["h"]) + eps)


def adam(p, g, state, t=1, *, lr=0.001, beta1=0.9, beta2=0.999, eps=BOOK_EPS):
    """BOOK optimizer.py ``Adam`` (Kingma & Ba, https://arxiv.org/abs/1412.6980v8):
    ``lr_t = lr * sqrt(1 - beta2**t) / (1 - beta1**t)``, ``m += (1 - beta1) * (g - m)``,
    ``v += (1 - beta2) * (g**2 - v)``, ``p -= lr_t * m / (sqrt(v) + 1e-7)``: the bias
    correction sits in the step size, so ``eps`` is added to the uncorrected ``sqrt(v)``."""
    m, v = _zeros(state, f64(p), "m", "v")
    g = f64(g)
    lr_t = lr * np.sqrt(1.0 - beta2**t) / (1.0 - beta1**t)
    state["m"] = m + (1 - beta1) * (g - m)
    state["v"] = v + (1 - beta2) * (g**2 - v)
    return f64(p) - lr_t * state["m"] / (np.sqrt(state["v"]) + eps)


def torch_sgd(p, g, state, t=1, *, lr=0.001, momentum=0.0, dampening=0.0, nesterov=False,
              weight_decay=0.0):
    """``torch.optim.SGD`` as documented (TORCH_OPTIM): ``g += weight_decay * p``; with
    momentum ``b_t = momentum * b_{t-1} + (1 - dampening) * g`` (``b_1 = g``), then
    ``g = g + momentum * b_t`` (nesterov) or ``g = b_t``; ``p -= lr * g``."""
    p, g = f64(p), f64(g)
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        b = g if t == 1 else momentum * state["b"] + (1 - dampening) * g
        state["b"] = b
        g = g + momentum * b if nesterov else b
    return p - lr * g


def torch_adagrad(p, g, state, t=1, *, lr=0.01, lr_decay=0.0, weight_decay=0.0,
                  initial_accumulator_value=0.0, eps=1e-10):
    """``torch.optim.Adagrad`` as documented (TORCH_OPTIM): ``lr_t = lr / (1 + (t - 1) *
    lr_decay)``, ``g += weight_decay * p``, ``state_sum += g**2``,
    ``p -= lr_t * g / (sqrt(state_sum) + eps)``."""
    p, g = f64(p), f64(g)
    if "state_sum" not in state:
        state["state_sum"] = np.full_like(p, initial_accumulator_value)
    lr_t = lr / (1 + (t - 1) * lr_decay)
    if weight_decay:
        g = g + weight_decay * p
    state["state_sum"] = state["state_sum"] + g**2
    return p - lr_t * g / (np.sqrt(state["state_sum"]) + eps)


def torch_rmsprop(p, g, state, t=1, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """``torch.optim.RMSprop`` as documented (TORCH_OPTIM), without momentum and not
    centered: ``g += weight_decay * p``, ``v = alpha * v + (1 - alpha) * g**2``,
    ``p -= lr * g / (sqrt(v) + eps)``."""
    (v,) = _zeros(state, f64(p), "v")
    p, g = f64(p), f64(g)
    if weight_decay:
        g = g + weight_decay * p
    state["v"] = alpha * v + (1 - alpha) * g**2
    return p - lr * g / (np.sqrt(state["v"]) + eps)


def torch_adam(p, g, state, t=1, *, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0):
    """``torch.optim.Adam`` as documented (TORCH_OPTIM), without amsgrad: ``g += weight_decay
    * p``, ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 - beta2) * g**2``,
    ``m_hat = m / (1 - beta1**t)``, ``v_hat = v / (1 - beta2**t)``,
    ``p -= lr * m_hat / (sqrt(v_hat) + eps)``: ``eps`` is added to the *corrected* root."""
    m, v = _zeros(state, f64(p), "m", "v")
    p, g = f64(p), f64(g)
    if weight_decay:
        g = g + weight_decay * p
    state["m"] = beta1 * m + (1 - beta1) * g
    state["v"] = beta2 * v + (1 - beta2) * g**2
    m_hat = state["m"] / (1 - beta1**t)
    v_hat = state["v"] / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def torch_adamw(p, g, state, t=1, *, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.01):
    """``torch.optim.AdamW`` as documented (TORCH_OPTIM; Loshchilov & Hutter,
    https://arxiv.org/abs/1711.05101), without amsgrad: ``p -= lr * weight_decay * p`` first
    (decoupled: the gradient is not touched), then ``m = beta1 * m + (1 - beta1) * g``,
    ``v = beta2 * v + (1 - beta2) * g**2``, ``m_hat = m / (1 - beta1**t)``,
    ``v_hat = v / (1 - beta2**t)``, ``p -= lr * m_hat / (sqrt(v_hat) + eps)``."""
    m, v = _zeros(state, f64(p), "m", "v")
    p, g = f64(p), f64(g)
    p = p - lr * weight_decay * p
    state["m"] = beta1 * m + (1 - beta1) * g
    state["v"] = beta2 * v + (1 - beta2) * g**2
    m_hat = state["m"] / (1 - beta1**t)
    v_hat = state["v"] / (1 - beta2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


#: The book's optimizers by xpnet class name (Nesterov in the paper's order)
BOOK_OPTIMIZERS: dict[str, Callable[..., np.ndarray]] = {
    "SGD": sgd,
    "Momentum": momentum,
    "Nesterov": nesterov,
    "AdaGrad": adagrad,
    "RMSprop": rmsprop,
    "Adam": adam,
}

#: An oracle for every xpnet optimizer class, by name: the book's, and PyTorch's documented
#: rule for the one that is not in the book
OPTIMIZER_ORACLES: dict[str, Callable[..., np.ndarray]] = {**BOOK_OPTIMIZERS, "AdamW": torch_adamw}


# ------------------------------------------------------------------------------------------
# learning-rate schedules and gradient clipping (torch.optim.lr_scheduler, torch.nn.utils)
# ------------------------------------------------------------------------------------------

#: The learning-rate schedulers' documentation
TORCH_LR_SCHEDULER = "https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate"


def lr_schedule(name, base_lr, epochs, **hp):
    """The learning rates of epochs ``0 .. epochs - 1`` of a ``torch.optim.lr_scheduler``
    stepped once per epoch, in the *recursive* forms of its documentation (TORCH_LR_SCHEDULER):

    - ``"step"`` (``StepLR(step_size, gamma=0.1)``): ``lr *= gamma`` when ``epoch %
      step_size == 0``;
    - ``"exponential"`` (``ExponentialLR(gamma)``): ``lr *= gamma`` every epoch;
    - ``"cosine"`` (``CosineAnnealingLR(T_max, eta_min=0)``): ``lr_{t+1} = eta_min + (lr_t -
      eta_min) * (1 + cos(pi * (t + 1) / T_max)) / (1 + cos(pi * t / T_max))``, and
      ``lr_{t+1} = lr_t + (base_lr - eta_min) * (1 - cos(pi / T_max)) / 2`` when
      ``(t - T_max) % (2 * T_max) == 0``;
    - ``"lambda"`` (``LambdaLR(lr_lambda)``): ``base_lr * lr_lambda(epoch)``.
    """
    lrs = [float(base_lr)]
    for e in range(1, epochs):
        lr = lrs[-1]
        if name == "step":
            step_size, gamma = hp["step_size"], hp.get("gamma", 0.1)
            lr = lr * gamma if e % step_size == 0 else lr
        elif name == "exponential":
            lr = lr * hp["gamma"]
        elif name == "cosine":
            t_max, eta_min = hp["T_max"], hp.get("eta_min", 0.0)
            if (e - 1 - t_max) % (2 * t_max) == 0:
                lr = lr + (base_lr - eta_min) * (1 - np.cos(np.pi / t_max)) / 2
            else:
                lr = eta_min + (lr - eta_min) * (1 + np.cos(np.pi * e / t_max)) / (
                    1 + np.cos(np.pi * (e - 1) / t_max))
        elif name == "lambda":
            lr = base_lr * hp["lr_lambda"](e)
        else:
            raise ValueError(name)
        lrs.append(float(lr))
    if name == "lambda":
        lrs[0] = base_lr * hp["lr_lambda"](0)
    return lrs


def clip_grad_norm(grads, max_norm):
    """``torch.nn.utils.clip_grad_norm_`` as documented: the norm of all gradients together
    ``total = sqrt(sum(g**2))``, every gradient times ``min(max_norm / (total + 1e-6), 1)``.
    Returns ``(clipped grads, total)``."""
    grads = {k: f64(g) for k, g in grads.items()}
    total = np.sqrt(sum(np.sum(g**2) for g in grads.values()))
    coef = min(max_norm / (total + 1e-6), 1.0)
    return {k: g * coef for k, g in grads.items()}, float(total)


class OptimizerRun:
    """One optimizer ``step`` applied to a dict of parameters, step after step (float64).

    >>> run = OptimizerRun(momentum, {"w": [1.0]}, lr=0.5, momentum=0.5)
    >>> run.update({"w": [1.0]}); run.update({"w": [1.0]}); run.params["w"].tolist()
    [-0.25]
    """

    def __init__(self, step: Callable[..., np.ndarray], init: Mapping[str, Any], **hp: Any):
        self.step = step
        self.hp = hp
        self.params = {k: f64(v) for k, v in init.items()}
        self.state: dict[str, dict[str, np.ndarray]] = {k: {} for k in self.params}
        self.t = 0

    def update(self, grads: Mapping[str, Any]) -> None:
        self.t += 1
        for k, g in grads.items():
            self.params[k] = self.step(self.params[k], g, self.state[k], self.t, **self.hp)


def run_optimizer(step: Callable[..., np.ndarray], init: Mapping[str, Any],
                  grads_seq: Iterable[Mapping[str, Any]], **hp: Any) -> dict[str, np.ndarray]:
    """Parameters after applying ``step`` for every gradient dict of ``grads_seq``."""
    run = OptimizerRun(step, init, **hp)
    for grads in grads_seq:
        run.update(grads)
    return run.params


# ------------------------------------------------------------------------------------------
# a network: BOOK multi_layer_net_extend.py, composed from the layers above
# ------------------------------------------------------------------------------------------

_ACTIVATIONS = {
    "relu": (relu_forward, lambda x, out, dout: relu_backward(x, dout)),
    "sigmoid": (sigmoid_forward, lambda x, out, dout: sigmoid_backward(out, dout)),
    "tanh": (tanh_forward, lambda x, out, dout: tanh_backward(out, dout)),
}


def multi_layer_net_extend_gradient(params, x, t, n_hidden, *, activation="relu",
                                    batchnorm=False, dropout_masks=None,
                                    weight_decay_lambda=0.0, normalization=None,
                                    activation_params=None, inverted_dropout=False,
                                    dropout_ratio=0.5):
    """BOOK multi_layer_net_extend.py ``gradient`` (``train_flg=True``): the forward pass
    ``Affine -> [BatchNorm] -> activation -> [Dropout]`` per hidden layer, ``Affine ->
    SoftmaxWithLoss``, the loss ``+ 0.5 * lambda * sum(W**2)``, then the layers' backward
    passes in reverse and ``dW += lambda * W``.

    ``dropout_masks`` (one 0/1 array per hidden layer, or None for no dropout) stand in for the
    book's random draws.  Returns ``(loss, grads)`` with the keys of ``params``.

    Beyond the book (cs231n lecture 7), composed from the layer oracles above:
    ``normalization="layer"`` (:func:`layernorm_forward`, eps 1e-5) in place of batch norm
    (``batchnorm=True`` is ``normalization="batch"``); ``activation`` ``"leaky_relu"``,
    ``"elu"`` (``activation_params["alpha"]``), ``"prelu"`` (slopes ``params["alpha{i}"]``,
    not decayed) and ``"maxout"`` (``Maxout -> [normalization] -> [dropout]`` with
    ``activation_params["pieces"]``); ``inverted_dropout`` (:func:`inverted_dropout_forward`).
    """
    hp = dict(activation_params or {})
    if batchnorm:
        normalization = "batch"
    pieces = hp.get("pieces", 2)
    if activation in _ACTIVATIONS:
        act_forward, act_backward = _ACTIVATIONS[activation]
    elif activation in ("leaky_relu", "elu"):
        a = hp.get("alpha", 0.01 if activation == "leaky_relu" else 1.0)
        fwd, bwd = ((leaky_relu_forward, leaky_relu_backward) if activation == "leaky_relu"
                    else (elu_forward, elu_backward))

        def act_forward(z, fwd=fwd, a=a):
            return fwd(z, a)

        def act_backward(z, out, dout, bwd=bwd, a=a):
            return bwd(z, dout, a)

    def norm_forward(h, i):
        if normalization == "batch":
            out, _, _, cache = batchnorm_forward(h, params[f"gamma{i}"], params[f"beta{i}"])
            return out, cache
        if normalization == "layer":
            return layernorm_forward(h, params[f"gamma{i}"], params[f"beta{i}"])
        return h, None

    def norm_backward(cache, dout, i):
        if normalization is None:
            return dout
        back = batchnorm_backward if normalization == "batch" else layernorm_backward
        dout, grads[f"gamma{i}"], grads[f"beta{i}"] = back(cache, dout)
        return dout

    def drop_forward(h, i):
        if dropout_masks is None:
            return h
        if inverted_dropout:
            return inverted_dropout_forward(h, dropout_masks[i - 1], dropout_ratio)
        return dropout_forward(h, dropout_masks[i - 1])

    def drop_backward(dout, i):
        if dropout_masks is None:
            return dout
        if inverted_dropout:
            return inverted_dropout_backward(dropout_masks[i - 1], dout, dropout_ratio)
        return dropout_backward(dropout_masks[i - 1], dout)

    h = f64(x)
    tape = []
    for i in range(1, n_hidden + 1):
        a_in = h
        if activation == "maxout":
            h = maxout_forward(h, params[f"W{i}"], params[f"b{i}"], pieces)
            h, norm_cache = norm_forward(h, i)
            z = out = None
        else:
            h = affine_forward(h, params[f"W{i}"], params[f"b{i}"])
            h, norm_cache = norm_forward(h, i)
            z = h
            h = (prelu_forward(z, params[f"alpha{i}"]) if activation == "prelu"
                 else act_forward(z))
            out = h
        h = drop_forward(h, i)
        tape.append((a_in, norm_cache, z, out))
    last = n_hidden + 1
    a_last = h
    scores = affine_forward(h, params[f"W{last}"], params[f"b{last}"])
    loss, y = softmax_with_loss_forward(scores, t)
    lam = weight_decay_lambda
    loss = loss + 0.5 * lam * sum(np.sum(f64(params[f"W{i}"]) ** 2) for i in range(1, last + 1))

    grads = {}
    dout = softmax_with_loss_backward(y, t)
    dout, grads[f"W{last}"], grads[f"b{last}"] = affine_backward(a_last, params[f"W{last}"],
                                                                 dout)
    for i in range(n_hidden, 0, -1):
        a_in, norm_cache, z, out = tape[i - 1]
        dout = drop_backward(dout, i)
        if activation == "maxout":
            dout = norm_backward(norm_cache, dout, i)
            dout, grads[f"W{i}"], grads[f"b{i}"] = maxout_backward(
                a_in, params[f"W{i}"], params[f"b{i}"], dout, pieces)
            continue
        if activation == "prelu":
            dout, grads[f"alpha{i}"] = prelu_backward(z, params[f"alpha{i}"], dout)
        else:
            dout = act_backward(z, out, dout)
        dout = norm_backward(norm_cache, dout, i)
        dout, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(a_in, params[f"W{i}"], dout)
    for i in range(1, last + 1):
        grads[f"W{i}"] = grads[f"W{i}"] + lam * f64(params[f"W{i}"])
    return loss, grads


# ------------------------------------------------------------------------------------------
# a convolutional network: BOOK ch07/simple_convnet.py, composed from the layers above
# ------------------------------------------------------------------------------------------


def simple_convnet_gradient(params, x, t, *, stride=1, pad=0, normalization=None,
                            num_groups=None, running=None, train_flg=True):
    """BOOK ch07/simple_convnet.py ``gradient``: ``Convolution -> [normalization] -> Relu ->
    Pooling(2, 2, stride=2) -> Affine -> Relu -> Affine -> SoftmaxWithLoss``, forward then the
    layers' backward passes in reverse (the book's network has no normalization; the lecture-7
    ones go between the convolution and its ReLU: ``'batch'`` spatial batch norm with the book's
    conventions, ``'group'`` with ``num_groups``, ``'instance'``, ``'layer'`` = group norm with
    one group).

    ``running`` = ``(running_mean, running_var)`` of spatial batch norm for ``train_flg=False``.
    Returns ``(loss, grads, scores)`` with the keys of ``params``; with ``train_flg=False`` only
    the loss and scores are meaningful (``grads`` is None).
    """
    p = {k: f64(v) for k, v in params.items()}
    h = convolution_forward(x, p["W1"], p["b1"], stride, pad)
    conv_in, norm_cache = f64(x), None
    if normalization == "batch":
        rm, rv = (None, None) if running is None else running
        h, _, _, norm_cache = spatial_batchnorm_forward(h, p["gamma1"], p["beta1"], rm, rv,
                                                        train_flg=train_flg)
    elif normalization is not None:
        groups = {"group": num_groups, "layer": 1, "instance": h.shape[1]}[normalization]
        h, norm_cache = groupnorm_forward(h, p["gamma1"], p["beta1"], groups)
    z1 = h
    h = relu_forward(z1)
    pool_in = h
    h, _ = max_pool_forward(pool_in, 2, 2, 2, 0)
    a1 = h
    z2 = affine_forward(a1, p["W2"], p["b2"])
    a2 = relu_forward(z2)
    scores = affine_forward(a2, p["W3"], p["b3"])
    loss, y = softmax_with_loss_forward(scores, t)
    if not train_flg:
        return loss, None, scores

    g = {}
    dout = softmax_with_loss_backward(y, t)
    dout, g["W3"], g["b3"] = affine_backward(a2, p["W3"], dout)
    dout = relu_backward(z2, dout)
    dout, g["W2"], g["b2"] = affine_backward(a1, p["W2"], dout)
    dout = max_pool_backward(pool_in, 2, 2, 2, 0, dout)
    dout = relu_backward(z1, dout)
    if normalization == "batch":
        dout, g["gamma1"], g["beta1"] = spatial_batchnorm_backward(norm_cache, dout)
    elif normalization is not None:
        dout, g["gamma1"], g["beta1"] = groupnorm_backward(norm_cache, dout)
    _, g["W1"], g["b1"] = convolution_backward(conv_in, p["W1"], dout, stride, pad)
    return loss, g, scores
