"""Fast paths against the portable reference: fused optimizer kernels and flat parameter buffers.

Every fused kernel chosen in ``backend.py`` must give the numbers of the portable code in
``optim.py``; flat parameter/gradient buffers must behave exactly like separate arrays.
"""

from __future__ import annotations

import numpy as np
import pytest

import oracles as O
import xpnet
from conftest import (
    OPTIMIZER_KERNEL_SLOTS,
    assert_close,
    assert_on_backend,
    has_kernel,
    kernel_specs,
)
from xpnet.backend import Kernels, kernels_for
from xpnet.backend._numpy import NumpyKernels
from xpnet.params import Layout, ParamDict

OPTIMIZERS = {
    "SGD": {"lr": 0.05},
    "Momentum": {"lr": 0.05, "momentum": 0.8},
    "Nesterov": {"lr": 0.05, "momentum": 0.8},
    "AdaGrad": {"lr": 0.05},
    "RMSprop": {"lr": 0.01, "decay_rate": 0.9},
    "Adam": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95},
    "AdamW": {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "weight_decay": 0.5},
}


def _run(be, name, *, fused, flat, steps=15, seed=0, kernels=None, size=None):
    """Apply ``steps`` updates with fixed random gradients; return host copies of params.
    ``size`` adds a parameter ``big`` of that many elements."""
    rng = np.random.default_rng(seed)
    shapes = {"W1": (7, 5), "b1": (5,), "W2": (5, 3), "b2": (3,)}
    if size:
        shapes["big"] = (size,)
    layout = Layout(shapes)
    xp = be.xp
    host = rng.standard_normal(layout.size)
    params = ParamDict(xp, be.asarray(host, dtype="float64"), layout)
    grads = ParamDict(xp, be.asarray(np.zeros(layout.size), dtype="float64"), layout)
    opt = xpnet.get_optimizer(name, fused=fused, **OPTIMIZERS[name])
    if kernels is not None:
        opt._ns(params.flat)
        opt._kernels = kernels
    for _ in range(steps):
        g = rng.standard_normal(layout.size) + 0.5  # keep |g| away from 0: eps-insensitive
        grads.flat[...] = be.asarray(g, dtype="float64")
        opt.update(params, grads if flat else dict(grads))
        if kernels is not None:
            opt._kernels = kernels
    return {k: be.to_numpy(v).copy() for k, v in params.items()}, opt


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_flat_update_equals_per_key_update(backend, name):
    flat, _ = _run(backend, name, fused=False, flat=True)
    per_key, _ = _run(backend, name, fused=False, flat=False)
    for k in flat:
        np.testing.assert_array_equal(flat[k], per_key[k], err_msg=k)


@pytest.mark.parametrize(
    "backend, name",
    kernel_specs(list(OPTIMIZERS), lambda n: (OPTIMIZER_KERNEL_SLOTS[n],)),
    indirect=["backend"],
)
def test_fused_kernel_equals_portable(backend, name):
    """Only backends with a fused kernel for the optimizer (elsewhere ``fused=True`` runs the
    portable code: both sides would be the same code; test_oracles covers those)."""
    fused, _ = _run(backend, name, fused=True, flat=True)
    portable, _ = _run(backend, name, fused=False, flat=True)
    for k in fused:
        np.testing.assert_allclose(fused[k], portable[k], rtol=1e-12, atol=1e-12, err_msg=k)


@pytest.mark.parametrize("block", [7, 16, 1 << 20])
@pytest.mark.parametrize("name", ["Momentum", "AdaGrad", "RMSprop", "Adam", "AdamW"])
def test_blocked_numpy_kernels_equal_portable(name, block):
    """Blocks smaller than the buffer, with a remainder, and one block for everything."""
    be = xpnet.get_backend("numpy")
    kernels = NumpyKernels()
    kernels.block = block
    got, opt = _run(be, name, fused=True, flat=True, kernels=kernels)
    assert opt._kernels is kernels
    want, _ = _run(be, name, fused=False, flat=True)
    for k in got:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12, err_msg=k)


def test_numpy_kernels_keep_float32_and_match_portable():
    be = xpnet.get_backend("numpy")
    assert isinstance(kernels_for("numpy"), NumpyKernels)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 12)).astype(np.float32)
    t = rng.integers(0, 4, 40)
    results = []
    for fused in (True, False):
        # (no batch norm: the bias before a batch norm has a zero gradient up to rounding, and
        # Adam turns rounding noise into full-size steps, so the two paths would diverge there)
        net = xpnet.MultiLayerNetExtend(12, [10, 10], 4, seed=3, backend=be)
        opt = xpnet.Adam(lr=0.01, fused=fused)
        for _ in range(10):
            opt.update(net.params, net.gradient(x, t))
        assert net.params["W1"].dtype == np.float32
        assert opt.m["W1"].dtype == np.float32 and opt.v["b2"].dtype == np.float32
        results.append(be.to_numpy(net.params.flat).copy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)


