"""xpnet.SimpleConvNet (the book's chapter-7 network, issue 11) on every backend.

Oracles: the book's network composed from the NumPy float64 layer oracles
(``oracles.simple_convnet_gradient``, itself checked against float64 numerical gradients here);
the network's own float64 numerical gradients; the seeded host draw of its initial weights; and
learning on the bundled digits.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import assert_close, assert_on_backend, numerical_grad
from xpnet import SimpleConvNet

NORMALIZATIONS = [None, "batch", "group", "instance", "layer"]
NORM_IDS = ["none", "batch", "group", "instance", "layer"]

#: a tiny network: (2, 1, 8, 8) images, 4 filters 3x3 -> 6x6 -> pool 3x3, 36 - 5 - 3
TINY = dict(input_dim=(1, 8, 8), conv_param={"filter_num": 4, "filter_size": 3, "pad": 0,
                                             "stride": 1},
            hidden_size=5, output_size=3)


def _tiny(backend, normalization=None, *, dtype="float64", seed=3, **kw):
    args = {**TINY, **kw}
    if normalization == "group":
        args.setdefault("num_groups", 2)
    return SimpleConvNet(**args, backend=backend, dtype=dtype, seed=seed,
                         normalization=normalization)


def _perturb(backend, net, rng, scale=0.15):
    """Move every parameter off its start (biases away from 0 keep ReLU off its kink, gamma
    != 1 and beta != 0 exercise their gradients), in place.  Weights of std 0.3 (the book's
    0.01 would make tiny signals) keep the scores modest: a true class of probability ``y``
    puts the book's ``1e-7`` in the log at ``1e-7 / y`` of the loss's numerical gradient."""
    for k, p in net.params.items():
        s = 0.3 if k.startswith("W") else scale
        p += backend.asarray(s * rng.standard_normal(tuple(p.shape)), dtype=p.dtype)


def _host(backend, net):
    return {k: backend.to_numpy(v).astype(np.float64).copy() for k, v in net.params.items()}


def _data(rng, n=2, shape=(1, 8, 8), classes=3):
    return rng.standard_normal((n, *shape)), rng.integers(0, classes, n)


def _oracle_kw(net):
    cp = net.conv_param
    return dict(stride=cp["stride"], pad=cp["pad"], normalization=net.normalization,
                num_groups=net.num_groups)


# ------------------------------------------------------------------------------------------
# the oracle itself
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS, ids=NORM_IDS)
def test_oracle_gradient_is_its_numerical_gradient(rng, normalization):
    """The composed NumPy oracle (no xpnet) against central differences of its own loss."""
    net = _tiny("numpy", normalization)
    _perturb(xpnet.get_backend("numpy"), net, rng)
    params = _host(xpnet.get_backend("numpy"), net)
    x, t = _data(rng)
    kw = _oracle_kw(net)
    _, grads, _ = O.simple_convnet_gradient(params, x, t, **kw)
    assert set(grads) == set(params)
    for key, p in params.items():
        def f(v, key=key):
            return O.simple_convnet_gradient({**params, key: v}, x, t, **kw)[0]
        num = numerical_grad(f, p)
        # the book's 1e-7 inside the log: the loss differentiated numerically is not exactly
        # the one whose gradient backprop computes (relative difference about 1e-7 / y)
        np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-7, err_msg=key)


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS, ids=NORM_IDS)
def test_gradient_matches_the_oracle(backend, rng, normalization):
    net = _tiny(backend, normalization)
    _perturb(backend, net, rng)
    params = _host(backend, net)
    x, t = _data(rng, n=3)
    grads = net.gradient(x, t)
    loss, want, _ = O.simple_convnet_gradient(params, x, t, **_oracle_kw(net))
    assert_close(backend, net.last_loss, loss, dtype="float64")
    assert set(grads) == set(want) == set(net.params)
    for k in want:
        assert_on_backend(backend, grads[k], dtype="float64", shape=want[k].shape)
        assert_close(backend, grads[k], want[k], dtype="float64", rtol=1e-9, atol=1e-11,
                     err_msg=k)


@pytest.mark.parametrize("normalization", NORMALIZATIONS, ids=NORM_IDS)
def test_gradient_matches_numerical_gradient(backend, rng, normalization):
    """float64 backprop against the network's own central differences, on every backend."""
    net = _tiny(backend, normalization, input_dim=(1, 6, 6), hidden_size=4,
                conv_param={"filter_num": 4, "filter_size": 3})
    _perturb(backend, net, rng)
    x, t = _data(rng, shape=(1, 6, 6))
    grads = net.gradient(x, t, copy=True)
    num = net.numerical_gradient(x, t, h=1e-6)
    assert set(num) == set(grads)
    for k in grads:
        # (the book's 1e-7 in the log: see test_oracle_gradient_is_its_numerical_gradient)
        assert_close(backend, grads[k], backend.to_numpy(num[k]), dtype="float64", rtol=1e-5,
                     atol=1e-7, err_msg=k)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float32_gradient_matches_the_oracle(backend, rng, dtype):
    """The book's sizes (28x28, 30 filters 5x5, 100 hidden) on a batch of 4, in each dtype."""
    net = SimpleConvNet(backend=backend, dtype=dtype, seed=0)
    x = rng.random((4, 1, 28, 28)).astype(dtype)
    t = rng.integers(0, 10, 4)
    grads = net.gradient(x, t)
    loss, want, _ = O.simple_convnet_gradient(_host(backend, net), x, t)
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=1e-7)
    assert_close(backend, net.last_loss, loss, **tol)
    for k in want:
        assert_on_backend(backend, grads[k], dtype=dtype)
        assert_close(backend, grads[k], want[k], **tol, err_msg=k)


