"""Bad input gets a clear error before any work (issue 12, item 5).

Every case is a row of a table: what is given, the error type expected, and the words its
message must contain (the argument's name and what was expected).  Each also checks that
nothing changed: parameters, batch-norm running statistics, the last loss, the optimizer's step
count and state, files.  Cases run on every backend of the matrix; inputs are given as host
data (NumPy) and, where it means something, as arrays already on the backend.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import xpnet
from conftest import counting_host_reads
from xpnet import layers as L
from xpnet.validation import as_float, as_int

# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

N, D, C = 8, 4, 3
RNG = np.random.default_rng(12)
X = RNG.standard_normal((N, D)).astype(np.float32)
T = np.array([0, 1, 2, 0, 1, 2, 0, 1])


def _matches(message: str, words) -> list[str]:
    """The words missing from ``message`` (case-insensitive, as whole words)."""
    low = message.lower()
    return [w for w in words
            if not re.search(r"(?<![\w-])" + re.escape(w.lower()) + r"(?![\w])", low)]


def assert_refused(call, exc, words):
    """``call()`` raises ``exc`` (exactly that family, not a raw library error) whose message
    holds every one of ``words``."""
    with pytest.raises(exc) as info:
        call()
    missing = _matches(str(info.value), words)
    assert not missing, f"message lacks {missing}: {info.value}"
    return info.value


def _host(be, a):
    return None if a is None else np.array(be.to_numpy(a), copy=True)


def snapshot(be, net=None, opt=None) -> dict:
    """Host copies of everything a refused call must leave alone."""
    snap = {}
    if net is not None:
        snap.update({f"param {k}": _host(be, v) for k, v in net.params.items()})
        for name, layer in net.layers.items():
            if isinstance(layer, L.BatchNormalization):
                snap[f"{name} running_mean"] = _host(be, layer.running_mean)
                snap[f"{name} running_var"] = _host(be, layer.running_var)
        snap["last_loss"] = _host(be, net.last_loss)
    if opt is not None:
        snap["opt step"] = getattr(opt, "iter", None)
        for sname, store in opt.state.items():
            for k, v in store.items():
                snap[f"opt {sname}[{k}]"] = _host(be, v)
    return snap


def assert_unchanged(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for k, v in before.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(after[k], v, err_msg=f"{k} changed")
        else:
            assert after[k] == v, f"{k} changed: {v!r} -> {after[k]!r}"


def trained_net(be, **kw):
    """A batch-norm + dropout network after one Adam step: running statistics, a last loss and
    optimizer state that a refused call could disturb."""
    net = xpnet.MultiLayerNetExtend(D, [5], C, use_batchnorm=True, use_dropout=True,
                                    dropout_ration=0.2, seed=0, backend=be, **kw)
    opt = xpnet.Adam(lr=0.01)
    opt.update(net.params, net.gradient(X, T))
    return net, opt


def _to(be, a, where):
    return be.asarray(a) if where == "device" else a


# ------------------------------------------------------------------------------------------
# network inputs x (predict, loss, accuracy, gradient)
# ------------------------------------------------------------------------------------------

X_CASES = [
    # id, x, error, words, also as a device array
    ("width 3 for input_size 4", X[:, :3], ValueError, ["x", "input_size is 4"], True),
    ("width 5 for input_size 4", np.ones((N, 5), np.float32), ValueError, ["x", "4"], True),
    ("images of the wrong size", np.ones((N, 1, 2, 3), np.float32), ValueError,
     ["x", "6 values per row"], True),
    ("one sample as 1-D", X[0], ValueError, ["x", "(N, 4)", "reshape"], True),
    ("a 0-d scalar", np.float32(1.0), ValueError, ["x", "(N, 4)"], False),
    ("an empty batch", X[:0], ValueError, ["x", "empty"], True),
    ("complex numbers", X + 1j, TypeError, ["x", "real numbers"], True),
    ("strings", np.full((N, D), "a"), TypeError, ["x", "real numbers"], False),
    ("a ragged list", [[1.0, 2.0, 3.0, 4.0], [1.0]], TypeError, ["x"], False),
    ("objects", np.array([[object()] * D] * N), TypeError, ["x", "real numbers"], False),
]


def _x_calls(net, x):
    return {
        "predict": lambda: net.predict(x),
        "predict(train_flg=True)": lambda: net.predict(x, train_flg=True),
        "loss": lambda: net.loss(x, T),
        "accuracy": lambda: net.accuracy(x, T),
        "gradient": lambda: net.gradient(x, T),
    }


def _where(cases):
    """(case, where) pairs: every case from the host, the device ones also as backend arrays
    (no backend holds strings, objects or ragged lists; label values on a device are read only
    when asked, see below)."""
    return [pytest.param(c, w, id=f"{c[0]}-{w}") for c in cases
            for w in (("host", "device") if c[4] else ("host",))]


@pytest.mark.parametrize("case, where", _where(X_CASES))
def test_bad_x_is_refused_before_any_layer_runs(backend, case, where):
    _, x, exc, words, _ = case
    net, opt = trained_net(backend)
    xin = _to(backend, x, where)
    before = snapshot(backend, net, opt)
    for name, call in _x_calls(net, xin).items():
        err = assert_refused(call, exc, words)
        assert "Traceback" not in str(err), name
    assert_unchanged(before, snapshot(backend, net, opt))


def test_accepted_x_shapes_and_dtypes(backend):
    """What is refused above must not catch what is fine: images flattened to the width,
    integer and bool inputs (cast), lists."""
    net = xpnet.MultiLayerNet(D, [5], C, seed=0, backend=backend)
    ref = backend.to_numpy(net.predict(X))
    same = [X.reshape(N, 2, 2), X.reshape(N, 1, 2, 2), X.tolist(), X.astype(np.float64),
            backend.asarray(X)]
    for x in same:
        np.testing.assert_allclose(backend.to_numpy(net.predict(x)), ref, rtol=1e-6, atol=1e-6)
    for x in (np.ones((N, D), np.uint8), np.ones((N, D), bool), np.ones((N, D), np.int64)):
        out = backend.to_numpy(net.predict(x))
        np.testing.assert_allclose(out, backend.to_numpy(net.predict(np.ones((N, D)))),
                                   rtol=1e-6)


# ------------------------------------------------------------------------------------------
# labels t (loss, accuracy, gradient)
# ------------------------------------------------------------------------------------------

ONE_HOT = np.eye(C, dtype=np.float32)[T]
T_CASES = [
    # id, t, error, words, also as a device array (values are read on the host only)
    ("class index 3 for 3 classes", np.array([0, 1, 2, 3, 0, 1, 2, 0]), ValueError,
     ["t", "class index 3", "output_size=3"], False),
    ("class index -1", np.array([0, 1, 2, -1, 0, 1, 2, 0]), ValueError,
     ["t", "class index -1", "[0, 3)"], False),
    ("a huge class index", np.array([0, 1, 2, 2**40, 0, 1, 2, 0]), ValueError,
     ["t", "output_size=3"], False),
    ("fractional float labels", np.array([0, 1.5, 2, 1, 0, 1, 2, 0]), TypeError,
     ["t", "integers"], True),
    ("whole-number float labels", T.astype(np.float64), TypeError, ["t", "integers"], True),
    ("7 labels for 8 rows", T[:7], ValueError, ["t", "7 labels", "8 rows"], True),
    ("1 label for 8 rows", T[:1], ValueError, ["t", "1 labels", "8 rows"], True),
    ("16 labels for 8 rows", np.concatenate([T, T]), ValueError, ["t", "16 labels"], True),
    ("one-hot rows 4 wide for 3 classes", np.eye(4, dtype=np.float32)[T], ValueError,
     ["t", "3 columns"], True),
    ("one-hot rows 2 wide for 3 classes", np.eye(2, dtype=np.float32)[T % 2], ValueError,
     ["t", "3 columns"], True),
    ("a row of class indices (1, N)", T[None, :], ValueError, ["t", "labels", "8 rows"], True),
    ("bool labels", T > 0, TypeError, ["t", "integers"], True),
    ("string labels", np.array(list("abcabcab")), TypeError, ["t", "dtype"], False),
    ("3-D labels", np.zeros((N, C, 1), np.float32), ValueError, ["t", "shape"], True),
    ("a 0-d label", np.int64(1), ValueError, ["t", "shape"], False),
    ("complex labels", T + 0j, TypeError, ["t", "dtype"], True),
    ("one-hot rows with 2.0", ONE_HOT * 2, ValueError, ["t", "[0, 1]"], False),
    ("one-hot rows with -1", ONE_HOT - 1, ValueError, ["t", "[0, 1]"], False),
    ("one-hot rows with NaN", np.where(ONE_HOT > 0, np.nan, 0).astype(np.float32),
     ValueError, ["t", "[0, 1]"], False),
]


def _t_calls(net, t):
    return {
        "loss": lambda: net.loss(X, t),
        "accuracy": lambda: net.accuracy(X, t),
        "gradient": lambda: net.gradient(X, t),
        "numerical_gradient": lambda: net.numerical_gradient(X, t),
    }


@pytest.mark.parametrize("case, where", _where(T_CASES))
def test_bad_labels_are_refused_before_any_layer_runs(backend, case, where):
    _, t, exc, words, _ = case
    net, opt = trained_net(backend)
    tin = _to(backend, t, where)
    before = snapshot(backend, net, opt)
    for call in _t_calls(net, tin).values():
        assert_refused(call, exc, words)
    assert_unchanged(before, snapshot(backend, net, opt))


VALUE_CASES = [c for c in T_CASES if not c[4] and c[0] not in ("string labels", "a 0-d label")]


@pytest.mark.parametrize("case", VALUE_CASES, ids=[c[0] for c in VALUE_CASES])
def test_label_values_on_the_device_are_checked_when_asked(backend, case):
    """Device labels: their values are read (one transfer of a min and a max) with
    ``check_values=True``."""
    _, t, exc, words, _ = case
    net, opt = trained_net(backend, check_values=True)
    tin = backend.asarray(t)
    before = snapshot(backend, net, opt)
    for call in _t_calls(net, tin).values():
        assert_refused(call, exc, words)
    assert_unchanged(before, snapshot(backend, net, opt))


def test_entry_checks_read_no_device_values_by_default():
    """Shape and dtype checks are metadata: a training step on device data makes no host
    transfer (the strict namespace counts them, as in test_trainer)."""
    pytest.importorskip("array_api_strict")
    net = xpnet.MultiLayerNetExtend(D, [5], C, use_batchnorm=True, seed=0,
                                    backend="array_api_strict")
    be = net.backend
    x, t, t1 = be.asarray(X), be.asarray(T), be.asarray(ONE_HOT)
    net.gradient(x, t)
    with counting_host_reads() as calls:
        for _ in range(3):
            net.gradient(x, t)
            net.gradient(x, t1)
            net.loss(x, t)
            net.predict(x)
        assert calls == [], calls
        net.check_values = True  # ... and values are read when asked
        net.gradient(x, t)
    assert calls


def test_label_values_on_the_host_are_checked_by_default(backend):
    """Host labels (NumPy, lists) are read on every backend (a min and a max: microseconds);
    ``check_values=False`` turns even that off (shapes are still checked)."""
    net, _ = trained_net(backend)
    bad = [0, 1, 2, 3, 0, 1, 2, 0]
    assert_refused(lambda: net.loss(X, bad), ValueError, ["t", "class index 3"])
    net.check_values = False
    try:
        net.loss(X, np.array(bad))  # not read by xpnet's checks ...
    except ValueError as exc:  # pragma: no cover - the failure this test is about
        pytest.fail(f"labels were checked although check_values=False: {exc}")
    except RuntimeError as exc:  # ... though a library's own bounds check may refuse them
        assert "out of bounds" in str(exc)  # (torch's gather in its fused loss)
    assert_refused(lambda: net.loss(X, T[:7]), ValueError, ["t", "7 labels"])


def test_column_of_class_indices_is_read_as_indices(backend):
    """``(N, 1)`` integer labels: accepted and read as ``(N,)`` (before, ``accuracy`` argmaxed
    the column and scored 1.0 where the truth is 0.375)."""
    net = xpnet.MultiLayerNet(D, [5], C, seed=0, backend=backend, dtype="float64")
    pred = backend.to_numpy(net.predict(X)).argmax(axis=1)
    t = np.where(np.arange(N) < 3, pred, (pred + 1) % C)  # 3 of 8 right
    for tin in (t[:, None], backend.asarray(t[:, None])):
        assert net.accuracy(X, tin) == 3 / N
        assert backend.to_float(net.loss(X, tin)) == backend.to_float(net.loss(X, t))


def test_bad_check_values_option():
    assert_refused(lambda: xpnet.MultiLayerNet(D, [5], C, check_values="yes"), TypeError,
                   ["check_values"])


@pytest.mark.parametrize("kw, exc, words", [
    ({"batch_size": -1}, ValueError, ["batch_size", "positive"]),
    ({"batch_size": 0}, ValueError, ["batch_size", "positive"]),
    ({"batch_size": 2.5}, TypeError, ["batch_size", "integer"]),
    ({"batch_size": True}, TypeError, ["batch_size", "integer"]),
], ids=lambda v: repr(v))
def test_accuracy_batch_size(backend, kw, exc, words):
    net, opt = trained_net(backend)
    before = snapshot(backend, net, opt)
    assert_refused(lambda: net.accuracy(X, T, **kw), exc, words)
    assert_unchanged(before, snapshot(backend, net, opt))


@pytest.mark.parametrize("h", [0, -1e-4, float("nan"), float("inf"), "1e-4"])
def test_numerical_gradient_step(h):
    net = xpnet.MultiLayerNet(D, [2], C, seed=0, dtype="float64")
    exc = TypeError if isinstance(h, str) else ValueError
    assert_refused(lambda: net.numerical_gradient(X[:2], T[:2], h=h), exc, ["h"])


# ------------------------------------------------------------------------------------------
# network construction: dtype, sizes, options
# ------------------------------------------------------------------------------------------

BAD_DTYPES = ["float16", "bfloat16", "half", "int32", "int64", "uint8", "bool", "complex64",
              "complex128", np.float16, np.int32, np.dtype("complex64"), "float128", "float",
              "foo"]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=str)
def test_network_dtype_other_than_float32_float64_is_refused(backend, dtype):
    words = ["dtype", "float32", "float64"]
    assert_refused(lambda: xpnet.MultiLayerNet(D, [5], C, backend=backend, dtype=dtype),
                   ValueError, words)


def test_network_dtype_of_the_namespace_itself(backend):
    """The backend's own dtype objects: its float32/float64 are accepted, its others refused
    with the reason."""
    xp = backend.xp
    for ok in ("float32", "float64"):
        net = xpnet.MultiLayerNet(D, [5], C, backend=backend, dtype=getattr(xp, ok))
        assert net.dtype == getattr(xp, ok)
    for name, why in (("int32", "real floating point"), ("float16", "half precision"),
                      ("complex64", "real floating point"), ("bool", "real floating point")):
        dt = getattr(xp, name, None)
        if dt is None:
            continue  # (array_api_strict has no float16)
        assert_refused(lambda dt=dt: xpnet.MultiLayerNet(D, [5], C, backend=backend, dtype=dt),
                       ValueError, ["dtype", "float32", why])


def test_default_dtype_settings_refuse_half_precision(monkeypatch):
    assert_refused(lambda: xpnet.set_default_backend(dtype="float16"), ValueError,
                   ["dtype", "half precision"])
    monkeypatch.setenv("XPNET_DTYPE", "int32")
    assert_refused(lambda: xpnet.MultiLayerNet(D, [5], C), ValueError, ["XPNET_DTYPE"])


@pytest.mark.parametrize("kw, exc, words", [
    ({"weight_decay_lambda": -0.1}, ValueError, ["weight_decay_lambda", ">= 0"]),
    ({"weight_decay_lambda": float("inf")}, ValueError, ["weight_decay_lambda", "finite"]),
    ({"weight_decay_lambda": float("nan")}, ValueError, ["weight_decay_lambda"]),
    ({"weight_decay_lambda": True}, TypeError, ["weight_decay_lambda"]),
    ({"weight_decay_lambda": "0.1"}, TypeError, ["weight_decay_lambda"]),
    ({"use_dropout": True, "dropout_ration": 1.0}, ValueError, ["dropout_ration", "[0, 1)"]),
    ({"use_dropout": True, "dropout_ration": -0.1}, ValueError, ["dropout_ration"]),
    ({"use_dropout": True, "dropout_ration": "0.5"}, TypeError, ["dropout_ration"]),
    ({"use_dropout": True, "dropout_ratio": 2}, ValueError, ["dropout_ration"]),
], ids=lambda v: repr(v))
def test_network_options(kw, exc, words):
    assert_refused(lambda: xpnet.MultiLayerNetExtend(D, [5], C, **kw), exc, words)


# ------------------------------------------------------------------------------------------
# batch norm: a batch of one in training
# ------------------------------------------------------------------------------------------


def test_batch_of_one_through_batch_norm_in_training_is_refused(backend):
    net, opt = trained_net(backend)
    before = snapshot(backend, net, opt)
    words = ["batch normalization", "at least 2", "batch of one"]
    assert_refused(lambda: net.gradient(X[:1], T[:1]), ValueError, words)
    assert_refused(lambda: net.loss(X[:1], T[:1], train_flg=True), ValueError, words)
    assert_refused(lambda: net.predict(X[:1], train_flg=True), ValueError, words)
    assert_unchanged(before, snapshot(backend, net, opt))
    # inference on one sample is fine, and a network without batch norm trains on one
    assert tuple(net.predict(X[:1]).shape) == (1, C)
    plain = xpnet.MultiLayerNet(D, [5], C, seed=0, backend=backend)
    assert set(plain.gradient(X[:1], T[:1])) == set(plain.params)


def test_batch_norm_layers_refuse_one_value_per_feature(backend):
    ones, zeros = backend.asarray(np.ones(D, np.float32)), backend.asarray(np.zeros(D, np.float32))
    bn = L.BatchNormalization(ones, zeros)
    assert_refused(lambda: bn.forward(backend.asarray(X[:1]), True), ValueError,
                   ["at least 2"])
    assert bn.running_mean is None  # nothing was started
    assert tuple(bn.forward(backend.asarray(X[:1]), False).shape) == (1, D)
    sbn = L.SpatialBatchNormalization(ones[:2], zeros[:2])
    one = backend.asarray(np.ones((1, 2, 1, 1), np.float32))
    assert_refused(lambda: sbn.forward(one, True), ValueError, ["at least 2"])
    # one image with several positions has several values per channel: fine (as in PyTorch)
    img = backend.asarray(RNG.standard_normal((1, 2, 2, 2)).astype(np.float32))
    assert tuple(sbn.forward(img, True).shape) == (1, 2, 2, 2)


@pytest.mark.parametrize("kw, exc, words", [
    ({"momentum": 2}, ValueError, ["momentum", "[0, 1]"]),
    ({"momentum": -0.1}, ValueError, ["momentum"]),
    ({"momentum": "0.9"}, TypeError, ["momentum"]),
    ({"eps": -1}, ValueError, ["eps", "> 0"]),
    ({"eps": 0}, ValueError, ["eps", "> 0"]),
], ids=lambda v: repr(v))
def test_batch_norm_options(kw, exc, words):
    assert_refused(lambda: L.BatchNormalization(np.ones(D), np.zeros(D), **kw), exc, words)


@pytest.mark.parametrize("ratio, exc", [(1.0, ValueError), (-0.5, ValueError),
                                        (float("nan"), ValueError), ("0.5", TypeError),
                                        (True, TypeError)], ids=repr)
def test_dropout_ratio(ratio, exc):
    assert_refused(lambda: L.Dropout(ratio), exc, ["dropout_ratio"])


# ------------------------------------------------------------------------------------------
# optimizers
# ------------------------------------------------------------------------------------------

O = xpnet.optim
OPT_CASES = [
    (O.SGD, {"lr": -1}, ValueError, ["lr", ">= 0"]),
    (O.SGD, {"lr": float("nan")}, ValueError, ["lr", "finite"]),
    (O.SGD, {"lr": float("inf")}, ValueError, ["lr", "finite"]),
    (O.SGD, {"lr": True}, TypeError, ["lr"]),
    (O.SGD, {"lr": "0.1"}, TypeError, ["lr"]),
    (O.SGD, {"lr": 0.1 + 0j}, TypeError, ["lr"]),
    (O.SGD, {"lr": np.array([0.1, 0.2])}, TypeError, ["lr", "shape (2,)"]),
    (O.SGD, {"lr": np.array([0.1])}, TypeError, ["lr", "shape (1,)"]),
    (O.SGD, {"lr": None}, TypeError, ["lr"]),
    (O.Momentum, {"momentum": 5}, ValueError, ["momentum", "[0, 1)"]),
    (O.Momentum, {"momentum": 1.0}, ValueError, ["momentum", "[0, 1)"]),
    (O.Momentum, {"momentum": -0.1}, ValueError, ["momentum"]),
    (O.Momentum, {"momentum": "0.9"}, TypeError, ["momentum"]),
    (O.Momentum, {"momentum": np.True_}, TypeError, ["momentum"]),
    (O.Nesterov, {"momentum": 1.5}, ValueError, ["momentum"]),
    (O.AdaGrad, {"eps": 0.0}, ValueError, ["eps", "> 0"]),
    (O.AdaGrad, {"eps": -1e-7}, ValueError, ["eps"]),
    (O.AdaGrad, {"eps": float("inf")}, ValueError, ["eps"]),
    (O.RMSprop, {"decay_rate": 2}, ValueError, ["decay_rate", "[0, 1)"]),
    (O.RMSprop, {"decay_rate": 1.0}, ValueError, ["decay_rate"]),
    (O.RMSprop, {"eps": 0.0}, ValueError, ["eps"]),
    (O.Adam, {"beta1": 1}, ValueError, ["beta1", "[0, 1)"]),
    (O.Adam, {"beta2": 1}, ValueError, ["beta2", "[0, 1)"]),
    (O.Adam, {"beta1": -0.5}, ValueError, ["beta1"]),
    (O.Adam, {"beta2": float("nan")}, ValueError, ["beta2"]),
    (O.Adam, {"beta1": True}, TypeError, ["beta1"]),
    (O.Adam, {"eps": -1}, ValueError, ["eps", "> 0"]),
]


@pytest.mark.parametrize("cls, kw, exc, words", OPT_CASES,
                         ids=[f"{c[0].__name__}-{c[1]!r}" for c in OPT_CASES])
def test_optimizer_hyperparameter_ranges(cls, kw, exc, words):
    assert_refused(lambda: cls(**kw), exc, words)
    # by name too (the Trainer's and the CLI's way)
    assert_refused(lambda: xpnet.get_optimizer(cls.__name__, **kw), exc, words)


def test_every_hyperparameter_of_every_optimizer_has_a_range():
    import inspect

    for cls in O.OPTIMIZERS.values():
        for name in inspect.signature(cls).parameters:
            if name != "fused":
                assert name in O.HYPERPARAMETER_RANGES or name in O.HYPERPARAMETER_CHOICES, (
                    cls.__name__, name)


def test_numbers_of_any_kind_are_accepted_as_hyperparameters(backend):
    """NumPy scalars, 0-d arrays of every backend, Decimal and Fraction are numbers."""
    for value in (np.float32(0.5), np.float64(0.5), np.array(0.5), np.int64(0), Decimal("0.5"),
                  Fraction(1, 2), backend.asarray(0.5), backend.asarray(np.float32(0.5))):
        opt = xpnet.Adam(lr=value, beta1=value, beta2=value, eps=value or 1e-8)
        assert opt.lr == float(value) and type(opt.lr) is float
        assert xpnet.Momentum(momentum=value).momentum == float(value)


def test_torch_scalars_are_numbers_too():
    torch = pytest.importorskip("torch")
    opt = xpnet.RMSprop(lr=torch.tensor(0.01), decay_rate=torch.tensor(0.9, dtype=torch.float64))
    assert opt.lr == pytest.approx(0.01) and opt.decay_rate == 0.9
    assert_refused(lambda: xpnet.SGD(lr=torch.tensor([0.1, 0.2])), TypeError, ["lr"])
    assert_refused(lambda: xpnet.SGD(lr=torch.tensor(True)), TypeError, ["lr"])
    assert_refused(lambda: xpnet.Adam(beta1=torch.tensor(1.0)), ValueError, ["beta1"])


def test_get_optimizer_names_unknown_parameters():
    err = assert_refused(lambda: xpnet.get_optimizer("Adam", lrr=0.1), ValueError,
                         ["Adam", "lrr"])
    assert "beta1" in str(err)  # the valid ones are listed


@pytest.mark.parametrize("flat", [True, False], ids=["network-dicts", "plain-dicts"])
@pytest.mark.parametrize("bad", ["missing", "extra", "shape"])
def test_update_with_bad_gradients_steps_nothing(backend, flat, bad):
    """The lead's key/shape check (optim._check_keys_and_shapes), seen from outside: refused
    before any parameter or state moves, the step count included."""
    net, opt = trained_net(backend)
    grads = net.gradient(X, T)
    if not flat:
        params = dict(net.params)
        grads = dict(grads)
    else:
        params = net.params
        grads = grads.copy() if bad != "shape" else grads
    xp = backend.xp
    if bad == "missing":
        grads.pop("W2")
        words = ["W2", "no gradient"]
    elif bad == "extra":
        grads["W9"] = xp.zeros((1,))
        words = ["W9", "unknown"]
    else:
        grads["b1"] = xp.zeros((6,))
        words = ["b1", "shape"]
    before = snapshot(backend, net, opt)
    assert_refused(lambda: opt.update(params, grads), ValueError, words)
    assert_unchanged(before, snapshot(backend, net, opt))


# ------------------------------------------------------------------------------------------
# Trainer
# ------------------------------------------------------------------------------------------

X_NAN = np.where(X > 1.0, np.nan, X).astype(np.float32)
assert np.isnan(X_NAN).any()
TRAINER_CASES = [
    ({"epochs": 2.5}, TypeError, ["epochs", "integer"]),
    ({"epochs": True}, TypeError, ["epochs"]),
    ({"epochs": 0}, ValueError, ["epochs", "positive"]),
    ({"epochs": -1}, ValueError, ["epochs", "positive"]),
    ({"epochs": "3"}, TypeError, ["epochs"]),
    ({"mini_batch_size": 0}, ValueError, ["mini_batch_size", "positive"]),
    ({"mini_batch_size": 2.5}, TypeError, ["mini_batch_size"]),
    ({"mini_batch_size": True}, TypeError, ["mini_batch_size"]),
    ({"evaluate_sample_num_per_epoch": 0}, ValueError, ["evaluate_sample_num_per_epoch"]),
    ({"evaluate_sample_num_per_epoch": 2.5}, TypeError, ["evaluate_sample_num_per_epoch"]),
    ({"evaluate_sample_num_per_epoch": -3}, ValueError, ["evaluate_sample_num_per_epoch"]),
    ({"x_test": X[:0], "t_test": T[:0]}, ValueError, ["test set", "empty"]),
    ({"x_train": X[:0], "t_train": T[:0]}, ValueError, ["train set", "empty"]),
    ({"t_train": T[:7]}, ValueError, ["x_train", "t_train", "7"]),
    ({"t_test": T[:5]}, ValueError, ["x_test", "t_test", "5"]),
    ({"x_train": X_NAN}, ValueError, ["x_train", "non-finite"]),
    ({"x_test": np.where(X > 1.0, np.inf, X)}, ValueError, ["x_test", "non-finite"]),
    ({"t_train": np.array([0, 1, 2, 3, 0, 1, 2, 0])}, ValueError, ["t_train", "class index 3"]),
    ({"t_test": np.array([0, 1, 2, -1, 0, 1, 2, 0])}, ValueError, ["t_test", "class index -1"]),
    ({"x_train": X[:, :3]}, ValueError, ["x_train", "input_size"]),
    ({"t_train": T.astype(float)}, TypeError, ["t_train", "integers"]),
    ({"optimizer": "SGD-ish"}, ValueError, ["optimizer", "SGD-ish"]),
    ({"optimizer_param": {"lr": -1}}, ValueError, ["lr"]),
    ({"optimizer_param": {"lrr": 1}}, ValueError, ["lrr"]),
    ({"optimizer": "Momentum", "optimizer_param": {"momentum": 5}}, ValueError, ["momentum"]),
]


def _trainer_kwargs(**kw):
    base = dict(x_train=X, t_train=T, x_test=X, t_test=T, epochs=1, mini_batch_size=4,
                verbose=False)
    base.update(kw)
    return base


@pytest.mark.parametrize("kw, exc, words", TRAINER_CASES,
                         ids=[", ".join(f"{k}={v!r}" if np.ndim(v) == 0 else f"{k}=<{np.shape(v)}>"
                                        for k, v in c[0].items()) for c in TRAINER_CASES])
def test_trainer_refuses_bad_setup_before_training(backend, kw, exc, words, capsys):
    net, opt = trained_net(backend)
    before = snapshot(backend, net, opt)
    assert_refused(lambda: xpnet.Trainer(net, **_trainer_kwargs(**kw)), exc, words)
    assert_unchanged(before, snapshot(backend, net, opt))
    assert capsys.readouterr().out == ""


def test_trainer_optimizer_object_with_optimizer_param_is_refused():
    net, opt = trained_net("numpy")
    before = snapshot(net.backend, net, opt)
    assert_refused(lambda: xpnet.Trainer(net, **_trainer_kwargs(optimizer=opt,
                                                                optimizer_param={"lr": 0.5})),
                   ValueError, ["optimizer_param"])
    assert_unchanged(before, snapshot(net.backend, net, opt))


def test_trainer_checks_device_data_once_and_can_skip(backend):
    """Data already on the device is read once (a finite check, a label min/max); with
    ``check_data=False`` nothing is read and training proceeds on NaN, as asked -- until the
    per-epoch loss check stops it with TrainingDivergedError, the losses kept."""
    net, _ = trained_net(backend)
    x_dev = backend.asarray(X_NAN)
    assert_refused(lambda: xpnet.Trainer(net, **_trainer_kwargs(x_train=x_dev)), ValueError,
                   ["x_train", "non-finite", "row 0"])
    t_bad = backend.asarray(np.array([0, 1, 2, 3, 0, 1, 2, 0]))
    assert_refused(lambda: xpnet.Trainer(net, **_trainer_kwargs(t_train=t_bad)), ValueError,
                   ["t_train", "class index 3"])
    trainer = xpnet.Trainer(net, **_trainer_kwargs(x_train=X_NAN, check_data=False))
    with pytest.raises(xpnet.TrainingDivergedError, match="step 1"):
        trainer.train()
    assert len(trainer.train_loss_list) == 2


# ------------------------------------------------------------------------------------------
# devices and arrays of other libraries
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, device, words", [
    ("numpy", "cuda", ["numpy", "cuda"]),
    ("numpy", "gpu", ["numpy", "gpu"]),
    ("numpy", 1, ["numpy", "1"]),
    ("array_api_strict", "device9", ["array_api_strict", "device9"]),
    ("torch", "nonsense", ["torch", "nonsense"]),
    ("torch", "meta", ["torch", "meta"]),
])
def test_a_device_the_backend_does_not_have(name, device, words):
    pytest.importorskip(name)
    assert_refused(lambda: xpnet.get_backend(name, device), ValueError, words)
    assert_refused(lambda: xpnet.MultiLayerNet(D, [5], C, backend=name, device=device),
                   ValueError, words)


def test_torch_cuda_device_that_is_not_there():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        exc = xpnet.BackendUnavailableError
    elif torch.cuda.device_count() < 10:
        exc = ValueError
    else:  # pragma: no cover - a machine with ten GPUs
        pytest.skip("cuda:9 exists here")
    assert_refused(lambda: xpnet.get_backend("torch", "cuda:9"), exc, ["cuda:9"])


def test_arrays_of_other_backends_are_copied(backend):
    """Host data and arrays of any other library (or device) reach the network's device."""
    net = xpnet.MultiLayerNet(D, [5], C, seed=0, backend=backend, dtype="float64")
    ref = backend.to_numpy(net.predict(X))
    others = [X, X.tolist()]
    strict = _maybe("array_api_strict")
    if strict is not None:
        others += [strict.asarray(X), strict.asarray(X, device=strict.Device("device1"))]
    torch = _maybe("torch")
    if torch is not None:
        others.append(torch.from_numpy(X))
    for x in others:
        np.testing.assert_allclose(backend.to_numpy(net.predict(x)), ref, rtol=1e-6,
                                   err_msg=type(x).__name__)
        assert net.accuracy(x, T) == net.accuracy(X, T)