def test_optimizer_state_is_flat_and_keyed(backend):
    params, opt = _run(backend, "Adam", fused=True, flat=True, steps=3)
    m = opt.m
    # the book-visible state has the parameters' keys and nothing else (no whole-buffer key)
    assert list(m) == list(params) and list(opt.v) == list(params)
    # per-key state entries are views of one flat state buffer: a write to the buffer shows
    assert_on_backend(backend, m["W1"], shape=(7, 5))
    before = backend.to_numpy(m["b1"]).copy()
    flat_m = opt._flat_state["m"]
    flat_m[35:40] = flat_m[35:40] + 1.0  # b1 follows W1's 7 * 5 values
    np.testing.assert_array_equal(backend.to_numpy(m["b1"]), before + 1.0)


def test_per_key_state_carries_over_to_flat(backend):
    """Per-key updates first, then whole-buffer updates: same result as per-key throughout."""
    rng = np.random.default_rng(5)
    layout = Layout({"a": (4,), "b": (2, 3)})
    xp = backend.xp
    outs = []
    for switch in (True, False):
        p = ParamDict(xp, backend.asarray(np.arange(10.0), dtype="float64"), layout)
        g = ParamDict(xp, backend.asarray(np.zeros(10), dtype="float64"), layout)
        opt = xpnet.Adam(lr=0.1, fused=False)
        rng = np.random.default_rng(5)
        for step in range(6):
            g.flat[...] = backend.asarray(rng.standard_normal(10) + 1.0, dtype="float64")
            opt.update(p, g if (switch and step >= 3) else dict(g))
        outs.append(backend.to_numpy(p.flat).copy())
    np.testing.assert_array_equal(outs[0], outs[1])


def test_network_params_are_views_of_one_buffer(backend):
    net = xpnet.MultiLayerNetExtend(6, [5, 4], 3, use_batchnorm=True, backend=backend, seed=0)
    assert isinstance(net.params, ParamDict)
    assert net.params.flat_view() is net.params.flat
    assert net.params["W1"] is net.layers["Affine1"].W
    assert net.params["gamma2"] is net.layers["BatchNorm2"].gamma
    # a write through the dict reaches the buffer and the layer
    net.params["W2"][...] = 0.0
    w2 = slice(*net.params.layout.offsets["W2"])
    assert not np.any(backend.to_numpy(net.params.flat)[w2])
    assert not np.any(backend.to_numpy(net.layers["Affine2"].W))


def test_replacing_a_parameter_falls_back_to_per_key(backend):
    """A user who swaps an entry must not have the optimizer update the stale buffer."""
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    net = xpnet.MultiLayerNet(6, [5], 3, backend=backend, seed=0, dtype="float64")
    new_w = backend.asarray(np.ones((6, 5)), dtype="float64")
    net.params["W1"] = new_w
    net.layers["Affine1"].W = new_w
    assert net.params.flat_view() is None
    xpnet.SGD(lr=0.1).update(net.params, net.gradient(x, t))
    assert net.params["W1"] is new_w
    assert not np.allclose(backend.to_numpy(new_w), 1.0)  # updated in place


def test_gradient_buffer_matches_fresh_arrays(backend):
    """Gradients written into the flat buffer equal a network with separate arrays."""
    rng = np.random.default_rng(2)
    x, t = rng.standard_normal((9, 6)), rng.integers(0, 3, 9)
    kw = dict(use_batchnorm=True, weight_decay_lambda=0.05, backend=backend, seed=4,
              dtype="float64")
    net = xpnet.MultiLayerNetExtend(6, [5, 4], 3, **kw)
    grads = net.gradient(x, t)
    assert isinstance(grads, ParamDict)
    ref = xpnet.MultiLayerNetExtend(6, [5, 4], 3, **kw)
    ref._grads = None  # the separate-array path
    for layer in ref.layers.values():
        if hasattr(layer, "dW_out"):
            layer.dW_out = layer.db_out = None
    want = ref.gradient(x, t)
    assert not isinstance(want, ParamDict)
    for k in want:
        assert_close(backend, grads[k], backend.to_numpy(want[k]), err_msg=k)


def test_portable_kernels_are_all_none():
    k = Kernels()
    for name in ("matmul_into", "adam", "rmsprop", "adagrad", "momentum", "relu_", "relu_backward",
                 "col_dot"):
        assert getattr(k, name) is None
    assert kernels_for("array_api_strict").adam is None