@pytest.mark.parametrize("normalization", NORMALIZATIONS, ids=NORM_IDS)
def test_predict_matches_the_oracle_in_both_modes(backend, rng, normalization):
    """Training-mode scores, then inference scores (batch norm: running statistics after
    one training pass, the book's momentum 0.9 from zero), and the in-place inference path
    leaves the caller's input alone."""
    net = _tiny(backend, normalization)
    _perturb(backend, net, rng)
    params = _host(backend, net)
    x, t = _data(rng, n=4)
    kw = _oracle_kw(net)
    _, _, train_scores = O.simple_convnet_gradient(params, x, t, **kw)
    assert_close(backend, net.predict(x, train_flg=True), train_scores, dtype="float64")
    running = None
    if normalization == "batch":
        conv = O.convolution_forward(x, params["W1"], params["b1"])
        _, rm, rv, _ = O.spatial_batchnorm_forward(conv, params["gamma1"], params["beta1"])
        running = (rm, rv)
    _, _, eval_scores = O.simple_convnet_gradient(params, x, t, running=running,
                                                  train_flg=False, **kw)
    x_be = backend.asarray(x)
    got = net.predict(x_be, train_flg=False)
    assert_close(backend, got, eval_scores, dtype="float64")
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    assert_close(backend, net.loss(x, t), O.simple_convnet_gradient(
        params, x, t, running=running, train_flg=False, **kw)[0], dtype="float64")


# ------------------------------------------------------------------------------------------
# parameters, buffers, seeds
# ------------------------------------------------------------------------------------------


def test_same_seed_same_weights_on_every_backend(backend):
    """Host-drawn weights: ``default_rng(seed)`` in float64, W1, W2, W3 in order, times the
    std, cast; biases zero; a normalization adds gamma = 1, beta = 0 and changes no weight."""
    rng = np.random.default_rng(11)
    want = {
        "W1": 0.01 * rng.standard_normal((30, 1, 5, 5)),
        "W2": 0.01 * rng.standard_normal((30 * 12 * 12, 100)),
        "W3": 0.01 * rng.standard_normal((100, 10)),
    }
    for norm in (None, "batch"):
        net = SimpleConvNet(backend=backend, seed=11, normalization=norm)
        assert list(net.params) == ["W1", "b1", "W2", "b2", "W3", "b3"] + (
            ["gamma1", "beta1"] if norm else [])
        for k, w in want.items():
            assert_on_backend(backend, net.params[k], dtype="float32", shape=w.shape)
            np.testing.assert_array_equal(backend.to_numpy(net.params[k]), w.astype(np.float32))
        for k, n in (("b1", 30), ("b2", 100), ("b3", 10)):
            np.testing.assert_array_equal(backend.to_numpy(net.params[k]), np.zeros(n))
        if norm:
            np.testing.assert_array_equal(backend.to_numpy(net.params["gamma1"]), np.ones(30))
            np.testing.assert_array_equal(backend.to_numpy(net.params["beta1"]), np.zeros(30))


