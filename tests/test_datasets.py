"""Tests of xpnet.datasets: IDX parsing, checksummed atomic downloads, bundled data, Titanic.

No test touches the network: an autouse fixture makes every fetch fail, and the download
tests serve files from a temporary directory through ``file://`` mirrors.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import sys
import urllib.error
import warnings
from importlib import resources

import numpy as np
import pytest

from xpnet.datasets import (
    DatasetFallbackWarning,
    DatasetUnavailableError,
    _download,
    load_mnist,
    load_mnist_cached,
    load_titanic,
    mnist,
    mnist_cache_dir,
)
from xpnet.datasets._idx import read_idx, write_idx

REAL_FETCH = _download.fetch
N_TRAIN, N_TEST = 30, 12


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No network, a private cache directory, and no memory of earlier failed downloads."""
    calls = []

    def no_network(url, out, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(_download, "fetch", no_network)
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "xpnet-data"))
    monkeypatch.setattr(mnist, "_FULL_UNAVAILABLE", {})
    return calls


def _synthetic(n, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def _write_full_set(directory, *, compress=True):
    """Write a small but well-formed full set; return the arrays by resource key."""
    directory.mkdir(parents=True, exist_ok=True)
    train, test = _synthetic(N_TRAIN, 1), _synthetic(N_TEST, 2)
    arrays = {
        "train_images": train[0], "train_labels": train[1],
        "test_images": test[0], "test_labels": test[1],
    }
    paths = {}
    for key, array in arrays.items():
        name = mnist.RESOURCES[key][0]
        if not compress:
            name = name.removesuffix(".gz")
        paths[key] = directory / name
        write_idx(paths[key], array, compress=compress)
    return arrays, paths


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve a small full set from file:// mirrors, with its MD5s patched in."""
    arrays, paths = _write_full_set(tmp_path / "server")
    for key, path in paths.items():
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        monkeypatch.setitem(mnist.RESOURCES, key, (path.name, digest))
    monkeypatch.setattr(mnist, "MIRRORS", [(tmp_path / "server").as_uri() + "/"])
    monkeypatch.setattr(_download, "fetch", REAL_FETCH)
    return arrays, paths


def _visible_files(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    images, labels = _synthetic(7, 0)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / f"img{suffix}", images)
    write_idx(tmp_path / f"lbl{suffix}", labels)
    assert (tmp_path / f"img{suffix}").read_bytes()[:2] == (b"\x1f\x8b" if compress else b"\0\0")
    np.testing.assert_array_equal(read_idx(tmp_path / f"img{suffix}", "images"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / f"lbl{suffix}", "labels"), labels)


@pytest.mark.parametrize("compress", [True, False])
def test_full_set_from_raw_or_gz_files(tmp_path, monkeypatch, compress):
    arrays, paths = _write_full_set(tmp_path / "d", compress=compress)
    if compress:  # hand-placed .gz files must carry the right checksum
        for key, path in paths.items():
            digest = hashlib.md5(path.read_bytes()).hexdigest()
            monkeypatch.setitem(mnist.RESOURCES, key, (path.name, digest))
    (x, t), (xt, tt) = load_mnist(
        normalize=False, flatten=False, data_dir=tmp_path / "d", source="full", download=False
    )
    np.testing.assert_array_equal(x[:, 0], arrays["train_images"])
    np.testing.assert_array_equal(t, arrays["train_labels"])
    np.testing.assert_array_equal(xt[:, 0], arrays["test_images"])
    np.testing.assert_array_equal(tt, arrays["test_labels"])


def _corrupt(paths, case):
    """Damage one raw file of a full set; return the file the error must name."""
    if case == "wrong magic":
        target = paths["train_images"]
        target.write_bytes(b"\x00\x00\x08\x01" + target.read_bytes()[4:])
    elif case == "truncated body":
        target = paths["test_images"]
        target.write_bytes(target.read_bytes()[:-100])
    elif case == "trailing bytes":
        target = paths["train_labels"]
        target.write_bytes(target.read_bytes() + b"\x01\x02")
    elif case == "truncated header":
        target = paths["test_labels"]
        target.write_bytes(target.read_bytes()[:6])
    elif case == "count mismatch":
        target = paths["train_labels"]
        write_idx(target, np.zeros(N_TRAIN - 1, np.uint8), compress=False)
    elif case == "bad label":
        target = paths["test_labels"]
        write_idx(target, np.full(N_TEST, 10, np.uint8), compress=False)
    elif case == "not 28x28":
        target = paths["train_images"]
        write_idx(target, np.zeros((N_TRAIN, 27, 28), np.uint8), compress=False)
    return target


@pytest.mark.parametrize(
    "case",
    ["wrong magic", "truncated body", "trailing bytes", "truncated header", "count mismatch",
     "bad label", "not 28x28"],
)
@pytest.mark.parametrize("source", ["full", "auto"])
def test_malformed_idx_raises_value_error_naming_the_file(tmp_path, case, source):
    _, paths = _write_full_set(tmp_path / "d", compress=False)
    target = _corrupt(paths, case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a corrupt full set must not fall back silently
        with pytest.raises(ValueError, match=re.escape(str(target))):
            load_mnist(data_dir=tmp_path / "d", source=source)


def test_truncated_gzip_raises_value_error_naming_the_file(tmp_path):
    images, _ = _synthetic(3, 0)
    path = tmp_path / "img.gz"
    write_idx(path, images)
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match=re.escape(str(path))):
        read_idx(path, "images")


# ---------------------------------------------------------------------- downloads


def test_successful_download_lands_and_loads(server, tmp_path, monkeypatch):
    arrays, _ = server
    cache = tmp_path / "cache"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (x, t), (xt, tt) = load_mnist(
            normalize=False, one_hot_label=True, data_dir=cache, source="full"
        )
    assert _visible_files(cache) == sorted(name for name, _ in mnist.RESOURCES.values())
    assert x.shape == (N_TRAIN, 784) and x.dtype == np.uint8
    np.testing.assert_array_equal(x.reshape(-1, 28, 28), arrays["train_images"])
    np.testing.assert_array_equal(t.argmax(axis=1), arrays["train_labels"])
    np.testing.assert_array_equal(xt.reshape(-1, 28, 28), arrays["test_images"])
    np.testing.assert_array_equal(tt.argmax(axis=1), arrays["test_labels"])

    # Cached now: loads again with the network gone and downloads disabled.
    monkeypatch.setattr(_download, "fetch", _raise(urllib.error.URLError("offline")))
    (x2, _), _ = load_mnist(normalize=False, data_dir=cache, source="full", download=False)
    np.testing.assert_array_equal(x2, x)


def _raise(exc):
    def fetch(url, out, **kwargs):
        raise exc

    return fetch


def test_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path, monkeypatch):
    served = []

    def wrong_bytes(url, out, **kwargs):
        served.append(url)
        out.write(b"\x1f\x8b not the file you are looking for")

    monkeypatch.setattr(mnist, "MIRRORS", ["https://a.invalid/", "https://b.invalid/"])
    monkeypatch.setattr(_download, "fetch", wrong_bytes)
    cache = tmp_path / "cache"
    name = mnist.RESOURCES["train_images"][0]
    with pytest.raises(DatasetUnavailableError, match=r"(?s)checksum mismatch.*" + re.escape(name)):
        load_mnist(data_dir=cache, source="full")
    assert served == [f"https://a.invalid/{name}", f"https://b.invalid/{name}"]
    assert _visible_files(cache) == []
    with pytest.raises(DatasetUnavailableError):
        load_mnist(data_dir=cache, source="full", download=False)