@pytest.mark.parametrize(
    "kw",
    [
        dict(use_batchnorm=True, use_dropout=True, dropout_ratio=0.3),
        dict(use_dropout=True, dropout_ratio=0.4),
        dict(activation="tanh", use_batchnorm=True, use_dropout=True),
        dict(activation="sigmoid"),
        dict(activation="leaky_relu", use_batchnorm=True, use_dropout=True),
        dict(activation="prelu", use_dropout=True, dropout_ratio=0.25),
        dict(activation="elu", use_batchnorm=True, use_dropout=True),
        dict(activation="maxout", use_batchnorm=True, use_dropout=True),
        dict(normalization="layer", use_dropout=True),
        dict(use_batchnorm=True, use_dropout=True, inverted_dropout=True),
        dict(normalization="layer", activation="maxout"),
        dict(activation="prelu", use_dropout=True, inverted_dropout=True),
    ],
    ids=["bn-relu-dropout", "relu-dropout", "bn-tanh-dropout", "sigmoid", "bn-leaky-dropout",
         "prelu-dropout", "bn-elu-dropout", "maxout-bn-dropout", "layernorm-dropout",
         "bn-inverted-dropout", "layernorm-maxout", "prelu-inverted-dropout"],
)
@pytest.mark.parametrize("blocked", [False, True], ids=["one-block", "row-blocks"])
def test_inference_fast_path_equals_layer_by_layer(backend, kw, blocked):
    """predict(train_flg=False) folds batch norm and dropout scales into the affine maps and
    runs in row blocks; the plain layer loop is the oracle.  The caller's input must not be
    modified."""
    rng = np.random.default_rng(7)
    x, t = rng.standard_normal((30, 2, 3, 2)), rng.integers(0, 4, 30)  # 4-D input
    net = xpnet.MultiLayerNetExtend(12, [10, 8], 4, backend=backend, seed=1, dtype="float64",
                                    **kw)
    if blocked:
        net.EVAL_BLOCK_VALUES = 12 * 7  # blocks of 8 rows: 8, 8, 8, 6
    for _ in range(5):  # non-trivial running statistics
        xpnet.SGD(lr=0.1).update(net.params, net.gradient(x, t))
    xb = backend.asarray(x, dtype="float64")
    got = net.predict(xb)
    np.testing.assert_array_equal(backend.to_numpy(xb), x)
    want = net._x(x)
    for layer, takes_flag in net._train_layers:
        want = layer.forward(want, False) if takes_flag else layer.forward(want)
    assert_on_backend(backend, got, dtype="float64", shape=(30, 4))
    assert_close(backend, got, backend.to_numpy(want))



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_relu_backward_kernel_equals_where_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    dout = rng.standard_normal((37, 23)).astype(dtype)
    dout[0, :4] = [np.inf, -np.inf, np.nan, -0.0]
    mask = rng.random((37, 23)) > 0.5
    mask[0, :4] = False
    mask[1, :4] = True
    dout[1, :4] = [np.inf, -np.inf, np.nan, -0.0]
    got = NumpyKernels().relu_backward(dout, mask)
    want = np.where(mask, dout, dtype(0))
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{got.itemsize}"))
    # a non-contiguous dout (a transposed view) works too
    got_t = NumpyKernels().relu_backward(dout.T, mask.T)
    np.testing.assert_array_equal(got_t, np.where(mask.T, dout.T, dtype(0)))


@pytest.mark.parametrize("name", ["Adam", "AdamW", "RMSprop", "AdaGrad", "Momentum"])
@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_numpy_kernels_equal_one_thread_bit_for_bit(name, threads, monkeypatch):
    """Large buffers are split across threads; every element must get the same arithmetic."""
    import xpnet.backend._threads as B

    monkeypatch.setattr(NumpyKernels, "min_per_thread", 1000)
    monkeypatch.setattr(NumpyKernels, "block", 256)  # several blocks per part, a ragged last one
    old = B.set_num_threads(1)
    try:
        one, _ = _run(xpnet.get_backend("numpy"), name, fused=True, flat=True,
                      kernels=NumpyKernels(), size=5003)
        B.set_num_threads(threads)
        many, _ = _run(xpnet.get_backend("numpy"), name, fused=True, flat=True,
                       kernels=NumpyKernels(), size=5003)
    finally:
        B.set_num_threads(old)
    for k in one:
        np.testing.assert_array_equal(many[k], one[k], err_msg=k)


