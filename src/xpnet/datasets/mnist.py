"""MNIST, with the book's ``load_mnist`` interface.

Two sources:

* the full official set (60,000 training and 10,000 test digits), read from four IDX
  files in a cache directory and downloaded there, checksummed and atomically, when
  they are missing;
* a bundled set that ships with the package and works offline: the official 10,000-digit
  test set, split with a seed into 8,000 training and 2,000 test digits.

No pickle is used anywhere; the IDX files are parsed directly every time.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from xpnet.datasets import _download
from xpnet.datasets._download import DownloadError
from xpnet.datasets._idx import decompress_if_gzip, parse_idx, read_idx

__all__ = [
    "DatasetFallbackWarning",
    "DatasetUnavailableError",
    "load_mnist",
    "load_mnist_cached",
    "mnist_cache_dir",
]

#: Base URLs of the full set, tried in order (yann.lecun.com no longer serves the files).
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]

#: File name and MD5 of each official ``.gz`` file, as published in torchvision's
#: ``torchvision/datasets/mnist.py`` (``MNIST.resources``).
RESOURCES = {
    "train_images": ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
}

#: SHA-256 of the *decompressed* bundled files (their gzip container was re-made, so the
#: ``.gz`` bytes differ from the mirrors'; the content is the official test set).
BUNDLED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

BUNDLED_TRAIN_SIZE = 8000
BUNDLED_TEST_SIZE = 2000

_SOURCES = ("auto", "full", "bundled")

# Cache directories whose download already failed in this process: ``source="auto"``
# does not try the network again for them (it still uses files that appear there).
_FULL_UNAVAILABLE: dict[Path, str] = {}


class DatasetUnavailableError(RuntimeError):
    """The requested data set is neither cached nor downloadable."""


class DatasetFallbackWarning(UserWarning):
    """``load_mnist(source="auto")`` fell back to the bundled 10,000-digit set."""


def mnist_cache_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the directory where the full MNIST files are looked for and downloaded.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        If given, this directory itself (``~`` is expanded).

    Returns
    -------
    pathlib.Path
        ``data_dir`` if given; else ``$XPNET_DATA/mnist`` if the environment variable
        ``XPNET_DATA`` is set; else ``<user cache dir>/xpnet/mnist``, where the user cache
        dir is ``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS
        and ``%LOCALAPPDATA%`` on Windows.  The directory is not created here.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get("XPNET_DATA")
    if env:
        return Path(env).expanduser() / "mnist"
    return _user_cache_dir() / "xpnet" / "mnist"


def _user_cache_dir() -> Path:
    if sys.platform.startswith("win"):
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg)
    return Path.home() / ".cache"


def load_mnist(
    normalize: bool = True,
    flatten: bool = True,
    one_hot_label: bool = False,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    source: str = "auto",
    seed: int = 0,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST as NumPy arrays, with the semantics of the book's ``load_mnist``.

    Parameters
    ----------
    normalize : bool, optional
        If True, pixels are ``float32`` in ``[0, 1]``; otherwise ``uint8`` in ``[0, 255]``.
    flatten : bool, optional
        If True, images have shape ``(N, 784)``; otherwise ``(N, 1, 28, 28)``.
    one_hot_label : bool, optional
        If True, labels are one-hot ``float32`` of shape ``(N, 10)``; otherwise ``int64``
        class indices of shape ``(N,)``.
    data_dir : str or os.PathLike, optional
        Directory of the full set's files; see :func:`mnist_cache_dir` for the default.
        It may hold the official ``.gz`` files or their decompressed versions (same name
        without ``.gz``).
    download : bool, optional
        Download missing files of the full set from :data:`MIRRORS`.
    source : {"auto", "full", "bundled"}, optional
        ``"full"``: the official 60,000 / 10,000 split from ``data_dir``, downloading what
        is missing; raises :class:`DatasetUnavailableError` if that fails.
        ``"bundled"``: the packaged official test set (10,000 digits), shuffled with
        ``seed`` and split into 8,000 training and 2,000 test digits; needs no network.
        ``"auto"``: ``"full"`` if it can be had, otherwise one
        :class:`DatasetFallbackWarning` saying why, and ``"bundled"``.  After a failed
        download, later ``"auto"`` calls in the same process do not retry the network.
    seed : int, optional
        Seed of the bundled split (a permutation from ``numpy.random.default_rng(seed)``).
        The full set's split is the official one and ignores it.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuple of numpy.ndarray
        Images and labels as described above; new arrays the caller may modify.

    Raises
    ------
    ValueError
        If an argument is invalid, or an IDX file is malformed (wrong magic number,
        truncated or overlong body, image and label counts that disagree, labels outside
        0-9, images that are not 28 x 28); the message names the file.
    DatasetUnavailableError
        With ``source="full"``, if a file is missing or fails its checksum and cannot be
        downloaded.

    Notes
    -----
    Downloaded ``.gz`` files are verified against the MD5 sums torchvision publishes
    (:data:`RESOURCES`), each time they are loaded; decompressed files placed in
    ``data_dir`` by hand are only checked structurally.  Downloads go to a temporary
    file next to the destination and are renamed only once verified, so an interrupted
    download never leaves a complete-looking file.
    """
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, got {source!r}")
    if source == "bundled":
        train, test = _bundled_split(seed)
    else:
        directory = mnist_cache_dir(data_dir)
        may_download = download and (source == "full" or directory not in _FULL_UNAVAILABLE)
        try:
            paths = _ensure_full(directory, may_download)
        except DatasetUnavailableError as exc:
            if source == "full":
                raise
            if may_download:
                _FULL_UNAVAILABLE[directory] = str(exc)
            elif download:
                exc = DatasetUnavailableError(
                    f"{exc} (a download into {directory} already failed in this process)"
                )
            warnings.warn(
                f"{exc}\nFalling back to the bundled MNIST subset: the 10,000 official test "
                f"digits split into {BUNDLED_TRAIN_SIZE} training and {BUNDLED_TEST_SIZE} "
                "test digits. Pass source='bundled' to silence this warning.",
                DatasetFallbackWarning,
                stacklevel=2,
            )
            train, test = _bundled_split(seed)
        else:
            train = _read_pair(paths["train_images"], paths["train_labels"])
            test = _read_pair(paths["test_images"], paths["test_labels"])
    return (
        _format(*train, normalize, flatten, one_hot_label),
        _format(*test, normalize, flatten, one_hot_label),
    )


