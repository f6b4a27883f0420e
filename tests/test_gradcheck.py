"""xpnet.gradient_check: small errors for correct networks, large ones for planted bugs, a
warning for each degenerate case, and the network left as it was."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import xpnet
from conftest import assert_on_backend
from xpnet import GradientCheckWarning, MultiLayerNet, MultiLayerNetExtend, gradient_check
from xpnet.gradcheck import GradientCheckResult, relative_error
from xpnet.layers import Affine, Layer, SoftmaxWithLoss

#: A correct network's errors (the book's 1e-7 inside the log bounds them near 1e-7 / y).
PASS = 1e-5
#: A planted bug's.
FAIL = 1e-2


def _data(rng, n=5, d=4, c=3):
    """Inputs small enough that no class probability is tiny: the book's loss has 1e-7 inside
    the log, which its backprop ignores, so a correct network's errors are about 1e-7 / y."""
    return 0.5 * rng.standard_normal((n, d)), rng.integers(0, c, n)


def _no_warnings():
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("error", GradientCheckWarning)
    return ctx


def _messages(record):
    return [str(w.message) for w in record if issubclass(w.category, GradientCheckWarning)]


def _perturb(be, net, rng, scale=0.1):
    for p in net.params.values():
        p += be.asarray(scale * rng.standard_normal(tuple(p.shape)), dtype=p.dtype)


# ------------------------------------------------------------------------------------------
# the relative error and the report
# ------------------------------------------------------------------------------------------


def test_relative_error_against_numpy(backend, rng):
    a, n = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    want = np.max(np.abs(a - n)) / max(np.max(np.abs(a) + np.abs(n)), np.finfo(float).tiny)
    got = relative_error(backend.asarray(a), backend.asarray(n))
    assert_on_backend(backend, got)
    assert float(backend.to_numpy(got)) == pytest.approx(want, rel=1e-12)
    zeros = backend.asarray(np.zeros(3))
    assert float(backend.to_numpy(relative_error(zeros, zeros))) == 0.0


def test_report_prints_the_books_lines():
    result = GradientCheckResult({"W1": 1.234e-10, "b1": 0.5, "gamma1": 3e-7})
    assert str(result) == "W1:1.2e-10\nb1:0.5\ngamma1:3e-07"
    assert dict(result) == {"W1": 1.234e-10, "b1": 0.5, "gamma1": 3e-7}


# ------------------------------------------------------------------------------------------
# correct networks pass, planted bugs fail
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_correct_network_has_small_errors(backend, rng, activation):
    net = MultiLayerNet(4, [5, 4], 3, activation=activation, weight_decay_lambda=0.1,
                        backend=backend, dtype="float64", seed=1)
    _perturb(backend, net, rng)  # biases off 0: no ReLU input near its kink
    x, t = _data(rng)
    ctx = _no_warnings()
    try:
        errors = gradient_check(net, x, t)
    finally:
        ctx.__exit__(None, None, None)
    assert list(errors) == list(net.params)
    assert max(errors.values()) < PASS, errors
    assert all(isinstance(v, float) for v in errors.values())
    lines = str(errors).splitlines()
    assert [line.split(":")[0] for line in lines] == list(net.params)
    assert all(re.fullmatch(r"\w+:[0-9.e+-]+", line) for line in lines)


def test_planted_bug_in_relu_backward_is_caught(backend, rng):
    net = MultiLayerNet(4, [5], 3, backend=backend, dtype="float64", seed=2)
    _perturb(backend, net, rng)
    relu = net.layers["Activation_function1"]
    relu.backward = lambda dout: dout  # forgot the mask
    errors = gradient_check(net, *_data(rng))
    assert errors["W1"] > FAIL and errors["b1"] > FAIL, errors
    assert errors["W2"] < PASS and errors["b2"] < PASS, errors