def test_two_threads_updating_at_once_do_not_share_scratch():
    """Two optimizers stepping at the same time from two Python threads (one shared kernel
    object) must give what they give one after the other."""
    import threading

    def run(seed, out):
        rng = np.random.default_rng(seed)
        n = 200_000  # one block, large enough that the ufuncs release the GIL
        p = rng.standard_normal(n).astype(np.float32)
        m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
        kernels = kernels_for("numpy")
        for _ in range(20):
            g = rng.standard_normal(n).astype(np.float32)
            kernels.adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
        out[seed] = p

    one_by_one, at_once = {}, {}
    run(1, one_by_one)
    run(2, one_by_one)
    threads = [threading.Thread(target=run, args=(s, at_once)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in (1, 2):
        np.testing.assert_array_equal(at_once[s], one_by_one[s])


@pytest.mark.parametrize(
    "name, fused",
    [pytest.param(n, False, id=f"{n}-portable") for n in OPTIMIZERS]
    + [pytest.param(n, True, id=f"{n}-fused") for n in OPTIMIZERS
       if has_kernel("numpy", OPTIMIZER_KERNEL_SLOTS[n])],
)
def test_numpy_updates_non_contiguous_params_in_place(name, fused):
    """A Fortran-order or strided parameter must be updated in place (a flattening copy in a
    kernel would swallow the update): the very arrays end up with the book's numbers."""
    rng = np.random.default_rng(12)
    w0 = np.asfortranarray(rng.standard_normal((6, 5)))
    b0 = rng.standard_normal(10)[::2]  # a strided view
    params = {"W": w0.copy(order="F"), "b": np.repeat(b0, 2)[::2]}  # F-order, strided
    arrays = dict(params)
    opt = xpnet.get_optimizer(name, fused=fused, **OPTIMIZERS[name])
    oracle = O.OptimizerRun(O.OPTIMIZER_ORACLES[name], {"W": w0, "b": b0}, **OPTIMIZERS[name])
    for step in range(5):
        g = np.random.default_rng(step)
        grads = {"W": np.asfortranarray(g.standard_normal((6, 5))), "b": g.standard_normal(5)}
        opt.update(params, grads)
        oracle.update(grads)
    assert params["W"].flags.f_contiguous and not params["b"].flags.c_contiguous
    for k in ("W", "b"):
        assert params[k] is arrays[k]
        assert not np.allclose(params[k], {"W": w0, "b": b0}[k])  # it moved
        np.testing.assert_allclose(params[k], oracle.params[k], rtol=1e-12, atol=1e-12,
                                   err_msg=k)


def test_a_failing_part_is_raised_after_every_part_finished(monkeypatch):
    import threading
    import time

    import xpnet.backend._threads as B

    monkeypatch.setattr(NumpyKernels, "min_per_thread", 1000)
    old = B.set_num_threads(3)
    x = np.zeros(3000)
    done = []

    def body(x_, s):
        start = (x_.__array_interface__["data"][0] - x.__array_interface__["data"][0]) // 8
        if start == 1000:
            raise ValueError("part 1 failed")
        if start == 2000:
            time.sleep(0.3)
        x_ += 1
        done.append((start, threading.get_ident()))

    try:
        with pytest.raises(ValueError, match="part 1 failed"):
            NumpyKernels()._each_block(body, x)
        assert sorted(d[0] for d in done) == [0, 2000]  # the slow part finished before
        assert x[2000:].sum() == 1000.0
    finally:
        B.set_num_threads(old)


def test_threads_needing_different_pool_sizes_all_complete(monkeypatch):
    """A caller needing a bigger pool must not break one holding the current pool."""
    import threading

    import xpnet.backend._threads as B

    monkeypatch.setattr(NumpyKernels, "min_per_thread", 1000)
    old = B.set_num_threads(4)
    errors = []

    def worker(n, barrier):
        p, g, m, v = (np.ones(n) for _ in range(4))
        barrier.wait()
        try:
            for _ in range(3):
                NumpyKernels().adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    try:
        for _ in range(100):
            monkeypatch.setattr(B, "_pool", None)  # the first threaded update makes the pool
            barrier = threading.Barrier(3)
            threads = [threading.Thread(target=worker, args=(n, barrier))
                       for n in (2000, 3000, 4000)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        B.set_num_threads(old)
    assert errors == []


def test_threaded_update_in_a_thread_outliving_the_main_script(tmp_path):
    """At interpreter exit, concurrent.futures refuses new work before non-daemon threads are
    joined; a training thread still stepping then must not fail."""
    import subprocess
    import sys

    script = tmp_path / "late.py"
    script.write_text(
        "import threading, time, numpy as np, xpnet\n"
        "from xpnet.backend import kernels_for\n"
        "xpnet.set_num_threads(2)\n"
        "p, g, m, v = (np.ones(600_000, np.float32) for _ in range(4))\n"
        "def train():\n"
        "    for step in range(100):\n"
        "        kernels_for('numpy').adam(p, g, m, v, 1e-3, 0.9, 0.999, 1e-7)\n"
        "        time.sleep(0.005)\n"
        "    print('finished')\n"
        "threading.Thread(target=train).start()\n"
        "time.sleep(0.05)\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "finished" in proc.stdout, proc.stderr


def _threaded_adam_in_child(conn):  # runs in a forked child

    p = np.zeros(4000)
    kernels_for("numpy").adam(p, np.ones(4000), np.zeros(4000), np.zeros(4000), 0.1, 0.9,
                                0.999, 1e-7)
    conn.send(float(p.sum()))


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_threaded_kernels_work_in_a_forked_child(monkeypatch):
    """A child forked after the pool started inherits the pool object without its threads."""
    import multiprocessing

    import xpnet.backend._threads as B

    monkeypatch.setattr(NumpyKernels, "min_per_thread", 1000)
    old = B.set_num_threads(2)
    try:
        p = np.zeros(4000)
        kernels_for("numpy").adam(p, np.ones(4000), np.zeros(4000), np.zeros(4000), 0.1,
                                    0.9, 0.999, 1e-7)  # starts the pool in this process
        ctx = multiprocessing.get_context("fork")
        recv, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_threaded_adam_in_child, args=(send,))
        child.start()
        child.join(timeout=60)
        if child.is_alive():
            child.kill()
            pytest.fail("the threaded kernel hung in a forked child")
        assert child.exitcode == 0
        assert recv.recv() == pytest.approx(float(p.sum()))
    finally:
        B.set_num_threads(old)


def test_num_threads_setting(monkeypatch):
    import xpnet.backend._threads as B

    old = B.get_num_threads()
    assert old >= 1
    assert B.set_num_threads(3) == old
    assert B.get_num_threads() == 3
    B.set_num_threads(old)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="positive integer"):
            B.set_num_threads(bad)
    monkeypatch.setattr(B, "_num_threads", None)
    monkeypatch.setenv("XPNET_NUM_THREADS", "5")
    assert B.get_num_threads() == 5
    monkeypatch.setattr(B, "_num_threads", None)
    monkeypatch.setenv("XPNET_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="XPNET_NUM_THREADS"):
        B.get_num_threads()
    monkeypatch.setattr(B, "_num_threads", old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (100, 100), (517, 33), (3, 1030)])
def test_numpy_col_dot_equals_vecdot(dtype, shape):
    rng = np.random.default_rng(4)
    a, b = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    got = NumpyKernels.col_dot(a, b)
    assert got.dtype == dtype and got.shape == shape[1:]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, np.vecdot(a, b, axis=0), rtol=rtol, atol=rtol * shape[0])
    np.testing.assert_allclose(NumpyKernels.col_dot(a.T.copy().T, b[::1]), got, rtol=rtol)


@pytest.mark.parametrize("with_out", [False, True])
def test_torch_column_kernels_equal_numpy(with_out):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    from xpnet.backend._torch import TorchKernels

    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((57, 13)), rng.standard_normal((57, 13))
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    out = torch.full((13,), float("nan"), dtype=torch.float64) if with_out else None
    got = TorchKernels.col_dot(ta, tb, out=out)
    assert out is None or got is out
    np.testing.assert_allclose(got.numpy(), (a * b).sum(axis=0), rtol=1e-12)
    out = torch.full((13,), float("nan"), dtype=torch.float64) if with_out else None
    got = TorchKernels.col_sum(ta, out=out)
    assert out is None or got is out
    np.testing.assert_allclose(got.numpy(), a.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_col_sum_equals_sum(dtype):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((131, 17)).astype(dtype)
    np.testing.assert_array_equal(NumpyKernels.col_sum(x), np.sum(x, axis=0))
    out = np.full(17, np.nan, dtype)
    assert NumpyKernels.col_sum(x, out=out) is out
    np.testing.assert_array_equal(out, np.sum(x, axis=0))


@pytest.mark.parametrize("db_out", [False, True])
def test_affine_with_and_without_kernels_agree(db_out):
    from xpnet.layers import Affine

    rng = np.random.default_rng(8)
    x, d = rng.standard_normal((9, 2, 3)), rng.standard_normal((9, 4))
    res = []
    for fast in (True, False):
        layer = Affine(rng.standard_normal((6, 4)) * 0 + 0.5, np.zeros(4))
        if not fast:
            layer._col_sum, layer._matmul_into = layer._portable_col_sum, None
        if db_out:
            layer.dW_out, layer.db_out = np.zeros((6, 4)), np.zeros(4)
        res.append([layer.forward(x), layer.backward(d), layer.dW, layer.db])
        if db_out:
            assert layer.db is layer.db_out and layer.dW is layer.dW_out
    for got, want in zip(*res, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(res[0][3], d.sum(axis=0), rtol=1e-13)


@pytest.mark.parametrize("grad_out", [False, True])
@pytest.mark.parametrize(
    "backend, slots", kernel_specs([("col_dot", "col_sum")], lambda s: s, lambda s: "columns"),
    indirect=["backend"],
)
def test_batchnorm_with_and_without_kernels_agree(backend, slots, grad_out):
    """Each backend's fast path of BatchNormalization against the portable path, both
    directions, with and without preallocated gradient outputs -- on the backends that have
    column kernels (elsewhere both paths are the portable code; test_oracles covers them)."""
    from xpnet.layers import BatchNormalization

    rng = np.random.default_rng(5)
    x, d = rng.standard_normal((64, 40)), rng.standard_normal((64, 40))
    res = []
    for fast in (True, False):
        bn = BatchNormalization(backend.asarray(np.full(40, 1.5), dtype="float64"),
                                backend.asarray(np.full(40, 0.25), dtype="float64"))
        if not fast:
            bn._col_dot, bn._col_sum = bn._portable_col_dot, bn._portable_col_sum
        if grad_out:
            bn.dgamma_out = backend.asarray(np.full(40, np.nan), dtype="float64")
            bn.dbeta_out = backend.asarray(np.full(40, np.nan), dtype="float64")
        xb, db = (backend.asarray(a, dtype="float64") for a in (x, d))
        out = bn.forward(xb)
        res.append([backend.to_numpy(a) for a in (
            out, bn.backward(db), bn.running_var, bn.dgamma, bn.dbeta, bn.forward(xb, False))])
        if grad_out:
            assert bn.dgamma is bn.dgamma_out and bn.dbeta is bn.dbeta_out
    for got, want in zip(*res, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res[0][4], d.sum(axis=0), rtol=1e-12)


@pytest.mark.parametrize("keep", [1.0, 0.8, 0.5, 0.01])
@pytest.mark.parametrize("shape", [(7,), (333, 301), (2, 3, 5)])
def test_bernoulli_mask_distribution_and_shapes(backend, keep, shape):
    """Odd sizes (the raw-bits path draws pairs), every keep fraction, mask of 0.0 and 1.0."""
    for dtype in ("float32", "float64"):
        mask = backend.random(11).bernoulli_mask(shape, keep=keep, dtype=dtype)
        assert_on_backend(backend, mask, dtype=dtype, shape=shape)
        host = backend.to_numpy(mask)
        assert set(np.unique(host)) <= {0.0, 1.0}
        if keep == 1.0:
            assert host.all()
        if host.size > 10_000:  # binomial standard error < 0.005
            assert abs(host.mean() - keep) < 0.02


# ------------------------------------------------------------------------------------------
# convolution and pooling fast paths (issue 11): each slot against the portable code, on the
# backends that have it (elsewhere both sides would be the portable code)
# ------------------------------------------------------------------------------------------

CONV_SLOTS = ("conv2d", "conv2d_backward", "im2col", "col2im", "max_pool2d",
              "max_pool2d_backward")


def _conv_cases():
    from test_conv import CONV_CASES, CONV_IDS

    return list(zip(CONV_CASES, CONV_IDS, strict=True))


def _pool_cases():
    from test_conv import POOL_CASES, POOL_IDS

    # (and pad 2 on a 3x3 window: more than torch's pad <= pool / 2, which its kernel declines)
    return [*zip(POOL_CASES, POOL_IDS, strict=True), ((2, 2, 7, 7, 3, 3, 2, 2), "3x3-s2p2")]


def _portable(monkeypatch, backend):
    """Empty every convolution/pooling slot of ``backend``'s kernels (until the test ends)."""
    kernels = backend.kernels
    for slot in CONV_SLOTS:
        monkeypatch.setattr(kernels, slot, None)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "backend, case", kernel_specs(_conv_cases(), lambda c: ("conv2d",), lambda c: c[1]),
    indirect=["backend"],
)
def test_conv2d_kernel_equals_portable_layer(backend, case, dtype, monkeypatch):
    """``Convolution`` on the backend's own convolution against the portable im2col layer:
    output, dx, dW, db (written into preallocated outputs), and dx skipped on request."""
    from test_conv import _conv_data
    from xpnet.layers import Convolution

    rng = np.random.default_rng(7)
    (n, c, h, w, fn, fh, fw, s, p), _ = case
    x, W, b, dout = _conv_data(rng, case[0], dtype)
    res = []
    for fast in (True, False):
        if not fast:
            _portable(monkeypatch, backend)
        layer = Convolution(backend.asarray(W), backend.asarray(b), stride=s, pad=p)
        layer.dW_out = backend.asarray(np.full(W.shape, np.nan, dtype))
        layer.db_out = backend.asarray(np.full(b.shape, np.nan, dtype))
        out = layer.forward(backend.asarray(x))
        assert (layer.col is None) is fast  # the kernel path never builds the columns
        dx = layer.backward(backend.asarray(dout))
        assert layer.dW is layer.dW_out and layer.db is layer.db_out
        for a in (out, dx, layer.dW, layer.db):
            assert_on_backend(backend, a, dtype=dtype)
        res.append([backend.to_numpy(a).copy() for a in (out, dx, layer.dW, layer.db)])
        layer.need_dx = False
        layer.forward(backend.asarray(x))
        assert layer.backward(backend.asarray(dout)) is None
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-4, atol=1e-5)
    for name, got, want in zip(("out", "dx", "dW", "db"), *res, strict=True):
        np.testing.assert_allclose(got, want, **tol, err_msg=name)


@pytest.mark.parametrize(
    "backend, case", kernel_specs(_conv_cases(), lambda c: ("im2col", "col2im"),
                                  lambda c: c[1]),
    indirect=["backend"],
)
def test_im2col_col2im_kernels_equal_portable(backend, case):
    """Pure data movement: the same numbers exactly (col2im sums in the portable order)."""
    from xpnet.functions import col2im, im2col

    k = backend.kernels
    (n, c, h, w, fn, fh, fw, s, p), _ = case
    rng = np.random.default_rng(8)
    x = backend.asarray(rng.standard_normal((n, c, h, w)))
    want = im2col(x, fh, fw, s, p)
    if k.im2col is not None:
        got = k.im2col(x, fh, fw, s, p)
        assert_on_backend(backend, got, dtype="float64", shape=tuple(want.shape))
        np.testing.assert_array_equal(backend.to_numpy(got), backend.to_numpy(want))
    if k.col2im is not None:
        col = backend.asarray(rng.standard_normal(tuple(want.shape)))
        got = k.col2im(col, (n, c, h, w), fh, fw, s, p)
        assert_on_backend(backend, got, dtype="float64", shape=(n, c, h, w))
        np.testing.assert_allclose(backend.to_numpy(got),
                                   backend.to_numpy(col2im(col, (n, c, h, w), fh, fw, s, p)),
                                   rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize(
    "backend, case", kernel_specs(_pool_cases(), lambda c: ("max_pool2d",), lambda c: c[1]),
    indirect=["backend"],
)
def test_max_pool2d_kernel_equals_portable_layer(backend, case, ties, monkeypatch):
    """``Pooling`` on the backend's pooling kernel against the portable layer: output, dx
    (ties go to the first maximum on both) and ``arg_max`` (computed on demand after the
    kernel)."""
    from xpnet.layers import Pooling

    (n, c, h, w, ph, pw, s, p), _ = case
    if hasattr(backend.kernels, "pool_on_cpu"):  # torch declines the CPU unless asked to
        monkeypatch.setattr(backend.kernels, "pool_on_cpu", True)
    rng = np.random.default_rng(9)
    x = rng.integers(0, 3, (n, c, h, w)).astype(np.float64) if ties else (
        rng.standard_normal((n, c, h, w)))
    res = []
    for fast in (True, False):
        if not fast:
            _portable(monkeypatch, backend)
        layer = Pooling(ph, pw, stride=s, pad=p)
        out = layer.forward(backend.asarray(x))
        dout = np.random.default_rng(10).standard_normal(tuple(out.shape))
        # (torch declines pad > pool / 2: the portable code runs there)
        assert (layer._state is not None) is (fast and 2 * p <= min(ph, pw))
        dx = layer.backward(backend.asarray(dout))
        res.append([backend.to_numpy(a).copy() for a in (out, dx, layer.arg_max)])
    for name, got, want in zip(("out", "dx", "arg_max"), *res, strict=True):
        # (overlapping windows add their gradients in another order: dx to rounding)
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    "backend, normalization",
    kernel_specs([None, "batch"], lambda n: CONV_SLOTS, lambda n: n or "none"),
    indirect=["backend"],
)
def test_simple_convnet_with_and_without_kernels_agree(backend, normalization, dtype,
                                                       monkeypatch):
    """A few SGD steps of the book's network, fast paths against the portable path.  (Not
    Adam: the bias before batch norm has a zero gradient up to rounding, which Adam would turn
    into full-size steps in different directions.)"""
    if hasattr(backend.kernels, "pool_on_cpu"):  # (torch pools on the CPU only if asked)
        monkeypatch.setattr(backend.kernels, "pool_on_cpu", True)
    rng = np.random.default_rng(11)
    x, t = rng.random((6, 1, 12, 12)).astype(dtype), rng.integers(0, 10, 6)
    res = []
    for fast in (True, False):
        if not fast:
            _portable(monkeypatch, backend)
        net = xpnet.SimpleConvNet(input_dim=(1, 12, 12), conv_param={"filter_num": 5,
                                  "filter_size": 3, "pad": 1}, hidden_size=8, seed=0,
                                  weight_init_std="he", backend=backend, dtype=dtype,
                                  normalization=normalization)
        opt = xpnet.SGD(lr=0.05)
        for _ in range(3):
            grads = net.gradient(x, t)
            res_grads = {k: backend.to_numpy(g).copy() for k, g in grads.items()}
            opt.update(net.params, grads)
        res.append((res_grads, backend.to_numpy(net.predict(x))))
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-4, atol=2e-5)
    for k in res[0][0]:
        np.testing.assert_allclose(res[0][0][k], res[1][0][k], **tol, err_msg=k)
    np.testing.assert_allclose(res[0][1], res[1][1], **tol, err_msg="scores")


