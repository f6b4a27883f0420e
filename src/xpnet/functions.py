"""Pure functions of the book's ``common/functions.py``, on any Array API namespace.

Each function takes arrays and, optionally, the namespace ``xp`` (looked up from the input when
omitted; pass it in hot paths to skip the lookup).  Constants are Python scalars so float32 input
stays float32.

Examples
--------
>>> import array_api_strict as xp
>>> from xpnet.functions import softmax
>>> y = softmax(xp.asarray([[0.0, 0.0]]))
>>> float(y[0, 0])
0.5
"""

from __future__ import annotations

from typing import Any

from array_api_compat import array_namespace
from array_api_compat import device as _device

__all__ = [
    "cross_entropy_error",
    "identity_function",
    "labels_as_one_hot",
    "mean_squared_error",
    "one_hot",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "step_function",
    "tanh",
]

#: Added inside ``log`` by :func:`cross_entropy_error`, as in the book.
CROSS_ENTROPY_DELTA = 1e-7


def _ns(x: Any, xp: Any) -> Any:
    return array_namespace(x) if xp is None else xp


def identity_function(x: Any, /, *, xp: Any = None) -> Any:
    """Return ``x`` unchanged (the book's output activation for regression)."""
    return x


def step_function(x: Any, /, *, xp: Any = None) -> Any:
    """1 where ``x > 0``, else 0, in the dtype of ``x``."""
    xp = _ns(x, xp)
    return xp.astype(x > 0, x.dtype)


def sigmoid(x: Any, /, *, xp: Any = None) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Computed as ``0.5 * (tanh(x / 2) + 1)``: the same function, but it never overflows (the
    book's ``1 / (1 + np.exp(-x))`` warns for ``x < -88`` in float32).
    """
    xp = _ns(x, xp)
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def sigmoid_grad(x: Any, /, *, xp: Any = None) -> Any:
    """Derivative of :func:`sigmoid` at ``x``."""
    s = sigmoid(x, xp=xp)
    return (1.0 - s) * s


def relu(x: Any, /, *, xp: Any = None) -> Any:
    """``max(x, 0)``."""
    xp = _ns(x, xp)
    return xp.maximum(x, 0.0)


def relu_grad(x: Any, /, *, xp: Any = None) -> Any:
    """Derivative of :func:`relu`, 1 where ``x >= 0``: the book's ``functions.relu_grad`` takes
    1 at ``x == 0`` (its ``Relu`` *layer*, like :class:`xpnet.layers.Relu`, passes 0 there)."""
    xp = _ns(x, xp)
    return xp.astype(x >= 0, x.dtype)


def tanh(x: Any, /, *, xp: Any = None) -> Any:
    """Hyperbolic tangent."""
    xp = _ns(x, xp)
    return xp.tanh(x)


def softmax(x: Any, /, *, xp: Any = None) -> Any:
    """Softmax over the last axis, shifted by the row maximum for stability."""
    xp = _ns(x, xp)
    e = xp.exp(x - xp.max(x, axis=-1, keepdims=True))
    return e / xp.sum(e, axis=-1, keepdims=True)


def one_hot(t: Any, num_classes: int, /, *, dtype: Any = None, xp: Any = None) -> Any:
    """Integer labels of shape ``(N,)`` -> one-hot rows of shape ``(N, num_classes)``.

    Built by comparison with ``arange`` rather than by fancy-index assignment, which the
    standard leaves undefined (and which would sync a GPU).
    """
    xp = _ns(t, xp)
    classes = xp.arange(num_classes, dtype=t.dtype, device=_device(t))
    hot = xp.reshape(t, (-1, 1)) == classes
    return xp.astype(hot, xp.float32 if dtype is None else dtype)


def labels_as_one_hot(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """Labels ``t`` (integers or one-hot) as one-hot rows matching ``y``'s shape and dtype."""
    xp = _ns(y, xp)
    if t.ndim == y.ndim and t.shape == y.shape:
        return t if t.dtype == y.dtype else xp.astype(t, y.dtype)
    return one_hot(xp.reshape(t, (-1,)), y.shape[-1], dtype=y.dtype, xp=xp)


def cross_entropy_error(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """Mean cross entropy of probabilities ``y`` and labels ``t`` (integers or one-hot).

    As in the book, ``log(y + 1e-7)`` and the mean over the batch; a single sample ``(C,)`` is
    treated as a batch of one.  Returns a 0-d array on ``y``'s device (no host sync).
    """
    xp = _ns(y, xp)
    if y.ndim == 1:
        y = xp.reshape(y, (1, -1))
        t = xp.reshape(t, (1, -1)) if t.ndim == 1 and t.shape[0] == y.shape[1] else t
    th = labels_as_one_hot(y, t, xp=xp)
    batch_size = y.shape[0]
    return -xp.sum(th * xp.log(y + CROSS_ENTROPY_DELTA)) / batch_size


def mean_squared_error(y: Any, t: Any, /, *, xp: Any = None) -> Any:
    """The book's ``0.5 * sum((y - t)**2)`` (summed, not averaged)."""
    xp = _ns(y, xp)
    d = y - t
    return 0.5 * xp.sum(d * d)
