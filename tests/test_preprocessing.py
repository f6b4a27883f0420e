"""xpnet.preprocessing against plain NumPy float64 transcriptions of cs231n's formulas, an
independent SVD, and scikit-learn where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from conftest import assert_close, assert_on_backend
from xpnet.preprocessing import PCA, Centering, NotFittedError, Standardization, Whitening


def _correlated(rng, n=60, d=5, offset=3.0):
    """Correlated data with clearly separated covariance eigenvalues (about 1..10)."""
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.linspace(3.0, 1.0, d)
    return rng.standard_normal((n, d)) * scales @ q.T + offset * rng.standard_normal(d)


def _host(be, x):
    return np.asarray(be.to_numpy(x), dtype=np.float64)


# ------------------------------------------------------------------------------------------
# centering and standardization
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_centering_per_feature(backend, rng, dtype):
    train = rng.standard_normal((20, 4)) * [1.0, 2.0, 3.0, 4.0] + [5.0, -1.0, 0.0, 2.0]
    test = rng.standard_normal((7, 4))
    x_train = backend.asarray(train, dtype=dtype)
    c = Centering()
    assert c.fit(x_train) is c
    ref_train = train.astype(dtype).astype(np.float64)
    mean = ref_train.mean(axis=0)
    assert_on_backend(backend, c.mean_, dtype=dtype, shape=(4,))
    assert_close(backend, c.mean_, mean)
    out = c.transform(backend.asarray(test, dtype=dtype))
    assert_on_backend(backend, out, dtype=dtype, shape=(7, 4))
    assert_close(backend, out, test.astype(dtype) - mean, atol=1e-5)
    assert_close(backend, c.inverse_transform(out), test.astype(dtype), atol=1e-5)


def test_centering_mean_image_and_per_channel(backend, rng):
    """AlexNet subtracts the mean image (C, H, W); VGG one mean per channel (C,)."""
    host = rng.standard_normal((6, 3, 4, 5)) + np.arange(3.0)[None, :, None, None]
    x = backend.asarray(host, dtype="float64")
    image = Centering().fit(x)
    assert_on_backend(backend, image.mean_, shape=(3, 4, 5))
    assert_close(backend, image.mean_, host.mean(axis=0))
    assert_close(backend, image.transform(x), host - host.mean(axis=0))
    channel = Centering(per_channel=True).fit(x)
    assert_on_backend(backend, channel.mean_, shape=(3,))
    assert_close(backend, channel.mean_, host.mean(axis=(0, 2, 3)))
    other = rng.standard_normal((2, 3, 7, 2))  # any image size, per channel
    assert_close(backend, channel.transform(backend.asarray(other, dtype="float64")),
                 other - host.mean(axis=(0, 2, 3))[None, :, None, None])
    with pytest.raises(ValueError, match="shape"):
        image.transform(backend.asarray(other, dtype="float64"))


@pytest.mark.parametrize("per_channel", [False, True])
def test_standardization_against_numpy(backend, rng, per_channel):
    shape = (8, 2, 3, 3) if per_channel else (30, 4)
    host = rng.standard_normal(shape) * 3.0 + 1.5
    axes = (0, 2, 3) if per_channel else (0,)
    s = Standardization(per_channel=per_channel, eps=1e-3).fit(backend.asarray(host))
    mean = host.mean(axis=axes)
    var = ((host - host.mean(axis=axes, keepdims=True)) ** 2).mean(axis=axes)  # biased
    assert_close(backend, s.mean_, mean)
    assert_close(backend, s.var_, var)
    assert_close(backend, s.scale_, np.sqrt(var + 1e-3))
    out = s.transform(backend.asarray(host))
    shape_b = (1, -1, 1, 1) if per_channel else (-1,)
    want = (host - mean.reshape(shape_b)) / np.sqrt(var + 1e-3).reshape(shape_b)
    assert_close(backend, out, want)
    assert_close(backend, s.inverse_transform(out), host)


def test_standardization_matches_scikit_learn(backend, rng):
    host = rng.standard_normal((25, 5)) * [1.0, 10.0, 0.1, 2.0, 1.0] + 4.0
    host[:, 4] = 7.0  # a constant feature: scale 1, centered to 0 (not divided by zero)
    test = rng.standard_normal((6, 5))
    s = Standardization().fit(backend.asarray(host))
    out = _host(backend, s.transform(backend.asarray(test)))
    scale = _host(backend, s.scale_)
    assert scale[4] == 1.0
    np.testing.assert_allclose(out[:, :4], (test[:, :4] - host[:, :4].mean(0))
                               / host[:, :4].std(0), rtol=1e-12)
    sk = pytest.importorskip("sklearn.preprocessing").StandardScaler().fit(host)
    np.testing.assert_allclose(scale, sk.scale_, rtol=1e-12)
    np.testing.assert_allclose(_host(backend, s.var_), sk.var_, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(out, sk.transform(test), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# PCA
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_pca_matches_svd_and_reconstructs_with_reported_variance(backend, rng, dtype):
    host = _correlated(rng).astype(dtype).astype(np.float64)
    n, d = host.shape
    k = 3
    pca = PCA(k).fit(backend.asarray(host, dtype=dtype))
    # the independent oracle: an SVD of the centered data (float64)
    xc = host - host.mean(axis=0)
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)
    ev_all = sv**2 / (n - 1)
    rtol = 1e-10 if dtype == "float64" else 2e-5
    comps = _host(backend, pca.components_)
    assert_on_backend(backend, pca.components_, dtype=dtype, shape=(k, d))
    for i in range(k):  # same axis up to sign, and the sign rule: largest entry positive
        assert abs(comps[i] @ vt[i]) == pytest.approx(1.0, abs=10 * rtol)
        assert comps[i][np.argmax(np.abs(comps[i]))] > 0
    np.testing.assert_allclose(_host(backend, pca.explained_variance_), ev_all[:k], rtol=rtol)
    np.testing.assert_allclose(_host(backend, pca.explained_variance_ratio_),
                               ev_all[:k] / ev_all.sum(), rtol=rtol)
    np.testing.assert_allclose(_host(backend, pca.mean_), host.mean(axis=0), rtol=rtol)
    # reconstruction error = the variance it does not report
    z = pca.transform(backend.asarray(host, dtype=dtype))
    assert_on_backend(backend, z, dtype=dtype, shape=(n, k))
    np.testing.assert_allclose(np.var(_host(backend, z), axis=0, ddof=1), ev_all[:k], rtol=rtol)
    rec = _host(backend, pca.inverse_transform(z))
    lost = np.sum((host - rec) ** 2) / (n - 1)
    total = np.sum(np.var(host, axis=0, ddof=1))
    reported = np.sum(_host(backend, pca.explained_variance_))
    assert lost == pytest.approx(total - reported, rel=100 * rtol)
    assert lost == pytest.approx(ev_all[k:].sum(), rel=100 * rtol)


def test_pca_full_rank_round_trip_and_whiten(backend, rng):
    host = _correlated(rng, n=40, d=4)
    x = backend.asarray(host, dtype="float64")
    full = PCA().fit(x)
    assert full.n_components_ == 4
    assert_close(backend, full.inverse_transform(full.transform(x)), host)
    w = PCA(2, whiten=True, eps=1e-5).fit(x)
    z = _host(backend, w.transform(x))
    ev = _host(backend, w.explained_variance_)
    np.testing.assert_allclose(np.var(z, axis=0, ddof=1), ev / (ev + 1e-5), rtol=1e-10)
    assert_close(backend, w.inverse_transform(w.transform(x)),
                 _host(backend, PCA(2).fit(x).inverse_transform(PCA(2).fit(x).transform(x))))


def test_pca_matches_scikit_learn(rng):
    host = _correlated(rng)
    ours = PCA(3).fit(host)
    sk = pytest.importorskip("sklearn.decomposition").PCA(3, svd_solver="full").fit(host)
    np.testing.assert_allclose(ours.explained_variance_, sk.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(ours.components_, sk.components_, atol=1e-10)
    np.testing.assert_allclose(ours.transform(host), sk.transform(host), atol=1e-9)


# ------------------------------------------------------------------------------------------
# whitening
# ------------------------------------------------------------------------------------------


def _cs231n_whiten(x, eps, method):
    """cs231n's lecture notes, transcribed: cov -> svd -> rotate -> divide by sqrt(S + eps)."""
    x = x - np.mean(x, axis=0)
    cov = np.dot(x.T, x) / x.shape[0]
    u, s, _ = np.linalg.svd(cov)
    xrot = np.dot(x, u)
    xwhite = xrot / np.sqrt(s + eps)
    return (np.dot(xwhite, u.T) if method == "zca" else xwhite), u, s


