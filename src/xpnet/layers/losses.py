"""Output layers with a loss: ``SoftmaxWithLoss``."""

from __future__ import annotations

from typing import Any

from xpnet.functions import cross_entropy_error, labels_as_one_hot, softmax
from xpnet.layers.base import Layer


class SoftmaxWithLoss(Layer):
    """Softmax followed by the mean cross-entropy loss, the book's ``SoftmaxWithLoss``.

    ``forward(x, t)`` returns the loss as a 0-d array on the device (no host sync); ``t`` holds
    integer class labels ``(N,)`` or one-hot rows ``(N, C)``.  ``backward(dout=1)`` returns
    ``(softmax(x) - onehot(t)) * dout / N``.

    The loss is the book's ``-mean(log(y + 1e-7))``, not PyTorch's exact log-softmax; the two
    agree to about ``1e-7 / y`` and the gradient is the same.
    """

    def __init__(self, *, backend: Any = None):
        super().__init__(backend)
        self.loss = None
        self.y = None
        self.t = None
        self._t_hot = None
        self._backward_kernel = None

    def forward(self, x: Any, t: Any) -> Any:
        xp = self._ns(x)
        if x.ndim == 2 and t.ndim >= 1 and t.shape[0] != x.shape[0]:
            # (a shape check, no device wait) one-hot rows would broadcast a single label over
            # the batch, and torch's fused loss would gather the first rows only
            raise ValueError(f"SoftmaxWithLoss: t has {t.shape[0]} labels for the "
                             f"{x.shape[0]} rows of x")
        self.t = t
        kernels = self._backend_for(x).kernels
        if kernels.softmax_cross_entropy is not None:
            fused = kernels.softmax_cross_entropy(x, t)
            if fused is not None:
                self.loss, self.y = fused
                self._t_hot = None
                self._backward_kernel = kernels.softmax_cross_entropy_backward
                return self.loss
        self.y = softmax(x, xp=xp)
        self._t_hot = labels_as_one_hot(self.y, t, xp=xp)  # reused by backward
        self.loss = cross_entropy_error(self.y, self._t_hot, xp=xp)
        return self.loss

    def backward(self, dout: Any = 1) -> Any:
        if self._t_hot is None:  # the backend's fused forward ran
            return self._backward_kernel(self.y, self.t, dout)
        batch_size = self.y.shape[0]
        th = self._t_hot
        scale = dout / batch_size if isinstance(dout, (int, float)) else dout * (1.0 / batch_size)
        return (self.y - th) * scale
