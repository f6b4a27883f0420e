"""What the mirror's networks change in xpnet's: float64 by default, the book's initial
weights from NumPy's global random state, ``loss`` as a float, ``gradient`` arrays of their own.
Everything else is :class:`xpnet.MultiLayerNetExtend`."""

from __future__ import annotations

from typing import Any

import numpy as np

from xpnet.backend import default_dtype

#: The mirror's dtype when neither ``dtype=`` nor a default dtype is chosen: the book's.
BOOK_DTYPE = "float64"


def book_dtype(dtype: Any) -> Any:
    """``dtype`` if given, else the default dtype if one is chosen, else float64."""
    return default_dtype(BOOK_DTYPE) if dtype is None else dtype


def book_seed(seed: Any) -> Any:
    """``seed`` if given, else NumPy's global ``RandomState``, drawn from as the book draws its
    weights (``scale * np.random.randn(fan_in, fan_out)`` layer by layer): after
    ``np.random.seed(n)`` the initial weights are the book's, bit for bit.  (scikit-learn's
    ``check_random_state`` reaches the global state the same way.)"""
    return np.random.mtrand._rand if seed is None else seed


class BookNet:
    """Mixin for a subclass of :class:`xpnet.MultiLayerNetExtend` with the book's contract."""

    def loss(self, x: Any, t: Any, train_flg: bool = False) -> float:
        """The loss as a Python float, as in the book (a host sync; see the class notes)."""
        return self.backend.to_float(self._device_loss(x, t, train_flg))

    def gradient(self, x: Any, t: Any, *, copy: bool = True) -> dict[str, Any]:
        """Gradients by backpropagation, arrays of their own by default (as in the book);
        ``copy=False`` returns xpnet's views of one buffer that the next call overwrites."""
        return super().gradient(x, t, copy=copy)
