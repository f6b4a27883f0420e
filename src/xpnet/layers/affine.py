"""Fully connected layer."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace

from xpnet.backend import backend_of
from xpnet.layers.base import Layer, write_into


class Affine(Layer):
    """``out = x @ W + b``, the book's ``Affine``.

    Parameters
    ----------
    W : array, shape (D, M)
    b : array, shape (M,)
        Kept by reference: an optimizer that updates ``net.params['W1']`` in place updates this
        layer's ``W`` too.

    Input of more than two dimensions (e.g. images ``(N, C, H, W)``) is flattened to ``(N, D)``
    and ``backward`` returns ``dx`` in the input's shape, as in the book.  After ``backward``,
    ``dW`` and ``db`` hold the gradients.  When ``dW_out``/``db_out`` are set (networks set them
    to views of their flat gradient buffer), ``backward`` writes the gradients there and ``dW``,
    ``db`` are those arrays.
    """

    def __init__(self, W: Any, b: Any):
        super().__init__()
        self.W = W
        self.b = b
        self._xp = array_namespace(W, b)
        self._xp_type = type(W)
        self.x = None
        self.original_x_shape: tuple[int, ...] | None = None
        self.dW = None
        self.db = None
        #: optional preallocated arrays that ``backward`` writes ``dW`` / ``db`` into
        self.dW_out = None
        self.db_out = None
        #: False skips the input gradient (``backward`` returns None): a network sets it on its
        #: first layer, whose input gradient nobody uses -- at 784 inputs the largest GEMM
        self.need_dx = True
        kernels = backend_of(W).kernels
        self._matmul_into = kernels.matmul_into
        self._affine = kernels.affine
        self._col_sum = kernels.col_sum or self._portable_col_sum

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any) -> Any:
        xp = self._xp
        self.original_x_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], -1))
        self.x = x
        if self._affine is not None:
            return self._affine(x, self.W, self.b)
        out = x @ self.W
        out += self.b  # in place: one temporary fewer
        return out

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        # ``.T`` is the standard's transpose of a 2-D array (cheaper than ``matrix_transpose``)
        dx = dout @ self.W.T if self.need_dx else None
        xt = self.x.T
        if self.dW_out is not None and self._matmul_into is not None:
            self.dW = self._matmul_into(xt, dout, self.dW_out)
        else:
            self.dW = write_into(self.dW_out, xt @ dout)
        self.db = self._col_sum(dout, out=self.db_out)
        if dx is not None and len(self.original_x_shape) != 2:
            dx = xp.reshape(dx, self.original_x_shape)
        return dx

    def __repr__(self) -> str:
        return f"Affine({self.W.shape[0]} -> {self.W.shape[1]})"