def _maybe(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def test_torch_tensors_that_cannot_be_copied_are_refused(backend):
    torch = pytest.importorskip("torch")
    net, opt = trained_net(backend)
    before = snapshot(backend, net, opt)
    grad_x = torch.tensor(X, requires_grad=True)
    meta_x = torch.empty((N, D), device="meta")
    grad_t = torch.tensor(np.eye(C, dtype=np.float32)[T], requires_grad=True)
    assert_refused(lambda: net.predict(grad_x), ValueError, ["x", "requires grad", "detach"])
    assert_refused(lambda: net.gradient(grad_x, T), ValueError, ["x", "requires grad"])
    assert_refused(lambda: net.predict(meta_x), ValueError, ["x", "meta"])
    assert_refused(lambda: net.loss(X, grad_t), ValueError, ["t", "requires grad"])
    assert_refused(lambda: xpnet.Trainer(net, **_trainer_kwargs(x_train=grad_x)), ValueError,
                   ["x_train", "requires grad"])
    assert_unchanged(before, snapshot(backend, net, opt))
    # the same tensor, detached, is fine
    np.testing.assert_allclose(backend.to_numpy(net.predict(grad_x.detach())),
                               backend.to_numpy(net.predict(X)), rtol=1e-6)


def test_backend_asarray_and_to_host_refuse_them_too():
    torch = pytest.importorskip("torch")
    from xpnet.backend import to_host

    for be in ("numpy", "torch"):
        assert_refused(lambda be=be: xpnet.get_backend(be).asarray(
            torch.ones(2, requires_grad=True)), ValueError, ["requires grad"])
    assert_refused(lambda: to_host(torch.ones(2, device="meta")), ValueError, ["meta"])


# ------------------------------------------------------------------------------------------
# the scalar checks themselves
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, exc", [
    (True, TypeError), (np.True_, TypeError), ("1", TypeError), (b"1", TypeError),
    (1j, TypeError), (np.complex128(1), TypeError), (None, TypeError), ([1.0], TypeError),
    (np.array([1.0, 2.0]), TypeError), (np.array(["a"]), TypeError),
    (float("nan"), ValueError), (float("inf"), ValueError), (-1.0, ValueError),
    (2.0, ValueError),
], ids=repr)
def test_as_float_refuses(value, exc):
    assert_refused(lambda: as_float(value, "gamma_t", low=0.0, high=1.0), exc, ["gamma_t"])


