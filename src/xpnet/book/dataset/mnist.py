"""The book's ``dataset/mnist.py``: :func:`xpnet.datasets.load_mnist`.

``load_mnist(normalize=True, flatten=True, one_hot_label=False)`` has the book's signature and
returns NumPy arrays.  The full 70,000-digit set is downloaded (checksummed) into xpnet's cache
directory rather than beside the script, and no pickle is written.  Without a network it warns
once and uses the bundled official test set, split 8,000 / 2,000.  Labels are ``int64`` (the
book's are ``uint8``), one-hot labels ``float32`` (the book's ``float64``).

The book's constants keep their values (``url_base``, ``key_file``, ``train_num``, ...);
``dataset_dir`` is xpnet's cache directory.  The book's ``save_file`` (its pickle) has no
counterpart.
"""

import gzip
import os
import os.path
import pickle
import urllib.request

import numpy as np

from xpnet.datasets import load_mnist, mnist_cache_dir
from xpnet.datasets.mnist import MIRRORS, RESOURCES

__all__ = [
    "dataset_dir",
    "download_mnist",
    "gzip",
    "img_dim",
    "img_size",
    "init_mnist",
    "key_file",
    "load_mnist",
    "np",
    "os",
    "pickle",
    "test_num",
    "train_num",
    "url_base",
    "urllib",
]

url_base = MIRRORS[0]
key_file = {
    "train_img": RESOURCES["train_images"][0],
    "train_label": RESOURCES["train_labels"][0],
    "test_img": RESOURCES["test_images"][0],
    "test_label": RESOURCES["test_labels"][0],
}
dataset_dir = str(mnist_cache_dir())
train_num = 60000
test_num = 10000
img_dim = (1, 28, 28)
img_size = 784


def download_mnist():
    """Download the full set into :func:`xpnet.datasets.mnist_cache_dir` (what is missing).

    Raises :class:`xpnet.datasets.DatasetUnavailableError` when that fails.
    """
    load_mnist(source="full")


def init_mnist():
    """The book's first-run step: here the same as :func:`download_mnist` (no pickle)."""
    download_mnist()
