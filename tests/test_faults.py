"""Numerical faults: ``check_finite=True`` on ``gradient``/``update``, and the Trainer's
divergence check (once per epoch, on the losses it copies to the host anyway)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import xpnet
from conftest import counting_host_reads
from xpnet.checkpoint import read
from xpnet.datasets import load_mnist


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = load_mnist(source="bundled")
    return x[:600], t[:600], xt[:100], tt[:100]


def _host(be, x):
    return np.array(be.to_numpy(x), copy=True)


# -------------------------------------------------------------------------------------------
# check_finite=True
# -------------------------------------------------------------------------------------------


def test_gradient_check_finite_names_what_is_not_finite(backend):
    net = xpnet.MultiLayerNetExtend(5, [4], 3, use_batchnorm=True, seed=0, backend=backend)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 3, 6)
    plain = {k: _host(backend, v) for k, v in net.gradient(x, t).items()}
    checked = net.gradient(x, t, check_finite=True)  # finite: the same gradients, no error
    for k, v in checked.items():
        np.testing.assert_array_equal(_host(backend, v), plain[k])

    x[2, 1] = np.nan
    grads = {k: _host(backend, v) for k, v in net.gradient(x, t).items()}
    expected = ["loss"] + sorted(k for k, g in grads.items() if not np.isfinite(g).all())
    assert len(expected) > 2
    with pytest.raises(xpnet.NonFiniteError) as info:
        net.gradient(x, t, check_finite=True)
    assert ["loss"] + sorted(info.value.names[1:]) == expected
    for name in expected:
        assert name in str(info.value)
    assert isinstance(info.value, FloatingPointError)


@pytest.mark.parametrize("flat", [True, False], ids=["ParamDict", "dict"])
def test_update_check_finite_refuses_before_updating(backend, flat):
    net = xpnet.MultiLayerNet(5, [4], 3, seed=0, backend=backend)
    opt = xpnet.Adam()
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((6, 5)).astype(np.float32), rng.integers(0, 3, 6)
    params = net.params if flat else dict(net.params)
    grads = net.gradient(x, t)
    opt.update(params, grads if flat else dict(grads), check_finite=True)  # finite: steps
    assert opt.iter == 1
    before = {k: _host(backend, v) for k, v in net.params.items()}
    m = {k: _host(backend, v) for k, v in opt.m.items()}
    grads = net.gradient(x, t)
    bad = grads["b2"]
    bad[1] = float("inf")
    with pytest.raises(xpnet.NonFiniteError, match="b2") as info:
        opt.update(params, grads if flat else dict(grads), check_finite=True)
    assert info.value.names == ["b2"]
    assert opt.iter == 1
    for k in before:
        np.testing.assert_array_equal(_host(backend, net.params[k]), before[k])
        np.testing.assert_array_equal(_host(backend, opt.m[k]), m[k])


# -------------------------------------------------------------------------------------------
# the Trainer
# -------------------------------------------------------------------------------------------


class _Poison(xpnet.SGD):
    """SGD that writes NaN into W1 after update number ``after`` (a fault injected into the
    parameters: the next step's loss is NaN)."""

    def __init__(self, lr=0.1, *, after=10**9, fused=True):
        super().__init__(lr, fused=fused)
        self.after = after
        self.n = 0

    def update(self, params, grads, **kw):
        super().update(params, grads, **kw)
        self.n += 1
        if self.n == self.after:
            params["W1"][0, 0] = float("nan")


def test_divergence_names_epoch_step_lr_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    x, t, xt, tt = digits
    net = xpnet.MultiLayerNet(784, [20], 10, seed=0)
    snapshots = {}

    def keep_files(trainer):
        snapshots[trainer.current_epoch] = {
            name: (tmp_path / name).read_bytes() for name in ("last.safetensors",
                                                              "best.safetensors")}

    opt = _Poison(lr=0.05, after=30)  # 12 steps per epoch: NaN loss at step 31, epoch 3
    trainer = xpnet.Trainer(net, x, t, xt, tt, epochs=5, mini_batch_size=50, optimizer=opt,
                            verbose=False, seed=0, checkpoint_dir=tmp_path,
                            on_epoch_end=keep_files)
    with pytest.raises(xpnet.TrainingDivergedError) as info:
        trainer.train()
    err = info.value
    assert (err.epoch, err.step, err.step_range) == (3, 31, (25, 36))
    assert err.lr == 0.05
    assert err.last_finite_loss == trainer.train_loss_list[29]
    assert math.isfinite(err.last_finite_loss) and math.isnan(trainer.train_loss_list[30])
    assert err.checkpoint == tmp_path / "last.safetensors"
    msg = str(err)
    for part in ("step 31", "epoch 3", "steps 25-36", "lr=0.05",
                 f"{err.last_finite_loss:.6g}", "last.safetensors", "epoch 2"):
        assert part in msg, (part, msg)
    # the files are those of the end of epoch 2, untouched
    assert sorted(snapshots) == [1, 2]
    for name, content in snapshots[2].items():
        assert (tmp_path / name).read_bytes() == content
    ck = read(tmp_path / "last.safetensors")
    assert ck.extra["trainer"]["epoch"] == 2
    assert all(np.isfinite(a).all() for a in ck.params().values())
    assert trainer.current_epoch == 2  # the diverged epoch was not counted


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_divergence_from_too_large_steps(digits):
    """No injected fault: SGD with lr * weight_decay_lambda > 2 makes the weights grow
    geometrically until they overflow (the book's loop would run on with NaN)."""
    x, t, xt, tt = digits
    net = xpnet.MultiLayerNet(784, [50], 10, seed=0, weight_decay_lambda=10)
    trainer = xpnet.Trainer(net, x, t, xt, tt, epochs=5, mini_batch_size=50, optimizer="SGD",
                            optimizer_param={"lr": 1.0}, verbose=False, seed=0)
    with pytest.raises(xpnet.TrainingDivergedError, match="no checkpoint was written") as info:
        trainer.train()
    first_bad = next(i for i, v in enumerate(trainer.train_loss_list) if not math.isfinite(v))
    assert info.value.step == first_bad + 1
    assert info.value.checkpoint is None


def test_divergence_check_adds_no_host_transfer_per_step(digits, tmp_path):
    """With checkpoints and the divergence check, host transfers per epoch do not grow with the
    number of steps per epoch (counted on array_api_strict, as in test_trainer)."""
    pytest.importorskip("array_api_strict")
    x, t, xt, tt = digits
    counts = []
    for batch in (60, 15):  # 10 and 40 steps per epoch
        net = xpnet.MultiLayerNetExtend(784, [20], 10, use_batchnorm=True, seed=0,
                                        backend="array_api_strict")
        trainer = xpnet.Trainer(net, x, t, xt, tt, epochs=2, mini_batch_size=batch,
                                optimizer="Adam", verbose=False, seed=0,
                                checkpoint_dir=tmp_path / str(batch))
        with counting_host_reads() as calls:
            trainer.train()
        counts.append(len(calls))
    assert counts[0] == counts[1], counts
