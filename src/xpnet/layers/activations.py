"""Activation layers: the book's ``Relu``, ``Sigmoid``, ``Tanh``, and cs231n lecture 7's
``LeakyRelu``, ``Elu``, ``PRelu`` and ``Maxout``.

Each keeps what its backward needs and computes out of place: ``backward`` never writes into
``dout`` and ``forward`` never into ``x``.
"""

from __future__ import annotations

import math
from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

from xpnet.layers.base import Layer, write_into
from xpnet.validation import as_float


class Relu(Layer):
    """``max(x, 0)``; gradient 0 where ``x <= 0`` (the book's convention at 0).

    ``mask`` is the boolean ``x > 0`` (the book keeps its complement ``x <= 0``).  ``where``
    rather than a multiplication by a 0/1 mask, so that ``-inf`` maps to 0 and an infinite
    gradient does not leak through as ``inf * 0 = nan``.
    """

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self._mask = None
        #: the output, kept instead of the mask where the backend's ``relu`` kernel ran
        self._out = None
        self._backward_kernel = None

    @property
    def mask(self) -> Any:
        """The boolean ``x > 0`` of the last forward pass (computed on demand where a kernel
        kept the output instead)."""
        if self._mask is None and self._out is not None:
            self._mask = self._out > 0
        return self._mask

    @mask.setter
    def mask(self, value: Any) -> None:
        self._mask, self._out = value, None

    def forward(self, x: Any) -> Any:
        kernels = self._backend_for(x).kernels
        self._backward_kernel = kernels.relu_backward
        out = None if kernels.relu is None else kernels.relu(x)
        if out is not None:
            self._mask, self._out = None, out
            return out
        self.mask = x > 0
        return self._xp.maximum(x, 0.0)

    def backward(self, dout: Any) -> Any:
        if self._backward_kernel is not None:
            return self._backward_kernel(dout, self._mask if self._out is None else self._out)
        return self._xp.where(self.mask, dout, 0.0)

    def forward_inplace(self, x: Any) -> Any:
        """Inference only: ``max(x, 0)`` written into ``x`` (no mask kept for backward)."""
        xp = self._ns(x)
        kernel = self._relu_kernel(x)
        if kernel is not None:
            return kernel(x)
        return xp.maximum(x, 0.0)  # (no portable in-place form)

    def _relu_kernel(self, x: Any) -> Any:
        return self._backend_for(x).kernels.relu_


class Sigmoid(Layer):
    """Logistic sigmoid, computed without overflow (see :func:`xpnet.functions.sigmoid`)."""

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self.out = None

    def forward(self, x: Any) -> Any:
        xp = self._ns(x)
        self.out = 0.5 * (xp.tanh(0.5 * x) + 1.0)
        return self.out

    def backward(self, dout: Any) -> Any:
        return dout * (1.0 - self.out) * self.out


class Tanh(Layer):
    """Hyperbolic tangent; ``d tanh = 1 - tanh**2``."""

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self.out = None

    def forward(self, x: Any) -> Any:
        self.out = self._ns(x).tanh(x)
        return self.out

    def backward(self, dout: Any) -> Any:
        return dout * (1.0 - self.out * self.out)


class LeakyRelu(Layer):
    """Leaky ReLU (Maas et al. 2013): ``x`` where ``x > 0``, else ``alpha * x``.

    ``torch.nn.functional.leaky_relu(x, negative_slope=alpha)``; like PyTorch (and
    :class:`Relu`) the gradient at ``x == 0`` is the negative side's, ``alpha``.  ``mask`` is
    the boolean ``x > 0``.  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    alpha : float >= 0
        Slope for ``x <= 0``.  (PyTorch accepts a negative slope; that is no longer a leaky
        ReLU, so it is refused here.)

    Examples
    --------
    >>> import array_api_strict as xp
    >>> LeakyRelu(0.1).forward(xp.asarray([-2.0, 3.0]))
    Array([-0.2,  3. ], dtype=array_api_strict.float64)
    """

    def __init__(self, alpha: float = 0.01, *, backend: Any = None):
        self.alpha = as_float(alpha, "LeakyRelu: alpha", low=0.0)
        super().__init__(backend)
        self.mask = None

    def forward(self, x: Any) -> Any:
        xp = self._ns(x)
        self.mask = x > 0
        return xp.where(self.mask, x, self.alpha * x)

    def backward(self, dout: Any) -> Any:
        return self._xp.where(self.mask, dout, self.alpha * dout)

    def __repr__(self) -> str:
        return f"LeakyRelu(alpha={self.alpha})"


