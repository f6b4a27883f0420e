"""The book's ``common/functions.py``: :mod:`xpnet.functions` under the book's names.

The functions take arrays of any backend and return arrays of the same backend, except the
losses, which return Python floats as the book's return NumPy floats: a loss is a number to
print (for losses that stay on the device, use :mod:`xpnet.functions`).
``sum_squared_error`` is :func:`xpnet.functions.mean_squared_error` (the book's
``0.5 * sum((y - t)**2)``, summed); ``softmax_loss(X, t)`` is
``cross_entropy_error(softmax(X), t)``.  Labels ``t`` given as host data (NumPy arrays, lists)
go to the device of ``y``, so ``cross_entropy_error(net.predict(x), t)`` works with the host
labels of ``load_mnist``, as in the book.

>>> import numpy as np
>>> from xpnet.book.common.functions import softmax_loss
>>> round(softmax_loss(np.array([[0.0, 0.0]]), np.array([1])), 6)
0.693147
"""

import array_api_compat
import numpy as np

from xpnet import functions as _f
from xpnet.backend import backend_of as _backend_of
from xpnet.backend import to_host as _to_host
from xpnet.functions import (
    identity_function,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    step_function,
)

__all__ = [
    "cross_entropy_error",
    "identity_function",
    "np",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_loss",
    "step_function",
    "sum_squared_error",
]


def _on_device_of(y, t, labels):
    """Host ``t`` (lists too) on the device of ``y``; a device ``t`` as it is."""
    if not array_api_compat.is_array_api_obj(t):
        t = np.asarray(t)
    if isinstance(y, np.ndarray) or not array_api_compat.is_array_api_obj(y):
        return t
    if not isinstance(t, np.ndarray):
        return t
    be = _backend_of(y)
    return be.labels(t, y.dtype) if labels else be.asarray(t, dtype=y.dtype)


def _number(loss):
    return float(_to_host(loss))


def cross_entropy_error(y, t):
    """:func:`xpnet.functions.cross_entropy_error`: mean cross entropy of probabilities ``y``
    and labels ``t`` (integers or one-hot), ``log(y + 1e-7)`` as in the book; a float."""
    return _number(_f.cross_entropy_error(y, _on_device_of(y, t, labels=True)))


def sum_squared_error(y, t):
    """:func:`xpnet.functions.mean_squared_error`: the book's ``0.5 * sum((y - t)**2)``; a
    float."""
    return _number(_f.mean_squared_error(y, _on_device_of(y, t, labels=False)))


def softmax_loss(X, t):
    """Cross entropy of ``softmax(X)`` and labels ``t`` (integers or one-hot), as in the book;
    a float."""
    return cross_entropy_error(softmax(X), t)
