"""Dropout, the book's way (not inverted)."""

from __future__ import annotations

from typing import Any

from xpnet.backend import Generator
from xpnet.layers.base import Layer


class Dropout(Layer):
    """Drop each unit with probability ``dropout_ratio`` while training.

    The book's variant, which differs from ``torch.nn.Dropout``: training multiplies by a 0/1
    mask *without* rescaling, and inference multiplies by ``1 - dropout_ratio`` (PyTorch scales
    by ``1 / (1 - p)`` while training and leaves inference alone).  Expected activations agree;
    the numbers of a single step do not.

    ``mask`` is 1.0 for kept and 0.0 for dropped units, in the input's dtype (the book keeps it
    boolean; the standard has no bool-float arithmetic).  It is drawn on the input's device by
    the backend's generator
    (:meth:`xpnet.backend.Backend.random`), seeded by ``seed`` when given.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
        Probability of dropping a unit.
    seed : int, optional
        Seed of this layer's mask generator.
    backend : optional
        Fix the backend instead of taking it from the first input.
    """

    def __init__(self, dropout_ratio: float = 0.5, *, seed: int | None = None,
                 backend: Any = None):
        if not 0.0 <= float(dropout_ratio) < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio!r}")
        super().__init__(backend)
        self.dropout_ratio = float(dropout_ratio)
        self.seed = seed
        self.mask = None
        self._rng: Generator | None = None

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        be = self._backend_for(x)
        if self._rng is None or (self._rng.backend is not be and self._rng.backend != be):
            self._rng = be.random(self.seed)
        # The book's ``np.random.rand(*x.shape) > dropout_ratio``, as 1.0/0.0 in x's dtype.
        self.mask = self._rng.bernoulli_mask(x.shape, keep=1.0 - self.dropout_ratio,
                                             dtype=x.dtype)
        return x * self.mask

    def backward(self, dout: Any) -> Any:
        return dout * self.mask

    def forward_inplace(self, x: Any) -> Any:
        """Inference only: ``x *= 1 - dropout_ratio`` in place."""
        x *= 1.0 - self.dropout_ratio
        return x

    def __repr__(self) -> str:
        return f"Dropout({self.dropout_ratio})"
