"""xpnet.Trainer on the real digits (the bundled 10,000-digit MNIST test set, 8,000/2,000)."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
import xpnet.devicelog
import xpnet.progress
from conftest import assert_on_backend, counting_host_reads
from xpnet import MultiLayerNet, MultiLayerNetExtend, Trainer
from xpnet.datasets import load_mnist
from xpnet.trainer import train_steps


@pytest.fixture(scope="module")
def mnist():
    (x_train, t_train), (x_test, t_test) = load_mnist(source="bundled")
    assert x_train.shape == (8000, 784) and x_test.shape == (2000, 784)
    assert t_train.shape == (8000,) and t_test.shape == (2000,)
    return x_train, t_train, x_test, t_test


def _check_lists(trainer, epochs, iters_per_epoch):
    assert len(trainer.train_loss_list) == epochs * iters_per_epoch
    assert len(trainer.train_acc_list) == epochs
    assert len(trainer.test_acc_list) == epochs
    for name in ("train_loss_list", "train_acc_list", "test_acc_list"):
        values = getattr(trainer, name)
        assert all(type(v) is float for v in values), name
        assert all(np.isfinite(v) for v in values), name
    assert all(0.0 <= a <= 1.0 for a in trainer.train_acc_list + trainer.test_acc_list)


@pytest.mark.slow
def test_trainer_reaches_93_percent_on_numpy(mnist):
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNet(784, [100, 100], 10, seed=0)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=10, mini_batch_size=100,
                      optimizer="Adam", optimizer_param={"lr": 1e-3}, verbose=False,
                      seed=0)
    trainer.train()
    _check_lists(trainer, 10, 80)
    final = net.accuracy(x_test, t_test)
    assert type(final) is float
    # independent of the network's accuracy(): arg-max of predict on the host
    host_acc = float(np.mean(np.argmax(np.asarray(net.predict(x_test)), axis=1) == t_test))
    assert final == pytest.approx(host_acc)
    assert final > 0.93, f"test accuracy {final:.4f}"
    assert trainer.test_acc_list[-1] == pytest.approx(final)
    assert np.mean(trainer.train_loss_list[-20:]) < 0.3 * np.mean(trainer.train_loss_list[:20])
    assert net.params["W1"] is net.layers["Affine1"].W


def test_short_trainer_run_learns_on_every_backend(backend, mnist):
    x_train, t_train, x_test, t_test = mnist
    x_train, t_train = x_train[:2000], t_train[:2000]
    x_test, t_test = x_test[:500], t_test[:500]
    net = MultiLayerNetExtend(784, [50], 10, use_batchnorm=True, seed=1, backend=backend)
    trainer = Trainer(net, x_train, t_train, x_test, t_test, epochs=2, mini_batch_size=100,
                      optimizer="adam", optimizer_param={"lr": 1e-3}, verbose=False, seed=0)
    trainer.train()
    _check_lists(trainer, 2, 20)
    assert trainer.test_acc_list[-1] > 0.75, trainer.test_acc_list
    assert np.mean(trainer.train_loss_list[-5:]) < 0.6 * np.mean(trainer.train_loss_list[:5])
    for p in net.params.values():
        assert_on_backend(backend, p, dtype="float32")
    assert net.params["gamma1"] is net.layers["BatchNorm1"].gamma


def test_trainer_defaults_and_sample_evaluation(backend, mnist):
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNet(784, [20], 10, seed=2, backend=backend)
    trainer = Trainer(net, x_train[:300], t_train[:300], x_test[:300], t_test[:300], epochs=2,
                      evaluate_sample_num_per_epoch=100, verbose=False)
    assert isinstance(trainer.optimizer, xpnet.SGD)
    assert trainer.optimizer.lr == 0.01  # the book's optimizer='SGD', {'lr': 0.01}
    trainer.train()
    _check_lists(trainer, 2, 3)
    for acc in trainer.train_acc_list + trainer.test_acc_list:
        assert round(acc * 100) == pytest.approx(acc * 100)  # evaluated on 100 samples


def test_book_signature_positional():
    import inspect

    names = list(inspect.signature(Trainer).parameters)
    assert names[:11] == [
        "network", "x_train", "t_train", "x_test", "t_test", "epochs", "mini_batch_size",
        "optimizer", "optimizer_param", "evaluate_sample_num_per_epoch", "verbose",
    ]
    sig = inspect.signature(Trainer).parameters
    assert sig["epochs"].default == 20
    assert sig["mini_batch_size"].default == 100
    assert sig["optimizer"].default == "SGD"
    assert sig["verbose"].default is True


def test_verbose_run_reports(mnist, capsys):
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNet(784, [10], 10, seed=3)
    Trainer(net, x_train[:200], t_train[:200], x_test[:100], t_test[:100], epochs=1,
            optimizer="SGD", optimizer_param={"lr": 0.1}, verbose=True).train()
    out = capsys.readouterr()
    assert "test acc" in (out.out + out.err).lower()


def test_one_hot_labels_train_the_same_as_integer_labels(backend, mnist):
    x_train, t_train, x_test, t_test = mnist
    eye = np.eye(10, dtype=np.float32)
    curves = []
    for tr_labels, te_labels in ((t_train[:600], t_test[:200]),
                                 (eye[t_train[:600]], eye[t_test[:200]])):
        net = MultiLayerNet(784, [20], 10, seed=4, backend=backend)
        trainer = Trainer(net, x_train[:600], tr_labels, x_test[:200], te_labels, epochs=2,
                          optimizer="Adam", optimizer_param={"lr": 1e-3}, verbose=False,
                          seed=0)
        trainer.train()
        curves.append((trainer.train_loss_list, trainer.test_acc_list))
    np.testing.assert_allclose(curves[0][0], curves[1][0], rtol=1e-4)
    np.testing.assert_allclose(curves[0][1], curves[1][1], atol=1e-2)


def test_no_host_sync_on_every_step(mnist):
    """Every way a strict array reaches the host is counted: a handful per epoch, not per step."""
    pytest.importorskip("array_api_strict")
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNetExtend(784, [20], 10, use_batchnorm=True, use_dropout=True, seed=0,
                              backend="array_api_strict")
    trainer = Trainer(net, x_train[:2000], t_train[:2000], x_test[:200], t_test[:200],
                      epochs=2, optimizer="Adam", verbose=False)
    assert trainer.iter_per_epoch == 20
    with counting_host_reads() as calls:
        trainer.train()
    assert len(trainer.train_loss_list) == 40
    assert len(calls) <= 2 * 5, f"{len(calls)} host transfers in 40 steps: {calls}"


def test_evaluate_sample_num_larger_than_the_sets(backend, mnist):
    """The book slices ``x[:n]``; n beyond the data means all of it (NumPy slicing)."""
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNet(784, [10], 10, seed=5, backend=backend)
    trainer = Trainer(net, x_train[:200], t_train[:200], x_test[:50], t_test[:50], epochs=1,
                      evaluate_sample_num_per_epoch=1000, verbose=False)
    trainer.train()
    assert trainer.test_acc_list[-1] == pytest.approx(net.accuracy(x_test[:50], t_test[:50]))
    assert trainer.train_acc_list[-1] == pytest.approx(net.accuracy(x_train[:200],
                                                                    t_train[:200]))


def _curves(backend, mnist):
    x_train, t_train, x_test, t_test = mnist
    net = MultiLayerNetExtend(784, [30, 30], 10, use_batchnorm=True, seed=7, backend=backend)
    trainer = Trainer(net, x_train[:1000], t_train[:1000], x_test[:300], t_test[:300],
                      epochs=2, optimizer="Momentum", optimizer_param={"lr": 0.05},
                      verbose=False, seed=1)
    trainer.train()
    return trainer


def test_same_seed_same_curves_on_every_backend(backend, mnist):
    """One seed, one learning curve: initial weights drawn on the host and the same mini-batch
    order make every backend follow NumPy's curve up to float32 rounding."""
    ref = _curves("numpy", mnist)
    got = _curves(backend, mnist)
    np.testing.assert_allclose(got.train_loss_list, ref.train_loss_list, rtol=2e-3)
    np.testing.assert_allclose(got.test_acc_list, ref.test_acc_list, atol=0.01)
    np.testing.assert_allclose(got.train_acc_list, ref.train_acc_list, atol=0.01)


