"""Convolution and max pooling, the book's ``Convolution`` and ``Pooling`` (chapter 7).

Both are written against the Array API standard through :func:`xpnet.functions.im2col` /
:func:`xpnet.functions.col2im` and strided basic slices: no ``np.pad``, no ``np.add.at``, no
write through an integer-array or boolean index.  That portable code is the reference; where a
backend has a fast path (:class:`xpnet.backend.Kernels` slots ``conv2d``/``conv2d_backward``,
``im2col``/``col2im``, ``max_pool2d``/``max_pool2d_backward``) the layers take it instead.
"""

from __future__ import annotations

import functools
from typing import Any

from array_api_compat import array_namespace

from xpnet.backend import backend_of
from xpnet.functions import (
    col2im,
    conv_output_size,
    im2col,
    max_pool2d,
    max_pool2d_backward,
)
from xpnet.layers.base import Layer, write_into
from xpnet.validation import as_int


def _check_images(x: Any, c: int | None = None, what: str = "C") -> tuple[int, int, int, int]:
    """The shape of a 4-D input ``(N, C, H, W)`` (with ``C == c`` when given), or a ValueError
    naming the expected shape."""
    if x.ndim != 4 or (c is not None and x.shape[1] != c):
        want = "(N, C, H, W)" if c is None else f"(N, C, H, W) with C = {c} ({what})"
        raise ValueError(f"x must have shape {want}, got shape {tuple(x.shape)}")
    return tuple(int(d) for d in x.shape)


