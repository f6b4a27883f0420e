"""The flat parameter and gradient buffers without traps: fresh gradient dicts, optimizer
state that belongs to one network, and updates that step every parameter or none."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from conftest import assert_close


def _data(rng, n=8, d=6, classes=3):
    return rng.standard_normal((n, d)), rng.integers(0, classes, n)


def _net(backend, **kw):
    kw.setdefault("use_batchnorm", True)
    return xpnet.MultiLayerNetExtend(6, [5, 4], 3, backend=backend, seed=1, dtype="float64",
                                     **kw)


def test_gradient_returns_a_new_dict_each_call(backend, rng):
    net = _net(backend)
    x, t = _data(rng)
    g1 = net.gradient(x, t)
    g2 = net.gradient(x, t)
    assert g1 is not g2
    assert list(g1) == list(net.params)


def test_replacing_a_returned_gradient_does_not_make_the_next_call_stale(backend, rng):
    """A replaced ``grads['gamma1']`` (or ``W1``, ``b2``) must not redirect where the layers
    write: the next call still returns this call's gradients."""
    x1, t1 = _data(rng)
    x2, t2 = _data(rng)
    net = _net(backend)
    ref = _net(backend)
    g = net.gradient(x1, t1)
    for key in ("gamma1", "beta2", "W1", "b2"):
        g[key] = backend.asarray(np.zeros(tuple(g[key].shape)), dtype="float64")
    got = net.gradient(x2, t2)
    ref.gradient(x1, t1)  # the same running statistics as ``net``
    want = ref.gradient(x2, t2, copy=True)
    for key in want:
        assert_close(backend, got[key], backend.to_numpy(want[key]), err_msg=key)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_gradient_copy_true_survives_the_next_call(backend, rng, weight_decay):
    net = _net(backend, weight_decay_lambda=weight_decay)
    x1, t1 = _data(rng)
    x2, t2 = _data(rng)
    kept = net.gradient(x1, t1, copy=True)
    kept_host = {k: backend.to_numpy(v).copy() for k, v in kept.items()}
    shared = net.gradient(x1, t1)
    shared_host = {k: backend.to_numpy(v).copy() for k, v in shared.items()}
    net.gradient(x2, t2)
    changed = [k for k in shared if not np.array_equal(backend.to_numpy(shared[k]),
                                                       shared_host[k])]
    assert changed, "the plain result should be overwritten by the next call (documented)"
    for k in kept:  # ... while the copies keep their values
        np.testing.assert_array_equal(backend.to_numpy(kept[k]), kept_host[k], err_msg=k)


STATEFUL = [n for n, cls in xpnet.optim.OPTIMIZERS.items() if cls.state_names]


def test_stateless_sgd_may_serve_two_networks(backend, rng):
    x, t = _data(rng)
    a = xpnet.MultiLayerNet(6, [5], 3, backend=backend, seed=0, dtype="float64")
    b = xpnet.MultiLayerNet(6, [7], 3, backend=backend, seed=0, dtype="float64")
    opt = xpnet.SGD(lr=0.1)
    for net in (a, b):
        before = backend.to_numpy(net.params.flat).copy()
        grads = net.gradient(x, t, copy=True)
        opt.update(net.params, grads)
        want = before - 0.1 * np.concatenate(
            [backend.to_numpy(grads[k]).reshape(-1) for k in net.params])
        assert_close(backend, net.params.flat, want)


@pytest.mark.parametrize("name", STATEFUL)
def test_optimizer_reused_on_another_network_raises_and_changes_nothing(backend, rng, name):
    x, t = _data(rng)
    small = xpnet.MultiLayerNet(6, [5], 3, backend=backend, seed=0, dtype="float64")
    other = xpnet.MultiLayerNet(6, [7], 3, backend=backend, seed=0, dtype="float64")
    opt = xpnet.get_optimizer(name, lr=0.01)
    opt.update(small.params, small.gradient(x, t))
    before = backend.to_numpy(other.params.flat).copy()
    for params, grads in ((other.params, other.gradient(x, t)),
                          (dict(other.params), dict(other.gradient(x, t)))):  # flat, per key
        with pytest.raises(ValueError, match="make a new optimizer"):
            opt.update(params, grads)
        np.testing.assert_array_equal(backend.to_numpy(other.params.flat), before)


@pytest.mark.parametrize("name", ["Momentum", "Adam"])
def test_book_visible_state_has_only_the_parameter_keys(backend, rng, name):
    net = _net(backend)
    x, t = _data(rng)
    opt = xpnet.get_optimizer(name, lr=0.01)
    for _ in range(2):
        opt.update(net.params, net.gradient(x, t))
    for store in opt.state.values():
        assert list(store) == list(net.params)


def _bad_grads(backend, params, case):
    grads = {k: backend.asarray(np.ones(tuple(v.shape)), dtype="float64")
             for k, v in params.items()}
    last = list(grads)[-1]
    if case == "wrong shape (last key)":
        grads[last] = backend.asarray(np.ones((2,)), dtype="float64")
    elif case == "missing":
        del grads[last]
    elif case == "extra":
        grads["W9"] = backend.asarray(np.ones((2,)), dtype="float64")
    return grads, last


@pytest.mark.parametrize("case", ["wrong shape (last key)", "missing", "extra"])
@pytest.mark.parametrize("name", list(xpnet.optim.OPTIMIZERS))
def test_update_steps_every_parameter_or_none(backend, name, case):
    net = xpnet.MultiLayerNet(6, [5], 3, backend=backend, seed=0, dtype="float64")
    params = dict(net.params)  # the per-key path
    grads, last = _bad_grads(backend, params, case)
    opt = xpnet.get_optimizer(name, lr=0.1)
    before = backend.to_numpy(net.params.flat).copy()
    with pytest.raises(ValueError) as info:
        opt.update(params, grads)
    assert (last in str(info.value)) or ("W9" in str(info.value))
    np.testing.assert_array_equal(backend.to_numpy(net.params.flat), before)
    assert getattr(opt, "iter", 0) == 0  # no step was counted
