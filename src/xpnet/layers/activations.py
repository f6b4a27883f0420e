"""Activation layers: ``Relu``, ``Sigmoid``, ``Tanh``.

Each keeps what its backward needs (the output) and computes out of place: ``backward`` never
writes into ``dout``.
"""

from __future__ import annotations

from typing import Any

from xpnet.layers.base import Layer


class Relu(Layer):
    """``max(x, 0)``; gradient 0 where ``x <= 0`` (the book's convention at 0).

    ``mask`` is the boolean ``x > 0`` (the book keeps its complement ``x <= 0``).  ``where``
    rather than a multiplication by a 0/1 mask, so that ``-inf`` maps to 0 and an infinite
    gradient does not leak through as ``inf * 0 = nan``.
    """

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self.mask = None
        self._backward_kernel = None

    def forward(self, x: Any) -> Any:
        be = self._backend_for(x)
        self._backward_kernel = be.kernels.relu_backward
        self.mask = x > 0
        return be.xp.maximum(x, 0.0)

    def backward(self, dout: Any) -> Any:
        if self._backward_kernel is not None:
            return self._backward_kernel(dout, self.mask)
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
