"""Batch normalization, the book's ``BatchNormalization``."""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

from xpnet.backend import backend_of
from xpnet.layers.base import Layer

#: The book's ``10e-7``.
BATCHNORM_EPS = 1e-6


class BatchNormalization(Layer):
    """Batch normalization (Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167).

    ``out = gamma * (x - mean) / sqrt(var + eps) + beta`` with batch statistics while training
    and running statistics at inference.

    Conventions (the book's, which differ from ``torch.nn.BatchNorm1d``):

    * ``momentum`` is the fraction of the running statistics *kept* at each step:
      ``running = momentum * running + (1 - momentum) * batch``.  The book's ``momentum=0.9``
      equals PyTorch's ``momentum=0.1``.
    * The running variance is updated with the *biased* batch variance (PyTorch uses the
      unbiased one), and running statistics start at zero, not at zero mean / unit variance.
    * ``eps`` is ``1e-6`` (the book's ``10e-7``); PyTorch's default is ``1e-5``.
    * 4-D input ``(N, C, H, W)`` is flattened to ``(N, C*H*W)`` and every element is normalized
      on its own, as in the book; ``gamma`` then has ``C*H*W`` entries.  (PyTorch's
      ``BatchNorm2d`` normalizes per channel.)

    Parameters
    ----------
    gamma, beta : array, shape (D,)
        Scale and shift, kept by reference (updated in place by optimizers).
    momentum : float
        Keep-fraction of the running statistics.
    running_mean, running_var : array, optional
        Start values; zeros of the input's width when omitted.
    eps : float
        Added to the variance.
    """

    def __init__(self, gamma: Any, beta: Any, momentum: float = 0.9,
                 running_mean: Any = None, running_var: Any = None, *,
                 eps: float = BATCHNORM_EPS):
        super().__init__()
        self.gamma = gamma
        self.beta = beta
        self.momentum = float(momentum)
        self.eps = float(eps)
        self._xp = array_namespace(gamma, beta)
        self._xp_type = type(gamma)
        kernels = backend_of(gamma).kernels
        self._col_dot = kernels.col_dot or self._portable_col_dot
        self._col_sum = kernels.col_sum or self._portable_col_sum
        self.input_shape: tuple[int, ...] | None = None
        self.running_mean = running_mean
        self.running_var = running_var
        # kept for backward (the book's names; ``xn`` is computed on demand)
        self.batch_size = None
        self._xn = None
        self.xc = None
        self.std = None
        self.dgamma = None
        self.dbeta = None
        #: optional preallocated arrays that ``backward`` writes ``dgamma`` / ``dbeta`` into
        #: (networks set them to views of their flat gradient buffer)
        self.dgamma_out = None
        self.dbeta_out = None

    @property
    def xn(self) -> Any:
        """The normalized input ``(x - mean) / std`` of the last training forward pass
        (computed on demand; a subclass in the book's style may also assign it)."""
        if self._xn is not None:
            return self._xn
        return None if self.xc is None else self.xc / self.std

    @xn.setter
    def xn(self, value: Any) -> None:
        self._xn = value

    def _ns(self, x: Any) -> Any:
        return self._xp

    def forward(self, x: Any, train_flg: bool = True) -> Any:
        xp = self._xp
        self.input_shape = tuple(x.shape)
        if x.ndim != 2:
            x = xp.reshape(x, (x.shape[0], -1))
        out = self._forward(x, train_flg)
        return xp.reshape(out, self.input_shape) if len(self.input_shape) != 2 else out

    def _forward(self, x: Any, train_flg: bool) -> Any:
        xp = self._xp
        if self.running_mean is None:
            self._init_running_stats(x)
        if train_flg:
            inv_n = 1.0 / x.shape[0]
            mu = self._col_sum(x) * inv_n  # (xp.mean is slower on NumPy)
            xc = x - mu
            var = self._col_dot(xc, xc) * inv_n
            std = xp.sqrt(var + self.eps)
            self.batch_size = x.shape[0]
            self._xn = None
            self.xc = xc
            self.std = std
            m = self.momentum
            self.running_mean = m * self.running_mean + (1.0 - m) * mu
            self.running_var = m * self.running_var + (1.0 - m) * var
            # gamma * xn + beta, with xn = xc / std folded into one per-feature scale (xn
            # itself is never stored: one pass over the batch fewer)
            out = xc * (self.gamma / std)
        else:
            out = (x - self.running_mean) * (self.gamma / xp.sqrt(self.running_var + self.eps))
        out += self.beta
        return out

    def _init_running_stats(self, x: Any) -> None:
        """Zero running statistics of ``x``'s width, dtype and device (the book's start)."""
        d = x.shape[1]
        self.running_mean = self._xp.zeros((d,), dtype=x.dtype, device=_device(x))
        self.running_var = self._xp.zeros((d,), dtype=x.dtype, device=_device(x))

    def forward_inplace(self, x: Any, scale: float = 1.0) -> Any:
        """Inference only: ``scale * (gamma * (x - mean) / sqrt(var + eps) + beta)`` with the
        running statistics, computed in place as ``x * a + c`` (``a``, ``c`` per feature)."""
        xp = self._xp
        shape = tuple(x.shape)
        z = xp.reshape(x, (shape[0], -1)) if x.ndim != 2 else x
        if self.running_mean is None:
            self._init_running_stats(z)
        a = self.gamma / xp.sqrt(self.running_var + self.eps)
        c = self.beta - self.running_mean * a
        if scale != 1.0:
            a = a * scale
            c = c * scale
        z *= a
        z += c
        return xp.reshape(z, shape) if x.ndim != 2 else z

    def backward(self, dout: Any) -> Any:
        xp = self._xp
        if dout.ndim != 2:
            dout = xp.reshape(dout, (dout.shape[0], -1))
        dx = self._backward(dout)
        return xp.reshape(dx, self.input_shape) if len(self.input_shape) != 2 else dx

    def _backward(self, dout: Any) -> Any:
        # The book's chain of steps, collapsed to the closed form
        #   dx = k * (dout - sum(dout) / n - xn * sum(xn * dout) / n),   k = gamma / std
        # with the two sums being dbeta and dgamma, and xn = xc / std.
        xc = self.xc
        inv_std = 1.0 / self.std
        self.dbeta = self._col_sum(dout, out=self.dbeta_out)
        dgamma = self._col_dot(xc, dout, out=self.dgamma_out)
        dgamma *= inv_std  # sum(xn * dout)
        self.dgamma = dgamma
        k = self.gamma * inv_std
        a = k * (1.0 / self.batch_size)
        dx = dout * k
        dx -= xc * (a * inv_std * dgamma)
        dx -= a * self.dbeta
        return dx

    def __repr__(self) -> str:
        return f"BatchNormalization({self.gamma.shape[0]}, momentum={self.momentum})"
