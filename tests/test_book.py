"""xpnet.book, the mirror of the book's ``common/`` and ``dataset/`` packages, and the helpers it
re-exports: xpnet.gradient, xpnet.plotting.smooth_curve, xpnet.datasets.shuffle_dataset.

Oracles: the book's code transcribed in plain float64 NumPy (tests/book_reference.py), closed
forms, and the names of the book's modules (listed below from the book's source).
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import book_reference as book
import xpnet
from conftest import assert_close, assert_on_backend

# What ``from common.X import *`` gives in the book (its modules have no __all__).
_FUNCTIONS = ["cross_entropy_error", "identity_function", "np", "relu", "relu_grad", "sigmoid",
              "sigmoid_grad", "softmax", "softmax_loss", "step_function", "sum_squared_error"]
_LAYERS = ["Affine", "BatchNormalization", "Convolution", "Dropout", "Pooling", "Relu", "Sigmoid",
           "SoftmaxWithLoss", "col2im", "im2col", *_FUNCTIONS]
_OPTIMIZERS = ["AdaGrad", "Adam", "Momentum", "Nesterov", "RMSprop", "SGD"]
BOOK_NAMES = {
    "common.functions": _FUNCTIONS,
    "common.layers": _LAYERS,
    "common.gradient": ["np", "numerical_gradient", "numerical_gradient_2d"],
    "common.optimizer": [*_OPTIMIZERS, "np"],
    "common.util": ["col2im", "conv_output_size", "im2col", "np", "shuffle_dataset",
                    "smooth_curve"],
    "common.multi_layer_net": ["MultiLayerNet", "OrderedDict", "numerical_gradient", "os",
                               "sys", *_LAYERS],
    "common.multi_layer_net_extend": ["MultiLayerNetExtend", "OrderedDict",
                                      "numerical_gradient", "os", "sys", *_LAYERS],
    "common.trainer": [*_OPTIMIZERS, "Trainer", "np", "os", "sys"],
    "dataset.mnist": ["dataset_dir", "download_mnist", "gzip", "img_dim", "img_size",
                      "init_mnist", "key_file", "load_mnist", "np", "os", "pickle", "test_num",
                      "train_num", "url_base", "urllib"],
}


@pytest.fixture(autouse=True)
def _no_default():
    xpnet.set_default_backend()
    yield
    xpnet.set_default_backend()


def _star(module: str) -> dict:
    ns: dict = {}
    exec(f"from xpnet.book.{module} import *", ns)
    return ns


# ------------------------------------------------------------------------------ the layout


@pytest.mark.parametrize("module", sorted(BOOK_NAMES))
def test_star_import_gives_the_books_names(module):
    ns = _star(module)
    missing = sorted(set(BOOK_NAMES[module]) - set(ns))
    assert not missing, missing
    assert ns["np"] is np
    assert set(importlib.import_module(f"xpnet.book.{module}").__all__) == set(
        BOOK_NAMES[module])


def test_the_mirror_reexports_xpnet_objects():
    """No second implementation: the mirror's classes and functions are xpnet's (or, for the
    networks, thin subclasses of them)."""
    from xpnet.book.common import (
        gradient,
        layers,
        multi_layer_net,
        multi_layer_net_extend,
        optimizer,
        trainer,
        util,
    )
    from xpnet.book.dataset import mnist

    for name in _OPTIMIZERS:
        assert getattr(optimizer, name) is getattr(xpnet, name)
        assert getattr(trainer, name) is getattr(xpnet, name)
    assert trainer.Trainer is xpnet.Trainer
    for name in ("Affine", "BatchNormalization", "Convolution", "Dropout", "Relu",
                 "Sigmoid", "SoftmaxWithLoss"):
        assert getattr(layers, name) is getattr(xpnet.layers, name)
    # (Pooling is a subclass with the book's default stride: see its own test)
    assert issubclass(layers.Pooling, xpnet.layers.Pooling)
    for name in ("im2col", "col2im", "conv_output_size"):
        assert getattr(util, name) is getattr(xpnet.functions, name)
    for name in ("relu", "sigmoid", "softmax", "step_function", "identity_function"):
        assert getattr(layers, name) is getattr(xpnet.functions, name)
    assert gradient.numerical_gradient is xpnet.gradient.numerical_gradient
    assert multi_layer_net.numerical_gradient is xpnet.gradient.numerical_gradient
    assert util.shuffle_dataset is xpnet.datasets.shuffle_dataset
    assert util.smooth_curve is importlib.import_module("xpnet.plotting").smooth_curve
    assert mnist.load_mnist is xpnet.datasets.load_mnist
    assert issubclass(multi_layer_net.MultiLayerNet, xpnet.MultiLayerNet)
    assert issubclass(multi_layer_net_extend.MultiLayerNetExtend, xpnet.MultiLayerNetExtend)
    for cls in (multi_layer_net.MultiLayerNet, multi_layer_net_extend.MultiLayerNetExtend):
        own = {k for k, v in vars(cls).items() if callable(v)} - {"__init__"}
        assert not own, own  # nothing but the constructor (and the BookNet mixin)


def test_mnist_constants_are_the_books():
    from xpnet.book.dataset import mnist

    assert (mnist.train_num, mnist.test_num, mnist.img_dim, mnist.img_size) == (
        60000, 10000, (1, 28, 28), 784)
    assert mnist.key_file == {"train_img": "train-images-idx3-ubyte.gz",
                              "train_label": "train-labels-idx1-ubyte.gz",
                              "test_img": "t10k-images-idx3-ubyte.gz",
                              "test_label": "t10k-labels-idx1-ubyte.gz"}
    assert mnist.url_base == "https://ossci-datasets.s3.amazonaws.com/mnist/"


# ------------------------------------------------------------------------------ networks


def _nets():
    from xpnet.book.common.multi_layer_net import MultiLayerNet
    from xpnet.book.common.multi_layer_net_extend import MultiLayerNetExtend

    return MultiLayerNet, MultiLayerNetExtend


def test_networks_float64_on_the_default_backend(backend, monkeypatch):
    """The backend from XPNET_BACKEND / XPNET_DEVICE, float64 unless a dtype is chosen."""
    MultiLayerNet, MultiLayerNetExtend = _nets()
    monkeypatch.setenv("XPNET_BACKEND", backend.name)
    monkeypatch.setenv("XPNET_DEVICE", backend.device_name)
    monkeypatch.delenv("XPNET_DTYPE", raising=False)
    for net in (MultiLayerNet(5, [4], 3), MultiLayerNetExtend(5, [4], 3, use_batchnorm=True)):
        assert isinstance(net, xpnet.MultiLayerNet if type(net).__name__ == "MultiLayerNet"
                          else xpnet.MultiLayerNetExtend)
        for p in net.params.values():
            assert_on_backend(backend, p, dtype="float64")
    monkeypatch.setenv("XPNET_DTYPE", "float32")
    assert_on_backend(backend, MultiLayerNet(5, [4], 3).params["W1"], dtype="float32")
    monkeypatch.delenv("XPNET_DTYPE")
    with xpnet.default_backend(dtype="float32"):
        assert_on_backend(backend, MultiLayerNetExtend(5, [4], 3).params["W1"], dtype="float32")
    assert_on_backend(backend, MultiLayerNet(5, [4], 3, dtype="float32").params["W1"],
                      dtype="float32")
    # xpnet's own class keeps xpnet's default
    assert_on_backend(backend, xpnet.MultiLayerNet(5, [4], 3).params["W1"], dtype="float32")


@pytest.mark.parametrize("kwargs", [{}, {"weight_init_std": 0.01, "use_batchnorm": True},
                                    {"weight_init_std": "sigmoid"}])
def test_initial_weights_are_the_books_after_np_random_seed(backend, kwargs):
    """``scale * np.random.randn(fan_in, fan_out)`` layer by layer from the global state."""
    _, MultiLayerNetExtend = _nets()
    sizes = [12, 7, 5, 3]
    np.random.seed(3)  # noqa: NPY002
    expected = {}
    for i in range(1, len(sizes)):
        w = kwargs.get("weight_init_std", "relu")
        scale = {"relu": np.sqrt(2.0 / sizes[i - 1]),
                 "sigmoid": np.sqrt(1.0 / sizes[i - 1])}.get(w, w)
        expected[f"W{i}"] = scale * np.random.randn(sizes[i - 1], sizes[i])  # noqa: NPY002
    after = np.random.rand()  # noqa: NPY002
    np.random.seed(3)  # noqa: NPY002
    net = MultiLayerNetExtend(12, [7, 5], 3, backend=backend, **kwargs)
    for key, w in expected.items():
        np.testing.assert_array_equal(backend.to_numpy(net.params[key]), w)
    assert np.random.rand() == after  # noqa: NPY002  (the same draws as the book, no more)


def test_loss_is_a_float_and_the_books(backend, rng):
    """``loss`` returns a Python float (the book's contract); its value is the book's
    cross entropy with weight decay, from a NumPy transcription."""
    MultiLayerNet, _ = _nets()
    net = MultiLayerNet(6, [5, 4], 3, weight_decay_lambda=0.1, backend=backend, seed=0)
    x = rng.standard_normal((7, 6))
    t = rng.integers(0, 3, 7)
    loss = net.loss(x, t)
    assert type(loss) is float
    assert str(loss) == repr(loss)  # prints as a number, not tensor(...) / Array(...)
    P = {k: backend.to_numpy(v) for k, v in net.params.items()}
    h = np.maximum(x @ P["W1"] + P["b1"], 0)
    h = np.maximum(h @ P["W2"] + P["b2"], 0)
    s = h @ P["W3"] + P["b3"]
    y = np.exp(s - s.max(1, keepdims=True))
    y /= y.sum(1, keepdims=True)
    ce = -np.sum(np.log(y[np.arange(7), t] + 1e-7)) / 7
    wd = sum(0.5 * 0.1 * np.sum(P[f"W{i}"] ** 2) for i in (1, 2, 3))
    assert abs(loss - (ce + wd)) < 1e-12
    # xpnet's class keeps the loss on the device
    assert not isinstance(xpnet.MultiLayerNet.loss(net, x, t), float) or backend.name == "numpy"


def test_gradient_arrays_survive_the_next_call(backend, rng):
    """The book's gradients are new arrays each call; the mirror's too (xpnet's are views that
    the next call overwrites, unless copy=True)."""
    _, MultiLayerNetExtend = _nets()
    net = MultiLayerNetExtend(6, [5], 3, use_batchnorm=True, backend=backend, seed=0)
    x1, x2 = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    t1, t2 = np.array([0, 1, 2, 0]), np.array([2, 2, 1, 0])
    g1 = net.gradient(x1, t1)
    kept = {k: backend.to_numpy(v).copy() for k, v in g1.items()}
    g2 = net.gradient(x2, t2)
    for k in kept:
        np.testing.assert_array_equal(backend.to_numpy(g1[k]), kept[k])
    assert any(not np.array_equal(backend.to_numpy(g2[k]), kept[k]) for k in kept)
    # the copies still take the optimizer's whole-buffer path where views alias
    if getattr(net.params, "layout", None) is not None:
        assert g2.layout is net.params.layout
    # the check above can fail: xpnet's views are overwritten
    v1 = xpnet.MultiLayerNetExtend.gradient(net, x1, t1, copy=False)
    if getattr(v1, "layout", None) is not None:
        xpnet.MultiLayerNetExtend.gradient(net, x2, t2, copy=False)
        assert not np.array_equal(backend.to_numpy(v1["W1"]), kept["W1"])


def _bn_check(backend, n_rows):
    """The book's batch_norm_gradient_check network (784-100-100-10, batch norm, one-hot
    labels) on the first ``n_rows`` digits: the mirror's differences and the transcription's."""
    from xpnet.book.common.gradient import numerical_gradient
    from xpnet.book.dataset.mnist import load_mnist

    _, MultiLayerNetExtend = _nets()
    (x_train, t_train), _ = load_mnist(normalize=True, one_hot_label=True, source="bundled")
    x, t = x_train[:n_rows].astype(np.float64), t_train[:n_rows].astype(np.float64)
    net = MultiLayerNetExtend(input_size=784, hidden_size_list=[100, 100], output_size=10,
                              use_batchnorm=True, backend=backend, seed=5)
    grad_backprop = net.gradient(x, t)
    P = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    loss0, ref_backprop = book.bn_net_loss_and_grads(P, x, t, 2)
    keys = ("b1", "gamma1", "beta1", "b2", "gamma2", "beta2", "b3")
    mine, ref = {}, {}
    for key in keys:
        num = numerical_gradient(lambda W: net.loss(x, t, train_flg=True), net.params[key])
        assert_on_backend(backend, num, dtype="float64", shape=P[key].shape)
        mine[key] = float(np.average(np.abs(backend.to_numpy(grad_backprop[key])
                                            - backend.to_numpy(num))))
        ref_num = book.numerical_gradient(
            lambda W: book.bn_net_loss_and_grads(P, x, t, 2)[0], P[key])
        ref[key] = float(np.average(np.abs(ref_backprop[key] - ref_num)))
    return mine, ref, loss0


@pytest.mark.parametrize("n_rows", [1, 3], ids=["the-books-one-digit", "three-digits"])
def test_batch_norm_gradient_check_at_float64_round_off(backend, n_rows):
    """The mirror's gradient check prints the numbers the book's float64 code prints, to
    within 10x the round-off of a float64 central difference (eps * |loss| / h); float32
    would be ~1e-4 off."""
    mine, ref, loss0 = _bn_check(backend, n_rows)
    round_off = np.finfo(np.float64).eps * abs(loss0) / 1e-4
    for key in mine:
        if n_rows == 1 and key == "beta2":
            # On one digit every unit after the second batch norm sits exactly on ReLU's kink
            # (its output is beta2 = 0); a backend whose batch norm leaves a 1e-27 residue
            # (torch's native_batch_norm) puts some units on the other side, which moves the
            # mean difference by ~1e-6 of itself: the kink, not round-off.
            assert abs(mine[key] - ref[key]) <= 1e-4 * ref[key], (key, mine[key], ref[key])
            continue
        assert abs(mine[key] - ref[key]) <= 10 * round_off, (key, mine[key], ref[key])
    if n_rows == 1:  # one digit: batch norm makes every gradient before the last ReLU zero
        assert all(mine[k] == 0.0 for k in ("b1", "gamma1", "beta1", "b2", "gamma2"))


def test_network_numerical_gradient_method(backend, rng):
    """``net.numerical_gradient`` (xpnet.gradient underneath) against the transcription's
    backprop on a small batch-norm network."""
    _, MultiLayerNetExtend = _nets()
    net = MultiLayerNetExtend(5, [4, 3], 3, use_batchnorm=True, backend=backend, seed=2)
    x = rng.standard_normal((6, 5))
    t = np.eye(3)[rng.integers(0, 3, 6)]
    num = net.numerical_gradient(x, t)
    P = {k: backend.to_numpy(v) for k, v in net.params.items()}
    _, ref = book.bn_net_loss_and_grads(P, x, t, 2)
    assert list(num) == list(net.params)
    for key, g in num.items():
        assert_on_backend(backend, g, dtype="float64", shape=P[key].shape)
        np.testing.assert_allclose(backend.to_numpy(g), ref[key], atol=1e-7, err_msg=key)
    for key, p in net.params.items():  # restored exactly
        np.testing.assert_array_equal(backend.to_numpy(p), P[key])


# ------------------------------------------------------------------------------ functions


def test_loss_functions_take_host_labels_and_return_floats(backend, rng):
    from xpnet.book.common.functions import cross_entropy_error, softmax_loss, sum_squared_error

    X = rng.standard_normal((4, 3))
    t = np.array([0, 2, 1, 1])
    y = np.exp(X) / np.exp(X).sum(1, keepdims=True)
    ce = -np.sum(np.log(y[np.arange(4), t] + 1e-7)) / 4
    onehot = np.eye(3)[t]
    for labels in (t, onehot, t.tolist()):
        got = softmax_loss(backend.asarray(X, dtype="float64"), labels)
        assert type(got) is float and abs(got - ce) < 1e-12
        got = cross_entropy_error(backend.asarray(y, dtype="float64"), labels)
        assert type(got) is float and abs(got - ce) < 1e-12
    sse = sum_squared_error(backend.asarray(y, dtype="float64"), onehot)
    assert type(sse) is float and abs(sse - 0.5 * np.sum((y - onehot) ** 2)) < 1e-12


# ------------------------------------------------------------------------------ gradient


def test_numerical_gradient_closed_form(backend, rng):
    """For f = sum(x**3) the central difference is exactly 3 x**2 + h**2."""
    from xpnet.gradient import numerical_gradient

    host = rng.standard_normal((3, 4))
    x = backend.asarray(host, dtype="float64")
    xp = backend.xp
    g = numerical_gradient(lambda z: xp.sum(z * z * z), x)
    assert_on_backend(backend, g, dtype="float64", shape=(3, 4))
    assert_close(backend, g, 3 * host**2 + 1e-8, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(backend.to_numpy(x), host)  # restored exactly


def test_numerical_gradient_matches_the_books_code(rng):
    from xpnet.gradient import numerical_gradient

    x = rng.standard_normal((2, 3))
    f = lambda z: float(np.sum(np.sin(z) * z))  # noqa: E731
    np.testing.assert_allclose(numerical_gradient(f, x.copy()),
                               book.numerical_gradient(f, x.copy()), rtol=0, atol=1e-12)


def test_numerical_gradient_copies_device_values_once(backend, monkeypatch):
    """f's 0-d device results stay on the device until one batched copy per call."""
    from xpnet.gradient import numerical_gradient

    calls = []
    cls = type(backend)
    real = cls.array_to_numpy
    monkeypatch.setattr(cls, "array_to_numpy",
                        staticmethod(lambda a: calls.append(tuple(a.shape)) or real(a)))
    x = backend.asarray(np.arange(6.0).reshape(2, 3), dtype="float64")
    numerical_gradient(lambda z: backend.xp.sum(z * z), x)
    # one read of x to restore it, and one copy per batch (plus and minus) of 6 values
    if backend.name != "numpy":
        assert sorted(calls) == [(2, 3), (6,), (6,)]


