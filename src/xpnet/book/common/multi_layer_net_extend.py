"""The book's ``common/multi_layer_net_extend.py``: :class:`xpnet.MultiLayerNetExtend` with the
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
    "MultiLayerNetExtend",
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


class MultiLayerNetExtend(BookNet, xpnet.MultiLayerNetExtend):
    """:class:`xpnet.MultiLayerNetExtend` as the book's scripts expect it.

    Same arguments (``use_dropout``, ``dropout_ration``, ``use_batchnorm``, ...) plus xpnet's
    keywords ``backend``, ``device``, ``dtype``, ``seed``.  Five differences from xpnet's
    class, all for the book's scripts to run unchanged and print the book's numbers:

    * ``dtype`` defaults to **float64** (the book computes in float64) unless a default dtype
      is chosen: ``XPNET_DTYPE=float32`` or ``xpnet.set_default_backend(..., dtype=...)``.
      The backend and device are the default backend's (``XPNET_BACKEND``, ...).
    * Without ``seed``, the initial weights are drawn from NumPy's global random state as the
      book draws them: after ``np.random.seed(n)`` they are the book's, bit for bit.
    * ``loss`` returns a Python float, as the book's (a NumPy float64).  On a GPU that waits
      for the device at every call -- the price the book's loop pays too.  ``gradient`` does
      not pay it (it keeps its loss on the device, in ``last_loss``), nor does
      :class:`xpnet.Trainer`.
    * ``gradient`` returns arrays of their own (one copy of the gradient buffer), so
      gradients kept across calls stay valid as in the book; ``copy=False`` gives xpnet's
      views.
    * Batch normalization trains on a batch of one row, as the book's does (xpnet's refuses
      it): the book's ``batch_norm_gradient_check.py`` checks gradients on one digit.

    ``isinstance(net, xpnet.MultiLayerNetExtend)`` holds.

    Examples
    --------
    >>> net = MultiLayerNetExtend(4, [3], 2, use_batchnorm=True, seed=0)
    >>> type(net.loss([[0.0, 1.0, 2.0, 3.0]], [1])).__name__
    'float'
    """

    #: saved under this name (the class keeps xpnet's class name for the book's scripts)
    checkpoint_name = "book.MultiLayerNetExtend"

    def __init__(self, input_size: int, hidden_size_list: list, output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0, use_dropout: bool = False,
                 dropout_ration: float = 0.5, use_batchnorm: bool = False, *,
                 dropout_ratio: float | None = None, backend: Any = None, device: Any = None,
                 dtype: Any = None, seed: Any = None):
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, use_dropout, dropout_ration,
                         use_batchnorm, dropout_ratio=dropout_ratio, backend=backend,
                         device=device, dtype=book_dtype(dtype), seed=book_seed(seed))
        for layer in self.layers.values():
            if isinstance(layer, BatchNormalization):
                layer.allow_batch_of_one = True  # the book's gradient check uses one digit
