"""The book's ``common/trainer.py``: :class:`xpnet.Trainer`.

Same arguments and result lists (``train_loss_list``, ``train_acc_list``, ``test_acc_list``);
see :class:`xpnet.Trainer` for how its mini-batches and evaluation points differ from the
book's.  As in the book, a star import also brings the optimizers, ``np``, ``os`` and ``sys``.
"""

import os
import sys

import numpy as np

from xpnet.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop
from xpnet.trainer import Trainer

__all__ = ["SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "RMSprop", "Trainer", "np", "os",
           "sys"]