def test_numerical_gradient_restores_x_when_f_raises(backend):
    from xpnet.gradient import numerical_gradient

    host = np.array([1.0, 2.0, 3.0])
    x = backend.asarray(host, dtype="float64")
    seen = []

    def f(z):
        seen.append(1)
        if len(seen) == 3:
            raise RuntimeError("boom")
        return backend.xp.sum(z)

    with pytest.raises(RuntimeError, match="boom"):
        numerical_gradient(f, x)
    np.testing.assert_array_equal(backend.to_numpy(x), host)


def test_numerical_gradient_bad_input(backend):
    from xpnet.gradient import numerical_gradient, numerical_gradient_2d

    with pytest.raises(TypeError, match="floating"):
        numerical_gradient(lambda z: 0.0, backend.asarray(np.arange(3)))
    with pytest.raises(TypeError, match="array"):
        numerical_gradient(lambda z: 0.0, [1.0, 2.0])
    x = backend.asarray(np.ones(2), dtype="float64")
    with pytest.raises(ValueError, match="h must"):
        numerical_gradient(lambda z: 0.0, x, h=0)
    with pytest.raises(ValueError, match="numerical_gradient_2d"):
        numerical_gradient_2d(lambda z: 0.0, backend.asarray(np.ones((2, 2, 2))))
    with pytest.raises(TypeError, match="number or a 0-d"):
        numerical_gradient(lambda z: "x", x)