def test_kernel_slots_are_declared_and_paired():
    """Every convolution slot exists (None: the portable code) and the paired slots come in
    pairs in every room."""
    from xpnet.backend import BACKEND_NAMES

    for slot in CONV_SLOTS:
        assert getattr(Kernels(), slot) is None
    for name in BACKEND_NAMES:
        k = kernels_for(name)
        for a, b in (("conv2d", "conv2d_backward"), ("max_pool2d", "max_pool2d_backward")):
            assert (getattr(k, a) is None) == (getattr(k, b) is None), (name, a)
    assert kernels_for("torch").conv2d is not None
    assert kernels_for("cupy").im2col is not None and kernels_for("cupy").col2im is not None


def test_torch_pools_on_the_cpu_only_when_asked(monkeypatch):
    """The portable pooling measured faster than aten's on the CPU (see TorchKernels), so the
    kernel declines CPU tensors unless ``pool_on_cpu`` is set."""
    torch = pytest.importorskip("torch")
    k = kernels_for("torch")
    x = torch.rand(2, 3, 6, 6)
    assert k.max_pool2d(x, 2, 2, 2, 0) is None
    monkeypatch.setattr(k, "pool_on_cpu", True)
    out, _ = k.max_pool2d(x, 2, 2, 2, 0)
    assert out.shape == (2, 3, 3, 3)
    assert k.max_pool2d(x, 3, 3, 2, 2) is None  # pad > pool / 2: torch cannot


