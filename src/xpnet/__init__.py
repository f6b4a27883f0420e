"""xpnet: *Deep Learning from Scratch* chapters 6 and 7 on any Array API backend.

The book's layers, optimizers, networks and trainer, written once against the Python Array API
standard so the same code runs on NumPy (CPU), CuPy (NVIDIA GPU), PyTorch tensors and the strict
reference namespace ``array_api_strict``.  Switch with ``backend=``::

    import xpnet
    net = xpnet.MultiLayerNetExtend(784, [100, 100], 10, use_batchnorm=True, backend="torch")
"""

from xpnet import checkpoint, functions, init, layers, network, preprocessing
from xpnet.backend import (
    Backend,
    BackendUnavailableError,
    available_backends,
    default_backend,
    default_dtype,
    get_backend,
    get_num_threads,
    set_default_backend,
    set_num_threads,
)
from xpnet.checkpoint import load
from xpnet.convnet import SimpleConvNet
from xpnet.ensemble import Ensemble, tta_predict
from xpnet.errors import (
    CheckpointError,
    NonFiniteError,
    TrainingDivergedError,
    TrainingInterrupted,
)
from xpnet.gradcheck import GradientCheckWarning, gradient_check
from xpnet.nets import MultiLayerNet, MultiLayerNetExtend
from xpnet.optim import (
    SGD,
    AdaGrad,
    Adam,
    AdamW,
    Momentum,
    Nesterov,
    Optimizer,
    RMSprop,
    get_optimizer,
)
from xpnet.trainer import Trainer
from xpnet.version import __version__ as __version__

__all__ = [
    "SGD",
    "AdaGrad",
    "Adam",
    "AdamW",
    "Backend",
    "BackendUnavailableError",
    "CheckpointError",
    "Ensemble",
    "GradientCheckWarning",
    "Momentum",
    "MultiLayerNet",
    "MultiLayerNetExtend",
    "Nesterov",
    "NonFiniteError",
    "Optimizer",
    "RMSprop",
    "SimpleConvNet",
    "Trainer",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "available_backends",
    "checkpoint",
    "default_backend",
    "default_dtype",
    "functions",
    "get_backend",
    "get_num_threads",
    "get_optimizer",
    "gradient_check",
    "init",
    "layers",
    "load",
    "network",
    "preprocessing",
    "set_default_backend",
    "set_num_threads",
    "tta_predict",
]