def test_numerical_gradient_2d_calls_f_with_the_row(backend):
    from xpnet.gradient import numerical_gradient_2d

    host = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.0]])
    X = backend.asarray(host, dtype="float64")
    xp = backend.xp
    g = numerical_gradient_2d(lambda row: xp.sum(row * row) * (1.0 + float(row.shape[0] == 2)),
                              X)
    assert_close(backend, g, 4 * host, rtol=0, atol=1e-9)  # d/dx 2 x**2, per row
    g1 = numerical_gradient_2d(lambda v: xp.sum(v * v * v), X[0, ...])
    assert_close(backend, g1, 3 * host[0] ** 2 + 1e-8, rtol=0, atol=1e-9)


# ------------------------------------------------------------------------------ util


def test_smooth_curve_is_the_books_on_device_scalars(backend, rng, monkeypatch):
    from xpnet.book.common.util import smooth_curve

    values = rng.random(40)
    expected = book.smooth_curve(values)
    calls = []
    cls = type(backend)
    real = cls.array_to_numpy
    monkeypatch.setattr(cls, "array_to_numpy",
                        staticmethod(lambda a: calls.append(1) or real(a)))
    scalars = [backend.asarray(v, dtype="float64") for v in values]
    got = smooth_curve(scalars)
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (40,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-15)
    if backend.name != "numpy":
        assert len(calls) <= 1  # one batch, not one copy per value
    np.testing.assert_allclose(smooth_curve(list(values)), expected, rtol=0, atol=1e-15)
    # independent checks: a constant stays constant, a ramp is kept away from the ends
    np.testing.assert_allclose(smooth_curve([2.5] * 20), 2.5, rtol=0, atol=1e-14)
    ramp = smooth_curve([float(i) for i in range(30)])
    np.testing.assert_allclose(ramp[5:25], np.arange(5.0, 25.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (6, 1, 2, 2)], ids=["2-D", "4-D"])