class Elu(Layer):
    """Exponential linear unit (Clevert et al. 2015, https://arxiv.org/abs/1511.07289).

    ``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` -- ``torch.nn.functional.elu``.  The
    gradient is ``1`` for ``x > 0`` and ``alpha * exp(x)`` otherwise (``alpha`` at ``x == 0``,
    as in PyTorch); it is recomputed from ``x`` (``out + alpha`` loses digits to cancellation
    for very negative ``x``).  ``expm1``/``exp`` of ``min(x, 0)``: accurate near 0, no overflow
    for large ``x``.  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    alpha : float >= 0
        The negative saturation value is ``-alpha``.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> Elu().forward(xp.asarray([0.0, 2.0]))
    Array([0., 2.], dtype=array_api_strict.float64)
    """

    def __init__(self, alpha: float = 1.0, *, backend: Any = None):
        self.alpha = as_float(alpha, "Elu: alpha", low=0.0)
        super().__init__(backend)
        self.mask = None
        self.x = None

    def forward(self, x: Any) -> Any:
        xp = self._ns(x)
        self.mask = x > 0
        self.x = x
        return xp.where(self.mask, x, self.alpha * xp.expm1(xp.minimum(x, 0.0)))

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        return xp.where(self.mask, dout, dout * (self.alpha * xp.exp(xp.minimum(self.x, 0.0))))

    def __repr__(self) -> str:
        return f"Elu(alpha={self.alpha})"


def _feature_shape(x: Any, d: int, name: str, expected: str) -> tuple[int, ...]:
    """Broadcast shape of a per-feature parameter of length ``d`` against ``x`` (features on
    axis 1), or a ValueError naming the expected input shape."""
    if x.ndim < 2 or (d != 1 and x.shape[1] != d):
        raise ValueError(f"{name} expects input of shape {expected}, got shape {tuple(x.shape)}")
    return (1, d) + (1,) * (x.ndim - 2)


class PRelu(Layer):
    """Parametric ReLU (He et al. 2015, https://arxiv.org/abs/1502.01852): a learned slope
    per feature, ``x`` where ``x > 0`` else ``alpha[d] * x``.

    ``torch.nn.functional.prelu(x, alpha)``: features on axis 1, so ``(N, D)`` input takes
    ``alpha`` of shape ``(D,)`` and images ``(N, C, H, W)`` one slope per channel ``(C,)``; an
    ``alpha`` of shape ``(1,)`` is shared by all features.  The gradient at ``x == 0`` is the
    negative side's, as in PyTorch.  Not in the book (cs231n lecture 7).

    Parameters
    ----------
    alpha : array, shape (D,) or (1,)
        The slopes, kept by reference (updated in place by optimizers); networks start them at
        0.25 (He et al.).  Any real value is allowed: it is learned.

    Attributes
    ----------
    dalpha : array, shape like ``alpha``
        Gradient after :meth:`backward`: ``sum(dout * min(x, 0))`` over every axis but the
        features (written into ``dalpha_out`` when a network sets it).

    Examples
    --------
    >>> import array_api_strict as xp
    >>> PRelu(xp.asarray([0.25, 0.5])).forward(xp.asarray([[-4.0, -4.0]]))
    Array([[-1., -2.]], dtype=array_api_strict.float64)
    """

    def __init__(self, alpha: Any):
        super().__init__()
        if getattr(alpha, "ndim", None) != 1:
            raise ValueError(f"PRelu: alpha must be an array of shape (D,), got "
                             f"{getattr(alpha, 'shape', type(alpha).__name__)}")
        self.alpha = alpha
        self._xp = array_namespace(alpha)
        self._xp_type = type(alpha)
        self.mask = None
        self.x = None
        self.dalpha = None
        #: optional preallocated array that ``backward`` writes ``dalpha`` into
        self.dalpha_out = None

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any) -> Any:
        xp = self._xp
        d = self.alpha.shape[0]
        a = xp.reshape(self.alpha, _feature_shape(x, d, "PRelu", f"(N, {d}, ...)"))
        self.mask = x > 0
        self.x = x
        return xp.where(self.mask, x, a * x)

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        x = self.x
        a = xp.reshape(self.alpha, (1, self.alpha.shape[0]) + (1,) * (x.ndim - 2))
        neg = xp.where(self.mask, 0.0, dout * x)
        axes = tuple(i for i in range(x.ndim) if i != 1 or self.alpha.shape[0] == 1)
        self.dalpha = write_into(self.dalpha_out, xp.reshape(xp.sum(neg, axis=axes), (-1,)))
        return xp.where(self.mask, dout, a * dout)

    def __repr__(self) -> str:
        return f"PRelu({self.alpha.shape[0]})"


