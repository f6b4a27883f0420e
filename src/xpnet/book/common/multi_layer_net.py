"""The book's ``common/multi_layer_net.py``: :class:`xpnet.MultiLayerNet` with the
book's numbers (float64 by default) and the book's ``loss`` (a Python float)."""

import os
import sys
from collections import OrderedDict
from typing import Any

import numpy as np

import xpnet
from xpnet.book.common._nets import BookNet, book_dtype, book_seed
from xpnet.book.common.gradient import numerical_gradient
from xpnet.book.common.layers import (
    Affine,
    BatchNormalization,
    Convolution,
    Dropout,
    Pooling,
    Relu,
    Sigmoid,
    SoftmaxWithLoss,
    col2im,
    cross_entropy_error,
    identity_function,
    im2col,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
)

__all__ = [
    "Affine",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "MultiLayerNet",
    "OrderedDict",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "col2im",
    "cross_entropy_error",
    "identity_function",
    "im2col",
    "np",
    "numerical_gradient",
    "os",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_loss",
    "step_function",
    "sum_squared_error",
    "sys",
]


class MultiLayerNet(BookNet, xpnet.MultiLayerNet):
    """:class:`xpnet.MultiLayerNet` as the book's scripts expect it.

    Same arguments (``activation``, ``weight_init_std``, ``weight_decay_lambda``) plus xpnet's
    keywords ``backend``, ``device``, ``dtype``, ``seed``.  The differences from xpnet's class
    are those of :class:`xpnet.book.common.multi_layer_net_extend.MultiLayerNetExtend`: float64
    by default, the book's initial weights from NumPy's global random state, ``loss`` as a
    Python float, ``gradient`` arrays of their own.

    ``isinstance(net, xpnet.MultiLayerNet)`` holds.

    Examples
    --------
    >>> net = MultiLayerNet(4, [3], 2, seed=0)
    >>> type(net.loss([[0.0, 1.0, 2.0, 3.0]], [1])).__name__
    'float'
    """

    #: saved under this name (the class keeps xpnet's class name for the book's scripts)
    checkpoint_name = "book.MultiLayerNet"

    def __init__(self, input_size: int, hidden_size_list: list, output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, *, backend: Any = None, device: Any = None,
                 dtype: Any = None, seed: Any = None):
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, backend=backend, device=device,
                         dtype=book_dtype(dtype), seed=book_seed(seed))