def test_batchnorm_network_and_a_planted_batchnorm_bug(backend, rng):
    net = MultiLayerNetExtend(4, [5, 4], 3, use_batchnorm=True, backend=backend,
                              dtype="float64", seed=3)
    _perturb(backend, net, rng)
    x, t = _data(rng, n=6)
    with pytest.warns(GradientCheckWarning, match="zero up to rounding") as record:
        errors = gradient_check(net, x, t)
    # b1, b2 feed a batch norm: the loss does not depend on them (said so, not a failure)
    flagged = [m for m in _messages(record) if "zero up to rounding" in m][0]
    assert flagged.startswith("b1, b2:")
    for key in ("W1", "W2", "W3", "b3", "gamma1", "beta1", "gamma2", "beta2"):
        assert errors[key] < PASS, (key, errors)
    bn = net.layers["BatchNorm2"]
    original = bn.backward
    bn.backward = lambda dout: original(dout) * 1.5  # a wrong scale on the input gradient
    with pytest.warns(GradientCheckWarning):
        buggy = gradient_check(net, x, t)
    assert buggy["W1"] > FAIL and buggy["W2"] > FAIL and buggy["gamma1"] > FAIL, buggy
    assert buggy["gamma2"] < PASS and buggy["W3"] < PASS, buggy


# ------------------------------------------------------------------------------------------
# degenerate cases warn
# ------------------------------------------------------------------------------------------


def test_float32_network_is_checked_on_a_float64_copy(backend, rng):
    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, backend=backend, seed=4)
    _perturb(backend, net, rng)
    x, t = _data(rng, n=6)
    net.gradient(x, t)  # running statistics away from their zero start
    before = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    stats = backend.to_numpy(net.layers["BatchNorm1"].running_mean).copy()
    with pytest.warns(GradientCheckWarning, match="float64 copy"):
        errors = gradient_check(net, x, t, params=["W1", "gamma1", "W2"])
    assert max(errors.values()) < PASS, errors
    for k, v in net.params.items():
        assert_on_backend(backend, v, dtype="float32")
        np.testing.assert_array_equal(backend.to_numpy(v), before[k])
    np.testing.assert_array_equal(backend.to_numpy(net.layers["BatchNorm1"].running_mean), stats)


def test_float64_copy_carries_parameters_and_running_statistics(backend, rng):
    from xpnet.gradcheck import _float64_copy

    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, use_dropout=True,
                              dropout_ration=0.25, weight_decay_lambda=0.01, backend=backend,
                              seed=11)
    _perturb(backend, net, rng)
    net.gradient(*_data(rng, n=6))
    copy = _float64_copy(net)
    assert type(copy) is MultiLayerNetExtend and copy.backend == net.backend
    assert (copy.use_dropout, copy.dropout_ration, copy.weight_decay_lambda) == (True, 0.25, 0.01)
    for k, v in net.params.items():
        assert_on_backend(backend, copy.params[k], dtype="float64")
        np.testing.assert_array_equal(backend.to_numpy(copy.params[k]),
                                      backend.to_numpy(v).astype(np.float64))
    for attr in ("running_mean", "running_var"):
        got = getattr(copy.layers["BatchNorm1"], attr)
        assert_on_backend(backend, got, dtype="float64")
        np.testing.assert_array_equal(
            backend.to_numpy(got),
            backend.to_numpy(getattr(net.layers["BatchNorm1"], attr)).astype(np.float64))


def test_float64_network_is_restored_exactly(backend, rng):
    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, backend=backend,
                              dtype="float64", seed=5)
    _perturb(backend, net, rng)
    x, t = _data(rng, n=6)
    net.gradient(x, t)
    before = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    bn = net.layers["BatchNorm1"]
    mean, var = backend.to_numpy(bn.running_mean).copy(), backend.to_numpy(bn.running_var).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GradientCheckWarning)
        gradient_check(net, x, t)
    for k, v in net.params.items():
        np.testing.assert_array_equal(backend.to_numpy(v), before[k])
    np.testing.assert_array_equal(backend.to_numpy(bn.running_mean), mean)
    np.testing.assert_array_equal(backend.to_numpy(bn.running_var), var)