# -- train_steps: the step loop Trainer and the experiments share -----------------------------


def test_train_steps_is_the_books_loop_on_shared_batches(backend, mnist):
    x_host, t_host = mnist[0][:300], mnist[1][:300]
    x, t = backend.asarray(x_host, dtype="float32"), backend.asarray(t_host)
    host_batches = [np.random.default_rng(s).integers(0, 300, size=32) for s in range(5)]

    def nets():
        return {"sgd": (MultiLayerNet(784, [20], 10, seed=4, backend=backend), xpnet.SGD(lr=0.1)),
                "adam": (MultiLayerNet(784, [20], 10, seed=4, backend=backend),
                         xpnet.Adam(lr=1e-3))}

    runs, twins = nets(), nets()
    logs = {"sgd": xpnet.devicelog.DeviceLog(backend)}  # only one run logs
    bar = xpnet.progress.SilentProgress(total=5)
    steps = train_steps(runs, x, t, (backend.asarray(b) for b in host_batches), logs, bar)
    assert steps == 5 and bar.n == 5

    # the book's loop, written out: the loss logged is the one before the step's update
    want_loss = []
    for b in host_batches:
        xb, tb = backend.asarray(x_host[b], dtype="float32"), backend.asarray(t_host[b])
        for key, (net, opt) in twins.items():
            if key == "sgd":
                want_loss.append(backend.to_float(net.loss(xb, tb)))
            opt.update(net.params, net.gradient(xb, tb))
    np.testing.assert_allclose(logs["sgd"].values(), want_loss, rtol=1e-5, atol=1e-6)
    for key in runs:
        for name, p in runs[key][0].params.items():
            twin = twins[key][0].params[name]
            np.testing.assert_allclose(backend.to_numpy(p), backend.to_numpy(twin),
                                       rtol=1e-5, atol=1e-6, err_msg=f"{key} {name}")


