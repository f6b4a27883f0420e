"""Issue 10 on the networks, optimizers and trainer: activations and normalizations in
``MultiLayerNetExtend``, inverted dropout, ``AdamW`` and torch-style Adam, learning-rate schedules
and gradient clipping, and gradient-check kinks of the ReLU family.

Oracles: the networks' own ``numerical_gradient`` (float64) and the NumPy compositions of
``oracles.py`` (no torch needed); ``torch.optim``, ``torch.optim.lr_scheduler`` and
``torch.nn.utils.clip_grad_norm_`` in the tests that import torch (skipped without it).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import (
    OPTIMIZER_KERNEL_SLOTS,
    assert_close,
    assert_on_backend,
    counting_host_reads,
    fused_paths,
    kernel_specs,
)
from xpnet import AdamW, GradientCheckWarning, MultiLayerNet, MultiLayerNetExtend, Trainer
from xpnet.gradcheck import KINK_DISTANCES, gradient_check
from xpnet.layers import Elu, LayerNormalization, LeakyRelu, Maxout, PRelu
from xpnet.params import Layout, ParamDict
from xpnet.trainer import clip_grad_norm, make_lr_schedule, train_steps

#: every activation, with activation_params away from the defaults where it takes any (an
#: ignored parameter shows up); ELU's alpha != 1 gives it a kink, checked like the others
ACTIVATIONS = {"relu": None, "sigmoid": None, "tanh": None, "leaky_relu": {"alpha": 0.1},
               "prelu": None, "elu": {"alpha": 0.5}, "maxout": {"pieces": 3}}
NORMALIZATIONS = [None, "batch", "layer"]
#: data and perturbation seed of the gradient tests: no unit within 2e-3 of a kink in any of
#: the 21 networks below (asserted), so a central difference with h = 1e-4 means something
SEED = 18


def _net(backend, act, norm, *, seed=SEED, lam=0.1, **kw):
    """A tiny float64 network whose biases, normalization parameters and PReLU slopes are moved
    off their initial values (weights of modest scale: the book's 1e-7 inside the log floors a
    check's relative error near 1e-7 / y)."""
    net = MultiLayerNetExtend(3, [4, 3], 3, activation=act, activation_params=ACTIVATIONS[act],
                              normalization=norm, weight_init_std=0.5, weight_decay_lambda=lam,
                              dtype="float64", seed=seed, backend=backend, **kw)
    rng = np.random.default_rng(seed)
    for key, p in net.params.items():
        if not key.startswith("W"):
            p += backend.asarray(0.3 * rng.standard_normal(tuple(p.shape)), dtype="float64")
    x, t = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    return net, x, t


def _min_kink_distance(net, x):
    """The smallest distance of any unit's input to a kink, through the training forward."""
    be, xp = net.backend, net.xp
    h, worst = net._x(x), math.inf
    for layer, takes_flag in net._train_layers:
        dist = KINK_DISTANCES.get(type(layer).__name__)
        d = None if dist is None else dist(layer, h, xp)
        if d is not None:
            worst = min(worst, be.to_float(xp.min(d)))
        h = layer.forward(h, True) if takes_flag else layer.forward(h)
    return worst


def _host(be, d):
    return {k: np.array(be.to_numpy(v), dtype=np.float64) for k, v in d.items()}


# ------------------------------------------------------------------------------------------
# networks: every activation x normalization
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", NORMALIZATIONS, ids=str)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_network_gradient_is_the_numerical_gradient(backend, act, norm):
    net, x, t = _net(backend, act, norm)
    assert _min_kink_distance(net, x) > 2e-3  # (else the check below proves nothing)
    grads = _host(backend, net.gradient(x, t))
    numerical = _host(backend, net.numerical_gradient(x, t))
    assert list(grads) == list(numerical) == list(net.params)
    for key in grads:
        a, n = grads[key], numerical[key]
        scale = np.max(np.abs(a) + np.abs(n))
        if norm == "batch" and act != "maxout" and key in ("b1", "b2"):
            # a bias right before batch norm: the loss does not depend on it
            assert scale < 1e-9, key
            continue
        assert scale > 1e-5, key
        assert np.max(np.abs(a - n)) / scale < 1e-5, key


@pytest.mark.parametrize("dropout", ["none", "book", "inverted"])
@pytest.mark.parametrize("norm", NORMALIZATIONS, ids=str)
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_network_gradient_is_the_oracle_composition(backend, act, norm, dropout):
    """Loss and gradients against the NumPy composition of the layer oracles (the layer order
    of each architecture included: Maxout -> normalization -> dropout), with the network's own
    dropout masks."""
    kw = {} if dropout == "none" else {"use_dropout": True, "dropout_ratio": 0.3,
                                       "inverted_dropout": dropout == "inverted"}
    net, x, t = _net(backend, act, norm, **kw)
    params = _host(backend, net.params)
    grads = net.gradient(x, t)
    masks = None
    if dropout != "none":
        masks = [backend.to_numpy(net.layers[f"Dropout{i}"].mask) for i in (1, 2)]
        assert all(set(np.unique(m).tolist()) <= {0.0, 1.0} for m in masks)
    loss, want = O.multi_layer_net_extend_gradient(
        params, x, t, 2, activation=act, activation_params=ACTIVATIONS[act],
        normalization=norm, dropout_masks=masks, inverted_dropout=dropout == "inverted",
        dropout_ratio=0.3, weight_decay_lambda=0.1)
    assert_close(backend, net.last_loss, loss, rtol=1e-10, atol=1e-12)
    assert list(grads) == list(net.params) and set(want) == set(grads)
    for key, g in grads.items():
        assert_on_backend(backend, g, dtype="float64", shape=want[key].shape)
        assert_close(backend, g, want[key], rtol=1e-9, atol=1e-11, err_msg=key)


def test_network_layers_and_parameter_names():
    net = MultiLayerNetExtend(3, [4, 2], 2, activation="maxout", normalization="layer",
                              use_dropout=True, activation_params={"pieces": 3})
    assert list(net.layers) == ["Maxout1", "LayerNorm1", "Dropout1", "Maxout2", "LayerNorm2",
                                "Dropout2", "Affine3"]
    assert [tuple(net.params[k].shape) for k in ("W1", "b1", "W2", "b2", "W3", "gamma2")] == [
        (3, 12), (12,), (4, 6), (6,), (2, 2), (2,)]
    assert net.layers["Maxout1"].pieces == 3 and net.layers["Maxout1"].need_dx is False
    assert isinstance(net.layers["LayerNorm2"], LayerNormalization)
    net = MultiLayerNetExtend(3, [4], 2, activation="prelu", use_batchnorm=True)
    assert list(net.layers) == ["Affine1", "BatchNorm1", "Activation_function1", "Affine2"]
    assert list(net.params) == ["W1", "b1", "W2", "b2", "gamma1", "beta1", "alpha1"]
    np.testing.assert_array_equal(net.params["alpha1"], np.full(4, 0.25, np.float32))
    assert net.normalization == "batch" and net.use_batchnorm


def test_activation_params_reach_the_layers():
    def act1(**kw):
        return MultiLayerNet(3, [4], 2, seed=0, **kw).layers.get("Activation_function1")

    assert isinstance(act1(activation="leaky_relu"), LeakyRelu)
    assert act1(activation="leaky_relu").alpha == 0.01
    assert act1(activation="leaky_relu", activation_params={"alpha": 0.2}).alpha == 0.2
    assert isinstance(act1(activation="ELU"), Elu) and act1(activation="elu").alpha == 1.0
    assert act1(activation="elu", activation_params={"alpha": 0.3}).alpha == 0.3
    prelu = act1(activation="prelu", activation_params={"alpha": -0.5})  # learned: any sign
    assert isinstance(prelu, PRelu)
    np.testing.assert_array_equal(prelu.alpha, np.full(4, -0.5, np.float32))
    net = MultiLayerNet(3, [4], 2, activation="maxout", activation_params={"pieces": 1}, seed=0)
    assert isinstance(net.layers["Maxout1"], Maxout) and net.params["W1"].shape == (3, 4)


def test_he_init_is_sqrt_2_over_n_for_the_relu_family():
    """One seed: the ReLU family draws ReLU's weights; maxout's wider W has the same std."""
    ref = MultiLayerNet(400, [300, 300], 10, seed=3, dtype="float64")
    for act in ("leaky_relu", "prelu", "elu"):
        net = MultiLayerNet(400, [300, 300], 10, activation=act, seed=3, dtype="float64")
        for k in ("W1", "W2", "W3"):
            np.testing.assert_array_equal(net.params[k], ref.params[k], err_msg=f"{act} {k}")
    net = MultiLayerNet(400, [300, 300], 10, activation="maxout", seed=3, dtype="float64")
    for key, fan_in in (("W1", 400), ("W2", 300)):
        std = float(np.std(net.params[key]))
        assert abs(std / math.sqrt(2.0 / fan_in) - 1.0) < 0.02, (key, std)


def test_use_batchnorm_is_normalization_batch(backend):
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    a = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True, seed=2, backend=backend)
    b = MultiLayerNetExtend(5, [4], 3, normalization="batch", seed=2, backend=backend)
    c = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True, normalization="BATCH", seed=2,
                            backend=backend)
    assert list(a.layers) == list(b.layers) == list(c.layers)
    assert a.use_batchnorm and b.use_batchnorm and c.normalization == "batch"
    ga, gb = a.gradient(x, t, copy=True), b.gradient(x, t, copy=True)
    for k in ga:
        np.testing.assert_array_equal(backend.to_numpy(ga[k]), backend.to_numpy(gb[k]))