@pytest.mark.parametrize("value, exc", [
    (2.5, TypeError), (2.0, TypeError), (True, TypeError), ("3", TypeError), (None, TypeError),
    (np.float64(3), TypeError), (np.array([3]), TypeError), (0, ValueError), (-2, ValueError),
], ids=repr)
def test_as_int_refuses(value, exc):
    assert_refused(lambda: as_int(value, "size_k"), exc, ["size_k"])


def test_as_int_and_as_float_accept_numbers_of_any_kind():
    assert as_int(np.int32(3), "n") == 3 and type(as_int(np.int32(3), "n")) is int
    assert as_int(np.array(4), "n") == 4
    assert as_float(Decimal("0.25"), "v") == 0.25 and math.isinf(
        as_float(float("inf"), "v", finite=False))


# ------------------------------------------------------------------------------------------
# the CLI (a user's shell): checked before any work, one line, no traceback
# ------------------------------------------------------------------------------------------


def run_cli(*args, cwd=None):
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1")
    env.pop("XPNET_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "xpnet", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def assert_one_line_error(proc, code, words):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("xpnet") and "error" in lines[-1], proc.stderr
    missing = _matches(lines[-1], words)
    assert not missing, f"{missing} not in {lines[-1]!r}"


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_cli_out_is_checked_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    before = _files(tmp_path)
    proc = run_cli("train", "--epochs", "1", "--hidden", "8", "--source", "bundled", "--quiet",
                   "--out", str(blocker / "out"))
    assert_one_line_error(proc, 1, ["--out", "writable"])
    assert "training" not in proc.stderr  # the training note comes after the check
    proc = run_cli("experiment", "optimizer_paths", "--out", str(blocker / "out"))
    assert_one_line_error(proc, 1, ["--out"])
    assert _files(tmp_path) == before


def test_cli_set_keys_and_kinds_are_checked_before_any_experiment_runs(tmp_path):
    out = tmp_path / "out"
    proc = run_cli("experiment", "all", "--quick", "--set", "nosuchkey=1", "--out", str(out))
    assert_one_line_error(proc, 2, ["nosuchkey", "valid options", "epochs", "steps"])
    proc = run_cli("experiment", "all", "--quick", "--set", "steps=abc", "--out", str(out))
    assert_one_line_error(proc, 1, ["steps", "integer"])
    proc = run_cli("experiment", "titanic", "--quick", "--set", "hidden=5", "--out", str(out))
    assert_one_line_error(proc, 1, ["hidden", "list"])
    assert not out.exists()


@pytest.mark.parametrize("args, words", [
    (["--optimizer", "Momentum", "--momentum", "5"], ["momentum", "[0, 1)"]),
    (["--beta1", "1"], ["beta1", "[0, 1)"]),
    (["--beta2", "nan"], ["beta2", "finite"]),
    (["--optimizer", "RMSprop", "--decay-rate", "1.5"], ["decay_rate"]),
    (["--momentum", "x", "--optimizer", "Momentum"], ["momentum", "number"]),
], ids=lambda a: " ".join(a) if isinstance(a, list) and a and a[0].startswith("--") else "")
def test_cli_hyperparameters_are_checked_at_parse_time(tmp_path, args, words):
    proc = run_cli("train", *args, "--out", str(tmp_path / "out"))
    assert_one_line_error(proc, 2, words)
    assert not (tmp_path / "out").exists()


def test_cli_unexpected_errors_are_one_line_too(monkeypatch, capsys):
    """A bug (any exception the library did not mean) is one line saying how to see more."""
    from xpnet import cli

    def broken(args, parser):
        raise KeyError("W7")

    monkeypatch.setattr(cli, "cmd_info", broken)
    monkeypatch.delenv("XPNET_DEBUG", raising=False)
    assert cli.main(["info"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "internal error" in err[0] and "XPNET_DEBUG=1" in err[0], err
    monkeypatch.setenv("XPNET_DEBUG", "1")
    with pytest.raises(KeyError):
        cli.main(["info"])