def test_train_steps_falls_back_to_loss_for_networks_without_last_loss():
    class Quadratic:  # loss(w) = sum((w - x_mean)^2) over the batch mean; no last_loss
        def __init__(self):
            self.params = {"w": np.zeros(2)}

        def loss(self, xb, tb):
            return float(np.sum((self.params["w"] - xb.mean(axis=0)) ** 2))

        def gradient(self, xb, tb):
            return {"w": 2 * (self.params["w"] - xb.mean(axis=0))}

    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    net, log = Quadratic(), xpnet.devicelog.DeviceLog()
    train_steps({"q": (net, xpnet.SGD(lr=0.25))}, x, np.zeros(2), [np.array([0, 1])] * 3,
                {"q": log})
    # w moves halfway to the mean (2, 3) each step; without last_loss the loss is the book's,
    # taken after the update: 13/4, 13/16, 13/64
    assert log.values() == [3.25, 0.8125, 0.203125]
    np.testing.assert_allclose(net.params["w"], [1.75, 2.625])


def test_train_steps_checks_its_arguments_before_any_step():
    net = MultiLayerNet(4, [3], 2, seed=0)
    batches = iter([np.array([0])])
    x, t = np.ones((1, 4), dtype=np.float32), np.array([1])
    with pytest.raises(ValueError, match="runs is empty"):
        train_steps({}, x, t, batches)
    with pytest.raises(ValueError, match="not in runs"):
        train_steps({"a": (net, xpnet.SGD())}, x, t, batches, {"b": xpnet.devicelog.DeviceLog()})
    assert next(batches).tolist() == [0]  # nothing was consumed