def test_constructor_arguments_are_attributes_that_rebuild_the_network(backend):
    """What a checkpoint stores: every constructor argument under its own name."""
    kw = dict(activation="prelu", activation_params={"alpha": 0.1}, normalization="layer",
              use_dropout=True, dropout_ration=0.2, inverted_dropout=True,
              weight_decay_lambda=0.01, weight_init_std="he", seed=4)
    net = MultiLayerNetExtend(6, [5, 4], 3, backend=backend, **kw)
    for name, value in kw.items():
        assert getattr(net, name) == value, name
    assert net.use_batchnorm is False
    rebuilt = MultiLayerNetExtend(
        net.input_size, net.hidden_size_list, net.output_size, net.activation,
        net.weight_init_std, net.weight_decay_lambda, net.use_dropout, net.dropout_ration,
        net.use_batchnorm, activation_params=net.activation_params,
        normalization=net.normalization, inverted_dropout=net.inverted_dropout,
        backend=backend, seed=net.seed)
    np.testing.assert_array_equal(backend.to_numpy(rebuilt.params.flat),
                                  backend.to_numpy(net.params.flat))
    assert list(rebuilt.layers) == list(net.layers)
    assert "layernorm" in repr(net) and "inverted_dropout=0.2" in repr(net)
    params = {"alpha": 0.3}
    net = MultiLayerNet(3, [2], 2, activation="elu", activation_params=params)
    params["alpha"] = 5.0  # the network keeps its own copy
    assert net.activation_params == {"alpha": 0.3}


