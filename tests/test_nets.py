"""xpnet.nets: gradients (backprop vs numerical, and vs an independent NumPy model), inputs,
outputs, and the book's training loop on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from conftest import assert_close, assert_on_backend
from xpnet import MultiLayerNet, MultiLayerNetExtend

# ------------------------------------------------------------------------------------------
# an independent NumPy model of the book's networks (float64)
# ------------------------------------------------------------------------------------------

_ACT = {
    "relu": lambda a: np.maximum(a, 0.0),
    "sigmoid": lambda a: 1.0 / (1.0 + np.exp(-a)),
    "tanh": np.tanh,
}


def numpy_loss(params, x, t, n_hidden, activation="relu", lam=0.0, batchnorm=False,
               delta=1e-7):
    """The book's loss, ``train_flg=True``, dropout off: cross entropy + 0.5*lam*sum(W**2).

    ``delta`` is the book's ``1e-7`` inside the log; 0 gives the loss whose exact gradient
    backprop computes (``(y - t) / N`` at the output).
    """
    h = np.asarray(x, dtype=np.float64)
    for i in range(1, n_hidden + 1):
        h = h @ params[f"W{i}"] + params[f"b{i}"]
        if batchnorm:
            mu = h.mean(axis=0)
            var = h.var(axis=0)
            h = params[f"gamma{i}"] * (h - mu) / np.sqrt(var + 1e-6) + params[f"beta{i}"]
        h = _ACT[activation](h)
    last = n_hidden + 1
    z = h @ params[f"W{last}"] + params[f"b{last}"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    y = e / e.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(y[np.arange(len(t)), t] + delta))
    return loss + 0.5 * lam * sum(np.sum(params[f"W{i}"] ** 2) for i in range(1, last + 1))


def numpy_numerical_gradient(f, params, h=1e-6):
    grads = {}
    for key, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + h
            fp = f()
            p[idx] = old - h
            fm = f()
            p[idx] = old
            g[idx] = (fp - fm) / (2 * h)
        grads[key] = g
    return grads


def _data(rng, n=6, d=5, c=3):
    return rng.standard_normal((n, d)), rng.integers(0, c, n)


def _perturb_params(be, net, rng, scale=0.1):
    """Move every parameter (in place) off its initial value: non-zero biases keep ReLU away
    from its kink, gamma != 1 and beta != 0 exercise their gradients."""
    for p in net.params.values():
        noise = scale * rng.standard_normal(tuple(p.shape))
        p += be.asarray(noise, dtype=p.dtype)


def _host_params(be, net):
    return {k: be.to_numpy(v).astype(np.float64).copy() for k, v in net.params.items()}


# ------------------------------------------------------------------------------------------
# gradients
# ------------------------------------------------------------------------------------------


NET_CASES = [
    # (class, kwargs, batchnorm in the NumPy model)
    (MultiLayerNet, {"activation": "relu", "weight_decay_lambda": 0.1}, False),
    (MultiLayerNet, {"activation": "sigmoid", "weight_init_std": "xavier"}, False),
    (MultiLayerNet, {"activation": "tanh", "weight_decay_lambda": 0.05}, False),
    (MultiLayerNetExtend, {"use_batchnorm": True, "weight_decay_lambda": 0.1}, True),
    (MultiLayerNetExtend, {"use_batchnorm": True, "activation": "tanh",
                           "weight_decay_lambda": 0.2, "weight_init_std": 0.5}, True),
]
NET_IDS = ["mlp-relu-wd", "mlp-sigmoid", "mlp-tanh-wd", "ext-bn-relu-wd", "ext-bn-tanh-wd"]


@pytest.mark.parametrize("cls, kwargs, bn", NET_CASES, ids=NET_IDS)
def test_gradient_matches_independent_numpy_model(backend, rng, cls, kwargs, bn):
    """Backprop == central differences of a NumPy transcription of the book's loss."""
    net = cls(5, [6, 4], 3, dtype="float64", seed=11, backend=backend, **kwargs)
    _perturb_params(backend, net, rng)
    x, t = _data(rng)
    params = _host_params(backend, net)
    lam = kwargs.get("weight_decay_lambda", 0.0)
    act = kwargs.get("activation", "relu")

    def f(delta=1e-7):
        return numpy_loss(params, x, t, 2, act, lam, bn, delta)

    loss = net.loss(x, t, train_flg=True)
    assert_on_backend(backend, loss, dtype="float64", shape=())
    assert_close(backend, loss, f(), rtol=1e-10)

    grads = net.gradient(x, t)
    assert set(grads) == set(net.params)
    expected = numpy_numerical_gradient(lambda: f(delta=0.0), params)
    for key, g in grads.items():
        assert_on_backend(backend, g, dtype="float64", shape=net.params[key].shape)
        np.testing.assert_allclose(backend.to_numpy(g), expected[key], rtol=1e-6, atol=1e-8,
                                   err_msg=key)


