"""Trainer hooks: on_epoch_end and the progress switch."""

import numpy as np

import xpnet


def test_trainer_on_epoch_end_can_stop_training():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    net = xpnet.MultiLayerNet(5, [6], 3, seed=0)
    seen = []

    def stop_after_two(trainer):
        seen.append(trainer.current_epoch)
        if trainer.current_epoch == 2:
            raise StopIteration

    tr = xpnet.Trainer(net, x, t, x, t, epochs=5, mini_batch_size=20, verbose=False,
                       on_epoch_end=stop_after_two)
    history = tr.train()
    assert seen == [1, 2]
    assert history["epochs"] == 2 and len(tr.test_acc_list) == 2
    assert len(tr.train_loss_list) == 2 * 3


def test_progress_without_final_print(capsys):
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    net = xpnet.MultiLayerNet(5, [6], 3, seed=0)
    xpnet.Trainer(net, x, t, x, t, epochs=1, mini_batch_size=20, verbose=False,
                  progress=True).train()
    assert "Final Test Accuracy" not in capsys.readouterr().out
    xpnet.Trainer(net, x, t, x, t, epochs=1, mini_batch_size=20, verbose=True).train()
    assert "Final Test Accuracy" in capsys.readouterr().out
