"""The pieces checkpoints are made of: generator states (each backend room), optimizer
``state_dict``/``load_state_dict``, and a network's ``get_config``/``buffers``."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

import xpnet
from conftest import assert_on_backend
from xpnet.network import NETWORKS, register_network

# -------------------------------------------------------------------------------------------
# generator states
# -------------------------------------------------------------------------------------------


def test_generator_state_continues_the_stream_exactly(backend):
    gen = backend.random(5)
    gen.uniform((3,))
    state = gen.get_state()
    assert json.loads(json.dumps(state)) == state  # plain JSON
    ahead = [backend.to_numpy(gen.bernoulli_mask((4, 5), 0.7)),
             backend.to_numpy(gen.normal((6,))), backend.to_numpy(gen.integers(10, 4))]
    other = backend.random(99)
    other.set_state(state)
    again = [backend.to_numpy(other.bernoulli_mask((4, 5), 0.7)),
             backend.to_numpy(other.normal((6,))), backend.to_numpy(other.integers(10, 4))]
    for a, b in zip(ahead, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_generator_state_of_another_kind_or_malformed_is_refused(backend):
    gen = backend.random(1)
    before = gen.get_state()
    for bad in ({"kind": "other.Thing", "state": []}, {"kind": gen.kind},
                {"kind": gen.kind, "state": "###"}, [1, 2]):
        with pytest.raises(ValueError):
            gen.set_state(bad)
        assert gen.get_state() == before  # unchanged
    if gen.kind == "numpy.SFC64":
        with pytest.raises(ValueError, match="state words"):
            gen.set_state({**before, "state": [1, 2, 3]})


# -------------------------------------------------------------------------------------------
# optimizer state
# -------------------------------------------------------------------------------------------


def _net(backend=None):
    return xpnet.MultiLayerNet(5, [4], 3, seed=0, backend=backend)


def _step(net, opt, seed=0):
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 3, 6)
    opt.update(net.params, net.gradient(x, t))


@pytest.mark.parametrize("name", list(xpnet.optim.OPTIMIZERS))
def test_state_dict_round_trip_continues_exactly(backend, name):
    net, twin = _net(backend), _net(backend)
    opt = xpnet.get_optimizer(name, lr=0.05)
    for i in range(3):
        _step(net, opt, i)
        _step(twin, xpnet.SGD(lr=0.0), i)  # same forward passes, no change
    sd = opt.state_dict()
    assert sd["class"] == name and sd["hyperparameters"] == opt.hyperparameters()
    host = {k: {p: np.array(backend.to_numpy(a)) for p, a in v.items()}
            for k, v in sd["state"].items()}
    twin.params.flat[...] = net.params.flat
    fresh = xpnet.get_optimizer(name, lr=0.9)  # its lr is replaced by the saved one
    fresh.load_state_dict({**sd, "state": host}, twin.params)
    assert fresh.lr == 0.05
    if name == "Adam":
        assert fresh.iter == 3
    for sname in fresh.state_names:
        assert fresh._flat_state[sname] is not None
        for a in fresh.state[sname].values():
            assert_on_backend(backend, a, dtype="float32")
    for i in range(3, 5):
        _step(net, opt, i)
        _step(twin, fresh, i)
    for key in net.params:
        np.testing.assert_array_equal(backend.to_numpy(twin.params[key]),
                                      backend.to_numpy(net.params[key]))


def test_load_state_dict_refuses_before_changing_anything():
    net = _net()
    opt = xpnet.Adam()
    _step(net, opt)
    sd = copy.deepcopy({**opt.state_dict(), "state": {
        k: {p: np.array(a) for p, a in v.items()} for k, v in opt.state_dict()["state"].items()}})
    target = xpnet.Adam(lr=0.3)
    _step(_net(), target)
    m_before = {k: v.copy() for k, v in target.m.items()}

    def broken(**changes):
        out = copy.deepcopy(sd)
        for path, value in changes.items():
            node = out
            *parts, last = path.split(".")
            for part in parts:
                node = node[part]
            if value is KeyError:
                del node[last]
            else:
                node[last] = value
        return out

    cases = [
        (broken(**{"class": "RMSprop"}), "RMSprop optimizer; this is a Adam"),
        (broken(**{"hyperparameters.lr": KeyError}), "hyperparameters must be"),
        (broken(**{"hyperparameters.lr": -1.0}), "lr"),
        (broken(**{"counters.iter": -2}), "counter iter"),
        (broken(**{"state.v": KeyError}), "must have the arrays"),
        (broken(**{"state.m.W1": np.zeros((2, 2))}), "shape"),
        (broken(**{"state.m.W9": np.zeros((2, 2))}), "'W9', which is not a parameter"),
        (broken(**{"state.v.W1": KeyError}), "cover different"),
        ("not a dict", "must be a dict"),
    ]
    for state, message in cases:
        with pytest.raises((ValueError, TypeError), match=message):
            target.load_state_dict(state, net.params)
        assert target.lr == 0.3 and target.iter == 1
        for k, v in target.m.items():
            np.testing.assert_array_equal(v, m_before[k])


# -------------------------------------------------------------------------------------------
# configuration and buffers
# -------------------------------------------------------------------------------------------


def test_get_config_records_the_constructor_arguments():
    net = xpnet.MultiLayerNetExtend(4, (6, np.int64(5)), 3, activation="tanh",
                                    weight_init_std=np.float64(0.1), use_dropout=True,
                                    dropout_ratio=0.25, backend="numpy", dtype="float64",
                                    seed=3)
    cfg = net.get_config()
    assert cfg["hidden_size_list"] == [6, 5] and type(cfg["hidden_size_list"][1]) is int
    assert cfg["weight_init_std"] == 0.1 and type(cfg["weight_init_std"]) is float
    assert cfg["dropout_ratio"] == 0.25 and cfg["seed"] == 3
    assert not {"backend", "device", "dtype"} & set(cfg)
    json.dumps(cfg)
    rebuilt = xpnet.MultiLayerNetExtend(**cfg, dtype="float64")
    for key in net.params:
        np.testing.assert_array_equal(rebuilt.params[key], net.params[key])
    assert rebuilt.dropout_ration == 0.25


def test_get_config_refuses_what_json_cannot_hold():
    net = xpnet.MultiLayerNet(4, [3], 2, weight_init_std=np.array(0.1))
    with pytest.raises(TypeError, match="weight_init_std"):
        net.get_config()
    with pytest.raises(TypeError, match="weight_init_std"):
        net.save("unused.safetensors")


def test_networks_register_by_name_and_copies_still_work():
    assert NETWORKS["MultiLayerNet"] is xpnet.MultiLayerNet

    class Custom:
        pass

    assert register_network(Custom, "CustomAlias") is Custom and NETWORKS["CustomAlias"] is Custom
    del NETWORKS["CustomAlias"]
    with pytest.raises(TypeError):
        register_network("not a class")
    net = xpnet.MultiLayerNetExtend(4, [3], 2, use_batchnorm=True, seed=0)
    with pytest.raises(Exception, match="pickle"):  # as before (issue 12): not a way to copy
        copy.deepcopy(net)


def test_buffers_are_found_by_layer_and_attribute():
    net = xpnet.MultiLayerNetExtend(4, [3, 2], 2, use_batchnorm=True, use_dropout=True, seed=0)
    assert sorted(net.buffers()) == ["BatchNorm1.running_mean", "BatchNorm1.running_var",
                                     "BatchNorm2.running_mean", "BatchNorm2.running_var"]
    assert all(v is None for v in net.buffers().values())  # made by the first forward pass
    net.predict(np.ones((2, 4), np.float32), train_flg=True)
    assert net.buffers()["BatchNorm2.running_var"] is net.layers["BatchNorm2"].running_var
    assert sorted(net.rng_layers()) == ["Dropout1", "Dropout2"]
    assert xpnet.MultiLayerNet(4, [3], 2).buffers() == {}


class _NormNet(xpnet.network.Network):
    """A network of issue 10's layers, written as a user would: spatial batch norm (running
    statistics), layer norm (none), inverted dropout (a random stream)."""

    def __init__(self, channels=2, *, backend=None, device=None, dtype=None, seed=0):
        from xpnet.layers import Dropout, LayerNormalization, SpatialBatchNormalization
        from xpnet.params import Layout, flat_views

        self.backend = xpnet.get_backend(backend, device)
        self.xp = self.backend.xp
        self.dtype = self.backend.dtype(dtype or "float32")
        self.channels = channels
        d = channels * 9
        shapes = {"gamma1": (channels,), "beta1": (channels,), "gamma2": (d,), "beta2": (d,)}
        host = np.random.default_rng(seed).uniform(0.5, 1.5, channels * 2 + 2 * d)
        self.params = flat_views(self.xp, self.backend.asarray(host, dtype=self.dtype),
                                 Layout(shapes))
        self.layers = {
            "SBN": SpatialBatchNormalization(self.params["gamma1"], self.params["beta1"]),
            "LN": LayerNormalization(self.params["gamma2"], self.params["beta2"]),
            "Drop": Dropout(0.3, inverted=True, seed=seed, backend=self.backend),
        }

    def predict(self, x, train_flg=False):
        x = self.backend.asarray(x, dtype=self.dtype)
        x = self.layers["SBN"].forward(x, train_flg)
        x = self.xp.reshape(x, (x.shape[0], -1))
        x = self.layers["LN"].forward(x, train_flg)
        return self.layers["Drop"].forward(x, train_flg)


def test_a_network_of_the_new_norm_layers_gets_checkpoints_for_free(backend, tmp_path):
    net = _NormNet(backend=backend)
    x = np.random.default_rng(1).standard_normal((4, 2, 3, 3)).astype(np.float32)
    net.predict(x, train_flg=True)  # running statistics and the dropout stream start
    assert sorted(net.buffers()) == ["SBN.running_mean", "SBN.running_var"]
    path = net.save(tmp_path / "norm.safetensors")
    net2 = xpnet.load(path, backend=backend)
    assert type(net2) is _NormNet
    np.testing.assert_array_equal(backend.to_numpy(net2.layers["SBN"].running_var),
                                  backend.to_numpy(net.layers["SBN"].running_var))
    np.testing.assert_array_equal(backend.to_numpy(net2.predict(x)),
                                  backend.to_numpy(net.predict(x)))
    np.testing.assert_array_equal(backend.to_numpy(net2.predict(x, train_flg=True)),
                                  backend.to_numpy(net.predict(x, train_flg=True)))
