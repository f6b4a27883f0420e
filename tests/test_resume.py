"""Resumable training: Trainer(checkpoint_dir=..., resume=True), SIGINT/SIGTERM during
``train()``, and the best/last checkpoints.

The oracle is the same run without interruption: an interrupted and resumed run must end with
the same numbers, bit for bit (the losses, accuracies, parameters, running statistics and
optimizer state), with batch norm, dropout and Adam all in play.
"""

from __future__ import annotations

import signal
import threading

import numpy as np
import pytest

import xpnet
from xpnet.checkpoint import read
from xpnet.datasets import load_mnist


@pytest.fixture(scope="module")
def digits():
    (x, t), (xt, tt) = load_mnist(source="bundled")
    return x[:300], t[:300], xt[:100], tt[:100]


class _SignalAt(xpnet.Adam):
    """Adam that sends itself ``sig`` (once, or ``times`` times) right after update ``at``."""

    def __init__(self, lr=0.01, *, at=None, sig=signal.SIGINT, times=1, fused=True):
        super().__init__(lr, fused=fused)
        self.at, self.sig, self.times = at, sig, times

    def update(self, params, grads, **kw):
        super().update(params, grads, **kw)
        if self.iter == self.at:
            for _ in range(self.times):
                signal.raise_signal(self.sig)


def _trainer(backend, digits, ckdir, *, resume=False, at=None, sig=signal.SIGINT, times=1,
             epochs=3, **kw):
    x, t, xt, tt = digits
    net = xpnet.MultiLayerNetExtend(784, [16, 12], 10, use_batchnorm=True, use_dropout=True,
                                    dropout_ration=0.2, seed=3, backend=backend)
    opt = _SignalAt(at=at, sig=sig, times=times)
    return xpnet.Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=50, optimizer=opt,
                         verbose=False, seed=7, checkpoint_dir=ckdir, resume=resume, **kw)


def _same_run(a, b):
    be = a.network.backend
    assert a.train_loss_list == b.train_loss_list
    assert a.train_acc_list == b.train_acc_list and a.test_acc_list == b.test_acc_list
    assert len(a.epoch_times) == len(b.epoch_times) == a.current_epoch == b.current_epoch
    for key in a.network.params:
        np.testing.assert_array_equal(be.to_numpy(b.network.params[key]),
                                      be.to_numpy(a.network.params[key]), err_msg=key)
    for layer in ("BatchNorm1", "BatchNorm2"):
        np.testing.assert_array_equal(be.to_numpy(b.network.layers[layer].running_mean),
                                      be.to_numpy(a.network.layers[layer].running_mean))
    for name in ("m", "v"):
        for key in a.network.params:
            np.testing.assert_array_equal(be.to_numpy(b.optimizer.state[name][key]),
                                          be.to_numpy(a.optimizer.state[name][key]))
    assert a.optimizer.iter == b.optimizer.iter


@pytest.fixture
def reference(digits, tmp_path_factory):
    cache = {}

    def get(backend):
        key = (backend.name, backend.device_name)
        if key not in cache:
            ref = _trainer(backend, digits, tmp_path_factory.mktemp("ref"))
            ref.train()
            cache[key] = ref
        return cache[key]

    return get


@pytest.mark.parametrize("at", [4, 6, 13], ids=["mid-epoch", "last-step", "epoch-3"])
def test_interrupted_and_resumed_equals_uninterrupted(backend, digits, reference, tmp_path, at):
    """6 steps per epoch; SIGINT after step 4 (mid-epoch 1), 6 (the last step of epoch 1:
    the epoch completes first) and 13 (the first step of epoch 3)."""
    ref = reference(backend)
    run = _trainer(backend, digits, tmp_path, at=at)
    with pytest.raises(xpnet.TrainingInterrupted) as info:
        run.train()
    assert info.value.signal == signal.SIGINT
    assert info.value.checkpoint == tmp_path / "last.safetensors"
    assert len(run.train_loss_list) == at  # the history of every step taken is kept
    assert run.train_loss_list == ref.train_loss_list[:at]
    state = read(tmp_path / "last.safetensors").extra["trainer"]
    assert state["iter"] == at and state["epoch"] == at // 6
    resumed = _trainer(backend, digits, tmp_path, resume=True)
    assert resumed.current_iter == at
    resumed.train()
    _same_run(ref, resumed)


def test_the_interrupted_trainer_itself_continues(digits, reference, tmp_path):
    backend = xpnet.get_backend("numpy")
    run = _trainer(backend, digits, tmp_path, at=8)
    with pytest.raises(xpnet.TrainingInterrupted):
        run.train()
    run.train()  # the rest of the same run, not three more epochs
    _same_run(reference(backend), run)


def test_sigterm_stops_and_saves_too(digits, tmp_path):
    run = _trainer(None, digits, tmp_path, at=3, sig=signal.SIGTERM)
    with pytest.raises(xpnet.TrainingInterrupted, match="SIGTERM") as info:
        run.train()
    assert info.value.signal == signal.SIGTERM
    assert read(tmp_path / "last.safetensors").extra["trainer"]["iter"] == 3