def test_named_weight_scales_use_each_layers_fan_in():
    net = SimpleConvNet(input_dim=(2, 10, 10), conv_param={"filter_num": 3, "filter_size": 3},
                        hidden_size=7, output_size=4, weight_init_std="he", seed=1,
                        dtype="float64")
    rng = np.random.default_rng(1)
    for k, shape, fan_in in (("W1", (3, 2, 3, 3), 18), ("W2", (48, 7), 48), ("W3", (7, 4), 7)):
        np.testing.assert_array_equal(net.params[k],
                                      math.sqrt(2 / fan_in) * rng.standard_normal(shape))


def test_parameters_and_gradients_are_views_of_one_buffer_each(backend, rng):
    net = _tiny(backend, "batch")
    layers = net.layers
    assert list(layers) == ["Conv1", "Norm1", "Relu1", "Pool1", "Affine1", "Relu2", "Affine2"]
    assert layers["Conv1"].W is net.params["W1"] and layers["Affine2"].b is net.params["b3"]
    assert layers["Norm1"].gamma is net.params["gamma1"]
    if net._grads is None:
        pytest.skip(f"{backend.name}: views of a slice do not alias here")
    x, t = _data(rng)
    g1 = net.gradient(x, t)
    first = {k: backend.to_numpy(v).copy() for k, v in g1.items()}
    kept = net.gradient(x, t, copy=True)
    g2 = net.gradient(x[::-1].copy(), t[::-1].copy())
    assert g1 is not g2  # a new dict each call ...
    assert g1["W1"] is g2["W1"]  # ... over the same buffer
    g1["W1"] = None  # replacing an entry of a returned dict redirects nothing
    g3 = net.gradient(x, t)
    for k, v in first.items():
        np.testing.assert_allclose(backend.to_numpy(g3[k]), v, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(backend.to_numpy(kept[k]), v, rtol=1e-12, atol=1e-15)
    assert net._grads.flat_view() is not None


def test_need_dx_is_off_on_the_first_layer():
    net = _tiny("numpy")
    assert net.layers["Conv1"].need_dx is False


# ------------------------------------------------------------------------------------------
# inputs and outputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inputs_images_rows_lists_and_backend_arrays(backend, rng, dtype):
    net = _tiny(backend, dtype=dtype)
    x, t = _data(rng, n=3)
    ref = backend.to_numpy(net.predict(x))
    assert_on_backend(backend, net.predict(x), dtype=dtype, shape=(3, 3))
    for variant in (x.reshape(3, 64), x.tolist(), backend.asarray(x)):
        assert_close(backend, net.predict(variant), ref)
    assert isinstance(net.accuracy(x, t), float)
    loss = net.loss(x, list(t))
    assert_on_backend(backend, loss, dtype=dtype, shape=())
    one_hot = np.eye(3)[t]
    assert_close(backend, net.loss(x, one_hot), backend.to_numpy(loss))
    with pytest.raises(ValueError, match=r"x has 56 values per row .* input_size is 64"):
        net.predict(x[:, :, :7, :])
    with pytest.raises(ValueError, match="t has 2 labels"):
        net.loss(x, t[:2])


def test_load_mnist_flatten_false_is_what_the_network_takes():
    from xpnet.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist(flatten=False, source="bundled")
    assert x.shape == (8000, 1, 28, 28) and xt.shape == (2000, 1, 28, 28)
    assert x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0
    net = SimpleConvNet(seed=0)
    assert net.predict(x[:3]).shape == (3, 10)


def test_accuracy_counts_the_last_partial_batch(backend, rng):
    net = _tiny(backend)
    _perturb(backend, net, rng)
    x, _ = _data(rng, n=7)
    pred = np.argmax(backend.to_numpy(net.predict(x)), axis=1)
    t = pred.copy()
    t[-1] = (t[-1] + 1) % 3  # only the last image (in the partial batch) is wrong
    assert net.accuracy(x, t, batch_size=3) == pytest.approx(6 / 7)
    assert net.accuracy(x, t, batch_size=None) == pytest.approx(6 / 7)
    assert net.accuracy(x, np.eye(3)[t], batch_size=5) == pytest.approx(6 / 7)


def test_network_calls_leave_the_callers_arrays_alone(backend, rng):
    net = _tiny(backend, "batch")
    x, t = _data(rng, n=3)
    x_be, t_be = backend.asarray(x), backend.asarray(t)
    net.gradient(x_be, t_be)
    net.predict(x_be)
    net.accuracy(x_be, t_be)
    np.testing.assert_array_equal(backend.to_numpy(x_be), x)
    np.testing.assert_array_equal(backend.to_numpy(t_be), t)


def test_constructor_arguments_are_attributes():
    """What a checkpoint needs to rebuild the network from its configuration."""
    kw = dict(input_dim=(1, 12, 10), conv_param={"filter_num": 6, "filter_size": 3, "pad": 1,
                                                 "stride": 2},
              hidden_size=9, output_size=4, weight_init_std=0.02, backend="numpy",
              device=None, dtype="float64", seed=5, normalization="group", num_groups=3)
    net = SimpleConvNet(**kw)
    for k, v in kw.items():
        if k not in ("backend", "dtype"):
            assert getattr(net, k) == v, k
    assert net.backend.name == "numpy" and net.dtype == net.xp.float64
    assert net.conv_output_size == (6, 5) and net.pool_output_size == (3, 2)
    assert net.params["W2"].shape == (6 * 3 * 2, 9)
    again = SimpleConvNet(**{k: getattr(net, k) for k in kw if k not in ("backend", "dtype")},
                          backend=net.backend, dtype="float64")
    for k in net.params:
        np.testing.assert_array_equal(again.params[k], net.params[k])


def test_top_level_export():
    assert xpnet.SimpleConvNet is SimpleConvNet and "SimpleConvNet" in xpnet.__all__


def test_defaults_are_the_books_and_the_default_backend():
    net = SimpleConvNet()
    assert net.input_dim == (1, 28, 28)
    assert net.conv_param == {"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1}
    assert (net.hidden_size, net.output_size, net.weight_init_std) == (100, 10, 0.01)
    assert net.backend == xpnet.get_backend() and net.dtype == net.backend.dtype(
        xpnet.default_dtype())
    assert net.normalization is None and net.num_groups is None
    assert "SimpleConvNet(1x28x28, conv 30x5x5" in repr(net)


def test_layer_normalization_is_group_norm_with_one_group():
    from xpnet.layers import GroupNormalization, InstanceNormalization, SpatialBatchNormalization

    kinds = {"batch": SpatialBatchNormalization, "instance": InstanceNormalization}
    for norm in ("batch", "group", "instance", "layer"):
        layer = SimpleConvNet(normalization=norm, seed=0).layers["Norm1"]
        assert isinstance(layer, kinds.get(norm, GroupNormalization))
    assert SimpleConvNet(normalization="layer").layers["Norm1"].num_groups == 1
    assert SimpleConvNet(normalization="group").layers["Norm1"].num_groups == 6
    assert SimpleConvNet(normalization="NONE").normalization is None


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(input_dim=(28, 28)), ValueError, "input_dim"),
    (dict(input_dim=(1, 0, 28)), ValueError, r"input_dim\[1\]"),
    (dict(conv_param={"filters": 3}), ValueError, "unknown keys"),
    (dict(conv_param=[30, 5]), TypeError, "conv_param must be a dict"),
    (dict(conv_param={"filter_num": 2.5}), TypeError, "filter_num"),
    (dict(conv_param={"stride": 0}), ValueError, "stride"),
    (dict(conv_param={"filter_size": 40}), ValueError, "conv_param does not fit"),
    (dict(conv_param={"filter_size": 28}), ValueError, "pooling window"),
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(output_size=True), TypeError, "output_size"),
    (dict(weight_init_std="big"), ValueError, "weight_init_std"),
    (dict(normalization="batchnorm"), ValueError, "unknown normalization"),
    (dict(normalization="group", num_groups=7), ValueError, "num_groups must divide"),
    (dict(normalization="batch", num_groups=2), ValueError, "num_groups applies"),
    (dict(dtype="float16x"), ValueError, "dtype"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        SimpleConvNet(**kwargs)


def test_default_num_groups():
    from xpnet.convnet import default_num_groups

    assert [default_num_groups(c) for c in (1, 2, 4, 6, 8, 12, 30, 32)] == [1, 2, 2, 3, 4, 4, 6,
                                                                              8]


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------


def _digits(n_train, n_test=500):
    from xpnet.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist(flatten=False, source="bundled")
    return x[:n_train], t[:n_train], xt[:n_test], tt[:n_test]


@pytest.mark.parametrize("normalization", [None, "batch"], ids=["none", "batch"])
def test_book_loop_learns_on_every_backend(backend, normalization):
    """The book's loop (``grads = net.gradient(x, t); optimizer.update(net.params, grads)``)
    with Adam on 300 digits: the loss falls and the accuracy rises well above chance."""
    x, t, _, _ = _digits(300)
    net = SimpleConvNet(conv_param={"filter_num": 8}, hidden_size=32, seed=0, backend=backend,
                        normalization=normalization)
    opt = xpnet.Adam(lr=0.003)
    rng = np.random.default_rng(0)
    xd, td = net._x(x), net._t(t)
    before = float(net.loss(xd, td))
    for _ in range(40):
        idx = rng.choice(300, 50)
        opt.update(net.params, net.gradient(x[idx], t[idx]))
    assert float(net.loss(xd, td)) < 0.5 * before
    assert net.accuracy(xd, td) > 0.6  # (chance: 0.1)


def test_trainer_trains_it(backend):
    x, t, xt, tt = _digits(200, 100)
    net = SimpleConvNet(conv_param={"filter_num": 6}, hidden_size=20, seed=1, backend=backend,
                        normalization="group")
    trainer = xpnet.Trainer(net, x.reshape(200, 784), t, xt, tt, epochs=2, mini_batch_size=50,
                            optimizer="Adam", optimizer_param={"lr": 0.003}, verbose=False,
                            seed=0)
    trainer.train()
    assert len(trainer.train_loss_list) == 8 and len(trainer.test_acc_list) == 2
    assert trainer.train_loss_list[-1] < trainer.train_loss_list[0]
    assert trainer.test_acc_list[-1] > 0.3


def test_learns_the_bundled_digits():
    """The issue's bar is >= 97.5% on the 2,000 held-out digits after training on the 8,000
    bundled ones (numpy).  ``bench/convnet_accuracy.py`` measures it: with He initial weights
    (Adam lr 0.001, batch 100) the network passes 97.5% after 5 epochs and ends at 97.85% after
    12; with the book's std 0.01 it reaches 97.3% after 20 epochs (bench/README.md).  Five
    epochs take 15-30 s here, more than this suite's budget, so this test trains 2 epochs (160
    steps, about 3 s of CPU) and asks for 95.5% (measured: 96.0%) -- a bar no fully connected
    network trained the same way reaches (784-100-10: 91.1% after 2 epochs, 94.7% after 20),
    nor a conv net with a broken convolution, pooling or initialization."""
    from xpnet.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist(flatten=False, source="bundled")
    net = SimpleConvNet(seed=0, backend="numpy", weight_init_std="he")
    t0 = time.perf_counter()
    trainer = xpnet.Trainer(net, x, t, xt, tt, epochs=2, mini_batch_size=100,
                            optimizer="Adam", optimizer_param={"lr": 0.001}, verbose=False,
                            seed=0, evaluate_sample_num_per_epoch=100)
    trainer.train()
    acc = net.accuracy(xt, tt)
    assert acc >= 0.955, f"{acc:.4f} after {time.perf_counter() - t0:.1f} s"
