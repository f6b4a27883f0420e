"""xpnet.optim against torch.optim over many steps, the book's formulas, in-place updates.

The comparisons with torch skip where torch is not installed; ``test_oracles.py`` compares every
optimizer (portable and fused, plain dicts and network buffers) with NumPy transcriptions of the
book's formulas everywhere.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import OPTIMIZER_KERNEL_SLOTS, assert_on_backend, fused_paths
from xpnet.optim import SGD, AdaGrad, Adam, Momentum, Nesterov, RMSprop, get_optimizer

STEPS = 50
SHAPES = {"W": (4, 3), "b": (3,)}


def _torch_optimizer(torch, name, tparams, hp):
    o = torch.optim
    if name == "SGD":
        return o.SGD(tparams, lr=hp["lr"])
    if name == "Momentum":
        return o.SGD(tparams, lr=hp["lr"], momentum=hp["momentum"])
    if name == "Nesterov":
        return o.SGD(tparams, lr=hp["lr"], momentum=hp["momentum"], nesterov=True)
    if name == "AdaGrad":
        return o.Adagrad(tparams, lr=hp["lr"], eps=hp["eps"])
    if name == "RMSprop":
        return o.RMSprop(tparams, lr=hp["lr"], alpha=hp["decay_rate"], eps=hp["eps"])
    if name == "Adam":
        return o.Adam(tparams, lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    raise AssertionError(name)


CASES = [
    # (xpnet class, xpnet kwargs, torch hyperparameters)
    ("SGD", SGD, {"lr": 0.1}, {"lr": 0.1}),
    ("Momentum", Momentum, {"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9}),
    ("Nesterov", Nesterov, {"lr": 0.05, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.9}),
    # the book's eps is 1e-7 on sqrt(h); torch's Adagrad/RMSprop add eps at the same place
    ("AdaGrad", AdaGrad, {"lr": 0.3}, {"lr": 0.3, "eps": 1e-7}),
    ("RMSprop", RMSprop, {"lr": 0.02, "decay_rate": 0.9},
     {"lr": 0.02, "decay_rate": 0.9, "eps": 1e-7}),
    # the book's Adam folds bias correction into lr: equal to torch's only with eps -> 0.
    # eps must be > 0; 1e-300 is below float64's resolution of sqrt(v) (and rounds to 0 in
    # float32), so these are the eps = 0 steps on both sides
    ("Adam", Adam, {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-300},
     {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "eps": 1e-300}),
]


#: (backend, case, fused): the fused path only where the backend has a kernel for it
CASE_PATHS = fused_paths(CASES, lambda c: (OPTIMIZER_KERNEL_SLOTS[c[0]],), lambda c: c[0])


def _run_both(be, torch, name, cls, kwargs, hp, rng, dtype="float64", steps=STEPS, fused=True):
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    params = {k: be.asarray(v.astype(dtype)) for k, v in init.items()}
    ids = {k: id(v) for k, v in params.items()}
    opt = cls(**kwargs, fused=fused)
    tparams = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True)
               for k, v in init.items()}
    topt = _torch_optimizer(torch, name, list(tparams.values()), hp)
    for _ in range(steps):
        g_host = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
        grads = {k: be.asarray(v.astype(dtype)) for k, v in g_host.items()}
        opt.update(params, grads)
        for k, tp in tparams.items():
            tp.grad = torch.from_numpy(g_host[k].astype(dtype).astype(np.float64))
        topt.step()
        # in place: the dict still holds the very same array objects
        assert {k: id(v) for k, v in params.items()} == ids
        # the gradients were not touched
        for k in grads:
            np.testing.assert_array_equal(be.to_numpy(grads[k]), g_host[k].astype(dtype))
    for k in params:
        assert_on_backend(be, params[k], dtype=dtype, shape=SHAPES[k])
    return params, {k: tp.detach().numpy() for k, tp in tparams.items()}


@pytest.mark.parametrize("backend, case, fused", CASE_PATHS, indirect=["backend"])
def test_optimizer_matches_torch(backend, rng, case, fused):
    """Plain dicts of arrays, per-parameter steps (the backend's fused kernel or the portable
    code), 50 steps of random gradients, float64."""
    torch = pytest.importorskip("torch")
    name, cls, kwargs, hp = case
    params, ref = _run_both(backend, torch, name, cls, kwargs, hp, rng, fused=fused)
    for k in params:
        assert np.all(np.isfinite(backend.to_numpy(params[k])))
        np.testing.assert_allclose(backend.to_numpy(params[k]), ref[k], rtol=1e-10, atol=1e-12,
                                   err_msg=f"{name} {k}")


@pytest.mark.parametrize("backend, case, fused", CASE_PATHS, indirect=["backend"])
def test_optimizer_float32_stays_float32(backend, rng, case, fused):
    """Python-scalar step sizes: float32 parameters stay float32 and track the float64 path."""
    torch = pytest.importorskip("torch")
    name, cls, kwargs, hp = case
    params, ref = _run_both(backend, torch, name, cls, kwargs, hp, rng, dtype="float32",
                            steps=20, fused=fused)
    for k in params:
        np.testing.assert_allclose(backend.to_numpy(params[k]), ref[k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend, name, fused", fused_paths(["Adam"], lambda n: ("adam",)),
                         indirect=["backend"])
def test_adam_default_is_the_books(backend, rng, name, fused):
    """``Adam()`` is the book's Adam, eps placement included -- and so not torch's documented
    one, which adds eps after the bias correction (both NumPy oracles, no torch needed)."""
    init = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    # small gradients, where the placement of eps matters
    grads_seq = [{k: 1e-5 * rng.standard_normal(s) for k, s in SHAPES.items()}
                 for _ in range(30)]
    params = {k: backend.asarray(v.copy()) for k, v in init.items()}  # asarray may share memory
    opt = Adam(fused=fused)
    for grads in grads_seq:
        opt.update(params, {k: backend.asarray(g) for k, g in grads.items()})
    ref = O.run_optimizer(O.adam, init, grads_seq)
    for k in params:
        np.testing.assert_allclose(backend.to_numpy(params[k]), ref[k], rtol=1e-12, atol=1e-14)
    torch_form = O.run_optimizer(O.torch_adam, init, grads_seq, eps=1e-7)
    moved_book = np.abs(backend.to_numpy(params["W"]) - init["W"])
    moved_torch = np.abs(torch_form["W"] - init["W"])
    assert not np.allclose(moved_book, moved_torch, rtol=1e-3)


def test_default_eps_of_adagrad_and_rmsprop_is_the_books(backend, rng):
    init = rng.standard_normal(5)
    g = 1e-6 * rng.standard_normal(5)
    for cls, ref in (
        (AdaGrad, init - 0.01 * g / (np.sqrt(g * g) + 1e-7)),
        (RMSprop, init - 0.01 * g / (np.sqrt(0.01 * g * g) + 1e-7)),
    ):
        params = {"w": backend.asarray(init.copy())}
        cls().update(params, {"w": backend.asarray(g)})
        np.testing.assert_allclose(backend.to_numpy(params["w"]), ref, rtol=1e-12)


@pytest.mark.parametrize("name", ["SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"])
def test_network_params_stay_the_layers_arrays(backend, rng, name):
    """The book relies on in-place updates: net.params['W1'] *is* Affine1.W, before and after."""
    net = xpnet.MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, backend=backend, seed=1)
    opt = get_optimizer(name, lr=0.01)
    x = rng.standard_normal((8, 6))
    t = rng.integers(0, 3, 8)
    before = {k: backend.to_numpy(v).copy() for k, v in net.params.items()}
    for _ in range(3):
        opt.update(net.params, net.gradient(x, t))
    for i in (1, 2, 3):
        assert net.params[f"W{i}"] is net.layers[f"Affine{i}"].W
        assert net.params[f"b{i}"] is net.layers[f"Affine{i}"].b
    for i in (1, 2):
        assert net.params[f"gamma{i}"] is net.layers[f"BatchNorm{i}"].gamma
        assert net.params[f"beta{i}"] is net.layers[f"BatchNorm{i}"].beta
    for k, v in net.params.items():
        assert_on_backend(backend, v, dtype="float32")
        assert not np.array_equal(backend.to_numpy(v), before[k]), f"{k} did not move"


# ------------------------------------------------------------------------------------------
# names and defaults
# ------------------------------------------------------------------------------------------

BOOK_DEFAULTS = {
    SGD: {"lr": 0.01},
    Momentum: {"lr": 0.01, "momentum": 0.9},
    Nesterov: {"lr": 0.01, "momentum": 0.9},
    AdaGrad: {"lr": 0.01},
    RMSprop: {"lr": 0.01, "decay_rate": 0.99},
    Adam: {"lr": 0.001, "beta1": 0.9, "beta2": 0.999},
}


@pytest.mark.parametrize("cls", list(BOOK_DEFAULTS), ids=lambda c: c.__name__)
def test_book_defaults(cls):
    sig = inspect.signature(cls)
    opt = cls()
    for name, value in BOOK_DEFAULTS[cls].items():
        assert sig.parameters[name].default == value
        assert getattr(opt, name) == value


@pytest.mark.parametrize("cls", [AdaGrad, RMSprop, Adam], ids=lambda c: c.__name__)
def test_book_eps(cls):
    assert inspect.signature(cls).parameters["eps"].default == 1e-7


@pytest.mark.parametrize("spelling", ["adam", "ADAM", "Adam", "aDaM"])
def test_get_optimizer_is_case_insensitive(spelling):
    opt = get_optimizer(spelling, lr=0.02)
    assert isinstance(opt, Adam)
    assert opt.lr == 0.02


def test_get_optimizer_all_names():
    for cls in BOOK_DEFAULTS:
        assert type(get_optimizer(cls.__name__.lower())) is cls
        assert type(get_optimizer(cls.__name__.upper(), lr=0.5)) is cls
    assert get_optimizer("momentum", lr=0.1, momentum=0.5).momentum == 0.5


def test_get_optimizer_unknown_name():
    with pytest.raises(ValueError) as info:
        get_optimizer("lbfgs")
    assert "lbfgs" in str(info.value)
    assert "Adam" in str(info.value) or "adam" in str(info.value)


def test_top_level_exports():
    for name in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam", "get_optimizer"):
        assert getattr(xpnet, name) is getattr(xpnet.optim, name)


@pytest.mark.parametrize("backend, case, fused", CASE_PATHS, indirect=["backend"])
def test_network_update_matches_torch(backend, rng, case, fused):
    """``optimizer.update(net.params, net.gradient(x, t))`` -- the path networks take (whole
    parameter buffers, fused kernels) -- against torch.optim fed the same gradients."""
    torch = pytest.importorskip("torch")
    name, cls, kwargs, hp = case
    # Adam is compared with a negligible eps, where a gradient that is zero up to rounding (the
    # bias in front of batch norm, a dead ReLU) takes full-size steps of rounding noise that
    # differ on the two sides: tanh without batch norm for it.
    arch = ({"activation": "tanh"} if name == "Adam" else {"use_batchnorm": True})
    net = xpnet.MultiLayerNetExtend(6, [5, 4], 3, weight_decay_lambda=0.05, dtype="float64",
                                    seed=2, backend=backend, **arch)
    opt = cls(**kwargs, fused=fused)
    keys = list(net.params)
    tparams = [torch.tensor(backend.to_numpy(net.params[k]), dtype=torch.float64,
                            requires_grad=True) for k in keys]
    topt = _torch_optimizer(torch, name, tparams, hp)
    x = rng.standard_normal((10, 6))
    t = rng.integers(0, 3, 10)
    for step in range(15):
        batch = slice(5 * (step % 2), 5 * (step % 2) + 5)
        grads = net.gradient(x[batch], t[batch])
        g_host = {k: backend.to_numpy(grads[k]).copy() for k in keys}
        opt.update(net.params, grads)
        for tp, k in zip(tparams, keys, strict=True):
            tp.grad = torch.from_numpy(g_host[k])
        topt.step()
        for tp, k in zip(tparams, keys, strict=True):
            assert np.all(np.isfinite(backend.to_numpy(net.params[k]))), k
            np.testing.assert_allclose(backend.to_numpy(net.params[k]), tp.detach().numpy(),
                                       rtol=1e-10, atol=1e-12, err_msg=f"{k} step {step}")
    for i in (1, 2, 3):
        assert net.params[f"W{i}"] is net.layers[f"Affine{i}"].W


@pytest.mark.parametrize("name, cls, kwargs, hp", CASES, ids=[c[0] for c in CASES])
def test_plain_dict_and_network_dict_take_the_same_steps(backend, rng, name, cls, kwargs, hp):
    """The same optimizer on a plain dict copy of the parameters and on net.params (float32)."""
    net = xpnet.MultiLayerNet(6, [5], 3, seed=3, backend=backend)
    plain = {k: backend.asarray(backend.to_numpy(v).copy()) for k, v in net.params.items()}
    opt_net, opt_plain = cls(**kwargs), cls(**kwargs)
    x = rng.standard_normal((8, 6))
    t = rng.integers(0, 3, 8)
    for _ in range(10):
        grads = net.gradient(x, t)
        copies = {k: backend.asarray(backend.to_numpy(g).copy()) for k, g in grads.items()}
        opt_net.update(net.params, grads)
        opt_plain.update(plain, copies)
    for k in plain:
        assert_on_backend(backend, net.params[k], dtype="float32")
        assert np.all(np.isfinite(backend.to_numpy(net.params[k]))), k
        np.testing.assert_allclose(backend.to_numpy(net.params[k]), backend.to_numpy(plain[k]),
                                   rtol=1e-5, atol=1e-6, err_msg=k)
