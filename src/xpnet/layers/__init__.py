"""The book's layers (``common/layers.py``) and cs231n lecture 7's, written once against the
Array API.

Every layer has ``forward(x[, train_flg])`` and ``backward(dout)``; parameter gradients land in
``dW``/``db`` (``Affine``, ``Convolution``, ``Maxout``), ``dgamma``/``dbeta`` (the
normalizations) and ``dalpha`` (``PRelu``).
"""

from xpnet.layers.activations import Elu, LeakyRelu, Maxout, PRelu, Relu, Sigmoid, Tanh
from xpnet.layers.affine import Affine
from xpnet.layers.base import Layer
from xpnet.layers.conv import Convolution, Pooling
from xpnet.layers.dropout import Dropout
from xpnet.layers.losses import SoftmaxWithLoss
from xpnet.layers.normalization import (
    BatchNormalization,
    GroupNormalization,
    InstanceNormalization,
    LayerNormalization,
    SpatialBatchNormalization,
)

__all__ = [
    "Affine",
    "BatchNormalization",
    "Convolution",
    "Dropout",
    "Elu",
    "GroupNormalization",
    "InstanceNormalization",
    "Layer",
    "LayerNormalization",
    "LeakyRelu",
    "Maxout",
    "PRelu",
    "Pooling",
    "Relu",
    "Sigmoid",
    "SoftmaxWithLoss",
    "SpatialBatchNormalization",
    "Tanh",
]
