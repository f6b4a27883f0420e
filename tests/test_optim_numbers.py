"""Optimizers on parameters that are numbers (Python floats, NumPy scalars), as in the book's
ch06/optimizer_compare_naive.py, and on 0-d/1-d arrays of every backend: the paths on the book's
f(x, y) = x**2/20 + y**2 are those of the book's code (float64 transcription) to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest

import book_reference as book
from conftest import assert_on_backend
from xpnet.optim import OPTIMIZERS

NAMES = list(book.OPTIMIZERS)


def _path(opt, params, steps=30):
    xs, ys = [], []
    for _ in range(steps):
        xs.append(params["x"])
        ys.append(params["y"])
        gx, gy = book.df(params["x"], params["y"])
        opt.update(params, {"x": gx, "y": gy})
    return xs, ys


@pytest.mark.parametrize("name", NAMES)
def test_python_floats_follow_the_books_path(name):
    opt = OPTIMIZERS[name](lr=book.PATH_LR[name])
    params = {"x": -7.0, "y": 2.0}
    xs, ys = _path(opt, params)
    bx, by = book.path(name)
    np.testing.assert_allclose(xs, bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ys, by, rtol=0, atol=1e-12)
    assert all(type(v) is float for v in xs + ys)
    assert len(set(xs)) == 30  # each step rebinds: the history holds 30 values


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kind", [int, np.float64, np.float32, np.int64],
                         ids=["int", "np.float64", "np.float32", "np.int64"])
def test_number_kinds(name, kind):
    """The new value has the type the book's arithmetic gives (ints become floats)."""
    opt = OPTIMIZERS[name](lr=0.1)
    params = {"x": kind(-7), "y": kind(2)}
    opt.update(params, {"x": kind(-1), "y": 0.5})
    want = {int: float, np.int64: np.float64}.get(kind, kind)
    assert type(params["x"]) is want and type(params["y"]) is want
    ref = book.run(name, {"x": -7.0, "y": 2.0}, 0.1)
    ref.update({"x": -1.0, "y": 0.5})
    tol = 1e-5 if kind is np.float32 else 1e-14
    assert abs(float(params["x"]) - float(ref.params["x"])) <= tol
    assert abs(float(params["y"]) - float(ref.params["y"])) <= tol


@pytest.mark.parametrize("name", NAMES)
def test_arrays_of_every_backend_follow_the_books_path(backend, name):
    """The same path with 0-d float64 arrays of the backend (updated in place) and with one
    array holding (x, y)."""
    xp = backend.xp
    opt = OPTIMIZERS[name](lr=book.PATH_LR[name])
    params = {"x": backend.asarray(-7.0, dtype="float64"), "y": backend.asarray(2.0,
                                                                                dtype="float64")}
    ids = {k: id(v) for k, v in params.items()}
    xs, ys = [], []
    for _ in range(30):
        xs.append(float(backend.to_numpy(params["x"])))
        ys.append(float(backend.to_numpy(params["y"])))
        gx, gy = book.df(params["x"], params["y"])
        opt.update(params, {"x": gx, "y": gy})
    assert {k: id(v) for k, v in params.items()} == ids  # in place
    assert_on_backend(backend, params["x"], dtype="float64", shape=())
    bx, by = book.path(name)
    np.testing.assert_allclose(xs, bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ys, by, rtol=0, atol=1e-12)

    opt = OPTIMIZERS[name](lr=book.PATH_LR[name])
    p = {"xy": backend.asarray([-7.0, 2.0], dtype="float64")}
    scale = backend.asarray([0.1, 2.0], dtype="float64")
    pts = []
    for _ in range(30):
        pts.append(backend.to_numpy(p["xy"]).copy())
        opt.update(p, {"xy": scale * p["xy"]})
    pts = np.array(pts)
    np.testing.assert_allclose(pts[:, 0], bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pts[:, 1], by, rtol=0, atol=1e-12)
    assert xp is backend.xp


@pytest.mark.parametrize("name", NAMES)
def test_numbers_and_arrays_in_one_dict(backend, rng, name):
    opt = OPTIMIZERS[name](lr=0.05)
    w_host = rng.standard_normal(3)
    params = {"w": backend.asarray(w_host, dtype="float64"), "s": 1.5}
    w_id = id(params["w"])
    ref = book.run(name, {"w": w_host, "s": 1.5}, 0.05)
    for _ in range(5):
        g = rng.standard_normal(3)
        opt.update(params, {"w": backend.asarray(g, dtype="float64"), "s": 0.3})
        ref.update({"w": g, "s": 0.3})
    assert id(params["w"]) == w_id and type(params["s"]) is float
    np.testing.assert_allclose(backend.to_numpy(params["w"]), ref.params["w"], rtol=0,
                               atol=1e-12)
    assert abs(params["s"] - float(ref.params["s"])) < 1e-12


