"""Moving between backends and devices: ``net.to``, ``optimizer.to``, and the error for an
optimizer whose state lives elsewhere than the parameters it is handed."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from conftest import BACKEND_SPECS, assert_on_backend, make_backend

PAIR_SPECS = [s for s in BACKEND_SPECS if not s.strictest]


def _net(backend=None, **kw):
    return xpnet.MultiLayerNetExtend(6, [7, 5], 3, use_batchnorm=True, use_dropout=True,
                                     dropout_ration=0.2, seed=0, backend=backend, **kw)


def _batches(n=3, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((4, 6)).astype(np.float32), rng.integers(0, 3, 4))
            for _ in range(n)]


def _host(be, x):
    return np.array(be.to_numpy(x), copy=True)


@pytest.mark.parametrize("dst_spec", PAIR_SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("src_spec", PAIR_SPECS, ids=lambda s: s.id)
def test_net_and_optimizer_move_between_every_pair(src_spec, dst_spec):
    src, dst = make_backend(src_spec), make_backend(dst_spec)
    net = _net(src)
    opt = xpnet.Momentum(lr=0.05)
    for x, t in _batches():
        opt.update(net.params, net.gradient(x, t))
    x = _batches(1, seed=4)[0][0]
    expected = _host(src, net.predict(x))
    before = {k: _host(src, v) for k, v in net.params.items()}
    stats = _host(src, net.layers["BatchNorm2"].running_var)
    velocity = {k: _host(src, v) for k, v in opt.v.items()}

    assert net.to(dst.name, device=dst.device) is net
    opt2 = opt.to(dst.name, device=dst.device)
    assert opt2 is opt
    assert net.backend == dst
    for key, p in net.params.items():
        assert_on_backend(dst, p, dtype="float32")
        np.testing.assert_array_equal(_host(dst, p), before[key])
        assert_on_backend(dst, opt.v[key], dtype="float32")
        np.testing.assert_array_equal(_host(dst, opt.v[key]), velocity[key])
    # still views of one flat buffer, held by the layers
    assert net.params.flat_view() is not None
    assert net.layers["Affine2"].W is net.params["W2"]
    assert net.layers["BatchNorm1"].beta is net.params["beta1"]
    net.params.flat[0] = 7.0
    assert float(net.params["W1"][0, 0]) == 7.0
    net.params.flat[0] = float(before["W1"][0, 0])
    rv = net.layers["BatchNorm2"].running_var
    assert_on_backend(dst, rv, dtype="float32")
    np.testing.assert_array_equal(_host(dst, rv), stats)
    np.testing.assert_allclose(_host(dst, net.predict(x)), expected, rtol=1e-5, atol=1e-6)
    # training goes on there, the optimizer's state as a flat buffer again
    for xb, tb in _batches(2, seed=5):
        opt.update(net.params, net.gradient(xb, tb))
    assert opt._flat_state["v"] is not None
    assert_on_backend(dst, net.params["W1"], dtype="float32")


def test_to_changes_dtype_and_keeps_dropout_streams_on_one_library(backend):
    net = _net(backend)
    opt = xpnet.SGD()
    for x, t in _batches():
        opt.update(net.params, net.gradient(x, t))
    w1 = _host(backend, net.params["W1"])
    state = net.layers["Dropout1"].get_rng_state()
    net.to(dtype="float64")
    assert net.dtype == backend.xp.float64
    for p in net.params.values():
        assert_on_backend(backend, p, dtype="float64")
    np.testing.assert_array_equal(_host(backend, net.params["W1"]), w1.astype(np.float64))
    assert_on_backend(backend, net.layers["BatchNorm1"].running_mean, dtype="float64")
    # the dropout stream went on from where it was: the next mask is the one a generator set
    # to the state before the move draws
    x = _batches(1, seed=8)[0][0]
    net.predict(x, train_flg=True)
    gen = backend.random(123)
    gen.set_state(state)
    expected = gen.bernoulli_mask((4, 7), keep=0.8, dtype="float64")
    np.testing.assert_array_equal(_host(backend, net.layers["Dropout1"].mask),
                                  _host(backend, expected))


def test_to_the_same_place_is_a_no_op(backend):
    net = _net(backend)
    params = net.params
    assert net.to() is net and net.params is params
    assert net.to(backend.name, device=backend.device) is net and net.params is params


def test_to_another_library_draws_the_new_stream_from_the_old():
    pytest.importorskip("torch")
    masks = []
    for _ in range(2):
        net = _net()
        net.predict(np.ones((4, 6), np.float32), train_flg=True)
        net.to("torch")
        net.predict(np.ones((4, 6), np.float32), train_flg=True)
        masks.append(net.backend.to_numpy(net.layers["Dropout1"].mask))
    np.testing.assert_array_equal(masks[0], masks[1])  # deterministic
    fresh = _net("torch")
    fresh.predict(np.ones((4, 6), np.float32), train_flg=True)
    fresh.predict(np.ones((4, 6), np.float32), train_flg=True)
    assert not np.array_equal(masks[0], fresh.backend.to_numpy(fresh.layers["Dropout1"].mask))


def test_to_rejects_unknown_backends_and_devices_before_changing_anything():
    net = _net()
    params = net.params
    with pytest.raises(ValueError, match="unknown backend"):
        net.to("tensorflow")
    with pytest.raises(ValueError, match="device"):
        net.to(device="cuda:0")
    with pytest.raises(ValueError):
        net.to(dtype="float8")
    assert net.params is params and net.backend.name == "numpy"


def test_optimizer_to_without_state_and_with_per_key_state():
    strict = pytest.importorskip("array_api_strict")
    opt = xpnet.Adam()
    assert opt.to("array_api_strict") is opt  # nothing to move yet
    with pytest.raises(ValueError, match="unknown backend"):
        opt.to("tensorflow")
    params = {"w": np.ones(3, np.float32)}  # a plain dict: per-key state
    opt.update(params, {"w": np.ones(3, np.float32)})
    opt.to("array_api_strict", device="device1")
    assert opt.m["w"].device == strict.Device("device1")
    moved = {"w": strict.asarray(params["w"], device=strict.Device("device1"))}
    opt.update(moved, {"w": strict.ones(3, dtype=strict.float32,
                                        device=strict.Device("device1"))})
    assert opt.iter == 2


# -------------------------------------------------------------------------------------------
# state on one backend, parameters on another
# -------------------------------------------------------------------------------------------


def _mismatch_case(src, dst):
    net = _net(src)
    opt = xpnet.Adam()
    x, t = _batches(1)[0]
    opt.update(net.params, net.gradient(x, t))
    net.to(dst.name, device=dst.device)  # the network moves, the optimizer does not
    return net, opt, net.gradient(x, t)


@pytest.mark.parametrize("src_spec, dst_spec",
                         [(a, b) for a in PAIR_SPECS for b in PAIR_SPECS if a.id != b.id],
                         ids=lambda s: s.id)
def test_optimizer_state_elsewhere_than_the_parameters_is_refused(src_spec, dst_spec):
    src, dst = make_backend(src_spec), make_backend(dst_spec)
    net, opt, grads = _mismatch_case(src, dst)
    before = {k: _host(dst, v) for k, v in net.params.items()}
    m = {k: _host(src, v) for k, v in opt.m.items()}
    with pytest.raises(ValueError) as info:
        opt.update(net.params, grads)
    msg = str(info.value)
    assert f"{src.name} ({src.device_name})" in msg and f"{dst.name} ({dst.device_name})" in msg
    assert "optimizer.to" in msg
    assert opt.iter == 1  # nothing changed
    for k in before:
        np.testing.assert_array_equal(_host(dst, net.params[k]), before[k])
        np.testing.assert_array_equal(_host(src, opt.m[k]), m[k])
    opt.to(dst.name, device=dst.device)  # the fix the message gives
    opt.update(net.params, grads)
    assert opt.iter == 2


def test_per_key_state_elsewhere_is_refused_naming_the_key():
    strict = pytest.importorskip("array_api_strict")
    opt = xpnet.Momentum()
    params = {"w": np.ones(3, np.float32), "b": np.zeros(2, np.float32)}
    opt.update(params, {k: np.ones_like(v) for k, v in params.items()})
    moved = {k: strict.asarray(v) for k, v in params.items()}
    with pytest.raises(ValueError, match=r"for 'w' on numpy \(cpu\).*array_api_strict"):
        opt.update(moved, {k: strict.ones_like(v) for k, v in moved.items()})
