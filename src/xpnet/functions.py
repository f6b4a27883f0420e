"""Pure functions of the book's ``common/functions.py``, on any Array API namespace.

Each function takes arrays and, optionally, the namespace ``xp`` (looked up from the input when
omitted; pass it in hot paths to skip the lookup).  Constants are Python scalars so float32 input
stays float32.

Examples
--------
>>> import array_api_strict as xp
>>> from xpnet.functions import softmax
>>> y = softmax(xp.asarray([[0.0, 0.0]]))
>>> float(y[0, 0])
0.5
"""

from __future__ import annotations

import operator
from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

__all__ = [
    "col2im",
    "conv_output_size",
    "cross_entropy_error",
    "identity_function",
    "im2col",
    "labels_as_one_hot",
    "max_pool2d",
    "max_pool2d_backward",
    "mean_squared_error",
    "one_hot",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "step_function",
    "tanh",
]

#: Added inside ``log`` by :func:`cross_entropy_error`, as in the book.
CROSS_ENTROPY_DELTA = 1e-7


def _ns(x: Any, xp: Any) -> Any:
    return array_namespace(x) if xp is None else xp


def identity_function(x: Any, /, *, xp: Any = None) -> Any:
    """Return ``x`` unchanged (the book's output activation for regression)."""
    return x


def step_function(x: Any, /, *, xp: Any = None) -> Any:
    """1 where ``x > 0``, else 0, in the dtype of ``x``."""
    xp = _ns(x, xp)
    return xp.astype(x > 0, x.dtype)


