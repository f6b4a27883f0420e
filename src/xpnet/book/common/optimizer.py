"""The book's ``common/optimizer.py``: the optimizers of :mod:`xpnet.optim`.

Same names, arguments and update rules; parameters may be arrays of any backend (updated in
place) or numbers (the dict entry is rebound, as the book's ``params[key] -= ...`` does).
As in the book, ``from ... import *`` also brings ``np``.
"""

import numpy as np

from xpnet.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop

__all__ = ["SGD", "AdaGrad", "Adam", "Momentum", "Nesterov", "RMSprop", "np"]
