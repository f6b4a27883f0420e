"""Dropout, the book's way (not inverted) or, with ``inverted=True``, PyTorch's."""

from __future__ import annotations

from typing import Any

from xpnet.backend import Generator, to_host
from xpnet.layers.base import Layer
from xpnet.validation import as_float


class Dropout(Layer):
    """Drop each unit with probability ``dropout_ratio`` while training
    (Srivastava et al. 2014, http://arxiv.org/abs/1207.0580).

    By default the book's variant, which differs from ``torch.nn.Dropout``: training multiplies
    by a 0/1 mask *without* rescaling, and inference multiplies by ``1 - dropout_ratio``.
    With ``inverted=True`` (cs231n's inverted dropout, PyTorch's semantics) training multiplies
    by the mask *and* ``1 / (1 - dropout_ratio)`` and inference returns the input unchanged --
    ``torch.nn.functional.dropout(x, p=dropout_ratio, training=train_flg)`` up to the random
    mask.  Expected activations agree; the numbers of a single step do not.

    ``mask`` is 1.0 for kept and 0.0 for dropped units, in the input's dtype (the book keeps it
    boolean; the standard has no bool-float arithmetic).  It is drawn on the input's device by
    the backend's generator
    (:meth:`xpnet.backend.Backend.random`), seeded by ``seed`` when given.

    Parameters
    ----------
    dropout_ratio : float in [0, 1)
        Probability of dropping a unit.
    inverted : bool
        Scale while training instead of at inference.
    seed : int, optional
        Seed of this layer's mask generator.
    backend : optional
        Fix the backend instead of taking it from the first input.

    Examples
    --------
    >>> import array_api_strict as xp
    >>> Dropout(0.5, inverted=True, seed=0).forward(xp.ones(6))  # 0, or 1 / (1 - 0.5)
    Array([2., 2., 0., 0., 2., 0.], dtype=array_api_strict.float64)
    >>> Dropout(0.5, inverted=True).forward(xp.ones(2), train_flg=False)
    Array([1., 1.], dtype=array_api_strict.float64)
    """

    def __init__(self, dropout_ratio: float = 0.5, inverted: bool = False, *,
                 seed: int | None = None, backend: Any = None):
        ratio = as_float(dropout_ratio, "dropout_ratio", low=0.0, high=1.0, high_open=True)
        if not isinstance(inverted, bool):
            raise TypeError(f"inverted must be True or False, got {inverted!r}")
        super().__init__(backend)
        self.dropout_ratio = ratio
        self.inverted = inverted
        #: what a kept unit is multiplied by while training (1, or 1/(1 - ratio) if inverted)
        self._train_scale = 1.0 / (1.0 - self.dropout_ratio) if inverted else 1.0
        self.seed = seed
        self.mask = None
        self._rng: Generator | None = None

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        if not train_flg:
            if self.inverted:
                return self._ns(x).asarray(x, copy=True)  # a fresh array, as in every mode
            return x * (1.0 - self.dropout_ratio)
        be = self._backend_for(x)
        if self._rng is None or (self._rng.backend is not be and self._rng.backend != be):
            self._rng = be.random(self.seed)
        # The book's ``np.random.rand(*x.shape) > dropout_ratio``, as 1.0/0.0 in x's dtype.
        self.mask = self._rng.bernoulli_mask(x.shape, keep=1.0 - self.dropout_ratio,
                                             dtype=x.dtype)
        out = x * self.mask
        if self.inverted:
            out *= self._train_scale
        return out

    def backward(self, dout: Any) -> Any:
        dx = dout * self.mask
        if self.inverted:
            dx *= self._train_scale
        return dx

    # -- the mask stream (checkpoints, moving between backends) -------------------------------

    def get_rng_state(self) -> dict[str, Any] | None:
        """The mask generator's state (:meth:`xpnet.backend.Generator.get_state`), or None
        before the first training pass (the stream then starts from ``seed``)."""
        return None if self._rng is None else self._rng.get_state()

    def set_rng_state(self, state: dict[str, Any] | None) -> None:
        """Continue the mask stream from a :meth:`get_rng_state` state; None restarts it from
        ``seed``.

        Raises
        ------
        ValueError
            For a state of another generator kind (another library) or a malformed one; the
            layer is unchanged.
        """
        if state is None:
            self._rng = None
            return
        if self._backend is None:
            raise ValueError("this Dropout has no backend yet (build it with backend=... or "
                             "run it once) to set its random state on")
        rng = self._backend.random(self.seed)
        rng.set_state(state)
        self._rng = rng

    def draw_seed(self) -> int:
        """An integer drawn from the mask stream, to seed a generator of another library with
        (the stream then goes on, not from its start)."""
        if self._rng is None:
            if self._backend is None:
                raise ValueError("this Dropout has no backend yet")
            self._rng = self._backend.random(self.seed)
        return int(to_host(self._rng.integers(2**62, 1))[0])

    def forward_inplace(self, x: Any) -> Any:
        """Inference only: ``x *= 1 - dropout_ratio`` in place (nothing when inverted)."""
        if not self.inverted:
            x *= 1.0 - self.dropout_ratio
        return x

    def __repr__(self) -> str:
        return (f"Dropout({self.dropout_ratio}, inverted=True)" if self.inverted
                else f"Dropout({self.dropout_ratio})")