def sigmoid(x: Any, /, *, xp: Any = None) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Computed as ``0.5 * (tanh(x / 2) + 1)``: the same function, but it never overflows (the
    book's ``1 / (1 + np.exp(-x))`` warns for ``x < -88`` in float32).
    """
    xp = _ns(x, xp)
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def sigmoid_grad(x: Any, /, *, xp: Any = None) -> Any:
    """Derivative of :func:`sigmoid` at ``x``."""
    s = sigmoid(x, xp=xp)
    return (1.0 - s) * s


def relu(x: Any, /, *, xp: Any = None) -> Any:
    """``max(x, 0)``."""
    xp = _ns(x, xp)
    return xp.maximum(x, 0.0)


def relu_grad(x: Any, /, *, xp: Any = None) -> Any:
    """Derivative of :func:`relu`, 1 where ``x >= 0``: the book's ``functions.relu_grad`` takes
    1 at ``x == 0`` (its ``Relu`` *layer*, like :class:`xpnet.layers.Relu`, passes 0 there)."""
    xp = _ns(x, xp)
    return xp.astype(x >= 0, x.dtype)


def tanh(x: Any, /, *, xp: Any = None) -> Any:
    """Hyperbolic tangent."""
    xp = _ns(x, xp)
    return xp.tanh(x)


def softmax(x: Any, /, *, xp: Any = None) -> Any:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    xp = _ns(x, xp)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def one_hot(t: Any, num_classes: int, /, *, dtype: Any = None, xp: Any = None) -> Any:
    """Integer labels of shape ``(N,)`` -> one-hot rows of shape ``(N, num_classes)``.

    Built by comparison with ``arange`` rather than by fancy-index assignment, which the
    standard leaves undefined (and which would sync a GPU).
    """
    xp = _ns(t, xp)
    classes = xp.arange(num_classes, dtype=t.dtype, device=_device(t))
    hot = xp.reshape(t, (-1, 1)) == classes
    return xp.astype(hot, xp.float32 if dtype is None else dtype)


def labels_as_one_hot(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """Labels ``t`` (integers or one-hot) as one-hot rows matching ``y``'s shape and dtype."""
    xp = _ns(y, xp)
    if t.ndim == y.ndim and t.shape == y.shape:
        return t if t.dtype == y.dtype else xp.astype(t, y.dtype)
    return one_hot(xp.reshape(t, (-1,)), y.shape[-1], dtype=y.dtype, xp=xp)


def cross_entropy_error(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """Mean cross entropy of probabilities ``y`` and labels ``t`` (integers or one-hot).

    As in the book, ``log(y + 1e-7)`` and the mean over the batch; a single sample ``(C,)`` is
    treated as a batch of one.  Returns a 0-d array on ``y``'s device (no host sync).
    """
    xp = _ns(y, xp)
    if y.ndim == 1:
        y = xp.reshape(y, (1, -1))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 and t.shape[0] == y.shape[1] else t
    th = labels_as_one_hot(y, t, xp=xp)
    batch_size = y.shape[0]
    return -xp.sum(th * xp.log(y + CROSS_ENTROPY_DELTA)) / batch_size


def mean_squared_error(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """The book's ``0.5 * sum((y - t)**2)`` (summed, not averaged)."""
    xp = _ns(y, xp)
    d = y - t
    return 0.5 * xp.sum(d * d)


# ------------------------------------------------------------------------------------------
# convolution as a matrix product: the book's im2col / col2im (``common/util.py``)
# ------------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, or a TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = operator.index(value)
        except TypeError:
            raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def conv_output_size(input_size: int, filter_size: int, stride: int = 1, pad: int = 0) -> int:
    """Output length of a window of ``filter_size`` slid with ``stride`` over a padded axis.

    ``(input_size + 2*pad - filter_size) // stride + 1``: the windows that fit entirely in the
    padded input (PyTorch's ``floor`` rule).  The book's ``conv_output_size`` uses ``/`` and
    returns a float that is fractional when the stride does not divide; this returns the int that
    its ``im2col`` uses.

    Raises
    ------
    ValueError
        When a size is not positive, ``pad`` is negative, or no window fits.

    Examples
    --------
    >>> conv_output_size(28, 5), conv_output_size(7, 3, stride=2, pad=1)
    (24, 4)
    """
    input_size = _check_int("input_size", input_size, 1)
    filter_size = _check_int("filter_size", filter_size, 1)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    padded = input_size + 2 * pad
    if filter_size > padded:
        raise ValueError(f"filter_size {filter_size} is larger than the padded input "
                         f"({input_size} + 2*{pad} = {padded})")
    return (padded - filter_size) // stride + 1


def _conv_geometry(shape: tuple[int, ...], filter_h: int, filter_w: int, stride: int,
                   pad: int, what: str = "input_data") -> tuple[int, int, int, int, int, int]:
    """Check an ``(N, C, H, W)`` shape and the window arguments; ``(N, C, H, W, out_h, out_w)``."""
    if len(shape) != 4:
        raise ValueError(f"{what} must have shape (N, C, H, W), got shape {tuple(shape)}")
    n, c, h, w = (int(d) for d in shape)
    filter_h = _check_int("filter_h", filter_h, 1)
    filter_w = _check_int("filter_w", filter_w, 1)
    out_h = conv_output_size(h, filter_h, stride, pad)
    out_w = conv_output_size(w, filter_w, stride, pad)
    return n, c, h, w, out_h, out_w


def _pad_axes(x: Any, pad: int, axes: tuple[int, int], xp: Any, value: float = 0.0) -> Any:
    """``x`` with ``pad`` entries of ``value`` before and after along both ``axes``.

    Portable ``np.pad``: ``concat`` with filled blocks (a fresh array; ``x`` is left alone).
    """
    if pad == 0:
        return x
    dev = _device(x)
    for axis in axes:
        shape = list(x.shape)
        shape[axis] = pad
        block = xp.full(tuple(shape), value, dtype=x.dtype, device=dev)
        x = xp.concat([block, x, block], axis=axis)
    return x


def _windows(filter_h: int, filter_w: int, stride: int, out_h: int, out_w: int):
    """``(fy, fx, rows, cols)`` for every filter offset: ``rows``/``cols`` are the strided basic
    slices that pick, from the padded input, the element at offset ``(fy, fx)`` of every window
    (``out_h`` x ``out_w`` of them).  Row-major over the filter, the book's column order."""
    span_h = stride * (out_h - 1) + 1
    span_w = stride * (out_w - 1) + 1
    for fy in range(filter_h):
        for fx in range(filter_w):
            yield fy, fx, slice(fy, fy + span_h, stride), slice(fx, fx + span_w, stride)


def im2col(input_data: Any, filter_h: int, filter_w: int, stride: int = 1, pad: int = 0, *,
           xp: Any = None) -> Any:
    """Unfold the sliding windows of images into the rows of a matrix (the book's ``im2col``).

    Parameters
    ----------
    input_data : array, shape (N, C, H, W)
    filter_h, filter_w : int
        Window size.
    stride : int
    pad : int
        Zeros added on each side of ``H`` and ``W``.

    Returns
    -------
    col : array, shape (N * out_h * out_w, C * filter_h * filter_w)
        The book's layout: row ``(n * out_h + i) * out_w + j`` is the window at output position
        ``(i, j)`` of image ``n``; column ``(c * filter_h + fy) * filter_w + fx`` is its element
        ``x_padded[n, c, i*stride + fy, j*stride + fx]``.  (PyTorch's ``unfold`` holds the same
        numbers as ``(N, C*filter_h*filter_w, out_h*out_w)``, the transpose per image.)

    Notes
    -----
    Written against the Array API standard: the input is moved to ``(N, H, W, C)``, padded by
    concatenation, and the ``filter_h * filter_w`` strided slices (one per filter offset, each
    holding that offset for every window) are stacked on a last axis, which is directly the
    book's row layout -- one large copy, no loop over pixels.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> x = xp.reshape(xp.arange(9.0), (1, 1, 3, 3))
    >>> im2col(x, 2, 2)
    Array([[0., 1., 3., 4.],
           [1., 2., 4., 5.],
           [3., 4., 6., 7.],
           [4., 5., 7., 8.]], dtype=array_api_strict.float64)
    """
    xp = _ns(input_data, xp)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    n, c, _, _, out_h, out_w = _conv_geometry(tuple(input_data.shape), filter_h, filter_w,
                                              stride, pad)
    img = _pad_axes(xp.permute_dims(input_data, (0, 2, 3, 1)), pad, (1, 2), xp)
    pieces = [img[:, rows, cols, :] for _, _, rows, cols in
              _windows(filter_h, filter_w, stride, out_h, out_w)]
    col = xp.stack(pieces, axis=-1)  # (N, out_h, out_w, C, filter_h * filter_w)
    return xp.reshape(col, (n * out_h * out_w, c * filter_h * filter_w))


def col2im(col: Any, input_shape: tuple[int, ...], filter_h: int, filter_w: int,
           stride: int = 1, pad: int = 0, *, xp: Any = None) -> Any:
    """Fold the rows of an :func:`im2col` matrix back into images, summing overlaps (the book's
    ``col2im``; the adjoint of :func:`im2col`, which is what a convolution's backward needs).

    Parameters
    ----------
    col : array, shape (N * out_h * out_w, C * filter_h * filter_w)
        In :func:`im2col`'s layout.
    input_shape : tuple (N, C, H, W)
        Shape of the images (before padding).
    filter_h, filter_w, stride, pad : int
        As given to :func:`im2col`.

    Returns
    -------
    array, shape (N, C, H, W)
        Every element is the sum of the column entries that :func:`im2col` copied from it;
        entries that fell on the padding are dropped.  A fresh array in ``col``'s dtype.

    Notes
    -----
    No fancy-index or boolean writes: the columns of each filter offset are added into a fresh
    zero image through one strided basic slice (``img[:, fy::stride, fx::stride, :] += piece``
    over the window grid), ``filter_h * filter_w`` additions in all.  Basic-slice assignment is
    part of the standard, and ``img[s] += piece`` ends in one (``img[s] = img[s] + piece``), so
    it is right on a library whose slices are copies, not views.  (Padding every shifted piece
    to the image size and summing measured slower: 3.3 against 2.4 ms for a 3x3 fold of
    (100, 30, 12, 12) on NumPy.)

    Examples
    --------
    >>> import array_api_strict as xp
    >>> col2im(xp.ones((4, 4)), (1, 1, 3, 3), 2, 2)
    Array([[[[1., 2., 1.],
             [2., 4., 2.],
             [1., 2., 1.]]]], dtype=array_api_strict.float64)
    """
    xp = _ns(col, xp)
    stride = _check_int("stride", stride, 1)
    pad = _check_int("pad", pad, 0)
    n, c, h, w, out_h, out_w = _conv_geometry(tuple(input_shape), filter_h, filter_w, stride,
                                              pad, what="input_shape")
    expected = (n * out_h * out_w, c * filter_h * filter_w)
    if tuple(col.shape) != expected:
        raise ValueError(f"col must have shape (N*out_h*out_w, C*filter_h*filter_w) = {expected} "
                         f"for input_shape {tuple(input_shape)}, got {tuple(col.shape)}")
    pieces = xp.reshape(col, (n, out_h, out_w, c, filter_h, filter_w))
    img = _sum_windows(lambda k, fy, fx: pieces[..., fy, fx], (n, h + 2 * pad, w + 2 * pad, c),
                       col.dtype, _device(col), filter_h, filter_w, stride, out_h, out_w,
                       spatial=(1, 2), xp=xp)
    img = xp.permute_dims(img, (0, 3, 1, 2))
    return img[:, :, pad:pad + h, pad:pad + w] if pad else img


def _sum_windows(piece: Any, shape: tuple[int, ...], dtype: Any, device: Any,
                 filter_h: int, filter_w: int, stride: int, out_h: int, out_w: int,
                 spatial: tuple[int, int], xp: Any) -> Any:
    """A fresh zero array of ``shape`` plus, for every filter offset ``(fy, fx)``, the array
    ``piece(k, fy, fx)`` (``k = fy * filter_w + fx``) added at that offset of every window.

    ``piece(...)`` has the window grid ``(out_h, out_w)`` where ``shape`` has its axes
    ``spatial`` (the padded ``H``, ``W``).  Shared by :func:`col2im` and max pooling's backward.
    """
    img = xp.zeros(shape, dtype=dtype, device=device)
    index = [slice(None)] * len(shape)
    for k, (fy, fx, rows, cols) in enumerate(
            _windows(filter_h, filter_w, stride, out_h, out_w)):
        index[spatial[0]], index[spatial[1]] = rows, cols
        key = tuple(index)
        # ``img[key] += p`` is ``img[key] = img[key].__iadd__(p)``: right whether the slice is
        # a view (NumPy, torch, CuPy: the final write is a no-op copy) or a copy
        img[key] += piece(k, fy, fx)
    return img


def max_pool2d(x: Any, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0, *,
               xp: Any = None) -> tuple[Any, Any]:
    """Max pooling over ``pool_h x pool_w`` windows and the position of each maximum.

    Parameters
    ----------
    x : array, shape (N, C, H, W)
    pool_h, pool_w, stride : int
    pad : int
        ``-inf`` added on each side of ``H`` and ``W`` (a padded border never wins); must be
        smaller than the window, so that every window holds an input element.

    Returns
    -------
    out : array, shape (N, C, out_h, out_w)
        ``max`` of each window of the padded ``x`` -- ``torch.nn.functional.max_pool2d(x,
        (pool_h, pool_w), stride, pad)``.  A fresh array.
    arg_max : integer array, shape (N, C, out_h, out_w)
        Offset ``fy * pool_w + fx`` of each window's maximum; with equal maxima the *first* in
        row-major window order (``argmax``'s rule; PyTorch's CPU kernel picks the same).

    Notes
    -----
    The running maximum of the ``pool_h * pool_w`` strided slices (one per window offset), with
    the offset of the last strictly larger slice recorded as ``maximum(arg, k * [piece >
    best])`` (``k`` grows, so the larger ``k`` wins; NumPy's ``where`` on a random mask is about
    20x slower).  A NaN makes its window's output NaN, as in the book and PyTorch; its
    ``arg_max`` is then unspecified.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> out, arg = max_pool2d(xp.asarray([[[[1.0, 3.0], [3.0, 0.0]]]]), 2, 2)
    >>> float(out[0, 0, 0, 0]), int(arg[0, 0, 0, 0])
    (3.0, 1)
    """
    xp = _ns(x, xp)
    pool_h = _check_int("pool_h", pool_h, 1)
    pool_w = _check_int("pool_w", pool_w, 1)
    stride = _check_int("stride", stride, 1)
    pad = _check_pool_pad(pad, pool_h, pool_w)
    _, _, _, _, out_h, out_w = _conv_geometry(tuple(x.shape), pool_h, pool_w, stride, pad,
                                              what="x")
    img = _pad_axes(x, pad, (2, 3), xp, value=-float("inf"))
    k_total = pool_h * pool_w
    best = arg = None
    for k, (_, _, rows, cols) in enumerate(_windows(pool_h, pool_w, stride, out_h, out_w)):
        piece = img[:, :, rows, cols]
        if best is None:
            best = piece
            arg = xp.zeros(piece.shape, dtype=xp.int8 if k_total <= 127 else xp.int32,
                           device=_device(x))
            continue
        arg = xp.maximum(arg, xp.astype(piece > best, arg.dtype) * k)
        best = xp.maximum(best, piece)  # (propagates NaN, as max_pool2d does)
    # a 1x1 window hands back a slice of the input: copy, so the output is never a view
    return (best if k_total > 1 else xp.asarray(best, copy=True)), arg


def max_pool2d_backward(dout: Any, arg_max: Any, input_shape: tuple[int, ...], pool_h: int,
                        pool_w: int, stride: int = 2, pad: int = 0, *, xp: Any = None) -> Any:
    """The input gradient of :func:`max_pool2d`: each window's ``dout`` to its ``arg_max``.

    Parameters
    ----------
    dout : array, shape (N, C, out_h, out_w)
    arg_max : integer array, shape (N, C, out_h, out_w)
        As returned by :func:`max_pool2d`.
    input_shape : tuple (N, C, H, W)
    pool_h, pool_w, stride, pad : int
        As given to :func:`max_pool2d`.

    Returns
    -------
    array, shape (N, C, H, W)
        A fresh array in ``dout``'s dtype; an element that is the maximum of several windows
        gets the sum of their gradients.

    Notes
    -----
    No fancy-index write (the book's ``dmax[arange, arg_max] = dout``): for every offset ``k``
    the one-hot ``arg_max == k`` (as 0/1 in ``dout``'s dtype, exactly one 1 per window) times
    ``dout`` is added back through that offset's strided slice.  A multiplication rather than
    ``where`` (NumPy's is ~20x slower on a random mask), so an infinite ``dout`` turns the rest
    of its window into NaN, as the book's ``Dropout`` would.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> x = xp.asarray([[[[1.0, 3.0], [3.0, 0.0]]]])
    >>> out, arg = max_pool2d(x, 2, 2)
    >>> max_pool2d_backward(xp.ones((1, 1, 1, 1)), arg, (1, 1, 2, 2), 2, 2)
    Array([[[[0., 1.],
             [0., 0.]]]], dtype=array_api_strict.float64)
    """
    xp = _ns(dout, xp)
    stride = _check_int("stride", stride, 1)
    pad = _check_pool_pad(pad, _check_int("pool_h", pool_h, 1), _check_int("pool_w", pool_w, 1))
    n, c, h, w, out_h, out_w = _conv_geometry(tuple(input_shape), pool_h, pool_w, stride, pad,
                                              what="input_shape")
    if tuple(dout.shape) != (n, c, out_h, out_w) or tuple(arg_max.shape) != tuple(dout.shape):
        raise ValueError(f"dout and arg_max must have shape (N, C, out_h, out_w) = "
                         f"{(n, c, out_h, out_w)}, got {tuple(dout.shape)} and "
                         f"{tuple(arg_max.shape)}")
    dx = _sum_windows(lambda k, fy, fx: xp.astype(arg_max == k, dout.dtype) * dout,
                      (n, c, h + 2 * pad, w + 2 * pad), dout.dtype, _device(dout), pool_h,
                      pool_w, stride, out_h, out_w, spatial=(2, 3), xp=xp)
    return dx[:, :, pad:pad + h, pad:pad + w] if pad else dx


def _check_pool_pad(pad: Any, pool_h: int, pool_w: int) -> int:
    pad = _check_int("pad", pad, 0)
    if pad >= min(pool_h, pool_w):
        raise ValueError(f"pad must be smaller than the window ({pool_h}x{pool_w}), got "
                         f"pad={pad}: a window would hold padding only")
    return pad