def test_a_device_scalar_gradient_for_a_number(backend):
    from xpnet.optim import Momentum

    params = {"x": 3.0}
    opt = Momentum(lr=0.1)
    opt.update(params, {"x": backend.asarray(2.0, dtype="float64")})
    assert type(params["x"]) is float and params["x"] == 3.0 - 0.1 * 2.0
    assert opt.v["x"] == -0.1 * 2.0


@pytest.mark.parametrize("name", NAMES)
def test_bad_input_raises_before_any_change(name):
    opt = OPTIMIZERS[name](lr=0.1)
    params = {"a": 1.0, "b": 2.0}
    opt.update(params, {"a": 1.0, "b": 1.0})
    before_params = dict(params)
    before_state = {k: dict(v) for k, v in opt.state.items()}
    with pytest.raises(TypeError, match="grads\\['b'\\]"):
        opt.update(params, {"a": 1.0, "b": "steep"})
    with pytest.raises(TypeError, match="bool"):
        opt.update({"a": 1.0, "b": True}, {"a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="grads\\['b'\\] has shape"):
        opt.update(params, {"a": 1.0, "b": np.ones(2)})
    assert params == before_params
    assert {k: dict(v) for k, v in opt.state.items()} == before_state
    if opt.state_names:  # state built for a number belongs to that number's shape
        with pytest.raises(ValueError, match="one network"):
            opt.update({"a": np.ones(2), "b": 2.0}, {"a": np.ones(2), "b": 1.0})


@pytest.mark.parametrize("name", ["Momentum", "AdaGrad", "Adam"])
def test_a_number_that_becomes_a_0d_array_keeps_its_state(backend, name):
    """Steps on a number, then on a 0-d array holding its value: the book's path goes on."""
    opt = OPTIMIZERS[name](lr=book.PATH_LR[name])
    params = {"x": -7.0, "y": 2.0}
    xs, ys = _path(opt, params, steps=10)
    params = {k: backend.asarray(v, dtype="float64") for k, v in params.items()}
    for _ in range(20):
        xs.append(float(backend.to_numpy(params["x"])))
        ys.append(float(backend.to_numpy(params["y"])))
        gx, gy = book.df(params["x"], params["y"])
        opt.update(params, {"x": gx, "y": gy})
    bx, by = book.path(name)
    np.testing.assert_allclose(xs, bx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ys, by, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls_name, oracle, hp", [
    ("Adam", "torch_adam", {"lr": 0.3, "eps": 1e-8}),
    ("AdamW", "torch_adamw", {"lr": 0.3, "eps": 1e-8, "weight_decay": 0.1}),
])
def test_torch_style_adam_on_numbers(backend, cls_name, oracle, hp):
    """Adam(eps_style='torch') and AdamW step numbers as they step arrays: the documented
    torch.optim update (tests/oracles.py), on numbers and on the backend's 0-d arrays."""
    import oracles
    import xpnet.optim as optim

    extra = {"eps_style": "torch"} if cls_name == "Adam" else {}
    ref = oracles.OptimizerRun(getattr(oracles, oracle), {"x": -7.0, "y": 2.0}, **hp)
    numbers_ = {"x": -7.0, "y": 2.0}
    arrays = {k: backend.asarray(v, dtype="float64") for k, v in numbers_.items()}
    o_num = getattr(optim, cls_name)(**hp, **extra)
    o_arr = getattr(optim, cls_name)(**hp, **extra)
    for _ in range(30):
        gx, gy = book.df(float(ref.params["x"]), float(ref.params["y"]))
        ref.update({"x": gx, "y": gy})
        o_num.update(numbers_, dict(zip("xy", book.df(numbers_["x"], numbers_["y"]),
                                         strict=True)))
        ax, ay = (float(backend.to_numpy(arrays[k])) for k in "xy")
        o_arr.update(arrays, dict(zip("xy", book.df(ax, ay), strict=True)))
        for k in "xy":
            assert abs(numbers_[k] - float(ref.params[k])) < 1e-12
            assert abs(float(backend.to_numpy(arrays[k])) - float(ref.params[k])) < 1e-12