@pytest.mark.parametrize("kwargs, error, match", [
    ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
    ({"activation": "relu", "activation_params": {"alpha": 0.1}}, ValueError,
     r"\['alpha'\] do not apply to activation 'relu' \(it takes: none\)"),
    ({"activation": "maxout", "activation_params": {"alpha": 0.1}}, ValueError,
     "it takes: 'pieces'"),
    ({"activation": "leaky_relu", "activation_params": {"alpha": -0.1}}, ValueError,
     r"activation_params\['alpha'\] must be a finite number >= 0"),
    ({"activation": "prelu", "activation_params": {"alpha": float("nan")}}, ValueError,
     r"activation_params\['alpha'\]"),
    ({"activation": "elu", "activation_params": {"alpha": "big"}}, TypeError, "a number"),
    ({"activation": "maxout", "activation_params": {"pieces": 0}}, ValueError, "pieces"),
    ({"activation": "maxout", "activation_params": {"pieces": 2.0}}, ValueError, "pieces"),
    ({"activation": "maxout", "activation_params": {"pieces": True}}, ValueError, "pieces"),
    ({"activation_params": [("alpha", 1)]}, TypeError, "activation_params must be a dict"),
    ({"normalization": "group"}, ValueError, "unknown normalization 'group'"),
    ({"normalization": "layer", "use_batchnorm": True}, ValueError, "use_batchnorm=True"),
    ({"inverted_dropout": "yes"}, TypeError, "inverted_dropout"),
])
def test_bad_network_arguments_raise_before_any_work(kwargs, error, match, monkeypatch):
    calls = []
    monkeypatch.setattr(xpnet.nets, "draw_network_params",
                        lambda *a, **k: calls.append(1))  # would be the first work
    with pytest.raises(error, match=match):
        MultiLayerNetExtend(3, [4], 2, **kwargs)
    assert calls == []


# ------------------------------------------------------------------------------------------
# the flat buffers: PReLU slopes and maxout weights live there, and train there
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["prelu", "maxout"])
def test_new_parameters_are_views_of_the_flat_buffers_and_train_there(backend, act):
    net, x, t = _net(backend, act, "layer")
    params = net.params
    assert isinstance(params, ParamDict) and params.flat_view() is params.flat
    layer = net.layers["Activation_function1" if act == "prelu" else "Maxout1"]
    key, attr = ("alpha1", "alpha") if act == "prelu" else ("W1", "W")
    assert getattr(layer, attr) is params[key]
    a, b = params.layout.offsets[key]
    params.flat[a:a + 1] = params.flat[a:a + 1] + 1.0  # a write to the buffer shows
    first = (0,) * params[key].ndim
    assert backend.to_float(getattr(layer, attr)[first]) == backend.to_float(params.flat[a])
    grads = net.gradient(x, t)
    assert grads.flat_view() is net._grads.flat
    assert getattr(layer, "dalpha" if act == "prelu" else "dW") is not None
    if act == "prelu":  # the layer wrote its gradient into the gradient buffer
        assert layer.dalpha is grads["alpha1"]
    before = _host(backend, params)
    g = _host(backend, grads)
    opt = xpnet.Adam(lr=0.1, fused=False)
    opt.update(params, grads)
    assert opt._flat_layout is params.layout  # one whole-buffer step, not per key
    moved = _host(backend, params)
    for k in params:
        # the book's Adam's first step: lr * g / (|g| + eps / sqrt(1 - beta2))
        want = before[k] - 0.1 * g[k] / (np.abs(g[k]) + 1e-7 / math.sqrt(0.001))
        np.testing.assert_allclose(moved[k], want, rtol=1e-12, atol=1e-14, err_msg=k)
    assert not np.allclose(moved[key], before[key])
    np.testing.assert_allclose(backend.to_numpy(getattr(layer, attr)), moved[key])


def test_weight_decay_skips_prelu_slopes_and_normalization_parameters(backend):
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    nets = [MultiLayerNetExtend(4, [5, 3], 3, activation="prelu", normalization="layer",
                                weight_decay_lambda=lam, dtype="float64", seed=6,
                                backend=backend) for lam in (0.0, 0.5)]
    g0, g1 = (_host(backend, n.gradient(x, t, copy=True)) for n in nets)
    p = _host(backend, nets[0].params)
    for k in p:
        want = g0[k] + 0.5 * p[k] if k.startswith("W") else g0[k]
        np.testing.assert_allclose(g1[k], want, rtol=1e-12, atol=1e-14, err_msg=k)
    penalty = 0.5 * 0.5 * sum(np.sum(v**2) for k, v in p.items() if k.startswith("W"))
    assert backend.to_float(nets[1].last_loss) == pytest.approx(
        backend.to_float(nets[0].last_loss) + penalty, rel=1e-12)


# ------------------------------------------------------------------------------------------
# inference: layer norm is not folded; inverted dropout is the identity
# ------------------------------------------------------------------------------------------
# (the folded fast path against the layer-by-layer loop, with layer norm, maxout and inverted
# dropout among its cases: tests/test_kernels.py::test_inference_fast_path_equals_layer_by_layer)


