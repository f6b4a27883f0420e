"""The book's ``common/layers.py``: the layers of :mod:`xpnet.layers`.

Same names, constructor arguments, defaults and attributes (``forward``/``backward``, ``dW``/``db``,
``dgamma``/``dbeta``); the layers work on arrays of any backend and take it from their inputs.
As in the book, a star import also brings the functions of ``common/functions.py``, ``im2col``,
``col2im`` and ``np``.
"""

import numpy as np

from xpnet.book.common.functions import (
    cross_entropy_error,
    identity_function,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
)
from xpnet.book.common.util import col2im, im2col
from xpnet.layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
)
from xpnet.layers import Pooling as _Pooling

__all__ = [
    "Affine",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "col2im",
    "cross_entropy_error",
    "identity_function",
    "im2col",
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


class Pooling(_Pooling):
    """:class:`xpnet.layers.Pooling` with the book's default ``stride=1`` (xpnet's is 2, the
    usual non-overlapping 2x2 pooling); the book's ``SimpleConvNet`` passes ``stride=2``."""

    def __init__(self, pool_h: int, pool_w: int, stride: int = 1, pad: int = 0, **kwargs):
        super().__init__(pool_h, pool_w, stride, pad, **kwargs)