def test_bad_mirror_then_good_mirror(server, tmp_path, monkeypatch):
    good = mnist.MIRRORS[0]
    monkeypatch.setattr(mnist, "MIRRORS", ["https://bad.invalid/", good])

    def bad_first(url, out, **kwargs):
        if url.startswith("https://bad.invalid/"):
            out.write(b"garbage")
        else:
            REAL_FETCH(url, out, **kwargs)

    monkeypatch.setattr(_download, "fetch", bad_first)
    (x, _), _ = load_mnist(data_dir=tmp_path / "cache", source="full")
    assert x.shape == (N_TRAIN, 784)
    # the bad copy's temporary file is gone: only the four verified files are there
    assert _visible_files(tmp_path / "cache") == sorted(n for n, _ in mnist.RESOURCES.values())


@pytest.mark.parametrize("exc", [OSError("connection reset"), KeyboardInterrupt()])
def test_interrupted_download_leaves_nothing_that_loads(server, tmp_path, monkeypatch, exc):
    def half_then_fail(url, out, **kwargs):
        data = (tmp_path / "server" / url.rsplit("/", 1)[1]).read_bytes()
        out.write(data[: len(data) // 2])
        raise exc

    monkeypatch.setattr(_download, "fetch", half_then_fail)
    cache = tmp_path / "cache"
    expected = DatasetUnavailableError if isinstance(exc, OSError) else KeyboardInterrupt
    with pytest.raises(expected):
        load_mnist(data_dir=cache, source="full")
    assert _visible_files(cache) == []  # neither the final name nor a temporary file
    with pytest.raises(DatasetUnavailableError):
        load_mnist(data_dir=cache, source="full", download=False)


def test_corrupt_cached_file_is_replaced_only_by_a_verified_copy(server, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    load_mnist(data_dir=cache, source="full")
    victim = cache / mnist.RESOURCES["test_labels"][0]
    victim.write_bytes(victim.read_bytes()[:-3])

    monkeypatch.setattr(_download, "fetch", _raise(urllib.error.URLError("offline")))
    with pytest.raises(DatasetUnavailableError, match=re.escape(str(victim))):
        load_mnist(data_dir=cache, source="full")
    assert victim.exists()  # the failed download did not delete it

    monkeypatch.setattr(_download, "fetch", REAL_FETCH)
    load_mnist(data_dir=cache, source="full")
    assert victim.read_bytes() == (tmp_path / "server" / victim.name).read_bytes()


def test_full_without_cache_or_network_raises(tmp_path, _isolated):
    cache = tmp_path / "cache"
    with pytest.raises(DatasetUnavailableError, match="train-images-idx3-ubyte.gz"):
        load_mnist(data_dir=cache, source="full")
    assert _isolated  # the download was attempted ...
    assert not [p for p in _visible_files(cache) if not p.startswith(".")]  # ... left nothing
    assert _visible_files(cache) == []
    with pytest.raises(DatasetUnavailableError, match="downloading is off"):
        load_mnist(data_dir=cache, source="full", download=False)


# ---------------------------------------------------------------------- bundled


def test_auto_falls_back_to_bundled_with_one_warning(tmp_path, _isolated):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (x, t), (xt, tt) = load_mnist(data_dir=tmp_path / "empty")
    assert [w.category for w in caught] == [DatasetFallbackWarning]
    assert "network disabled in tests" in str(caught[0].message)
    assert x.shape == (8000, 784) and xt.shape == (2000, 784)
    assert t.shape == (8000,) and tt.shape == (2000,)
    attempts = len(_isolated)

    # A second call warns once again but does not retry the network.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_mnist(data_dir=tmp_path / "empty")
    assert [w.category for w in caught] == [DatasetFallbackWarning]
    assert len(_isolated) == attempts


@pytest.fixture
def _fresh_cache():
    """load_mnist_cached without the arrays of earlier tests."""
    mnist._load_cached.cache_clear()
    yield
    mnist._load_cached.cache_clear()


def test_cached_loader_warns_once_by_class_and_shares_read_only_arrays(_isolated, _fresh_cache):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = load_mnist_cached()  # source="auto": no network here, so the bundled digits
    assert [w.category for w in caught] == [DatasetFallbackWarning]
    attempts = len(_isolated)
    assert attempts > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetFallbackWarning)  # said once per process
        second = load_mnist_cached()
    assert len(_isolated) == attempts  # no second download attempt either
    (x, t), (xt, tt) = second
    assert x is first[0][0] and tt is first[1][1]  # served from memory
    expected = load_mnist(source="bundled")
    for got, want in zip((x, t, xt, tt), (*expected[0], *expected[1]), strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
        assert not got.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0] = 1.0


def test_fallback_warning_is_filtered_by_class(_isolated, _fresh_cache):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", DatasetFallbackWarning)
        (x, _), _ = load_mnist_cached("auto")
    assert x.shape == (8000, 784)


def test_cached_loader_rejects_a_bad_source():
    with pytest.raises(ValueError, match="source"):
        load_mnist_cached("internet")


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("flatten", [True, False])
@pytest.mark.parametrize("one_hot", [True, False])
def test_bundled_shapes_dtypes_ranges(normalize, flatten, one_hot):
    (x, t), (xt, tt) = load_mnist(normalize, flatten, one_hot, source="bundled")
    for images, labels, n in ((x, t, 8000), (xt, tt, 2000)):
        assert images.shape == ((n, 784) if flatten else (n, 1, 28, 28))
        if normalize:
            assert images.dtype == np.float32
            assert images.min() == 0.0 and images.max() == 1.0
        else:
            assert images.dtype == np.uint8 and images.max() == 255
        if one_hot:
            assert labels.shape == (n, 10) and labels.dtype == np.float32
            np.testing.assert_array_equal(labels.sum(axis=1), 1.0)
        else:
            assert labels.shape == (n,) and labels.dtype == np.int64
            assert labels.min() == 0 and labels.max() == 9


def test_bundled_split_is_seeded_and_a_partition():
    (x0, t0), (xt0, tt0) = load_mnist(normalize=False, source="bundled", seed=0)
    (x1, t1), (xt1, _) = load_mnist(normalize=False, source="bundled", seed=0)
    (x2, _), _ = load_mnist(normalize=False, source="bundled", seed=1)
    np.testing.assert_array_equal(x0, x1)
    np.testing.assert_array_equal(t0, t1)
    np.testing.assert_array_equal(xt0, xt1)
    assert not np.array_equal(x0, x2)
    # Together the two splits are exactly the 10,000 test digits (as a multiset).
    all_images, all_labels = mnist._bundled_raw()
    np.testing.assert_array_equal(np.bincount(np.concatenate([t0, tt0])), np.bincount(all_labels))
    assert int(np.concatenate([x0, xt0]).sum(dtype=np.int64)) == int(all_images.sum(dtype=np.int64))
    x0[:] = 0  # returned arrays are the caller's own
    assert load_mnist(normalize=False, source="bundled")[0][0].any()


def test_bundled_files_match_design_sha256():
    expected = {
        "t10k-images-idx3-ubyte.gz":
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz":
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
    data = resources.files("xpnet.datasets") / "data"
    for name, digest in expected.items():
        assert hashlib.sha256(gzip.decompress((data / name).read_bytes())).hexdigest() == digest
    assert (data / "ATTRIBUTION.txt").is_file()


def test_corrupt_bundled_file_is_detected(monkeypatch):
    monkeypatch.setattr(mnist, "_bundled_bytes", lambda name: gzip.compress(b"\0\0\x08\x03" * 9))
    mnist._bundled_raw.cache_clear()
    try:
        with pytest.raises(ValueError, match="SHA-256"):
            load_mnist(source="bundled")
    finally:
        mnist._bundled_raw.cache_clear()


def test_invalid_source():
    with pytest.raises(ValueError, match="source"):
        load_mnist(source="kaggle")


def test_cache_dir_resolution(tmp_path, monkeypatch):
    assert mnist_cache_dir(tmp_path) == tmp_path
    assert mnist_cache_dir() == tmp_path / "xpnet-data" / "mnist"
    monkeypatch.delenv("XPNET_DATA")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert mnist_cache_dir() == tmp_path / "xdg" / "xpnet" / "mnist"
    assert mnist_cache_dir().parts[-2:] == ("xpnet", "mnist")


# ---------------------------------------------------------------------- titanic


def test_titanic_shapes_dtypes_no_nans():
    (x, t), (xt, tt) = load_titanic()
    assert x.shape == (1047, 3) and xt.shape == (262, 3)
    assert x.dtype == xt.dtype == np.float32
    assert t.dtype == tt.dtype == np.int64
    assert set(np.unique(t)) == {0, 1}
    assert not np.isnan(x).any() and not np.isnan(xt).any()
    # stratified: both splits keep the survival rate (500 / 1309)
    assert abs(t.mean() - 500 / 1309) < 0.01 and abs(tt.mean() - 500 / 1309) < 0.01


def test_titanic_standardized_with_training_statistics():
    features = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")
    (x, t), (xt, tt) = load_titanic(features, seed=3)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-5)
    (raw, t_raw), (raw_t, tt_raw) = load_titanic(features, seed=3, standardize=False)
    np.testing.assert_array_equal(t, t_raw)
    np.testing.assert_array_equal(tt, tt_raw)
    assert set(np.unique(raw[:, 1])) == {0.0, 1.0}  # Sex
    mean, std = raw.astype(np.float64).mean(axis=0), raw.astype(np.float64).std(axis=0)
    np.testing.assert_allclose(xt, (raw_t - mean) / std, rtol=1e-5, atol=1e-5)
    assert np.abs(xt.mean(axis=0)).max() > 1e-3  # the test split is not standardized by itself


def test_titanic_missing_values_use_training_median():
    from xpnet.datasets.titanic import _read_table, _stratified_split

    # With seed 7 the training median of Age (28.5) differs from the overall one (28).
    (raw, _), (raw_t, _) = load_titanic(("Age",), standardize=False, seed=7)
    ages, target = _read_table(("Age",))
    train, test = _stratified_split(target, 0.2, 7)
    median = np.nanmedian(ages[train, 0])
    assert median != np.nanmedian(ages[:, 0])
    missing_train, missing_test = np.isnan(ages[train, 0]), np.isnan(ages[test, 0])
    assert missing_train.any() and missing_test.any()
    np.testing.assert_array_equal(raw[missing_train, 0], np.float32(median))
    np.testing.assert_array_equal(raw_t[missing_test, 0], np.float32(median))
    np.testing.assert_array_equal(
        raw_t[~missing_test, 0], ages[test, 0][~missing_test].astype(np.float32)
    )


def test_titanic_deterministic_with_seed():
    a = load_titanic(seed=5)
    b = load_titanic(seed=5)
    c = load_titanic(seed=6)
    for (xa, ta), (xb, tb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ta, tb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_titanic_unknown_feature_and_bad_ratio():
    with pytest.raises(ValueError, match=r"Cabin.*Pclass"):
        load_titanic(("Pclass", "Cabin"))
    with pytest.raises(ValueError, match="test_ratio"):
        load_titanic(test_ratio=1.5)
    (x, _), _ = load_titanic("Sex")
    assert x.shape[1] == 1