class Maxout(Layer):
    """Maxout (Goodfellow et al. 2013, https://arxiv.org/abs/1302.4389): an affine map to
    ``D_out * pieces`` columns, then the maximum of each group of ``pieces`` columns.

    ``z = x @ W + b`` of shape ``(N, D_out * pieces)``; unit ``j`` of the output is the maximum
    of the *consecutive* columns ``j*pieces, ..., j*pieces + pieces - 1`` of ``z``, i.e.
    ``out = max(reshape(z, (N, D_out, pieces)), axis=-1)``.  So column ``k`` of ``W`` (and entry
    ``k`` of ``b``) belongs to unit ``k // pieces``, as its piece ``k % pieces``.

    The gradient of each unit goes to the *first* of its maximal pieces (``argmax``'s rule,
    PyTorch's too), through a one-hot comparison with ``arange(pieces)``.  PyTorch has no maxout
    layer; ``torch.max(z.view(N, D_out, pieces), -1)`` computes the same.  Not in the book
    (cs231n lecture 7).

    Parameters
    ----------
    W : array, shape (D_in, D_out * pieces)
    b : array, shape (D_out * pieces,)
        Kept by reference, as in :class:`~xpnet.layers.Affine`.
    pieces : int >= 1
        Linear pieces per unit (1 is a plain affine layer).

    Attributes
    ----------
    dW, db : array
        Gradients after :meth:`backward` (into ``dW_out``/``db_out`` when a network sets them).
    arg_max : array of int, shape (N, D_out)
        Which piece won, per sample and unit.

    Input of more than two dimensions is flattened to ``(N, D_in)`` and ``backward`` returns
    ``dx`` in the input's shape, as :class:`~xpnet.layers.Affine` does.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> m = Maxout(xp.asarray([[1.0, -1.0]]), xp.zeros(2), pieces=2)
    >>> m.forward(xp.asarray([[-3.0], [2.0]]))
    Array([[3.],
           [2.]], dtype=array_api_strict.float64)
    """

    def __init__(self, W: Any, b: Any, pieces: int = 2):
        super().__init__()
        if isinstance(pieces, bool) or not isinstance(pieces, int):
            raise TypeError(f"Maxout: pieces must be an integer, got {pieces!r}")
        if pieces < 1:
            raise ValueError(f"Maxout: pieces must be >= 1, got {pieces}")
        if W.ndim != 2 or W.shape[1] % pieces:
            raise ValueError(f"Maxout: W must have shape (D_in, D_out * pieces) with pieces="
                             f"{pieces}, got shape {tuple(W.shape)}")
        if tuple(b.shape) != (W.shape[1],):
            raise ValueError(f"Maxout: b must have shape ({W.shape[1]},), got shape "
                             f"{tuple(b.shape)}")
        self.W = W
        self.b = b
        self.pieces = pieces
        self._xp = array_namespace(W, b)
        self._xp_type = type(W)
        self.x = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.arg_max = None
        self.dW = None
        self.db = None
        #: optional preallocated arrays that ``backward`` writes ``dW`` / ``db`` into
        self.dW_out = None
        self.db_out = None
        #: False skips the input gradient (``backward`` returns None), as for
        #: :class:`~xpnet.layers.Affine`: a network sets it on its first layer
        self.need_dx = True

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any) -> Any:
        xp = self._xp
        d_in = self.W.shape[0]
        if x.ndim < 2 or math.prod(x.shape[1:]) != d_in:
            raise ValueError(f"Maxout expects input of shape (N, {d_in}) (or (N, ...) of "
                             f"{d_in} features per sample), got shape {tuple(x.shape)}")
        self.original_x_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], d_in))
        self.x = x
        z = x @ self.W
        z += self.b
        z = xp.reshape(z, (x.shape[0], -1, self.pieces))
        self.arg_max = xp.argmax(z, axis=-1)
        return xp.max(z, axis=-1)

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        n, d_out = dout.shape
        hot = xp.reshape(self.arg_max, (n, d_out, 1)) == xp.arange(
            self.pieces, dtype=self.arg_max.dtype, device=_device(dout))
        dz = xp.reshape(xp.where(hot, xp.reshape(dout, (n, d_out, 1)), 0.0), (n, -1))
        self.dW = write_into(self.dW_out, self.x.T @ dz)
        self.db = write_into(self.db_out, xp.sum(dz, axis=0))
        if not self.need_dx:
            return None
        dx = dz @ self.W.T
        if len(self.original_x_shape) != 2:
            dx = xp.reshape(dx, self.original_x_shape)
        return dx

    def __repr__(self) -> str:
        return f"Maxout({self.W.shape[0]} -> {self.W.shape[1] // self.pieces}, " \
               f"pieces={self.pieces})"