def test_single_sample_through_batchnorm_is_refused(backend, rng):
    """A batch of one through batch norm would pass the check without testing the layers
    before it (their gradients are zero both ways); batch norm refuses it in training, and
    gradient_check says so first, naming the layer, with the parameters untouched."""
    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, backend=backend,
                              dtype="float64", seed=6)
    before = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    x, t = _data(rng, n=1)
    with pytest.raises(ValueError, match="single sample") as info:
        gradient_check(net, x, t)
    assert "BatchNorm1" in str(info.value)
    for k, v in before.items():
        np.testing.assert_array_equal(backend.to_numpy(net.params[k]), v)


def test_dropout_masks_are_held_fixed_and_restored(backend, rng):
    kw = dict(use_dropout=True, dropout_ration=0.3, backend=backend, dtype="float64", seed=7)
    net = MultiLayerNetExtend(4, [6, 5], 3, **kw)
    twin = MultiLayerNetExtend(4, [6, 5], 3, **kw)
    _perturb(backend, net, np.random.default_rng(0))
    _perturb(backend, twin, np.random.default_rng(0))
    x, t = _data(rng, n=6)
    drop = net.layers["Dropout1"]
    rng_before = drop._rng
    with pytest.warns(GradientCheckWarning, match="held fixed") as record:
        errors = gradient_check(net, x, t)
    assert any("Dropout1, Dropout2" in m for m in _messages(record))
    # with a new mask per evaluation the numerical gradient would be noise
    assert max(errors.values()) < PASS, errors
    assert drop._rng is rng_before
    assert "forward" not in vars(net.layers["Activation_function1"])
    # the network's own mask stream was not advanced by the check
    net.predict(x, train_flg=True)
    twin.predict(x, train_flg=True)
    np.testing.assert_array_equal(backend.to_numpy(drop.mask),
                                  backend.to_numpy(twin.layers["Dropout1"].mask))


def test_state_is_restored_when_the_check_raises(backend, rng):
    net = MultiLayerNetExtend(4, [5], 3, use_dropout=True, backend=backend, dtype="float64",
                              seed=8)
    drop, relu = net.layers["Dropout1"], net.layers["Activation_function1"]
    rng_before = drop._rng

    def broken(x, t):
        raise RuntimeError("boom")

    net.gradient = broken
    with pytest.warns(GradientCheckWarning), pytest.raises(RuntimeError, match="boom"):
        gradient_check(net, *_data(rng))
    assert drop._rng is rng_before
    assert "forward" not in vars(relu)


def test_relu_kink_warns(backend, rng):
    net = MultiLayerNet(4, [5], 3, backend=backend, dtype="float64", seed=9)  # b1 = 0
    x, t = _data(rng)
    x[0] = 0.0  # this row reaches the ReLU exactly at its kink
    with pytest.warns(GradientCheckWarning, match="kink") as record:
        gradient_check(net, x, t, params=["W2"])
    msg = [m for m in _messages(record) if "kink" in m][0]
    assert "Activation_function1" in msg and "5 of 25" in msg


# ------------------------------------------------------------------------------------------
# a network of another shape: maxout (kinks plug in by layer name), a dropout it cannot hold
# ------------------------------------------------------------------------------------------


class Maxout(Layer):
    """Maxout over groups of ``pieces`` consecutive columns of ``x @ W + b``."""

    def __init__(self, W, b, pieces, xp):
        super().__init__()
        self.W, self.b, self.pieces, self.xp = W, b, pieces, xp

    def forward(self, x):
        xp = self.xp
        self.x = x
        z = xp.reshape(x @ self.W + self.b, (x.shape[0], -1, self.pieces))
        out = xp.max(z, axis=-1)
        self.mask = z == out[..., None]
        return out

    def backward(self, dout):
        xp = self.xp
        dz = xp.where(self.mask, dout[..., None], 0.0)
        dz = xp.reshape(dz, (dz.shape[0], -1))
        self.dW = self.x.T @ dz
        self.db = xp.sum(dz, axis=0)
        return dz @ self.W.T


