"""The book's ``common/util.py``: :func:`xpnet.plotting.smooth_curve`,
:func:`xpnet.datasets.shuffle_dataset`, and :func:`xpnet.functions.im2col`, ``col2im`` and
``conv_output_size``.

``smooth_curve`` also takes lists of 0-d device arrays (copied to the host in one batch);
``shuffle_dataset`` draws from NumPy's global random state, as the book does; ``im2col`` and
``col2im`` work on arrays of any backend; ``conv_output_size`` returns the int that ``im2col``
uses (the book's returns a float).
"""

import numpy as np

from xpnet.datasets import shuffle_dataset
from xpnet.functions import col2im, conv_output_size, im2col
from xpnet.plotting import smooth_curve

__all__ = ["col2im", "conv_output_size", "im2col", "np", "shuffle_dataset", "smooth_curve"]