def test_shuffle_dataset_is_the_books(shape):
    from xpnet.book.common.util import shuffle_dataset

    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    t = np.arange(6)
    x_before, t_before = x.copy(), t.copy()
    np.random.seed(11)  # noqa: NPY002
    ex, et = book.shuffle_dataset(x, t)
    np.random.seed(11)  # noqa: NPY002
    gx, gt = shuffle_dataset(x, t)
    np.testing.assert_array_equal(gx, ex)
    np.testing.assert_array_equal(gt, et)
    assert not np.array_equal(gt, t)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(t, t_before)


def test_shuffle_dataset_on_a_backend(backend):
    from xpnet.datasets import shuffle_dataset

    host_x = np.arange(20.0).reshape(10, 2)
    x = backend.asarray(host_x, dtype="float64")
    t = backend.asarray(np.arange(10))
    sx, st = shuffle_dataset(x, t, seed=4)
    assert_on_backend(backend, sx, shape=(10, 2))
    assert_on_backend(backend, st, shape=(10,))
    order = backend.to_numpy(st)
    np.testing.assert_array_equal(backend.to_numpy(sx), host_x[order])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    a, _ = shuffle_dataset(x, t, seed=4)
    np.testing.assert_array_equal(backend.to_numpy(a), backend.to_numpy(sx))