def load_mnist_cached(source: str = "auto") -> tuple[
    tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]
]:
    """:func:`load_mnist` as the book's scripts call it, read once per process.

    ``load_mnist(normalize=True, flatten=True, one_hot_label=False, source=source)`` from the
    default cache directory (:func:`mnist_cache_dir`), kept in memory: the experiments and the
    ``xpnet`` command call this, so running several experiments parses the files once and says
    once that it fell back to the bundled digits.

    Parameters
    ----------
    source : {"auto", "full", "bundled"}
        As for :func:`load_mnist`.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuple of numpy.ndarray
        ``float32`` images of shape ``(N, 784)`` in ``[0, 1]`` and ``int64`` labels of shape
        ``(N,)``.  The arrays are shared by every caller and therefore **read-only**; copy
        them (``x.copy()``) before changing them in place.

    Warns
    -----
    DatasetFallbackWarning
        On the first call with ``source="auto"`` that cannot have the full set (not on the
        calls served from memory).  Filter it by its class, e.g.
        ``warnings.simplefilter("ignore", DatasetFallbackWarning)``, or pass
        ``source="bundled"``.

    Examples
    --------
    >>> (x, t), (xt, tt) = load_mnist_cached("bundled")
    >>> x.shape, t.dtype.name, x.flags.writeable
    ((8000, 784), 'int64', False)
    """
    if source not in _SOURCES:
        raise ValueError(f"source must be one of {_SOURCES}, got {source!r}")
    return _load_cached(source, mnist_cache_dir())


