"""The book's ``common/gradient.py``: :mod:`xpnet.gradient`."""

import numpy as np

from xpnet.gradient import numerical_gradient, numerical_gradient_2d

__all__ = ["np", "numerical_gradient", "numerical_gradient_2d"]