# -- CuPy's im2col/col2im without a GPU -----------------------------------------------------


def _c_to_python(source: str) -> str:
    """Translate the small C subset of the CuPy kernel bodies to Python, line by line:
    ``for (ptrdiff_t v = a; v < b; v++) {``, ``if (cond) {``, ``}``, ``[ptrdiff_t] v = e;`` and
    ``v += e;``, with ``&&`` -> ``and`` and ``/`` -> ``//`` (the sources divide non-negative
    integers only, where C and Python agree).  Anything else raises, so a kernel edited
    beyond this subset fails here rather than being skipped."""
    import re

    def expr(e: str) -> str:
        return e.replace("&&", " and ").replace("/", "//")

    out, depth = [], 0
    for line in (s.strip() for s in source.strip().splitlines()):
        pad = "    " * depth
        if line == "}":
            depth -= 1
        elif m := re.fullmatch(r"for \(ptrdiff_t (\w+) = (.+); \1 < (.+); \1\+\+\) \{", line):
            out.append(f"{pad}for {m[1]} in range({expr(m[2])}, {expr(m[3])}):")
            depth += 1
        elif m := re.fullmatch(r"if \((.+)\) \{", line):
            out.append(f"{pad}if {expr(m[1])}:")
            depth += 1
        elif m := re.fullmatch(r"(?:ptrdiff_t )?(\w+) (\+?=) (.+);", line):
            out.append(f"{pad}{m[1]} {m[2]} {expr(m[3])}")
        else:
            raise ValueError(f"not in the translatable C subset: {line!r}")
    assert depth == 0
    return "\n".join(out)