def test_a_second_signal_aborts_at_once_without_saving(digits, tmp_path):
    run = _trainer(None, digits, tmp_path, at=9, times=2)
    with pytest.raises(KeyboardInterrupt) as info:
        run.train()
    assert not isinstance(info.value, xpnet.TrainingInterrupted)
    # the last checkpoint is the one of the end of epoch 1, not of a half-taken step
    assert read(tmp_path / "last.safetensors").extra["trainer"]["iter"] == 6


def test_signal_handlers_are_restored_and_only_installed_in_the_main_thread(digits, tmp_path):
    seen = []

    def mine(signum, frame):  # pragma: no cover - never called
        seen.append(signum)

    old_int, old_term = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        _trainer(None, digits, tmp_path / "a", epochs=1).train()
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
        with pytest.raises(xpnet.TrainingInterrupted):
            _trainer(None, digits, tmp_path / "b", at=2).train()
        assert signal.getsignal(signal.SIGINT) is mine
        # in another thread: no handler (signal.signal would raise there), training works
        errors = []

        def work():
            try:
                _trainer(None, digits, tmp_path / "c", epochs=1).train()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        th = threading.Thread(target=work)
        th.start()
        th.join()
        assert not errors
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
    assert not seen


def test_best_checkpoint_holds_the_best_epoch(digits, tmp_path):
    run = _trainer(None, digits, tmp_path, epochs=4)
    run.train()
    best = int(np.argmax(run.test_acc_list)) + 1
    assert run.best_epoch == best and run.best_test_acc == max(run.test_acc_list)
    ck = read(tmp_path / "best.safetensors")
    assert ck.extra["trainer"]["epoch"] == best
    net = xpnet.load(tmp_path / "best.safetensors")
    _, _, xt, tt = digits
    assert net.accuracy(xt, tt) == max(run.test_acc_list)
    assert read(tmp_path / "last.safetensors").extra["trainer"]["epoch"] == 4


def test_train_twice_without_resume_runs_more_epochs_as_in_the_book(digits, tmp_path):
    run = _trainer(None, digits, tmp_path, epochs=1)
    run.train()
    run.train()
    assert run.current_epoch == 2 and len(run.test_acc_list) == 2


def test_resume_refuses_what_does_not_fit(digits, tmp_path):
    x, t, xt, tt = digits
    odd = xpnet.MultiLayerNet(784, [5], 10, weight_init_std=np.array(0.1))
    with pytest.raises(TypeError, match="weight_init_std"):  # before any epoch
        xpnet.Trainer(odd, x, t, xt, tt, checkpoint_dir=tmp_path / "odd", verbose=False)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        xpnet.Trainer(xpnet.MultiLayerNet(784, [5], 10), x, t, xt, tt, resume=True)
    with pytest.raises(FileNotFoundError, match="last.safetensors"):
        _trainer(None, digits, tmp_path / "empty", resume=True)
    run = _trainer(None, digits, tmp_path, epochs=1)
    run.train()
    net = xpnet.MultiLayerNetExtend(784, [16, 12], 10, use_batchnorm=True, use_dropout=True)
    with pytest.raises(ValueError, match="train_size=300"):
        xpnet.Trainer(net, x[:200], t[:200], xt, tt, mini_batch_size=50, optimizer="Adam",
                      checkpoint_dir=tmp_path, resume=True, verbose=False)
    with pytest.raises(ValueError, match="_SignalAt optimizer, but this Trainer's is SGD"):
        xpnet.Trainer(net, x, t, xt, tt, mini_batch_size=50, optimizer="SGD",
                      checkpoint_dir=tmp_path, resume=True, verbose=False)
    other = xpnet.MultiLayerNetExtend(784, [16, 13], 10, use_batchnorm=True, use_dropout=True)
    before = other.params["W1"].copy()
    with pytest.raises(xpnet.CheckpointError, match="W2 has shape"), \
            pytest.warns(UserWarning, match="other arguments"):
        xpnet.Trainer(other, x, t, xt, tt, mini_batch_size=50, optimizer=_SignalAt(),
                      checkpoint_dir=tmp_path, resume=True, verbose=False)
    np.testing.assert_array_equal(other.params["W1"], before)
    (tmp_path / "plain").mkdir()
    xpnet.MultiLayerNet(784, [5], 10).save(tmp_path / "plain" / "last.safetensors")
    with pytest.raises(xpnet.CheckpointError, match="holds no Trainer state"):
        xpnet.Trainer(xpnet.MultiLayerNet(784, [5], 10), x, t, xt, tt, mini_batch_size=50,
                      checkpoint_dir=tmp_path / "plain", resume=True, verbose=False)


def test_resumed_hyperparameters_come_from_the_checkpoint_with_a_warning(digits, tmp_path):
    run = _trainer(None, digits, tmp_path, epochs=1)
    run.train()
    x, t, xt, tt = digits
    net = xpnet.MultiLayerNetExtend(784, [16, 12], 10, use_batchnorm=True, use_dropout=True,
                                    dropout_ration=0.2, seed=3)
    with pytest.warns(UserWarning, match="saved _SignalAt hyperparameters"):
        tr = xpnet.Trainer(net, x, t, xt, tt, epochs=2, mini_batch_size=50,
                           optimizer=_SignalAt(lr=0.5), checkpoint_dir=tmp_path, resume=True,
                           verbose=False, seed=7)
    assert tr.optimizer.lr == 0.01
