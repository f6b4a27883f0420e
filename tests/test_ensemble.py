"""xpnet.Ensemble and xpnet.tta_predict against a NumPy float64 transcription (forward pass,
softmax, zero-filled shifts written with index assignment rather than concatenation)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import xpnet
from conftest import assert_close, assert_on_backend
from xpnet import Ensemble, MultiLayerNet, tta_predict
from xpnet.ensemble import _shift

H, W = 4, 5


def _scores(be, net, x):
    """The book's ReLU network forward pass in NumPy float64, from the network's parameters."""
    p = {k: np.asarray(be.to_numpy(v), dtype=np.float64) for k, v in net.params.items()}
    h = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = net.hidden_layer_num
    for i in range(1, n + 1):
        h = np.maximum(h @ p[f"W{i}"] + p[f"b{i}"], 0.0)
    return h @ p[f"W{n + 1}"] + p[f"b{n + 1}"]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _shifted(img, dy, dx):
    """(N, C, H, W) moved dy rows down and dx columns right, zero fill (index assignment)."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _tta_reference(be, nets, x, shifts, channels=1):
    img = np.asarray(x, dtype=np.float64).reshape(len(x), channels, H, W)
    probs = []
    for dy, dx in itertools.product(range(-shifts, shifts + 1), repeat=2):
        flat = _shifted(img, dy, dx).reshape(len(x), -1)
        probs.append(np.mean([_softmax(_scores(be, n, flat)) for n in nets], axis=0))
    return np.mean(probs, axis=0)


def _nets(be, k=3, d=H * W, seed=0):
    return [MultiLayerNet(d, [7], 4, backend=be, dtype="float64", seed=seed + i)
            for i in range(k)]


def test_shift_moves_and_zero_fills(backend):
    img = np.arange(1.0, 1.0 + 2 * 3 * 3).reshape(1, 2, 3, 3)
    x = backend.asarray(img)
    for dy, dx in itertools.product(range(-2, 3), repeat=2):
        got = _shift(backend.xp, x, dy, dx)
        assert_on_backend(backend, got, shape=img.shape)
        np.testing.assert_array_equal(backend.to_numpy(got), _shifted(img, dy, dx))
    # one spelled out: down 1, left 1
    want = [[0.0, 0.0, 0.0], [2.0, 3.0, 0.0], [5.0, 6.0, 0.0]]
    assert backend.to_numpy(_shift(backend.xp, x, 1, -1))[0, 0].tolist() == want


def test_ensemble_averages_probabilities(backend, rng):
    nets = _nets(backend)
    x = rng.standard_normal((6, H * W))
    ens = Ensemble(nets)
    got = ens.predict(backend.asarray(x))
    assert_on_backend(backend, got, shape=(6, 4))
    want = np.mean([_softmax(_scores(backend, n, x)) for n in nets], axis=0)
    assert_close(backend, got, want)
    assert_close(backend, ens.predict(x, batch_size=4), want)  # host input, two batches
    t = rng.integers(0, 4, 6)
    assert ens.accuracy(x, t) == pytest.approx(np.mean(want.argmax(axis=1) == t))
    assert ens.accuracy(x, np.eye(4)[t]) == ens.accuracy(x, t)  # one-hot labels


@pytest.mark.parametrize("shifts", [0, 1, 2])
def test_tta_against_numpy(backend, rng, shifts):
    net = _nets(backend, k=1)[0]
    x = rng.random((5, H * W))
    got = tta_predict(net, backend.asarray(x), image_shape=(H, W), shifts=shifts)
    assert_on_backend(backend, got, shape=(5, 4))
    assert_close(backend, got, _tta_reference(backend, [net], x, shifts))
    if shifts == 0:  # the plain softmax, exactly
        plain = xpnet.functions.softmax(net.predict(x), xp=backend.xp)
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(plain))


def test_tta_layouts_batches_and_ensembles(backend, rng):
    nets = _nets(backend, k=2, d=2 * H * W)
    x = rng.random((7, 2 * H * W))  # two channels, flattened
    want = _tta_reference(backend, nets, x, 1, channels=2)
    ens = Ensemble(nets)
    assert_close(backend, tta_predict(ens, x, image_shape=(H, W)), want)
    assert_close(backend, tta_predict(ens, x, image_shape=(H, W), batch_size=3), want)
    img = backend.asarray(x.reshape(7, 2, H, W))
    assert_close(backend, tta_predict(ens, img, image_shape=(H, W)), want)
    members = [backend.to_numpy(tta_predict(n, x, image_shape=(H, W))) for n in nets]
    np.testing.assert_allclose(np.mean(members, axis=0), want, rtol=1e-10)


def test_bad_arguments(backend, rng):
    nets = _nets(backend, k=1)
    x = rng.random((2, H * W))
    with pytest.raises(ValueError, match="at least one"):
        Ensemble([])
    with pytest.raises(TypeError, match=r"networks\[1\]"):
        Ensemble([nets[0], object()])
    with pytest.raises(ValueError, match="same number of classes"):
        Ensemble([nets[0], MultiLayerNet(H * W, [3], 5, backend=backend)])
    with pytest.raises(ValueError, match="shifts"):
        tta_predict(nets[0], x, image_shape=(H, W), shifts=-1)
    with pytest.raises(ValueError, match="shifts"):
        tta_predict(nets[0], x, image_shape=(H, W), shifts=H)
    with pytest.raises(ValueError, match="image_shape"):
        tta_predict(nets[0], x, image_shape=(3, 3))
    with pytest.raises(ValueError, match="batch_size"):
        Ensemble(nets).predict(x, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        Ensemble(nets).accuracy(x, [0, 1, 2])


def test_members_on_other_backends_are_refused(rng):
    pytest.importorskip("array_api_strict")
    a = MultiLayerNet(4, [3], 2, seed=0)
    b = MultiLayerNet(4, [3], 2, backend="array_api_strict", seed=1)
    with pytest.raises(ValueError, match="one backend"):
        Ensemble([a, b])