@pytest.mark.parametrize("cls, kwargs, bn", [NET_CASES[0], NET_CASES[3]],
                         ids=[NET_IDS[0], NET_IDS[3]])
def test_gradient_matches_numerical_gradient(backend, rng, cls, kwargs, bn):
    """The book's gradient check: ``gradient`` vs the network's own ``numerical_gradient``."""
    net = cls(5, [6, 4], 3, dtype="float64", seed=12, backend=backend, **kwargs)
    _perturb_params(backend, net, rng)
    x, t = _data(rng)
    before = _host_params(backend, net)
    num = net.numerical_gradient(x, t)
    grad = net.gradient(x, t)
    assert set(num) == set(grad) == set(net.params)
    for key in grad:
        assert_on_backend(backend, num[key], dtype="float64", shape=net.params[key].shape)
        np.testing.assert_allclose(backend.to_numpy(grad[key]), backend.to_numpy(num[key]),
                                   rtol=1e-5, atol=1e-7, err_msg=key)
        # numerical_gradient puts every parameter back as it was
        np.testing.assert_array_equal(backend.to_numpy(net.params[key]), before[key])
    for i in (1, 2, 3):
        assert net.params[f"W{i}"] is net.layers[f"Affine{i}"].W


def test_weight_decay_is_on_W_only(backend, rng):
    """Weight decay adds lam*W to dW and nothing to db, dgamma, dbeta."""
    x, t = _data(rng)
    kw = dict(use_batchnorm=True, dtype="float64", seed=4, backend=backend)
    plain = MultiLayerNetExtend(5, [6, 4], 3, **kw)
    decayed = MultiLayerNetExtend(5, [6, 4], 3, weight_decay_lambda=0.3, **kw)
    g0, g1 = plain.gradient(x, t), decayed.gradient(x, t)
    for key in g0:
        diff = backend.to_numpy(g1[key]) - backend.to_numpy(g0[key])
        if key.startswith("W"):
            np.testing.assert_allclose(diff, 0.3 * backend.to_numpy(plain.params[key]),
                                       rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(diff, 0.0, atol=1e-12, err_msg=key)
    w2 = sum(np.sum(backend.to_numpy(plain.params[f"W{i}"]) ** 2) for i in (1, 2, 3))
    dl = float(backend.to_numpy(decayed.loss(x, t))) - float(backend.to_numpy(plain.loss(x, t)))
    assert dl == pytest.approx(0.5 * 0.3 * w2, rel=1e-9)


# ------------------------------------------------------------------------------------------
# inputs and outputs
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_inputs_numpy_lists_and_backend_arrays(backend, rng, dtype):
    net = MultiLayerNetExtend(4, [5], 3, use_batchnorm=True, dtype=dtype, seed=0,
                              backend=backend)
    x = rng.standard_normal((6, 4))  # float64 on the host, whatever the network's dtype
    t = rng.integers(0, 3, 6)
    t_hot = np.eye(3)[t]
    ref = backend.to_numpy(net.predict(x))
    for xin in (x, x.tolist(), x.astype(np.float32), backend.asarray(x)):
        y = net.predict(xin)
        assert_on_backend(backend, y, dtype=dtype, shape=(6, 3))
        assert_close(backend, y, ref, dtype=dtype, rtol=1e-5, atol=1e-6)

    losses = []
    for tin in (t, t.tolist(), t_hot, t_hot.tolist(), backend.asarray(t)):
        loss = net.loss(x.tolist(), tin)
        assert_on_backend(backend, loss, dtype=dtype, shape=())
        losses.append(float(backend.to_numpy(loss)))
    np.testing.assert_allclose(losses, losses[0], rtol=1e-5)

    expected_acc = float(np.mean(ref.argmax(axis=1) == t))
    for tin in (t, t.tolist(), t_hot, backend.asarray(t)):
        acc = net.accuracy(x.tolist(), tin)
        assert type(acc) is float
        assert acc == pytest.approx(expected_acc)

    grads = net.gradient(x, t.tolist())
    for key, g in grads.items():
        assert_on_backend(backend, g, dtype=dtype, shape=net.params[key].shape)


def test_predict_eval_is_deterministic_with_dropout(backend, rng):
    net = MultiLayerNetExtend(4, [8, 8], 3, use_dropout=True, dropout_ration=0.5,
                              use_batchnorm=True, seed=1, backend=backend)
    x = rng.standard_normal((5, 4))
    net.predict(x, train_flg=True)  # running statistics of batch norm exist from here on
    a = backend.to_numpy(net.predict(x, train_flg=False)).copy()
    b = backend.to_numpy(net.predict(x, train_flg=False))
    np.testing.assert_array_equal(a, b)
    c = backend.to_numpy(net.predict(x, train_flg=True)).copy()
    d = backend.to_numpy(net.predict(x, train_flg=True))
    assert not np.array_equal(c, d)  # fresh dropout masks


@pytest.mark.parametrize("kw", ["dropout_ration", "dropout_ratio"])
def test_both_dropout_spellings(kw):
    net = MultiLayerNetExtend(4, [5, 5], 2, use_dropout=True, **{kw: 0.3})
    for i in (1, 2):
        assert net.layers[f"Dropout{i}"].dropout_ratio == pytest.approx(0.3)
    default = MultiLayerNetExtend(4, [5], 2, use_dropout=True)
    assert default.layers["Dropout1"].dropout_ratio == pytest.approx(0.5)


def test_book_layer_and_param_names():
    net = MultiLayerNetExtend(4, [5, 6], 2, use_batchnorm=True, use_dropout=True)
    assert set(net.params) == {"W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2",
                               "W3", "b3"}
    assert list(net.layers) == [
        "Affine1", "BatchNorm1", "Activation_function1", "Dropout1",
        "Affine2", "BatchNorm2", "Activation_function2", "Dropout2", "Affine3",
    ]
    plain = MultiLayerNet(4, [5], 2)
    assert set(plain.params) == {"W1", "b1", "W2", "b2"}
    assert plain.params["W1"].shape == (4, 5) and plain.params["W2"].shape == (5, 2)


def test_top_level_exports():
    assert xpnet.MultiLayerNet is MultiLayerNet
    assert xpnet.MultiLayerNetExtend is MultiLayerNetExtend


# ------------------------------------------------------------------------------------------
# the book's loop trains on every backend
# ------------------------------------------------------------------------------------------


def _blobs(rng, n_per=60, d=10, c=3):
    centers = 2.0 * rng.standard_normal((c, d))
    x = np.concatenate([centers[k] + rng.standard_normal((n_per, d)) for k in range(c)])
    t = np.repeat(np.arange(c), n_per)
    order = rng.permutation(len(t))
    return x[order].astype(np.float32), t[order]


@pytest.mark.parametrize(
    "make, opt",
    [
        (lambda be: MultiLayerNet(10, [16, 16], 3, seed=0, backend=be),
         lambda: xpnet.SGD(lr=0.1)),
        (lambda be: MultiLayerNetExtend(10, [16, 16], 3, use_batchnorm=True, use_dropout=True,
                                        dropout_ration=0.1, weight_decay_lambda=1e-3, seed=0,
                                        backend=be),
         lambda: xpnet.Adam(lr=0.01)),
    ],
    ids=["mlp-sgd", "ext-bn-dropout-adam"],
)
def test_book_loop_learns(backend, rng, make, opt):
    x, t = _blobs(rng)
    net = make(backend)
    optimizer = opt()
    first = float(backend.to_numpy(net.loss(x, t)))
    for i in range(150):
        batch = rng.choice(len(t), 32, replace=False) if i % 2 else slice(None)
        grads = net.gradient(x[batch], t[batch])
        optimizer.update(net.params, grads)
    last = float(backend.to_numpy(net.loss(x, t)))
    assert last < 0.3 * first, (first, last)
    assert net.accuracy(x, t) > 0.9
    for v in net.params.values():
        assert_on_backend(backend, v, dtype="float32")


def test_float32_network_never_makes_float64_arrays(rng):
    """array_api_strict's 'no_float64' device rejects float64: constants must be Python scalars
    and nothing may upcast a float32 network."""
    pytest.importorskip("array_api_strict")
    be = xpnet.get_backend("array_api_strict", device="no_float64")
    x, t = _blobs(rng, n_per=20)
    net = MultiLayerNetExtend(10, [8, 8], 3, use_batchnorm=True, use_dropout=True,
                              weight_decay_lambda=0.01, seed=0, backend=be)
    for name in ("SGD", "Momentum", "Nesterov", "AdaGrad", "RMSprop", "Adam"):
        optimizer = xpnet.get_optimizer(name)
        for _ in range(2):
            optimizer.update(net.params, net.gradient(x, t))
    assert_on_backend(be, net.loss(x, t), dtype="float32", shape=())
    assert type(net.accuracy(x, t)) is float
    trainer = xpnet.Trainer(net, x, t, x, t, epochs=1, mini_batch_size=20, verbose=False)
    trainer.train()
    assert len(trainer.train_loss_list) == 3


def test_same_seed_same_training_with_dropout(backend, rng):
    """Seeded dropout masks: two networks with one seed follow the same trajectory."""
    x, t = _blobs(rng, n_per=10)
    nets = [MultiLayerNetExtend(10, [8], 3, use_dropout=True, dropout_ratio=0.3, seed=9,
                                backend=backend) for _ in range(2)]
    opts = [xpnet.SGD(lr=0.1) for _ in nets]
    for _ in range(3):
        for net, opt in zip(nets, opts, strict=True):
            opt.update(net.params, net.gradient(x, t))
    for key in nets[0].params:
        np.testing.assert_array_equal(backend.to_numpy(nets[0].params[key]),
                                      backend.to_numpy(nets[1].params[key]))


def test_accuracy_in_batches_that_do_not_divide_n(backend, rng):
    net = MultiLayerNet(5, [6], 3, seed=0, backend=backend)
    x, t = _data(rng, n=10)
    whole = net.accuracy(x, t)
    expected = float(np.mean(backend.to_numpy(net.predict(x)).argmax(axis=1) == t))
    assert whole == pytest.approx(expected)
    for batch_size in (1, 3, 4, 10, 25):
        assert net.accuracy(x, t, batch_size=batch_size) == pytest.approx(expected), batch_size


def test_four_dimensional_input_is_flattened(backend, rng):
    """Affine flattens (N, C, H, W) as in the book, so a net takes image-shaped batches."""
    net = MultiLayerNetExtend(12, [5], 3, use_batchnorm=True, seed=0, dtype="float64",
                              backend=backend)
    x = rng.standard_normal((4, 3, 2, 2))
    t = rng.integers(0, 3, 4)
    flat = x.reshape(4, -1)
    assert_close(backend, net.predict(x), backend.to_numpy(net.predict(flat)))
    g4 = {k: backend.to_numpy(v).copy() for k, v in net.gradient(x, t).items()}
    g2 = {k: backend.to_numpy(v).copy() for k, v in net.gradient(flat, t).items()}
    for k in g2:
        np.testing.assert_allclose(g4[k], g2[k], rtol=1e-12, atol=1e-14, err_msg=k)


def test_layer_dW_stays_the_data_gradient_with_weight_decay(backend, rng):
    """As in the book, ``layers['AffineK'].dW`` is the layer's own gradient; the decay term is
    added only to what ``gradient`` returns."""
    x, t = _data(rng)
    kw = dict(dtype="float64", seed=6, backend=backend)
    plain = MultiLayerNet(5, [6], 3, **kw)
    decayed = MultiLayerNet(5, [6], 3, weight_decay_lambda=0.5, **kw)
    g_plain = plain.gradient(x, t)
    g_decayed = decayed.gradient(x, t)
    for i in (1, 2):
        data_grad = backend.to_numpy(g_plain[f"W{i}"])
        np.testing.assert_allclose(backend.to_numpy(decayed.layers[f"Affine{i}"].dW), data_grad,
                                   rtol=1e-12, atol=1e-14, err_msg=f"Affine{i}.dW")
        np.testing.assert_allclose(backend.to_numpy(g_decayed[f"W{i}"]),
                                   data_grad + 0.5 * backend.to_numpy(decayed.params[f"W{i}"]),
                                   rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_network_calls_leave_the_callers_arrays_alone(backend, rng, dtype):
    """An input already on the backend in the network's dtype is used without a copy, so no
    layer may write into it -- in training or inference."""
    net = MultiLayerNetExtend(4, [6, 5], 3, use_batchnorm=True, use_dropout=True,
                              dropout_ratio=0.2, weight_decay_lambda=0.1, seed=2, dtype=dtype,
                              backend=backend)
    x_h = rng.standard_normal((7, 4)).astype(dtype)
    t_h = rng.integers(0, 3, 7)
    x, t = backend.asarray(x_h.copy()), backend.asarray(t_h.copy())
    net.gradient(x, t)
    net.predict(x, train_flg=False)
    net.predict(x, train_flg=True)
    net.loss(x, t)
    net.accuracy(x, t)
    net.accuracy(x, t, batch_size=3)
    np.testing.assert_array_equal(backend.to_numpy(x), x_h)
    np.testing.assert_array_equal(backend.to_numpy(t), t_h)


def test_inference_between_gradient_and_update_changes_nothing(backend, rng):
    """The Trainer's order -- gradient, then accuracy (inference), then update -- must give the
    same step as gradient then update."""
    x, t = _data(rng, n=8, d=4)
    kw = dict(use_batchnorm=True, use_dropout=False, seed=3, dtype="float64", backend=backend)
    a = MultiLayerNetExtend(4, [6, 5], 3, **kw)
    b = MultiLayerNetExtend(4, [6, 5], 3, **kw)
    opt_a, opt_b = xpnet.SGD(lr=0.1), xpnet.SGD(lr=0.1)
    for _ in range(3):
        grads = a.gradient(x, t)
        a.accuracy(x, t)
        a.predict(x[:3], train_flg=False)
        opt_a.update(a.params, grads)
        opt_b.update(b.params, b.gradient(x, t))
    for key in a.params:
        np.testing.assert_allclose(backend.to_numpy(a.params[key]),
                                   backend.to_numpy(b.params[key]), rtol=1e-12, atol=1e-14,
                                   err_msg=key)


def numpy_predict_eval(net, be, x, activation, batchnorm, dropout_ratio):
    """Inference of the book's MultiLayerNetExtend, from the network's parameters and running
    statistics, in float64 NumPy."""
    p = {k: be.to_numpy(v).astype(np.float64) for k, v in net.params.items()}
    h = np.asarray(x, dtype=np.float64)
    n_hidden = len(net.hidden_size_list)
    for i in range(1, n_hidden + 1):
        h = h @ p[f"W{i}"] + p[f"b{i}"]
        if batchnorm:
            bn = net.layers[f"BatchNorm{i}"]
            rm = be.to_numpy(bn.running_mean).astype(np.float64)
            rv = be.to_numpy(bn.running_var).astype(np.float64)
            h = p[f"gamma{i}"] * (h - rm) / np.sqrt(rv + 1e-6) + p[f"beta{i}"]
        h = _ACT[activation](h)
        if dropout_ratio is not None:
            h = h * (1.0 - dropout_ratio)
    last = n_hidden + 1
    return h @ p[f"W{last}"] + p[f"b{last}"]


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("batchnorm, dropout", [(True, True), (True, False), (False, True)],
                         ids=["bn-dropout", "bn", "dropout"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_inference_matches_the_books_formula(backend, rng, activation, batchnorm, dropout,
                                             dtype):
    """predict(train_flg=False): affine -> BN with running statistics -> activation -> scale by
    1 - dropout_ratio, layer after layer (whatever fusion the implementation does)."""
    ratio = 0.3
    net = MultiLayerNetExtend(5, [7, 6], 3, activation=activation, use_batchnorm=batchnorm,
                              use_dropout=dropout, dropout_ratio=ratio, seed=8, dtype=dtype,
                              backend=backend)
    _perturb_params(backend, net, rng, scale=0.3)  # beta != 0 and gamma != 1 matter here
    opt = xpnet.SGD(lr=0.05)
    for _ in range(3):  # running statistics move away from zero
        xb, tb = _data(rng, n=8, d=5)
        opt.update(net.params, net.gradient(xb, tb))
    x, _ = _data(rng, n=6, d=5)
    got = net.predict(x, train_flg=False)
    assert_on_backend(backend, got, dtype=dtype, shape=(6, 3))
    want = numpy_predict_eval(net, backend, x, activation, batchnorm,
                              ratio if dropout else None)
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(backend.to_numpy(got), want, **tol)
