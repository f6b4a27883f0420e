"""Data sets for the chapter-6 experiments, as NumPy arrays.

* :func:`load_mnist`: MNIST with the book's interface; the full official set is
  downloaded (checksummed, atomically) into a cache directory, and a bundled
  10,000-digit subset makes it work offline; falling back to it issues a
  :class:`DatasetFallbackWarning` (filter it by that class).
* :func:`load_mnist_cached`: ``load_mnist()`` with the book's defaults, read once per
  process (what the experiments and the ``xpnet`` command use).
* :func:`load_titanic`: the bundled Titanic passenger table, standardized on its
  training split.
* :func:`read_idx`: one MNIST IDX file (images or labels, gzip or raw).
* :func:`shuffle_dataset`: the book's joint shuffle of inputs and labels.

See ``xpnet/datasets/data/ATTRIBUTION.txt`` for where the bundled files come from.
"""

from xpnet.datasets._download import DownloadError
from xpnet.datasets._idx import read_idx
from xpnet.datasets.mnist import (
    DatasetFallbackWarning,
    DatasetUnavailableError,
    load_mnist,
    load_mnist_cached,
    mnist_cache_dir,
)
from xpnet.datasets.shuffle import shuffle_dataset
from xpnet.datasets.titanic import TITANIC_FEATURES, load_titanic

__all__ = [
    "TITANIC_FEATURES",
    "DatasetFallbackWarning",
    "DatasetUnavailableError",
    "DownloadError",
    "load_mnist",
    "load_mnist_cached",
    "load_titanic",
    "mnist_cache_dir",
    "read_idx",
    "shuffle_dataset",
]