def test_layer_norm_inference_uses_each_samples_own_statistics(backend):
    """At inference layer norm normalizes every sample by its own mean and variance: the
    scores are the oracle's forward pass, and a row's scores don't depend on its batch."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((7, 5))
    net = MultiLayerNetExtend(5, [6, 4], 3, activation="tanh", normalization="layer",
                              dtype="float64", seed=3, backend=backend)
    for p in net.params.values():
        p += backend.asarray(0.3 * rng.standard_normal(tuple(p.shape)), dtype="float64")
    params = _host(backend, net.params)
    h = x
    for i in (1, 2):
        h = O.affine_forward(h, params[f"W{i}"], params[f"b{i}"])
        h = O.tanh_forward(O.layernorm_forward(h, params[f"gamma{i}"], params[f"beta{i}"])[0])
    want = O.affine_forward(h, params["W3"], params["b3"])
    assert_close(backend, net.predict(x), want, rtol=1e-12, atol=1e-12)
    assert_close(backend, net.predict(x[2:3]), want[2:3], rtol=1e-12, atol=1e-12)
    assert_close(backend, net.predict(x, train_flg=True), want, rtol=1e-12, atol=1e-12)


def test_inverted_dropout_network_has_torch_semantics(backend):
    """PyTorch's dropout: kept units scaled by 1 / (1 - p) while training, so the expected
    activation is unchanged; the identity at inference (the same scores as without
    dropout)."""
    kw = dict(activation="relu", seed=5, backend=backend, dtype="float64")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((4000, 6))
    net = MultiLayerNetExtend(6, [50], 3, use_dropout=True, dropout_ratio=0.25,
                              inverted_dropout=True, **kw)
    plain = MultiLayerNetExtend(6, [50], 3, **kw)
    assert_close(backend, net.predict(x), backend.to_numpy(plain.predict(x)), rtol=1e-13)
    drop = net.layers["Dropout1"]
    ones = backend.asarray(np.ones((4000, 50)), dtype="float64")
    out = backend.to_numpy(drop.forward(ones, True))
    assert set(np.unique(out).tolist()) == {0.0, 1.0 / 0.75}
    assert abs(out.mean() - 1.0) < 0.02  # book's dropout: 0.75
    book = MultiLayerNetExtend(6, [50], 3, use_dropout=True, dropout_ratio=0.25, **kw)
    assert abs(backend.to_numpy(book.layers["Dropout1"].forward(ones, True)).mean()
               - 0.75) < 0.02


def test_inverted_dropout_inference_equals_torch_eval():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(10)
    x = rng.standard_normal((20, 6))
    net = MultiLayerNetExtend(6, [8, 7], 3, use_dropout=True, dropout_ratio=0.5,
                              inverted_dropout=True, dtype="float64", seed=2)
    p = {k: torch.from_numpy(np.array(v)) for k, v in net.params.items()}
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(8, 7), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                torch.nn.Linear(7, 3)).double().eval()
    with torch.no_grad():
        for i, lin in enumerate([model[0], model[3], model[6]], 1):
            lin.weight.copy_(p[f"W{i}"].T)
            lin.bias.copy_(p[f"b{i}"])
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(net.predict(x), want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# AdamW and torch-style Adam
# ------------------------------------------------------------------------------------------

#: xpnet case -> (class, its keywords, the oracle, the oracle's keywords); hyperparameters away
#: from the defaults (a swapped argument shows up), eps large enough that its placement matters
VARIANTS = {
    "Adam-torch": (xpnet.Adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3,
                                "eps_style": "torch"},
                   O.torch_adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3}),
    "AdamW": (AdamW, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3,
                      "weight_decay": 0.3},
              O.torch_adamw, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-3,
                              "weight_decay": 0.3}),
    "AdamW-defaults": (AdamW, {}, O.torch_adamw, {}),
}
VARIANT_PATHS = fused_paths(list(VARIANTS), lambda n: ("adam",))
SHAPES = {"W": (4, 3), "b": (3,)}


def _grad_stream(steps, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return [{k: scale * (rng.standard_normal(s) + 0.3) for k, s in SHAPES.items()}
            for _ in range(steps)]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend, name, fused", VARIANT_PATHS, indirect=["backend"])
def test_adam_variants_on_a_dict_match_the_torch_oracles(backend, name, fused, dtype):
    """50 updates of a plain dict against the transcription of torch.optim's documented
    rule; tiny gradients in the second half, where eps's placement decides the step."""
    cls, kw, oracle_step, okw = VARIANTS[name]
    rng = np.random.default_rng(1)
    init = {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
    params = {k: backend.asarray(v.copy()) for k, v in init.items()}
    opt = cls(**kw, fused=fused)
    oracle = O.OptimizerRun(oracle_step, init, **okw)
    stream = _grad_stream(25) + _grad_stream(25, seed=1, scale=1e-5)
    for g in stream:
        g = {k: v.astype(dtype) for k, v in g.items()}
        opt.update(params, {k: backend.asarray(v) for k, v in g.items()})
        oracle.update(g)
    rtol = 1e-10 if dtype == "float64" else 1e-4
    for k in params:
        assert_on_backend(backend, params[k], dtype=dtype)
        assert not np.allclose(oracle.params[k], init[k])
        assert_close(backend, params[k], oracle.params[k], rtol=rtol, atol=rtol, err_msg=k)


@pytest.mark.parametrize("backend, name, fused", VARIANT_PATHS, indirect=["backend"])
def test_adam_variants_on_network_params_match_the_torch_oracles(backend, name, fused):
    """The whole-buffer path: ``opt.update(net.params, net.gradient(x, t))`` step by step."""
    cls, kw, oracle_step, okw = VARIANTS[name]
    net = MultiLayerNetExtend(6, [5, 4], 3, activation="prelu", normalization="layer",
                              dtype="float64", seed=2, backend=backend)
    opt = cls(**kw, fused=fused)
    oracle = O.OptimizerRun(oracle_step, _host(backend, net.params), **okw)
    rng = np.random.default_rng(4)
    x, t = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    for step in range(12):
        grads = net.gradient(x[5 * (step % 2):][:5], t[5 * (step % 2):][:5])
        oracle.update(_host(backend, grads))
        opt.update(net.params, grads)
    assert opt._flat_layout is net.params.layout
    for k in net.params:
        assert_close(backend, net.params[k], oracle.params[k], rtol=1e-9, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("backend, name", kernel_specs(list(VARIANTS), lambda n: ("adam",)),
                         indirect=["backend"])
def test_fused_adam_variants_equal_the_portable_code(backend, name):
    """Where a backend has an Adam kernel: torch's eps placement and AdamW's decay through it
    give the portable code's numbers."""
    cls, kw, _, _ = VARIANTS[name]
    layout = Layout({"W1": (7, 5), "b1": (5,), "big": (300,)})
    out = []
    for fused in (True, False):
        rng = np.random.default_rng(0)
        p = ParamDict(backend.xp, backend.asarray(rng.standard_normal(layout.size),
                                                  dtype="float64"), layout)
        g = ParamDict(backend.xp, backend.asarray(np.zeros(layout.size), dtype="float64"),
                      layout)
        opt = cls(**kw, fused=fused)
        for _ in range(15):
            g.flat[...] = backend.asarray(rng.standard_normal(layout.size) + 0.5,
                                          dtype="float64")
            opt.update(p, g)
        assert (opt._kernel("adam") is not None) == fused
        out.append(backend.to_numpy(p.flat).copy())
    np.testing.assert_allclose(out[0], out[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend, name, fused", VARIANT_PATHS, indirect=["backend"])
def test_adam_variants_equal_torch_optim_over_50_steps(backend, name, fused):
    torch = pytest.importorskip("torch")
    cls, kw, _, okw = VARIANTS[name]
    net = MultiLayerNetExtend(5, [4], 3, activation="prelu", dtype="float64", seed=3,
                              backend=backend)
    init = _host(backend, net.params)
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in init.items()}
    betas = (okw.get("beta1", 0.9), okw.get("beta2", 0.999))
    tkw = {k: v for k, v in okw.items() if k not in ("beta1", "beta2")}
    topt = (torch.optim.AdamW if cls is AdamW else torch.optim.Adam)(
        list(tparams.values()), betas=betas, **tkw)
    opt = cls(**kw, fused=fused)
    rng = np.random.default_rng(5)
    grads = ParamDict(backend.xp, backend.asarray(np.zeros(net.params.layout.size),
                                                  dtype="float64"), net.params.layout)
    for step in range(50):
        scale = 1.0 if step < 25 else 1e-5
        host = {k: scale * (rng.standard_normal(v.shape) + 0.3) for k, v in init.items()}
        for k, v in host.items():
            grads[k][...] = backend.asarray(v, dtype="float64")
            tparams[k].grad = torch.from_numpy(v.copy())
        opt.update(net.params, grads)
        topt.step()
    for k, tp in tparams.items():
        assert_close(backend, net.params[k], tp.detach().numpy(), rtol=1e-10, atol=1e-12,
                     err_msg=k)


def test_adamw_decays_every_parameter_it_is_given():
    """torch's AdamW with one parameter group: biases and PReLU slopes shrink too; with a
    zero gradient the decay is all that happens, ``(1 - lr * wd) ** t``."""
    net = MultiLayerNetExtend(3, [2], 2, activation="prelu", dtype="float64", seed=0)
    before = {k: np.array(v) for k, v in net.params.items()}
    zero = ParamDict(net.xp, np.zeros_like(net.params.flat), net.params.layout)
    opt = AdamW(lr=0.1, weight_decay=0.2)
    for _ in range(3):
        opt.update(net.params, zero)
    for k, v in net.params.items():
        np.testing.assert_allclose(v, before[k] * 0.98**3, rtol=1e-14, err_msg=k)


def test_adam_variant_arguments_and_hyperparameters():
    with pytest.raises(ValueError, match="eps_style must be 'book' or 'torch'"):
        xpnet.Adam(eps_style="pytorch")
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        AdamW(weight_decay=-0.1)
    with pytest.raises(ValueError, match="eps must be"):
        xpnet.Adam(eps=float("nan"), eps_style="torch")
    assert xpnet.Adam().hyperparameters() == {"lr": 0.001, "beta1": 0.9, "beta2": 0.999,
                                              "eps": 1e-7}
    w = AdamW()
    assert (w.lr, w.beta1, w.beta2, w.eps, w.weight_decay) == (0.001, 0.9, 0.999, 1e-8, 0.01)
    for opt in (xpnet.Adam(lr=0.02, eps=1e-8, eps_style="torch"),
                AdamW(0.003, 0.8, 0.9, 1e-6, 0.05)):
        again = xpnet.get_optimizer(type(opt).__name__.lower(), **opt.hyperparameters())
        assert type(again) is type(opt)
        assert again.hyperparameters() == opt.hyperparameters()
        assert again.eps_style == "torch"
    assert OPTIMIZER_KERNEL_SLOTS["AdamW"] == "adam"


# ------------------------------------------------------------------------------------------
# learning-rate schedules
# ------------------------------------------------------------------------------------------

SCHEDULES = {
    "step": ("step", {"step_size": 3, "gamma": 0.5}),
    "step-default-gamma": ("step", {"step_size": 2}),
    "exponential": ("exponential", {"gamma": 0.8}),
    "cosine": ("cosine", {"T_max": 4, "eta_min": 0.001}),
    "cosine-to-zero": ("cosine", {"T_max": 5}),
    "lambda": (lambda e: 1.0 / (1 + e), {}),
}


@pytest.mark.parametrize("case", list(SCHEDULES))
def test_lr_schedules_match_torchs_documented_recursions(case):
    """Over three cosine periods: the closed forms against the documentation's recursions."""
    schedule, hp = SCHEDULES[case]
    lr_at = make_lr_schedule(schedule, 0.1, hp)
    if callable(schedule):
        want = O.lr_schedule("lambda", 0.1, 14, lr_lambda=schedule)
    else:
        want = O.lr_schedule(schedule, 0.1, 14, **hp)
    np.testing.assert_allclose([lr_at(e) for e in range(14)], want, rtol=1e-12, atol=1e-15)
    assert len(set(np.round(want, 12))) > 2  # the schedule moves


@pytest.mark.parametrize("case", list(SCHEDULES))
def test_lr_schedules_equal_torch_lr_scheduler(case):
    torch = pytest.importorskip("torch")
    schedule, hp = SCHEDULES[case]
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    S = torch.optim.lr_scheduler
    sched = {"step": lambda: S.StepLR(opt, **hp),
             "exponential": lambda: S.ExponentialLR(opt, **hp),
             "cosine": lambda: S.CosineAnnealingLR(opt, **hp)}.get(
        schedule if isinstance(schedule, str) else "", lambda: S.LambdaLR(opt, schedule))()
    torch_lrs = []
    for _ in range(14):
        torch_lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    lr_at = make_lr_schedule(schedule, 0.1, hp)
    np.testing.assert_allclose([lr_at(e) for e in range(14)], torch_lrs, rtol=1e-12,
                               atol=1e-15)


def test_cosine_t_max_defaults_to_the_epochs():
    lr_at = make_lr_schedule("cosine", 1.0, None, epochs=10)
    assert lr_at(0) == 1.0 and lr_at(5) == pytest.approx(0.5) and lr_at(10) == pytest.approx(0)


def _tiny_trainer(backend, **kw):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 5)).astype(np.float32)
    t = rng.integers(0, 3, 40)
    net = MultiLayerNetExtend(5, [6], 3, seed=2, backend=backend)
    if not isinstance(kw.get("optimizer"), xpnet.Optimizer):
        kw.setdefault("optimizer_param", {"lr": 0.1})
    return Trainer(net, x, t, x[:10], t[:10], mini_batch_size=10, verbose=False, seed=3, **kw)


def test_trainer_sets_the_scheduled_rate_at_every_epoch(backend):
    seen, snapshots = [], []

    def record(trainer):
        seen.append(trainer.optimizer.lr)
        snapshots.append(backend.to_numpy(trainer.network.params.flat).copy())

    trainer = _tiny_trainer(backend, epochs=4, optimizer="SGD", lr_schedule="step",
                            lr_schedule_params={"step_size": 2, "gamma": 0.0},
                            on_epoch_end=record)
    history = trainer.train()
    want = O.lr_schedule("step", 0.1, 4, step_size=2, gamma=0.0)
    assert seen == trainer.lr_list == history["lr"] == want == [0.1, 0.1, 0.0, 0.0]
    # the optimizer used those rates: nothing moves once the rate is 0
    assert not np.array_equal(snapshots[0], snapshots[1])
    np.testing.assert_array_equal(snapshots[1], snapshots[2])
    np.testing.assert_array_equal(snapshots[2], snapshots[3])
    assert (trainer.lr_schedule, trainer.lr_schedule_params, trainer.grad_clip) == (
        "step", {"step_size": 2, "gamma": 0.0}, None)


def test_trainer_schedule_with_an_optimizer_object_and_a_callable():
    opt = AdamW(lr=0.01)
    trainer = _tiny_trainer("numpy", epochs=3, optimizer=opt, lr_schedule=lambda e: 0.5**e)
    trainer.train()
    assert trainer.lr_list == [0.01, 0.005, 0.0025] and opt.lr == 0.0025


@pytest.mark.parametrize("kw, error, match", [
    ({"lr_schedule": "linear"}, ValueError, "unknown lr_schedule 'linear'"),
    ({"lr_schedule": "step"}, ValueError, r"missing \['step_size'\]"),
    ({"lr_schedule": "step", "lr_schedule_params": {"step_size": 2, "gama": 0.1}},
     ValueError, r"unknown \['gama'\]"),
    ({"lr_schedule": "step", "lr_schedule_params": {"step_size": 0}}, ValueError,
     "step_size"),
    ({"lr_schedule": "exponential", "lr_schedule_params": {"gamma": -1.0}}, ValueError,
     "gamma"),
    ({"lr_schedule": "cosine", "lr_schedule_params": {"T_max": 2.5}}, ValueError, "T_max"),
    ({"lr_schedule": "cosine", "lr_schedule_params": {"eta_min": float("nan")}}, ValueError,
     "eta_min"),
    ({"lr_schedule": lambda e: 1.0, "lr_schedule_params": {"gamma": 0.1}}, ValueError,
     "callable"),
    ({"lr_schedule_params": {"gamma": 0.1}}, ValueError, "without an lr_schedule"),
    ({"lr_schedule": "step", "lr_schedule_params": [("step_size", 1)]}, TypeError, "dict"),
    ({"grad_clip": 0.0}, ValueError, "grad_clip"),
    ({"grad_clip": float("inf")}, ValueError, "grad_clip"),
    ({"grad_clip": True}, TypeError, "grad_clip"),
    ({"grad_clip": "1"}, TypeError, "grad_clip"),
])
def test_bad_schedule_and_clip_arguments_raise_before_training(kw, error, match):
    with pytest.raises(error, match=match):
        _tiny_trainer("numpy", epochs=2, **kw)


@pytest.mark.parametrize("bad", [-0.5, float("nan"), "x"])
def test_a_callable_schedule_returning_a_bad_factor_stops_before_the_epochs_steps(bad):
    trainer = _tiny_trainer("numpy", epochs=3, lr_schedule=lambda e: 1.0 if e == 0 else bad)
    before = None

    def snap(tr):
        nonlocal before
        before = np.array(tr.network.params.flat)

    trainer.on_epoch_end = snap
    with pytest.raises((ValueError, TypeError), match=r"lr_schedule\(1\)"):
        trainer.train()
    assert trainer.current_epoch == 1 and len(trainer.train_loss_list) == 4
    np.testing.assert_array_equal(trainer.network.params.flat, before)


# ------------------------------------------------------------------------------------------
# gradient clipping
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("flat", [True, False], ids=["flat-buffer", "dict"])
@pytest.mark.parametrize("max_norm", [0.05, 1e3], ids=["clipped", "unclipped"])
def test_clip_grad_norm_matches_the_oracle(backend, flat, max_norm):
    net, x, t = _net(backend, "prelu", "batch")
    grads = net.gradient(x, t)
    want, total = O.clip_grad_norm(_host(backend, grads), max_norm)
    g = grads if flat else dict(grads)
    assert (g.flat_view() is not None) if flat else not hasattr(g, "flat_view")
    norm = clip_grad_norm(g, max_norm)
    assert_on_backend(backend, norm, dtype="float64", shape=())
    assert backend.to_float(norm) == pytest.approx(total, rel=1e-12)
    for k in want:
        assert_close(backend, grads[k], want[k], rtol=1e-12, atol=1e-14, err_msg=k)
    clipped = math.sqrt(sum(float(np.sum(v**2)) for v in want.values()))
    assert clipped == pytest.approx(min(max_norm, total), rel=1e-5)


@pytest.mark.parametrize("max_norm", [0.05, 1e3], ids=["clipped", "unclipped"])
def test_clip_grad_norm_equals_torch(backend, max_norm):
    torch = pytest.importorskip("torch")
    net, x, t = _net(backend, "maxout", "layer")
    grads = net.gradient(x, t)
    host = _host(backend, grads)
    tparams = [torch.zeros(v.shape, dtype=torch.float64, requires_grad=True)
               for v in host.values()]
    for tp, v in zip(tparams, host.values(), strict=True):
        tp.grad = torch.from_numpy(v.copy())
    total = torch.nn.utils.clip_grad_norm_(tparams, max_norm)
    norm = clip_grad_norm(grads, max_norm)
    assert backend.to_float(norm) == pytest.approx(float(total), rel=1e-12)
    for tp, (k, g) in zip(tparams, grads.items(), strict=True):
        assert_close(backend, g, tp.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=k)


def test_train_steps_clips_before_every_update(backend):
    """train_steps(grad_clip=...) is the loop gradient -> clip (the oracle) -> SGD."""
    rng = np.random.default_rng(12)
    x_host, t_host = rng.standard_normal((30, 5)), rng.integers(0, 3, 30)
    batches = [rng.integers(0, 30, 8) for _ in range(4)]
    kw = dict(activation="elu", normalization="layer", dtype="float64", seed=4, backend=backend)
    net = MultiLayerNetExtend(5, [6], 3, **kw)
    twin = MultiLayerNetExtend(5, [6], 3, **kw)
    x, t = backend.asarray(x_host, dtype="float64"), backend.asarray(t_host)
    train_steps({"n": (net, xpnet.SGD(lr=0.5))}, x, t, (backend.asarray(b) for b in batches),
                grad_clip=0.1)
    p = _host(backend, twin.params)
    for b in batches:
        g, total = O.clip_grad_norm(_host(backend, twin.gradient(x_host[b], t_host[b])), 0.1)
        assert total > 0.1  # clipping is active
        for k in p:
            p[k] = p[k] - 0.5 * g[k]
            twin.params[k][...] = backend.asarray(p[k], dtype="float64")
    for k in p:
        assert_close(backend, net.params[k], p[k], rtol=1e-10, atol=1e-12, err_msg=k)


def test_no_host_sync_per_step_with_schedule_and_clipping():
    """The clip scale is computed on the device: a handful of host transfers per epoch."""
    pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(13)
    x, t = rng.standard_normal((400, 20)).astype(np.float32), rng.integers(0, 10, 400)
    net = MultiLayerNetExtend(20, [16], 10, activation="prelu", normalization="layer",
                              use_dropout=True, seed=0, backend="array_api_strict")
    trainer = Trainer(net, x, t, x[:50], t[:50], epochs=2, mini_batch_size=20,
                      optimizer="AdamW", optimizer_param={"lr": 1e-3}, verbose=False,
                      lr_schedule="cosine", grad_clip=1.0)
    with counting_host_reads() as calls:
        trainer.train()
    assert len(trainer.train_loss_list) == 40
    assert len(calls) <= 2 * 5, f"{len(calls)} host transfers in 40 steps: {calls}"


# ------------------------------------------------------------------------------------------
# gradient checking: kinks of the ReLU family
# ------------------------------------------------------------------------------------------


def _kink_messages(record):
    return [str(w.message) for w in record if "kink" in str(w.message)]


@pytest.mark.parametrize("act, params", [("leaky_relu", None), ("prelu", None),
                                         ("elu", {"alpha": 0.5})])
def test_relu_family_kinks_warn(backend, act, params):
    net = MultiLayerNet(4, [5], 3, activation=act, activation_params=params, backend=backend,
                        dtype="float64", seed=9)  # b1 = 0
    rng = np.random.default_rng(14)
    x, t = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    x[0] = 0.0  # this row reaches the activation exactly at its kink
    with pytest.warns(GradientCheckWarning, match="kink") as record:
        gradient_check(net, x, t, params=["W2"])
    msg = _kink_messages(record)
    assert len(msg) == 1 and "Activation_function1" in msg[0] and "5 of 25" in msg[0]


@pytest.mark.parametrize("act, params", [("elu", None), ("leaky_relu", {"alpha": 1.0})])
def test_no_kink_warning_where_the_first_derivative_is_continuous(backend, act, params):
    """ELU with alpha = 1 is C^1 at 0 (its central difference errs by at most h/4 there), and
    leaky ReLU with alpha = 1 is the identity: no warning, and a check that passes."""
    net = MultiLayerNet(4, [5], 3, activation=act, activation_params=params, backend=backend,
                        dtype="float64", seed=9)
    rng = np.random.default_rng(14)
    x, t = 0.5 * rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    x[0] = 0.0
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        errors = gradient_check(net, x, t)
    assert _kink_messages(record) == []
    assert max(errors.values()) < 1e-4, errors


def test_prelu_features_with_slope_one_have_no_kink():
    xp = xpnet.get_backend("numpy").xp
    layer = PRelu(np.array([1.0, 0.25]))
    d = KINK_DISTANCES["PRelu"](layer, np.array([[0.0, 0.0], [-2.0, 3.0]]), xp)
    np.testing.assert_array_equal(d, [[np.inf, 0.0], [np.inf, 3.0]])
    assert KINK_DISTANCES["Elu"](Elu(1.0), np.zeros(2), xp) is None
    np.testing.assert_array_equal(KINK_DISTANCES["Elu"](Elu(2.0), np.array([-1.0]), xp), [1.0])


# ------------------------------------------------------------------------------------------
# checkpoints of the new architectures, and resuming with a schedule and clipping
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act, norm", [("prelu", "layer"), ("maxout", "batch"),
                                       ("elu", None)])