class Convolution(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library) by ``im2col``.

    ``out[n, f, i, j] = b[f] + sum_{c, fy, fx} W[f, c, fy, fx] * x_pad[n, c, i*stride + fy,
    j*stride + fx]`` -- ``torch.nn.functional.conv2d(x, W, b, stride, pad)``.

    Parameters
    ----------
    W : array, shape (FN, C, FH, FW)
        Filters, kept by reference (an optimizer updating ``params['W1']`` in place updates
        this layer).
    b : array, shape (FN,)
    stride : int
    pad : int
        Zeros added on each side of ``H`` and ``W``.

    Attributes
    ----------
    dW, db : array
        Gradients after :meth:`backward`, shaped like ``W`` and ``b`` (written into ``dW_out``
        / ``db_out`` when a network sets them, as with :class:`~xpnet.layers.Affine`).
    x, col, col_W : array
        What backward needs, the book's names: the input, its :func:`~xpnet.functions.im2col`
        matrix ``(N*OH*OW, C*FH*FW)`` and ``W`` as ``(C*FH*FW, FN)``.  ``col`` and ``col_W``
        are None on a backend with a convolution of its own (torch: ``conv2d`` and its
        backward from aten, the calls behind ``torch.nn.Conv2d``), which never builds them.
    need_dx : bool
        ``False`` skips the input gradient (``backward`` returns ``None``), for a network's first
        layer: saves a GEMM and a :func:`~xpnet.functions.col2im`.

    Notes
    -----
    Input ``(N, C, H, W)``, output ``(N, FN, OH, OW)`` with ``OH = (H + 2*pad - FH) // stride +
    1``.  Differences from the book: the product is taken per image, ``W @ col_n^T``, so the
    output is a contiguous ``(N, FN, OH, OW)`` array rather than the transposed view of one
    ``(N*OH*OW, FN)`` product, and ``backward`` needs no transpose of ``dout`` (same numbers,
    about 1.3 ms less per step at the benchmark size); wrong input shapes raise a
    ``ValueError`` naming the expected shape.  PyTorch's ``conv2d`` also allows
    ``padding='same'``, dilation and groups; this layer does not.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> conv = Convolution(xp.ones((2, 1, 3, 3)), xp.zeros(2), pad=1)
    >>> conv.forward(xp.ones((4, 1, 5, 5))).shape
    (4, 2, 5, 5)
    """

    def __init__(self, W: Any, b: Any, stride: int = 1, pad: int = 0):
        super().__init__()
        self.stride = as_int(stride, "stride", low=1)
        self.pad = as_int(pad, "pad", low=0)
        if W.ndim != 4:
            raise ValueError(f"W must have shape (FN, C, FH, FW), got shape {tuple(W.shape)}")
        if tuple(b.shape) != (W.shape[0],):
            raise ValueError(f"b must have shape (FN,) = ({W.shape[0]},), got shape "
                             f"{tuple(b.shape)}")
        self.W = W
        self.b = b
        self._xp = array_namespace(W, b)
        self._xp_type = type(W)
        self.x = None
        self.col = None
        self.col_W = None
        self.dW = None
        self.db = None
        #: optional preallocated arrays that ``backward`` writes ``dW`` / ``db`` into
        self.dW_out = None
        self.db_out = None
        self.need_dx = True
        kernels = backend_of(W).kernels
        self._conv2d = kernels.conv2d
        self._conv2d_backward = kernels.conv2d_backward
        if self._conv2d is None or self._conv2d_backward is None:
            self._conv2d = self._conv2d_backward = None
        # (the portable functions get the namespace now: no lookup per call)
        self._im2col = kernels.im2col or functools.partial(im2col, xp=self._xp)
        self._col2im = kernels.col2im or functools.partial(col2im, xp=self._xp)

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any) -> Any:
        xp = self._xp
        fn, c, fh, fw = self.W.shape
        n, _, h, w = _check_images(x, c, "W's channels")
        out_h = conv_output_size(h, fh, self.stride, self.pad)
        out_w = conv_output_size(w, fw, self.stride, self.pad)
        if self._conv2d is not None:  # the backend's own convolution
            self.x, self.col, self.col_W = x, None, None
            return self._conv2d(x, self.W, self.b, self.stride, self.pad)
        col = self._im2col(x, fh, fw, self.stride, self.pad)  # (N*OH*OW, C*FH*FW)
        w2 = xp.reshape(self.W, (fn, c * fh * fw))
        # One product per image, W (FN, CK) @ col_n^T (CK, OH*OW), lands directly in the
        # contiguous (N, FN, OH*OW) layout: no transpose copy here, none of dout in backward
        # (the book multiplies once and returns a transposed view)
        out = w2 @ xp.matrix_transpose(xp.reshape(col, (n, out_h * out_w, c * fh * fw)))
        out += xp.reshape(self.b, (fn, 1))
        self.x = x
        self.col = col
        self.col_W = w2.T
        return xp.reshape(out, (n, fn, out_h, out_w))

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        fn, c, fh, fw = self.W.shape
        if self._conv2d_backward is not None:
            dx, dW, db = self._conv2d_backward(dout, self.x, self.W, self.stride, self.pad,
                                               self.need_dx)
            self.db = write_into(self.db_out, db)
            self.dW = write_into(self.dW_out, dW)
            return dx if self.need_dx else None
        n = dout.shape[0]
        d3 = xp.reshape(dout, (n, fn, -1))  # (N, FN, OH*OW)
        self.db = write_into(self.db_out, xp.sum(d3, axis=(0, 2)))
        col3 = xp.reshape(self.col, (n, -1, c * fh * fw))
        dW = xp.tensordot(d3, col3, axes=((0, 2), (0, 1)))  # sum_n dout_n @ col_n
        self.dW = write_into(self.dW_out, xp.reshape(dW, self.W.shape))
        if not self.need_dx:
            return None
        dcol = xp.matrix_transpose(d3) @ self.col_W.T  # (N, OH*OW, C*FH*FW)
        return self._col2im(xp.reshape(dcol, (-1, c * fh * fw)), tuple(self.x.shape), fh, fw,
                            self.stride, self.pad)

    def __repr__(self) -> str:
        fn, c, fh, fw = self.W.shape
        return (f"Convolution({c} -> {fn}, {fh}x{fw}, stride={self.stride}, "
                f"pad={self.pad})")


class Pooling(Layer):
    """Max pooling over ``pool_h x pool_w`` windows, the book's ``Pooling``.

    ``out[n, c, i, j] = max_{fy, fx} x_pad[n, c, i*stride + fy, j*stride + fx]`` --
    ``torch.nn.functional.max_pool2d(x, (pool_h, pool_w), stride, pad)``.

    Parameters
    ----------
    pool_h, pool_w : int
        Window size.
    stride : int
        Default 2 (the book's default is 1; its ``SimpleConvNet`` passes ``stride=2``).
    pad : int
        ``-inf`` added on each side of ``H`` and ``W``; less than the window size, so that every
        window holds at least one input element.

    Attributes
    ----------
    arg_max : array of int, shape (N, C, OH, OW)
        Index ``fy * pool_w + fx`` of each window's maximum (the book keeps the same indices
        flattened in ``(N, OH, OW, C)`` order).  On a backend with a max-pooling kernel of its
        own (torch: ``max_pool2d_with_indices`` and its backward, as ``torch.nn.MaxPool2d``),
        which keeps indices of its own, it is computed when first read.
    x : array
        The input of the last forward pass.

    Notes
    -----
    Ties: when a window holds equal maxima, the *first* in row-major window order is the
    argmax and receives the whole gradient -- ``numpy.argmax``'s rule, the book's, and what
    ``torch.nn.functional.max_pool2d`` does on the CPU.  A NaN in a window makes its output NaN
    (as in the book and PyTorch); where its gradient goes is then unspecified.

    The work is done by :func:`xpnet.functions.max_pool2d` (the running maximum of the
    ``pool_h * pool_w`` strided window slices, recording where a later slice is strictly larger)
    and :func:`xpnet.functions.max_pool2d_backward` (the one-hot ``arg_max == k`` times
    ``dout`` added back through slice ``k``: a comparison instead of the book's fancy-index
    write, exactly one 1 per window).

    Differences from the book: the padding is ``-inf`` rather than 0 (PyTorch's semantics: a
    padded border cannot win the max) and the output size counts the padding (the book's
    ``Pooling`` ignores ``pad`` in its output size).  PyTorch requires ``pad <= pool/2``; this
    layer allows any ``pad`` below the window size.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> pool = Pooling(2, 2, stride=2)
    >>> pool.forward(xp.reshape(xp.arange(16.0), (1, 1, 4, 4)))
    Array([[[[ 5.,  7.],
             [13., 15.]]]], dtype=array_api_strict.float64)
    """

    def __init__(self, pool_h: int, pool_w: int, stride: int = 2, pad: int = 0, *,
                 backend: Any = None):
        pool_h = as_int(pool_h, "pool_h", low=1)
        pool_w = as_int(pool_w, "pool_w", low=1)
        stride = as_int(stride, "stride", low=1)
        pad = as_int(pad, "pad", low=0)
        if pad >= min(pool_h, pool_w):
            raise ValueError(f"pad must be smaller than the window ({pool_h}x{pool_w}), "
                             f"got pad={pad}: a window would hold padding only")
        super().__init__(backend)
        self.pool_h = pool_h
        self.pool_w = pool_w
        self.stride = stride
        self.pad = pad
        self.input_shape: tuple[int, ...] | None = None
        #: the input of the last forward pass (the book's name)
        self.x = None
        self._arg_max = None
        self._state = None  # a backend kernel's own record of the maxima
        self._backward_kernel = None

    @property
    def arg_max(self) -> Any:
        """Offset ``fy * pool_w + fx`` of each window's maximum in the last forward pass
        (None before the first); computed on demand, by the portable rule, after a backend's
        pooling kernel (which keeps indices of its own)."""
        if self._arg_max is None and self._state is not None:
            self._arg_max = max_pool2d(self.x, self.pool_h, self.pool_w, self.stride,
                                       self.pad, xp=self._xp)[1]
        return self._arg_max

    def forward(self, x: Any) -> Any:
        be = self._backend_for(x)
        shape = _check_images(x)
        conv_output_size(shape[2], self.pool_h, self.stride, self.pad)  # ValueError if no
        conv_output_size(shape[3], self.pool_w, self.stride, self.pad)  # window fits
        kernels = be.kernels
        fast = None
        if kernels.max_pool2d is not None and kernels.max_pool2d_backward is not None:
            fast = kernels.max_pool2d(x, self.pool_h, self.pool_w, self.stride, self.pad)
        if fast is not None:
            self._backward_kernel = kernels.max_pool2d_backward
            out, self._state = fast
            self._arg_max = None
        else:  # no kernel, or one that declines this geometry
            self._backward_kernel = self._state = None
            out, self._arg_max = max_pool2d(x, self.pool_h, self.pool_w, self.stride,
                                            self.pad, xp=be.xp)
        self.x = x
        self.input_shape = shape
        return out

    def backward(self, dout: Any) -> Any:
        if self._backward_kernel is not None:
            return self._backward_kernel(dout, self._state, self.input_shape, self.pool_h,
                                         self.pool_w, self.stride, self.pad)
        return max_pool2d_backward(dout, self._arg_max, self.input_shape, self.pool_h,
                                   self.pool_w, self.stride, self.pad, xp=self._ns(dout))

    def __repr__(self) -> str:
        return f"Pooling({self.pool_h}, {self.pool_w}, stride={self.stride}, pad={self.pad})"