@functools.lru_cache(maxsize=4)
def _load_cached(source: str, directory: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_mnist(normalize=True, flatten=True, one_hot_label=False,
                          data_dir=directory, source=source)
    for w in caught:  # said now, once: later calls are served from the cache
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    for pair in data:
        for a in pair:
            a.flags.writeable = False
    return data


def _ensure_full(directory: Path, download: bool) -> dict[str, Path]:
    """Return the path of each full-set file, downloading missing or corrupt ones."""
    paths = {}
    for key, (filename, md5) in RESOURCES.items():
        gz = directory / filename
        raw = directory / filename.removesuffix(".gz")
        problem = None
        if gz.is_file():
            digest = _download.file_digest(gz, "md5")
            if digest == md5:
                paths[key] = gz
                continue
            problem = f"cached file {gz} has MD5 {digest}, expected {md5}"
        elif raw.is_file():
            paths[key] = raw
            continue
        else:
            problem = f"{gz} is missing"
        if not download:
            raise DatasetUnavailableError(
                f"The full MNIST set is not available: {problem} and downloading is off."
            )
        try:
            # Replaces a corrupt cached file only once a verified copy is in hand.
            paths[key] = _download.download(filename, directory, MIRRORS, md5, algorithm="md5")
        except (DownloadError, OSError) as exc:
            raise DatasetUnavailableError(
                f"The full MNIST set is not available: {problem} and the download failed: "
                f"{exc}"
            ) from exc
    return paths


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    return _check_pair(
        read_idx(images_path, "images"), read_idx(labels_path, "labels"),
        str(images_path), str(labels_path),
    )


def _check_pair(
    images: np.ndarray, labels: np.ndarray, images_name: str, labels_name: str
) -> tuple[np.ndarray, np.ndarray]:
    if images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_name}: images are {images.shape[1]} x {images.shape[2]}, expected 28 x 28"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_name} holds {images.shape[0]} images but {labels_name} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(f"{labels_name}: label {int(labels.max())} outside 0-9")
    return images, labels


@functools.cache
def _bundled_raw() -> tuple[np.ndarray, np.ndarray]:
    """Read (once) and verify the packaged 10,000-digit set; read-only arrays."""
    arrays = []
    for filename, kind in (
        (RESOURCES["test_images"][0], "images"),
        (RESOURCES["test_labels"][0], "labels"),
    ):
        name = f"xpnet/datasets/data/{filename}"
        data = decompress_if_gzip(_bundled_bytes(filename), name)
        digest = hashlib.sha256(data).hexdigest()
        if digest != BUNDLED_SHA256[filename]:
            raise ValueError(
                f"{name}: bundled file is corrupt (SHA-256 of its content is {digest}, "
                f"expected {BUNDLED_SHA256[filename]}); reinstall xpnet"
            )
        arrays.append(parse_idx(data, kind, name))
    images, labels = _check_pair(*arrays, *(f"bundled {k}" for k in ("images", "labels")))
    if images.shape[0] != BUNDLED_TRAIN_SIZE + BUNDLED_TEST_SIZE:
        raise ValueError(f"bundled MNIST holds {images.shape[0]} digits, expected 10000")
    return images, labels


def _bundled_bytes(filename: str) -> bytes:
    return (resources.files("xpnet.datasets") / "data" / filename).read_bytes()


def _bundled_split(seed: int):
    images, labels = _bundled_raw()
    order = np.random.default_rng(seed).permutation(images.shape[0])
    train, test = order[:BUNDLED_TRAIN_SIZE], order[BUNDLED_TRAIN_SIZE:]
    return (images[train], labels[train]), (images[test], labels[test])


def _format(images, labels, normalize, flatten, one_hot_label):
    n = images.shape[0]
    if normalize:
        x = images.astype(np.float32)
        x /= np.float32(255.0)
    else:
        x = np.array(images, dtype=np.uint8, copy=True)
    x = x.reshape((n, 784) if flatten else (n, 1, 28, 28))
    if one_hot_label:
        t = np.zeros((n, 10), dtype=np.float32)
        t[np.arange(n), labels] = 1.0
    else:
        t = labels.astype(np.int64)
    return x, t
