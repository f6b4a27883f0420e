"""Property-based tests (hypothesis): every layer and the networks' ``gradient`` over shapes,
dtypes and values, on every backend of the matrix.

For finite input (``|x| <= 1e3``, which covers zeros, repeated values, constant columns and
float32 subnormals) every layer's ``forward`` and ``backward`` must give finite arrays of the
expected shape and dtype, on the input's backend, without writing into their inputs (``x``,
``dout``, labels) or their parameters.  The networks' ``gradient`` must give a finite gradient
of every parameter's shape and leave the parameters alone; invalid labels must be refused,
naming ``t``, with nothing changed.

Examples are few (``max_examples`` below) and derandomized, so the suite stays fast and every
run tries the same inputs; raise ``XPNET_HYPOTHESIS_EXAMPLES`` for a longer hunt.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import xpnet  # noqa: E402
from conftest import assert_on_backend  # noqa: E402
from xpnet import layers as L  # noqa: E402

EXAMPLES = int(os.environ.get("XPNET_HYPOTHESIS_EXAMPLES", "8"))
#: the ``backend`` fixture is per test, not per example: fine here, a Backend is stateless
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])
BOUND = 1e3
DTYPES = ("float32", "float64")


def _array(data, shape, dtype, bound=BOUND):
    """A finite host array of ``shape``: hypothesis' values (zeros, repeats, extremes within
    ``bound``, subnormals) in ``dtype``."""
    width = 32 if dtype == "float32" else 64
    elements = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    return data.draw(hnp.arrays(np.dtype(dtype), shape, elements=elements))


def _dims(data, *names_and_ranges):
    return [data.draw(st.integers(lo, hi), label=name) for name, lo, hi in names_and_ranges]


# ------------------------------------------------------------------------------------------
# one builder per layer: (layer, x_host, train_flg or None, expected output shape,
# parameters as (attribute, gradient attribute))
# ------------------------------------------------------------------------------------------


def _affine(be, dt, data):
    n, d, m = _dims(data, ("N", 1, 5), ("D", 1, 5), ("M", 1, 4))
    W = be.asarray(_array(data, (d, m), dt, 1.0))
    b = be.asarray(_array(data, (m,), dt, 1.0))
    return L.Affine(W, b), _array(data, (n, d), dt), None, (n, m), [("W", "dW"), ("b", "db")]


def _activation(cls):
    def build(be, dt, data):
        n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
        return cls(backend=be), _array(data, (n, d), dt), None, (n, d), []
    return build


def _leaky(be, dt, data):
    n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
    alpha = data.draw(st.floats(0.0, 1.0), label="alpha")
    return L.LeakyRelu(alpha, backend=be), _array(data, (n, d), dt), None, (n, d), []


def _elu(be, dt, data):
    n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
    alpha = data.draw(st.floats(0.0, 3.0), label="alpha")
    return L.Elu(alpha, backend=be), _array(data, (n, d), dt), None, (n, d), []


def _prelu(be, dt, data):
    n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
    alpha = be.asarray(_array(data, (d,), dt, 1.0))
    return L.PRelu(alpha), _array(data, (n, d), dt), None, (n, d), [("alpha", "dalpha")]


def _maxout(be, dt, data):
    n, d, m, k = _dims(data, ("N", 1, 5), ("D", 1, 4), ("M", 1, 3), ("pieces", 1, 3))
    W = be.asarray(_array(data, (d, m * k), dt, 1.0))
    b = be.asarray(_array(data, (m * k,), dt, 1.0))
    return L.Maxout(W, b, k), _array(data, (n, d), dt), None, (n, m), [("W", "dW"), ("b", "db")]


def _batchnorm(be, dt, data):
    n, d = _dims(data, ("N", 2, 6), ("D", 1, 5))  # a batch of one is refused in training
    gamma = be.asarray(_array(data, (d,), dt, 2.0))
    beta = be.asarray(_array(data, (d,), dt, 2.0))
    train = data.draw(st.booleans(), label="train_flg")
    return (L.BatchNormalization(gamma, beta), _array(data, (n, d), dt), train, (n, d),
            [("gamma", "dgamma"), ("beta", "dbeta")] if train else [])


def _spatial_batchnorm(be, dt, data):
    n, c, h, w = _dims(data, ("N", 1, 3), ("C", 1, 3), ("H", 1, 3), ("W", 1, 3))
    if n * h * w < 2:
        h = 2  # one value per channel is refused in training
    gamma = be.asarray(_array(data, (c,), dt, 2.0))
    beta = be.asarray(_array(data, (c,), dt, 2.0))
    train = data.draw(st.booleans(), label="train_flg")
    return (L.SpatialBatchNormalization(gamma, beta), _array(data, (n, c, h, w), dt), train,
            (n, c, h, w), [("gamma", "dgamma"), ("beta", "dbeta")] if train else [])


def _layernorm(be, dt, data):
    n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
    gamma = be.asarray(_array(data, (d,), dt, 2.0))
    beta = be.asarray(_array(data, (d,), dt, 2.0))
    return (L.LayerNormalization(gamma, beta), _array(data, (n, d), dt), True, (n, d),
            [("gamma", "dgamma"), ("beta", "dbeta")])


def _groupnorm(be, dt, data):
    n, g, per, h, w = _dims(data, ("N", 1, 3), ("groups", 1, 3), ("C/group", 1, 2),
                            ("H", 1, 3), ("W", 1, 3))
    c = g * per
    gamma = be.asarray(_array(data, (c,), dt, 2.0))
    beta = be.asarray(_array(data, (c,), dt, 2.0))
    return (L.GroupNormalization(gamma, beta, g), _array(data, (n, c, h, w), dt), True,
            (n, c, h, w), [("gamma", "dgamma"), ("beta", "dbeta")])


def _instancenorm(be, dt, data):
    n, c, h, w = _dims(data, ("N", 1, 3), ("C", 1, 3), ("H", 1, 3), ("W", 1, 3))
    gamma = be.asarray(_array(data, (c,), dt, 2.0))
    beta = be.asarray(_array(data, (c,), dt, 2.0))
    return (L.InstanceNormalization(gamma, beta), _array(data, (n, c, h, w), dt), True,
            (n, c, h, w), [("gamma", "dgamma"), ("beta", "dbeta")])


def _dropout(be, dt, data):
    n, d = _dims(data, ("N", 1, 5), ("D", 1, 5))
    ratio = data.draw(st.floats(0.0, 0.9), label="ratio")
    inverted = data.draw(st.booleans(), label="inverted")
    train = data.draw(st.booleans(), label="train_flg")
    return (L.Dropout(ratio, inverted, seed=0, backend=be), _array(data, (n, d), dt), train,
            (n, d), [])


def _convolution(be, dt, data):
    n, c, fn, fh, fw, stride, pad = _dims(
        data, ("N", 1, 2), ("C", 1, 2), ("FN", 1, 3), ("FH", 1, 3), ("FW", 1, 3),
        ("stride", 1, 2), ("pad", 0, 1))
    h = data.draw(st.integers(max(fh - 2 * pad, 1), 5), label="H")
    w = data.draw(st.integers(max(fw - 2 * pad, 1), 5), label="W")
    W = be.asarray(_array(data, (fn, c, fh, fw), dt, 1.0))
    b = be.asarray(_array(data, (fn,), dt, 1.0))
    oh, ow = (h + 2 * pad - fh) // stride + 1, (w + 2 * pad - fw) // stride + 1
    return (L.Convolution(W, b, stride, pad), _array(data, (n, c, h, w), dt), None,
            (n, fn, oh, ow), [("W", "dW"), ("b", "db")])


def _pooling(be, dt, data):
    n, c, ph, pw, stride = _dims(data, ("N", 1, 2), ("C", 1, 2), ("pool_h", 1, 3),
                                 ("pool_w", 1, 3), ("stride", 1, 3))
    pad = data.draw(st.integers(0, min(ph, pw) - 1), label="pad")
    h = data.draw(st.integers(max(ph - 2 * pad, 1), 5), label="H")
    w = data.draw(st.integers(max(pw - 2 * pad, 1), 5), label="W")
    oh, ow = (h + 2 * pad - ph) // stride + 1, (w + 2 * pad - pw) // stride + 1
    return (L.Pooling(ph, pw, stride, pad, backend=be), _array(data, (n, c, h, w), dt), None,
            (n, c, oh, ow), [])


BUILDERS = {
    "Affine": _affine,
    "BatchNormalization": _batchnorm,
    "Convolution": _convolution,
    "Dropout": _dropout,
    "Elu": _elu,
    "GroupNormalization": _groupnorm,
    "InstanceNormalization": _instancenorm,
    "LayerNormalization": _layernorm,
    "LeakyRelu": _leaky,
    "Maxout": _maxout,
    "PRelu": _prelu,
    "Pooling": _pooling,
    "Relu": _activation(L.Relu),
    "Sigmoid": _activation(L.Sigmoid),
    "SpatialBatchNormalization": _spatial_batchnorm,
    "Tanh": _activation(L.Tanh),
}
#: layers whose backward exists only after a training forward pass (as in the book)
TRAIN_ONLY_BACKWARD = {"BatchNormalization", "SpatialBatchNormalization", "Dropout"}
#: layers tested on their own below, and the base class
SEPARATE = {"SoftmaxWithLoss", "Layer"}


def test_every_layer_has_a_property_test():
    """A new layer in ``xpnet.layers.__all__`` must get a builder here."""
    missing = set(L.__all__) - set(BUILDERS) - SEPARATE
    assert not missing, f"no property test for {sorted(missing)}"


def _host(be, a):
    return np.array(be.to_numpy(a), copy=True)


def _assert_finite(be, a, what):
    h = be.to_numpy(a)
    assert np.all(np.isfinite(h)), f"{what} is not finite: {h}"


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_forward_backward_finite_shapes_no_mutation(backend, name, dtype):
    @SETTINGS
    @given(data=st.data())
    def check(data):
        layer, x_host, train, out_shape, params = BUILDERS[name](backend, dtype, data)
        x = backend.asarray(x_host)
        before = {attr: _host(backend, getattr(layer, attr)) for attr, _ in params}
        out = layer.forward(x) if train is None else layer.forward(x, train)
        assert_on_backend(backend, out, dtype=dtype, shape=out_shape)
        _assert_finite(backend, out, f"{name}.forward")
        np.testing.assert_array_equal(_host(backend, x), x_host, err_msg="forward wrote into x")
        if train is False and name in TRAIN_ONLY_BACKWARD:
            return  # (the book's backward follows a training forward pass only)

        dout_host = _array(data, out_shape, dtype, 10.0)
        dout = backend.asarray(dout_host)
        dx = layer.backward(dout)
        assert_on_backend(backend, dx, dtype=dtype, shape=x_host.shape)
        _assert_finite(backend, dx, f"{name}.backward")
        np.testing.assert_array_equal(_host(backend, dout), dout_host,
                                      err_msg="backward wrote into dout")
        np.testing.assert_array_equal(_host(backend, x), x_host, err_msg="backward wrote into x")
        for attr, gattr in params:
            p = getattr(layer, attr)
            np.testing.assert_array_equal(_host(backend, p), before[attr],
                                          err_msg=f"{name} changed its {attr}")
            g = getattr(layer, gattr)
            assert_on_backend(backend, g, dtype=dtype, shape=tuple(p.shape))
            _assert_finite(backend, g, f"{name}.{gattr}")

    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_with_loss_finite_shapes_no_mutation(backend, dtype):
    @SETTINGS
    @given(data=st.data())
    def check(data):
        n, c = _dims(data, ("N", 1, 6), ("C", 1, 5))
        x_host = _array(data, (n, c), dtype)
        one_hot = data.draw(st.booleans(), label="one_hot")
        labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
        t_host = np.eye(c, dtype=dtype)[labels] if one_hot else labels
        x, t = backend.asarray(x_host), backend.asarray(t_host)
        layer = L.SoftmaxWithLoss(backend=backend)
        loss = layer.forward(x, t)
        assert_on_backend(backend, loss, dtype=dtype, shape=())
        value = backend.to_float(loss)
        # >= 0 but for the book's 1e-7 inside the log: -log(1 + 1e-7) when y is exactly 1
        assert math.isfinite(value) and value >= -2e-7
        dx = layer.backward(1)
        assert_on_backend(backend, dx, dtype=dtype, shape=(n, c))
        _assert_finite(backend, dx, "SoftmaxWithLoss.backward")
        # each row of dx = (softmax - onehot) / N sums to zero
        np.testing.assert_allclose(backend.to_numpy(dx).sum(axis=1), 0.0, atol=1e-5 / n)
        np.testing.assert_array_equal(_host(backend, x), x_host)
        np.testing.assert_array_equal(_host(backend, t), t_host)

    check()


# ------------------------------------------------------------------------------------------
# networks
# ------------------------------------------------------------------------------------------


def _net_case(backend, dtype, data):
    d, c = _dims(data, ("D", 1, 5), ("C", 2, 4))
    hidden = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=2), label="hidden")
    kw = dict(
        activation=data.draw(st.sampled_from(sorted(xpnet.nets.ACTIVATIONS)), label="act"),
        use_batchnorm=data.draw(st.booleans(), label="batchnorm"),
        use_dropout=data.draw(st.booleans(), label="dropout"),
        weight_decay_lambda=data.draw(st.sampled_from([0.0, 0.1]), label="lambda"),
    )

    def make():
        return xpnet.MultiLayerNetExtend(d, hidden, c, backend=backend, dtype=dtype, seed=0,
                                         **kw)

    n = data.draw(st.integers(2, 6), label="N")
    x_host = _array(data, (n, d), dtype, 100.0)
    return make, x_host, n, c


def _params(backend, net):
    return {k: _host(backend, v) for k, v in net.params.items()}


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_gradient_finite_shapes_nothing_mutated(backend, dtype):
    @SETTINGS
    @given(data=st.data())
    def check(data):
        make, x_host, n, c = _net_case(backend, dtype, data)
        net, twin = make(), make()
        labels = np.asarray(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
        form = data.draw(st.sampled_from(["indices", "column", "one_hot"]), label="labels")
        t_host = {"indices": labels, "column": labels[:, None],
                  "one_hot": np.eye(c, dtype=dtype)[labels]}[form]
        on_device = data.draw(st.booleans(), label="inputs on the device")
        x = backend.asarray(x_host) if on_device else x_host
        t = backend.asarray(t_host) if on_device else t_host
        before = _params(backend, net)
        grads = net.gradient(x, t, copy=True)
        assert set(grads) == set(net.params)
        for k, g in grads.items():
            assert_on_backend(backend, g, dtype=dtype, shape=tuple(net.params[k].shape))
            _assert_finite(backend, g, f"grads[{k!r}]")
        assert math.isfinite(backend.to_float(net.last_loss))
        for k, v in _params(backend, net).items():
            np.testing.assert_array_equal(v, before[k], err_msg=f"gradient changed {k}")
        np.testing.assert_array_equal(_host(backend, x) if on_device else x, x_host)
        np.testing.assert_array_equal(_host(backend, t) if on_device else t, t_host)
        # a column of class indices is read as the indices (a twin network, same seed, same
        # dropout masks, given the plain indices, gets the same gradient)
        if form == "column":
            again = twin.gradient(x_host, labels)
            for k in grads:
                np.testing.assert_array_equal(backend.to_numpy(grads[k]),
                                              backend.to_numpy(again[k]))

    check()


@pytest.mark.parametrize("dtype", DTYPES)
def test_network_refuses_labels_out_of_range_and_changes_nothing(backend, dtype):
    @SETTINGS
    @given(data=st.data())
    def check(data):
        make, x_host, n, c = _net_case(backend, dtype, data)
        net = make()
        labels = data.draw(st.lists(st.integers(-3, c + 3), min_size=n, max_size=n))
        bad = data.draw(st.sampled_from([-1, c, c + 7, -(2**40)]), label="bad label")
        labels[data.draw(st.integers(0, n - 1), label="where")] = bad
        bn = [layer for layer in net.layers.values()
              if isinstance(layer, L.BatchNormalization)]
        stats = [(layer.running_mean, layer.running_var) for layer in bn]
        before = _params(backend, net)
        method = data.draw(st.sampled_from(["gradient", "loss", "accuracy"]), label="method")
        with pytest.raises(ValueError, match=r"\bt\b.*class index") as info:
            getattr(net, method)(x_host, np.asarray(labels))
        assert f"output_size={c}" in str(info.value)
        for k, v in _params(backend, net).items():
            np.testing.assert_array_equal(v, before[k])
        assert [(layer.running_mean, layer.running_var) for layer in bn] == stats

    check()


# ------------------------------------------------------------------------------------------
# the scalar checks
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(v=st.floats(allow_nan=True, allow_infinity=True))
def test_hyperparameter_in_unit_interval_accepted_exactly_when_in_it(v):
    ok = math.isfinite(v) and 0.0 <= v < 1.0
    for value in (v, np.float64(v)):
        if ok:
            assert xpnet.optim.check_hyperparameter("momentum", value) == v
        else:
            with pytest.raises(ValueError, match="momentum"):
                xpnet.optim.check_hyperparameter("momentum", value)


@SETTINGS
@given(v=st.one_of(st.integers(-10, 10**12), st.floats(allow_nan=False, allow_infinity=False)))
def test_sizes_are_positive_integers_never_truncated(v):
    from xpnet.validation import as_int

    if isinstance(v, int) and v >= 1:
        assert as_int(v, "epochs") == v
        assert as_int(np.int64(v), "epochs") == v
    elif isinstance(v, int):
        with pytest.raises(ValueError, match="epochs must be a positive integer"):
            as_int(v, "epochs")
    else:
        with pytest.raises(TypeError, match="epochs must be an integer"):
            as_int(v, "epochs")
