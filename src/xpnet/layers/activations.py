"""Activation layers: ``Relu``, ``Sigmoid``, ``Tanh``.

Each keeps what its backward needs (the output) and computes out of place: ``backward`` never
writes into ``dout``.
"""

from __future__ import annotations

from typing import Any

from xpnet.layers.base import Layer


class Relu(Layer):
    """``max(x, 0)``; gradient 0 where ``x <= 0`` (the book's convention at 0)."""

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self.mask = None  # True where the input was <= 0, as in the book

    def forward(self, x: Any) -> Any:
        xp = self._ns(x)
        self.mask = x <= 0
        return xp.where(self.mask, 0.0, x)

    def backward(self, dout: Any) -> Any:
        return self._ns(dout).where(self.mask, 0.0, dout)


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