def test_shuffle_dataset_bad_input():
    from xpnet.datasets import shuffle_dataset

    with pytest.raises(ValueError, match="rows"):
        shuffle_dataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="rows"):
        shuffle_dataset(np.float64(1.0), np.zeros(1))
    with pytest.raises(TypeError, match="seed"):
        shuffle_dataset(np.zeros((3, 2)), np.zeros(3), seed="x")


def test_mirror_networks_save_and_load_as_themselves(tmp_path):
    """The mirror's classes keep xpnet's class names (the book's scripts use them) but are
    saved under names of their own: a loaded one is the mirror's again, and xpnet's own
    classes stay registered under theirs."""
    from xpnet.book.common.multi_layer_net import MultiLayerNet as BookNet
    from xpnet.book.common.multi_layer_net_extend import MultiLayerNetExtend as BookNetExtend
    from xpnet.network import NETWORKS

    assert NETWORKS["MultiLayerNet"] is xpnet.MultiLayerNet
    assert NETWORKS["MultiLayerNetExtend"] is xpnet.MultiLayerNetExtend
    for cls in (BookNet, BookNetExtend):
        net = cls(4, [3], 2, seed=0)
        path = tmp_path / f"{cls.__name__}.safetensors"
        net.save(path)
        back = xpnet.load(path)
        assert type(back) is cls
        x = np.arange(8.0).reshape(2, 4)
        np.testing.assert_array_equal(np.asarray(back.predict(x)), np.asarray(net.predict(x)))
    plain = xpnet.MultiLayerNet(4, [3], 2, seed=0)
    plain.save(tmp_path / "plain.safetensors")
    assert type(xpnet.load(tmp_path / "plain.safetensors")) is xpnet.MultiLayerNet


def test_mirror_pooling_has_the_books_default_stride():
    """The book's ``common/layers.py`` Pooling defaults to stride=1 (xpnet's to 2)."""
    from xpnet.book.common.layers import Pooling

    x = np.arange(16.0).reshape(1, 1, 4, 4)
    assert Pooling(2, 2).forward(x).shape == (1, 1, 3, 3)
    assert isinstance(Pooling(2, 2), xpnet.layers.Pooling)