@pytest.mark.parametrize("method", ["zca", "pca"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_whitened_training_data_has_identity_covariance(backend, rng, method, dtype):
    host = _correlated(rng, n=80, d=6).astype(dtype).astype(np.float64)
    n = host.shape[0]
    tol = 1e-9 if dtype == "float64" else 1e-4
    exact = Whitening(method, eps=0.0).fit(backend.asarray(host, dtype=dtype))
    out = exact.transform(backend.asarray(host, dtype=dtype))
    assert_on_backend(backend, out, dtype=dtype, shape=host.shape)
    o = _host(backend, out)
    np.testing.assert_allclose(o.T @ o / n, np.eye(6), atol=tol)
    np.testing.assert_allclose(o.mean(axis=0), 0.0, atol=tol)
    # with eps: covariance diag(S / (S + eps)) in the eigenbasis, as the oracle says
    eps = 0.5
    white = Whitening(method, eps=eps).fit(backend.asarray(host, dtype=dtype))
    o = _host(backend, white.transform(backend.asarray(host, dtype=dtype)))
    ref, u, s = _cs231n_whiten(host, eps, method)
    shrink = np.diag(s / (s + eps))
    want_cov = u @ shrink @ u.T if method == "zca" else shrink
    np.testing.assert_allclose(o.T @ o / n, want_cov, atol=tol)
    np.testing.assert_allclose(_host(backend, white.eigenvalues_), s, rtol=tol)
    if method == "zca":  # unique: no sign ambiguity
        np.testing.assert_allclose(o, ref, atol=tol * 10)
        w = _host(backend, white.whitening_matrix_)
        np.testing.assert_allclose(w, w.T, atol=tol)
    else:  # columns agree up to sign
        signs = np.sign(np.sum(o * ref, axis=0))
        np.testing.assert_allclose(o, ref * signs, atol=tol * 10)
    back = white.inverse_transform(white.transform(backend.asarray(host, dtype=dtype)))
    assert_close(backend, back, host, atol=tol * 100, rtol=tol)


def test_whitening_applies_training_statistics_to_new_data(backend, rng):
    train, test = _correlated(rng, n=50, d=3), rng.standard_normal((4, 3))
    white = Whitening("zca", eps=1e-2).fit(backend.asarray(train))
    ref_train, u, s = _cs231n_whiten(train, 1e-2, "zca")
    w = u @ np.diag(1.0 / np.sqrt(s + 1e-2)) @ u.T
    assert_close(backend, white.transform(test), (test - train.mean(axis=0)) @ w)


# ------------------------------------------------------------------------------------------
# backends, dtypes, devices
# ------------------------------------------------------------------------------------------


def test_backend_argument_moves_host_data(rng):
    torch_be = pytest.importorskip("torch") and xpnet.get_backend("torch")
    host = rng.standard_normal((10, 3))
    c = Centering(backend="torch").fit(host)
    assert_on_backend(torch_be, c.mean_, dtype="float64")
    assert_on_backend(torch_be, c.transform(host[:2]), dtype="float64")


def test_host_data_follows_the_default_backend_arrays_keep_their_own(rng):
    pytest.importorskip("array_api_strict")
    host = rng.standard_normal((6, 3))
    strict = xpnet.get_backend("array_api_strict", device="device1")
    assert_on_backend(xpnet.get_backend("numpy"), Centering().fit(host).mean_)
    with xpnet.default_backend("array_api_strict", device="device1"):
        c = Centering().fit(host)
        assert_on_backend(strict, c.mean_, dtype="float64")
        assert_on_backend(strict, c.transform(host.tolist()), dtype="float64")
        torch = pytest.importorskip("torch")
        t = Centering().fit(torch.asarray(host))
    assert_on_backend(xpnet.get_backend("torch"), t.mean_, dtype="float64")


def test_strict_device_without_float64_uses_the_host(rng):
    """array-api-strict's ``no_float64`` device: statistics in float64 on the host, attributes
    back on that device in float32, the same numbers as on a float64 device."""
    pytest.importorskip("array_api_strict")
    be = xpnet.get_backend("array_api_strict", device="no_float64")
    host = _correlated(rng, n=30, d=4).astype(np.float32)
    for make in (lambda: PCA(2), lambda: Whitening("zca", eps=1e-3), Standardization):
        on_device = make().fit(be.asarray(host))
        reference = make().fit(host)  # numpy, float32 input, float64 inside
        for name in ("mean_", "components_", "whitening_matrix_", "scale_"):
            if hasattr(reference, name):
                got = getattr(on_device, name)
                assert_on_backend(be, got, dtype="float32")
                np.testing.assert_allclose(be.to_numpy(got), getattr(reference, name),
                                           rtol=1e-6, atol=1e-6)
        out = on_device.transform(be.asarray(host))
        assert_on_backend(be, out, dtype="float32")


def test_integer_images_become_float32(backend, rng):
    host = rng.integers(0, 256, (5, 2, 3, 3)).astype(np.uint8)
    c = Centering(per_channel=True).fit(backend.asarray(host))
    assert_on_backend(backend, c.mean_, dtype="float32", shape=(2,))
    assert_close(backend, c.mean_, host.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-6)


def test_bad_arguments_raise_before_work(backend, rng):
    with pytest.raises(ValueError, match="eps"):
        Standardization(eps=-1.0)
    with pytest.raises(ValueError, match="method"):
        Whitening("svd")
    with pytest.raises(ValueError, match="n_components"):
        PCA(0)
    with pytest.raises(TypeError, match="per_channel"):
        Centering(per_channel="yes")
    with pytest.raises(ValueError, match="backend"):
        Centering(backend="nope")
    with pytest.raises(NotFittedError, match="fit"):
        Centering().transform(np.zeros((2, 2)))
    x = backend.asarray(rng.standard_normal((5, 3)))
    pca = PCA(2).fit(x)
    before = _host(backend, pca.components_).copy()
    with pytest.raises(ValueError, match="n_components"):
        PCA(4).fit(x)
    with pytest.raises(ValueError, match="shape"):
        pca.fit(backend.asarray(rng.standard_normal(5)))  # 1-D
    with pytest.raises(ValueError, match="sample"):
        pca.fit(backend.asarray(rng.standard_normal((1, 3))))
    np.testing.assert_array_equal(_host(backend, pca.components_), before)  # unchanged
    with pytest.raises(ValueError, match="3 columns"):
        pca.transform(backend.asarray(rng.standard_normal((2, 4))))
    with pytest.raises(ValueError, match="per_channel"):
        Centering(per_channel=True).fit(x)
    with pytest.raises(TypeError, match="real numbers"):
        Centering().fit(np.array([["a", "b"]]))


def test_new_modules_do_not_import_numpy():
    """DESIGN: code below the backend takes ``xp`` from its arrays."""
    import ast
    import pathlib

    root = pathlib.Path(xpnet.__file__).parent
    offenders = []
    for name in ("preprocessing.py", "gradcheck.py", "ensemble.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{name}: {n}" for n in names if n.split(".")[0] == "numpy"]
    assert not offenders, offenders


def test_float32_input_gets_float64_statistics(backend, rng):
    """A float32 training set far from the origin: float32 sums would lose about three digits
    of the covariance (values near 1e4, spread 1); float64 statistics stay within float32
    rounding of the float64 oracle on the same float32 numbers."""
    host = (1e4 + _correlated(rng, n=3000, d=3, offset=0.0)).astype(np.float32)
    ref = host.astype(np.float64)
    x = backend.asarray(host)
    pca = PCA(3).fit(x)
    ev = np.linalg.eigvalsh(np.cov(ref, rowvar=False))[::-1]
    np.testing.assert_allclose(_host(backend, pca.explained_variance_), ev, rtol=2e-6)
    s = Standardization().fit(x)
    np.testing.assert_allclose(_host(backend, s.var_), ref.var(axis=0), rtol=2e-6)
    np.testing.assert_allclose(_host(backend, s.mean_), ref.mean(axis=0), rtol=1e-7)