class UnholdableDropout(Layer):
    def forward(self, x, train_flg=True):
        return x

    def backward(self, dout):
        return dout


class MaxoutNet:
    """The book's interface around a maxout layer (float64, so checked in place)."""

    def __init__(self, be, rng, tie=False, extra=None):
        self.backend = be
        w1, b1 = rng.standard_normal((3, 8)), 0.1 * rng.standard_normal(8)
        if tie:  # columns 0 and 1 form the first group: equal, a kink for every sample
            w1[:, 1], b1[1] = w1[:, 0], b1[0]
        host = {"W1": w1, "b1": b1, "W2": 0.5 * rng.standard_normal((4, 3)),
                "b2": 0.1 * rng.standard_normal(3)}
        self.params = {k: be.asarray(v, dtype="float64") for k, v in host.items()}
        self.layers = {"Maxout1": Maxout(self.params["W1"], self.params["b1"], 2, be.xp)}
        if extra is not None:
            self.layers["Dropout9"] = extra
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.last_layer = SoftmaxWithLoss()

    def loss(self, x, t, train_flg=False):
        for layer in self.layers.values():
            x = layer.forward(x)
        return self.last_layer.forward(x, t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        m, a = self.layers["Maxout1"], self.layers["Affine2"]
        return {"W1": m.dW, "b1": m.db, "W2": a.dW, "b2": a.db}


def test_maxout_kinks_plug_in_by_layer_name(backend, rng):
    x, t = _data(rng, d=3)
    ctx = _no_warnings()
    try:
        errors = gradient_check(MaxoutNet(backend, np.random.default_rng(1)), x, t)
    finally:
        ctx.__exit__(None, None, None)
    assert max(errors.values()) < PASS, errors
    with pytest.warns(GradientCheckWarning, match="kink") as record:
        gradient_check(MaxoutNet(backend, np.random.default_rng(1), tie=True), x, t)
    msg = [m for m in _messages(record) if "kink" in m][0]
    assert "Maxout1 (Maxout)" in msg and "5 of 20" in msg


def test_a_dropout_it_cannot_hold_is_named(backend, rng):
    net = MaxoutNet(backend, np.random.default_rng(2), extra=UnholdableDropout())
    with pytest.warns(GradientCheckWarning, match="cannot be held fixed") as record:
        gradient_check(net, *_data(rng, d=3), params=["b2"])
    assert any("Dropout9 (UnholdableDropout)" in m for m in _messages(record))


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------


def test_bad_arguments(backend, rng):
    net = MultiLayerNet(4, [5], 3, backend=backend, dtype="float64", seed=10)
    x, t = _data(rng)
    before = backend.to_numpy(net.params["W1"]).copy()
    with pytest.raises(ValueError, match="unknown parameters \\['W9'\\]"):
        gradient_check(net, x, t, params=["W1", "W9"])
    with pytest.raises(ValueError, match="h must be"):
        gradient_check(net, x, t, h=0.0)
    with pytest.raises(TypeError, match="book's interface"):
        gradient_check(object(), x, t)
    np.testing.assert_array_equal(backend.to_numpy(net.params["W1"]), before)
    assert list(gradient_check(net, x, t, params="b2")) == ["b2"]


def test_device_without_float64_is_refused(rng):
    pytest.importorskip("array_api_strict")
    net = MultiLayerNet(4, [5], 3, backend="array_api_strict", device="no_float64", seed=0)
    with pytest.raises(ValueError, match="float64"):
        gradient_check(net, *_data(rng))


def test_exported():
    assert {"gradient_check", "GradientCheckWarning"} <= set(xpnet.__all__)
    assert issubclass(GradientCheckWarning, UserWarning)