def test_new_architectures_round_trip_through_a_checkpoint(tmp_path, act, norm):
    rng = np.random.default_rng(15)
    x, t = rng.standard_normal((12, 5)), rng.integers(0, 3, 12)
    net = MultiLayerNetExtend(5, [6, 4], 3, activation=act, normalization=norm,
                              activation_params={"alpha": 0.1} if act == "elu" else None,
                              use_dropout=True, inverted_dropout=True, seed=1)
    opt = AdamW(lr=0.01)
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
    path = net.save(tmp_path / "net.safetensors", optimizer=opt)
    loaded = xpnet.load(path, backend="array_api_strict")
    assert type(loaded) is MultiLayerNetExtend and loaded.get_config() == net.get_config()
    assert (loaded.activation, loaded.normalization, loaded.inverted_dropout) == (
        act, norm, True)
    assert list(loaded.layers) == list(net.layers)
    be = loaded.backend
    for k in net.params:
        np.testing.assert_array_equal(be.to_numpy(loaded.params[k]), net.params[k], err_msg=k)
    np.testing.assert_allclose(be.to_numpy(loaded.predict(x)), net.predict(x), rtol=1e-5,
                               atol=1e-6)


def test_resumed_run_with_schedule_clipping_and_adamw_equals_the_uninterrupted_one(tmp_path):
    rng = np.random.default_rng(16)
    x, t = rng.standard_normal((60, 8)).astype(np.float32), rng.integers(0, 3, 60)

    def trainer(ckdir, **kw):
        net = MultiLayerNetExtend(8, [7, 6], 3, activation="prelu", normalization="layer",
                                  use_dropout=True, inverted_dropout=True, dropout_ratio=0.2,
                                  seed=2)
        return Trainer(net, x, t, x[:20], t[:20], epochs=4, mini_batch_size=12,
                       optimizer=AdamW(lr=0.01, weight_decay=0.1), verbose=False, seed=3,
                       lr_schedule="cosine", grad_clip=0.5, checkpoint_dir=ckdir, **kw)

    whole = trainer(tmp_path / "a")
    whole.train()

    def stop_after_two(tr):
        if tr.current_epoch == 2:
            raise StopIteration

    first = trainer(tmp_path / "b", on_epoch_end=stop_after_two)
    first.train()
    assert first.current_epoch == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the schedule owns lr: no "other hyperparameters" warning
        resumed = trainer(tmp_path / "b", resume=True)
    resumed.train()
    assert resumed.lr_list == whole.lr_list == O.lr_schedule("cosine", 0.01, 4, T_max=4)
    assert resumed.train_loss_list == whole.train_loss_list
    for k in whole.network.params:
        np.testing.assert_array_equal(resumed.network.params[k], whole.network.params[k],
                                      err_msg=k)
