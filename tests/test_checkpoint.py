"""Checkpoints (xpnet.checkpoint): round trips across every pair of backends, exact continuation,
and files that must be refused (truncated, bit-flipped, pickled, foreign, tampered, newer).

Oracles: the saved network's own predictions before saving; a plain NumPy float64 forward pass
over the arrays as ``safetensors.numpy.load_file`` reads them (not through xpnet's loader); and,
for continuation, the same training steps taken without saving and loading.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import safetensors.numpy

import xpnet
from conftest import BACKEND_SPECS, assert_on_backend, make_backend
from xpnet.checkpoint import RandomStreamWarning, read

PAIR_SPECS = [s for s in BACKEND_SPECS if not s.strictest]
OPTIMIZER_NAMES = list(xpnet.optim.OPTIMIZERS)


def _net(backend=None, dropout=False, seed=0, **kw):
    return xpnet.MultiLayerNetExtend(6, [7, 5], 3, use_batchnorm=True, use_dropout=dropout,
                                     dropout_ration=0.3, seed=seed, backend=backend, **kw)


def _data(n=8, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6)).astype(np.float32), rng.integers(0, 3, n)


def _train(net, opt, steps, seed=2):
    x, t = _data(seed=seed)
    for i in range(steps):
        sl = slice((i % 2) * 4, (i % 2) * 4 + 4)
        opt.update(net.params, net.gradient(x[sl], t[sl]))


def _host(net, x):
    return np.array(net.backend.to_numpy(x), copy=True)


def _numpy_forward(tensors, x, hidden=2, eps=1e-6):
    """MultiLayerNetExtend's inference pass (affine, batch norm with running statistics, ReLU),
    in float64, from the arrays of the file."""
    h = x.astype(np.float64)
    g = {k: v.astype(np.float64) for k, v in tensors.items()}
    for i in range(1, hidden + 1):
        h = h @ g[f"param/W{i}"] + g[f"param/b{i}"]
        mean, var = g[f"buffer/BatchNorm{i}.running_mean"], g[f"buffer/BatchNorm{i}.running_var"]
        h = g[f"param/gamma{i}"] * (h - mean) / np.sqrt(var + eps) + g[f"param/beta{i}"]
        h = np.maximum(h, 0)
    return h @ g[f"param/W{hidden + 1}"] + g[f"param/b{hidden + 1}"]


# -------------------------------------------------------------------------------------------
# round trips
# -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_opt", [False, True], ids=["net", "net+optimizer"])
@pytest.mark.parametrize("dst_spec", PAIR_SPECS, ids=lambda s: s.id)
@pytest.mark.parametrize("src_spec", PAIR_SPECS, ids=lambda s: s.id)
def test_round_trip_between_every_pair_of_backends(src_spec, dst_spec, with_opt, tmp_path):
    src, dst = make_backend(src_spec), make_backend(dst_spec)
    net = _net(src)
    opt = xpnet.Momentum(lr=0.05)
    _train(net, opt, 3)
    x, _ = _data(5, seed=9)
    expected = _host(net, net.predict(x))
    path = net.save(tmp_path / "n.safetensors", optimizer=opt if with_opt else None)

    # the file itself, read by safetensors alone, computes the same predictions
    tensors = safetensors.numpy.load_file(path)
    np.testing.assert_allclose(_numpy_forward(tensors, x), expected, rtol=1e-4, atol=1e-5)

    out = xpnet.load(path, backend=dst, with_optimizer=with_opt)
    net2, opt2 = out if with_opt else (out, None)
    assert type(net2) is xpnet.MultiLayerNetExtend and net2.get_config() == net.get_config()
    for key, p in net2.params.items():
        assert_on_backend(dst, p, dtype="float32")
        np.testing.assert_array_equal(_host(net2, p), _host(net, net.params[key]))
    for i in (1, 2, 3):  # the layers hold the loaded parameters themselves
        assert net2.layers[f"Affine{i}"].W is net2.params[f"W{i}"]
    assert net2.layers["BatchNorm2"].gamma is net2.params["gamma2"]
    for name in ("running_mean", "running_var"):
        got = getattr(net2.layers["BatchNorm1"], name)
        assert_on_backend(dst, got, dtype="float32")
        np.testing.assert_array_equal(_host(net2, got),
                                      _host(net, getattr(net.layers["BatchNorm1"], name)))
    y = net2.predict(x)
    assert_on_backend(dst, y)
    np.testing.assert_allclose(_host(net2, y), expected, rtol=1e-5, atol=1e-6)
    if with_opt:
        assert type(opt2) is xpnet.Momentum
        assert opt2.hyperparameters() == opt.hyperparameters()
        for key, a in opt2.v.items():
            assert_on_backend(dst, a, dtype="float32")
            np.testing.assert_array_equal(_host(net2, a), _host(net, opt.v[key]))
        # both continue: the same steps give the same network, to rounding across libraries
        # (Momentum here: Adam turns the rounding noise of b1, b2 -- whose gradients batch norm
        # cancels -- into full steps; its state and exact continuation are tested on one backend
        # below)
        _train(net, opt, 2, seed=5)
        _train(net2, opt2, 2, seed=5)
        for key in net.params:
            np.testing.assert_allclose(_host(net2, net2.params[key]),
                                       _host(net, net.params[key]), rtol=1e-4, atol=1e-6,
                                       err_msg=key)
        np.testing.assert_allclose(_host(net2, net2.predict(x)), _host(net, net.predict(x)),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_continuing_after_load_equals_continuing_without_it(backend, name, tmp_path):
    """Bit for bit on the same backend: parameters, running statistics, optimizer state and
    dropout masks."""
    net = _net(backend, dropout=True)
    opt = xpnet.get_optimizer(name, lr=0.01)
    _train(net, opt, 3)
    path = net.save(tmp_path / "c.safetensors", optimizer=opt)
    net2, opt2 = xpnet.load(path, backend=backend, with_optimizer=True)
    assert type(opt2) is type(opt)
    _train(net, opt, 4, seed=6)
    _train(net2, opt2, 4, seed=6)
    for key in net.params:
        np.testing.assert_array_equal(_host(net2, net2.params[key]), _host(net, net.params[key]))
    for layer in ("BatchNorm1", "BatchNorm2"):
        np.testing.assert_array_equal(_host(net2, net2.layers[layer].running_var),
                                      _host(net, net.layers[layer].running_var))
    np.testing.assert_array_equal(_host(net2, net2.layers["Dropout1"].mask),
                                  _host(net, net.layers["Dropout1"].mask))
    for sname in opt.state_names:
        for key in net.params:
            np.testing.assert_array_equal(_host(net2, opt2.state[sname][key]),
                                          _host(net, opt.state[sname][key]))


def test_load_keeps_dtype_unless_asked_and_casts(tmp_path):
    net = _net(dtype="float64")
    path = net.save(tmp_path / "d.safetensors")
    assert read(path).dtype == "float64"
    assert xpnet.load(path).dtype == np.float64
    net32 = xpnet.load(path, dtype="float32")
    assert net32.params["W1"].dtype == np.float32
    np.testing.assert_array_equal(net32.params["W1"], net.params["W1"].astype(np.float32))


def test_untrained_batchnorm_net_round_trips_with_unset_statistics(tmp_path):
    net = _net()
    assert net.layers["BatchNorm1"].running_mean is None  # created at the first pass
    path = net.save(tmp_path / "u.safetensors")
    net2 = xpnet.load(path)
    assert net2.layers["BatchNorm1"].running_mean is None
    x, _ = _data()
    np.testing.assert_array_equal(net2.predict(x), net.predict(x))


def test_dropout_stream_across_libraries_warns_and_goes_on(tmp_path):
    pytest.importorskip("torch")
    net = _net(dropout=True)
    _train(net, xpnet.SGD(), 2)
    path = net.save(tmp_path / "r.safetensors")
    with pytest.warns(RandomStreamWarning, match="Dropout1, Dropout2"):
        xpnet.load(path, backend="torch")
    with warnings.catch_warnings():  # the same kind of generator: no warning
        warnings.simplefilter("error")
        xpnet.load(path, backend="array_api_strict")


def test_book_net_and_trainer_extra_round_trip(tmp_path):
    net = xpnet.MultiLayerNet(4, [3], 2, activation="tanh", weight_decay_lambda=0.1, seed=4)
    path = net.save(tmp_path / "b.safetensors", extra={"note": "hi", "nan": float("nan")})
    ck = read(path)
    assert ck.network_class == "MultiLayerNet" and ck.extra == {"note": "hi", "nan": None}
    net2 = xpnet.load(path)
    assert type(net2) is xpnet.MultiLayerNet and net2.activation == "tanh"
    assert net2.weight_decay_lambda == 0.1


def test_a_pytorch_user_reads_the_weights_directly(tmp_path):
    torch_st = pytest.importorskip("safetensors.torch")
    pytest.importorskip("torch")
    net = _net()
    path = net.save(tmp_path / "t.safetensors")
    weights = torch_st.load_file(str(path))
    np.testing.assert_array_equal(weights["param/W1"].numpy(), net.params["W1"])


def test_a_registered_subclass_gets_checkpoints_for_free(tmp_path):
    class WideNet(xpnet.MultiLayerNet):
        def __init__(self, width, *, backend=None, device=None, dtype=None, seed=None):
            super().__init__(4, [width, width], 2, backend=backend, device=device, dtype=dtype,
                             seed=seed)
            self.width = width

    net = WideNet(6, seed=1)
    assert net.get_config() == {"width": 6, "seed": 1}
    net2 = xpnet.load(net.save(tmp_path / "w.safetensors"), backend="array_api_strict")
    assert type(net2) is WideNet and net2.width == 6


def test_optimizer_of_another_network_is_refused_at_save(tmp_path):
    net, other = _net(), xpnet.MultiLayerNet(6, [4], 3)
    opt = xpnet.Momentum()
    _train(other, opt, 1)
    with pytest.raises(ValueError, match="does not belong to this network"):
        net.save(tmp_path / "x.safetensors", optimizer=opt)
    assert not (tmp_path / "x.safetensors").exists()


def test_save_argument_errors(tmp_path):
    with pytest.raises(TypeError, match="path"):
        _net().save(3)
    with pytest.raises(TypeError, match="xpnet network"):
        xpnet.checkpoint.save(object(), tmp_path / "a.safetensors")
    with pytest.raises(FileNotFoundError):
        _net().save(tmp_path / "missing" / "a.safetensors")
    with pytest.raises(xpnet.CheckpointError, match="holds no optimizer"):
        xpnet.load(_net().save(tmp_path / "a.safetensors"), with_optimizer=True)


# -------------------------------------------------------------------------------------------
# files that must be refused
# -------------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    net = _net(dropout=True)
    opt = xpnet.Adam()
    _train(net, opt, 2)
    return net.save(tmp_path / "good.safetensors", optimizer=opt)


def _refused(path, match=None):
    with pytest.raises(xpnet.CheckpointError) as info:
        xpnet.load(path, with_optimizer=True)
    assert str(path) in str(info.value)
    if match:
        assert match in str(info.value), str(info.value)
    return info.value


def test_truncated_files_are_refused(saved, tmp_path):
    data = saved.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    cuts = sorted({0, 1, 7, 8, 9, 100, header - 1, header, header + 1, len(data) - 1,
                   *range(0, len(data), 97)})
    bad = tmp_path / "cut.safetensors"
    for n in cuts:
        bad.write_bytes(data[:n])
        err = _refused(bad)
        assert "Traceback" not in str(err)


def test_every_sampled_bit_flip_is_refused(saved, tmp_path):
    """300 single-bit flips spread over the whole file (header, metadata and arrays) plus every
    bit of the length prefix.  (An exhaustive run over all 43,968 bits of a file like this one
    was made while writing the format: every flip was refused.)"""
    data = saved.read_bytes()
    rng = np.random.default_rng(12)
    bits = set(rng.choice(len(data) * 8, 300, replace=False).tolist()) | set(range(64))
    header = 8 + int.from_bytes(data[:8], "little")
    bits |= {header * 8 + 3, len(data) * 8 - 1}  # first and last bytes of the arrays
    bad = tmp_path / "flip.safetensors"
    for bit in sorted(bits):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        bad.write_bytes(bytes(flipped))
        _refused(bad)


def test_pickles_are_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    for i, obj in enumerate([{"param/W1": np.ones(3)}, Evil()]):
        path = tmp_path / f"p{i}.safetensors"
        path.write_bytes(pickle.dumps(obj))
        _refused(path, "pickle")
    assert not marker.exists()


def test_other_formats_are_refused_with_what_they_are(tmp_path):
    npy = tmp_path / "a.npy"
    np.save(npy, np.ones(3))
    _refused(npy, ".npy")
    npz = tmp_path / "b.safetensors"
    with open(npz, "wb") as f:
        np.savez(f, w=np.ones(3))
    _refused(npz, "zip")
    for name, content in (("empty", b""), ("text", b'{"W1": [1, 2]}'),
                          ("noise", np.random.default_rng(0).bytes(600))):
        path = tmp_path / name
        path.write_bytes(content)
        _refused(path)
    torch = pytest.importorskip("torch")
    ts = tmp_path / "torch.pt"
    torch.save({"W1": torch.ones(3)}, ts)
    _refused(ts, "zip")


def test_foreign_safetensors_files_are_refused(tmp_path):
    plain = tmp_path / "hf.safetensors"
    safetensors.numpy.save_file({"weight": np.ones((2, 2), np.float32)}, str(plain))
    _refused(plain, "not an xpnet checkpoint")
    other = tmp_path / "meta.safetensors"
    safetensors.numpy.save_file({"weight": np.ones(2, np.float32)}, str(other),
                                metadata={"xpnet": "{}"})
    _refused(other, "checksum")


def _rewrite(src, dst, edit):
    """A consistent forgery: edit the metadata document (and arrays), recompute every digest."""
    tensors = dict(safetensors.numpy.load_file(str(src)))
    data = src.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(json.loads(data[8:8 + n])["__metadata__"]["xpnet"])
    edit(header, tensors)
    header["tensors"] = {
        k: {"dtype": a.dtype.name, "shape": list(a.shape),
            "sha256": hashlib.sha256(np.ascontiguousarray(a).view(np.uint8)).hexdigest()}
        for k, a in tensors.items()}
    text = json.dumps(header)
    safetensors.numpy.save_file(tensors, str(dst), metadata={
        "xpnet": text, "xpnet.sha256": hashlib.sha256(text.encode()).hexdigest()})
    return dst


def test_a_consistent_rewrite_is_accepted(saved, tmp_path):
    """The forgery helper itself produces loadable files (so the refusals below are about what
    each one changes)."""
    xpnet.load(_rewrite(saved, tmp_path / "same.safetensors", lambda h, t: None),
               with_optimizer=True)


@pytest.mark.parametrize("edit, message", [
    (lambda h, t: h.update(format_version=2), "newer xpnet"),
    (lambda h, t: h["network"].update({"class": "NoSuchNet"}), "'NoSuchNet'"),
    (lambda h, t: h["network"]["config"].update(hidden_size_list=[7, 6]), "param/W2 has shape"),
    (lambda h, t: h["network"]["config"].update(activation="swish"), "configuration"),
    (lambda h, t: t.pop("param/b1"), "missing ['b1']"),
    (lambda h, t: t.update({"param/W1": t["param/W1"].astype(np.float64)}), "float64"),
    (lambda h, t: t.update({"buffer/BatchNorm1.running_mean": np.zeros(3, np.float32)}),
     "buffer/BatchNorm1.running_mean has shape"),
    (lambda h, t: t.pop("buffer/BatchNorm2.running_var"), "missing ['BatchNorm2.running_var']"),
    (lambda h, t: h["rng"].pop("Dropout1"), "random streams"),
    (lambda h, t: h["rng"]["Dropout1"].update(state=[1, 2]), "random state of Dropout1"),
    (lambda h, t: h["optimizer"].update({"class": "Adamax"}), "'Adamax'"),
    (lambda h, t: h["optimizer"]["hyperparameters"].update(lr=-1.0), "hyperparameters"),
    (lambda h, t: h["optimizer"]["hyperparameters"].update(gamma=1.0), "hyperparameters"),
    (lambda h, t: t.update({"optim/m/W1": np.zeros((2, 2), np.float32)}), "optimizer state"),
    (lambda h, t: t.pop("optim/v/b2"), "optimizer state"),
])
def test_tampered_but_consistent_files_are_refused(saved, tmp_path, edit, message):
    _refused(_rewrite(saved, tmp_path / "t.safetensors", edit), message)


def test_nothing_is_copied_before_everything_is_checked(saved, tmp_path):
    """A checkpoint that fails its last check (the optimizer's state) leaves the network and the
    optimizer it was being restored into as they were."""
    bad = _rewrite(saved, tmp_path / "late.safetensors",
                   lambda h, t: t.update({"optim/v/W3": np.zeros((1, 1), np.float32)}))
    net, opt = _net(seed=7, dropout=True), xpnet.Adam()
    _train(net, opt, 1)
    before = {k: v.copy() for k, v in net.params.items()}
    state = {k: v.copy() for k, v in opt.state["m"].items()}
    rm = net.layers["BatchNorm1"].running_mean.copy()
    with pytest.raises(xpnet.CheckpointError, match="optimizer state"):
        read(bad).restore(net, opt)
    for k in before:
        np.testing.assert_array_equal(net.params[k], before[k])
        np.testing.assert_array_equal(opt.state["m"][k], state[k])
    np.testing.assert_array_equal(net.layers["BatchNorm1"].running_mean, rm)
    assert opt.iter == 1


def test_restore_into_a_network_of_another_class_is_refused(saved):
    with pytest.raises(xpnet.CheckpointError, match="not a MultiLayerNet"):
        read(saved).restore(xpnet.MultiLayerNet(6, [7, 5], 3))


# -------------------------------------------------------------------------------------------
# a save killed half-way
# -------------------------------------------------------------------------------------------

_SAVER = r"""
import sys
import numpy as np
import xpnet
net = xpnet.MultiLayerNet(784, [1024, 1024], 10, seed=0)
path = sys.argv[1]
k = 0
while True:
    k += 1
    net.params.flat[...] = k
    net.save(path)
    print(k, flush=True)
"""


def test_a_save_killed_half_way_leaves_the_previous_file_loadable(tmp_path):
    """A subprocess saves a 7 MB checkpoint over and over (parameters all equal to the round
    number) and is SIGKILLed at a random moment; each time the file loads and is one complete
    round.  Repeated until three kills landed inside a save (a temporary file left behind),
    at most eight times."""
    path = tmp_path / "big.safetensors"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    rng = np.random.default_rng(3)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()  # one complete save
            assert first.strip(), "the saver died before its first save"
            time.sleep(float(rng.uniform(0.0, 0.3)))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        net = xpnet.load(path)
        values = np.unique(net.params.flat)
        assert values.size == 1 and values[0] >= 1, values[:5]
        if len(list(tmp_path.glob(".big.safetensors.*.tmp"))) >= 3:
            break
    mid_save = len(list(tmp_path.glob(".big.safetensors.*.tmp")))
    assert kills >= 3 and mid_save >= 1, (kills, mid_save)


def test_bench_checkpoint_io_script_saves_and_loads(tmp_path):
    """``bench/checkpoint_io.py`` (the save/load timing quoted in the notes) runs and reports the
    size of the default ``xpnet train`` network's checkpoint with its Adam state."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "src"))
    out = subprocess.run([sys.executable, os.path.join(root, "bench", "checkpoint_io.py"),
                          "--repeats", "1"], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    size = float(out.stdout.split("file ")[1].split(" MB")[0])
    params = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10 + 2 * (256 + 128)
    assert size * 1e6 > 3 * 4 * params  # parameters, Adam's m and v, float32
    assert "save " in out.stdout and "load " in out.stdout
