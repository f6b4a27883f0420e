"""The book's ``common/util.py``: :func:`xpnet.plotting.smooth_curve` and
:func:`xpnet.datasets.shuffle_dataset`.

``smooth_curve`` also takes lists of 0-d device arrays (copied to the host in one batch);
``shuffle_dataset`` draws from NumPy's global random state, as the book does.
"""

import numpy as np

from xpnet.datasets import shuffle_dataset
from xpnet.plotting import smooth_curve

__all__ = ["np", "shuffle_dataset", "smooth_curve"]
