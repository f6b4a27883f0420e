"""xpnet.init: the book's weight_init_std, and one seed -> the same weights on every backend."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from conftest import assert_on_backend
from xpnet.init import draw_weights, init_std


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cls", [xpnet.MultiLayerNet, xpnet.MultiLayerNetExtend])
def test_same_seed_same_weights_on_every_backend(backend, dtype, cls):
    kwargs = {"use_batchnorm": True} if cls is xpnet.MultiLayerNetExtend else {}
    ref = cls(7, [6, 5], 4, seed=42, dtype=dtype, backend="numpy", **kwargs)
    net = cls(7, [6, 5], 4, seed=42, dtype=dtype, backend=backend, **kwargs)
    assert set(net.params) == set(ref.params)
    for key, p in net.params.items():
        assert_on_backend(backend, p, dtype=dtype, shape=ref.params[key].shape)
        np.testing.assert_array_equal(backend.to_numpy(p), ref.params[key], err_msg=key)


def test_seed_controls_the_weights():
    a = xpnet.MultiLayerNet(5, [4], 3, seed=1)
    b = xpnet.MultiLayerNet(5, [4], 3, seed=1)
    c = xpnet.MultiLayerNet(5, [4], 3, seed=2)
    d = xpnet.MultiLayerNet(5, [4], 3)
    e = xpnet.MultiLayerNet(5, [4], 3)
    np.testing.assert_array_equal(a.params["W1"], b.params["W1"])
    assert not np.array_equal(a.params["W1"], c.params["W1"])
    assert not np.array_equal(d.params["W1"], e.params["W1"])  # no seed: fresh weights


def test_biases_start_at_zero_and_bn_at_identity(backend):
    net = xpnet.MultiLayerNetExtend(5, [4, 3], 2, use_batchnorm=True, seed=0, backend=backend)
    for key, p in net.params.items():
        host = backend.to_numpy(p)
        if key.startswith(("b", "beta")):
            assert np.all(host == 0), key
        elif key.startswith("gamma"):
            assert np.all(host == 1), key
        else:
            assert np.std(host) > 0, key


@pytest.mark.parametrize(
    "spec, std_of",
    [
        ("relu", lambda n: math.sqrt(2.0 / n)),
        ("he", lambda n: math.sqrt(2.0 / n)),
        ("sigmoid", lambda n: math.sqrt(1.0 / n)),
        ("xavier", lambda n: math.sqrt(1.0 / n)),
        (0.01, lambda n: 0.01),
        (1.0, lambda n: 1.0),
    ],
)
def test_std_scales_empirically(backend, spec, std_of):
    sizes = (800, 300, 50)  # fan-ins 800 and 300; 240,000 and 15,000 draws
    net = xpnet.MultiLayerNet(sizes[0], [sizes[1]], sizes[2], weight_init_std=spec, seed=3,
                              backend=backend)
    for i, fan_in in ((1, sizes[0]), (2, sizes[1])):
        w = backend.to_numpy(net.params[f"W{i}"]).astype(np.float64)
        assert w.shape == (fan_in, sizes[i])
        assert abs(w.mean()) < 0.05 * std_of(fan_in)
        assert w.std() == pytest.approx(std_of(fan_in), rel=0.03), f"W{i} with {spec!r}"


def test_name_aliases_give_identical_weights():
    he = xpnet.MultiLayerNet(10, [8], 3, weight_init_std="he", seed=5)
    relu = xpnet.MultiLayerNet(10, [8], 3, weight_init_std="relu", seed=5)
    xav = xpnet.MultiLayerNet(10, [8], 3, weight_init_std="xavier", seed=5)
    sig = xpnet.MultiLayerNet(10, [8], 3, weight_init_std="sigmoid", seed=5)
    for k in he.params:
        np.testing.assert_array_equal(he.params[k], relu.params[k])
        np.testing.assert_array_equal(xav.params[k], sig.params[k])
    # same draw, different scale: he / xavier == sqrt(2) on every weight
    np.testing.assert_allclose(he.params["W1"] / xav.params["W1"], math.sqrt(2.0), rtol=1e-6)


def test_init_std_values():
    assert init_std("relu", 50) == pytest.approx(math.sqrt(2 / 50))
    assert init_std("He", 50) == pytest.approx(math.sqrt(2 / 50))
    assert init_std("sigmoid", 50) == pytest.approx(math.sqrt(1 / 50))
    assert init_std("xavier", 8) == pytest.approx(math.sqrt(1 / 8))
    assert init_std(0.05, 1000) == 0.05
    with pytest.raises(ValueError):
        init_std("glorot-ish", 10)
    with pytest.raises(ValueError):
        init_std(-1.0, 10)


def test_draw_weights_shapes_and_stream():
    layers = draw_weights([6, 4, 2], "he", seed=0, dtype=np.float64)
    assert [(w.shape, b.shape) for w, b in layers] == [((6, 4), (4,)), ((4, 2), (2,))]
    again = draw_weights([6, 4, 2], "he", seed=0, dtype=np.float64)
    for (w1, _), (w2, _) in zip(layers, again, strict=True):
        np.testing.assert_array_equal(w1, w2)
    # float32 weights are the float64 draw rounded: one seed, one set of weights
    w32 = draw_weights([6, 4, 2], "he", seed=0, dtype=np.float32)
    for (w64, _), (w, _) in zip(layers, w32, strict=True):
        assert w.dtype == np.float32
        np.testing.assert_array_equal(w, w64.astype(np.float32))