class _FakeElementwiseKernel:
    """``cupy.ElementwiseKernel`` run on the host: one Python execution of the translated body
    per output element ``i``, ``raw`` inputs indexed flat, scalars by name."""

    def __init__(self, in_params: str, out_params: str, operation: str, name: str):
        self.names = [p.split()[-1] for p in f"{in_params}, {out_params}".split(",")]
        self.raw = {p.split()[-1] for p in in_params.split(",") if p.split()[0] == "raw"}
        self.out = out_params.split()[-1]
        self.code = compile(_c_to_python(operation), name, "exec")

    def __call__(self, *args):
        env = dict(zip(self.names, args, strict=True))
        for k in self.raw:
            env[k] = np.ascontiguousarray(env[k]).reshape(-1)
        out = env.pop(self.out)
        flat = out.reshape(-1)  # a view: out is freshly allocated and contiguous
        for i in range(flat.size):
            env["i"] = i
            exec(self.code, {}, env)
            flat[i] = env[self.out]
        return out


@pytest.mark.parametrize("case", [c for c, _ in _conv_cases()], ids=[i for _, i in _conv_cases()])
def test_cupy_im2col_col2im_kernels_on_the_host(case, monkeypatch):
    """The CuPy room's ``im2col``/``col2im`` -- wrapper, argument order and kernel sources --
    run without a GPU: ``cupy`` replaced by NumPy plus an interpreter of the kernel bodies,
    against the portable functions.  (On a GPU machine the tests above compare the compiled
    kernels.)"""
    import sys
    import types

    from xpnet.backend._cupy import CupyKernels
    from xpnet.functions import col2im, im2col

    fake = types.SimpleNamespace(ElementwiseKernel=_FakeElementwiseKernel, empty=np.empty,
                                 ascontiguousarray=np.ascontiguousarray)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    n, c, h, w, _, fh, fw, s, p = case
    rng = np.random.default_rng(12)
    x = rng.standard_normal((n, c, h, w))
    k = CupyKernels()
    want = im2col(x, fh, fw, s, p)
    np.testing.assert_array_equal(k.im2col(x, fh, fw, s, p), want)
    col = rng.standard_normal(want.shape)
    np.testing.assert_allclose(k.col2im(col, (n, c, h, w), fh, fw, s, p),
                               col2im(col, (n, c, h, w), fh, fw, s, p), rtol=1e-15, atol=1e-15)

