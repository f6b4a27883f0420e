"""``xpnet train --checkpoint-dir/--resume/--save``, ``xpnet predict`` and ``xpnet evaluate``, run
as a user would (``python -m xpnet`` in a subprocess), including a real SIGINT."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from test_cli import assert_clean_error, xpnet

TRAIN = ("train", "--source", "bundled", "--hidden", "32", "--dropout", "0.1", "--quiet")


def _popen(*args):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("XPNET_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "xpnet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _history(out):
    return json.loads((out / "train_history.json").read_text())["history"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One uninterrupted 3-epoch run (batches of 20: 400 steps an epoch), with --save."""
    out = tmp_path_factory.mktemp("ref")
    proc = xpnet(*TRAIN, "--epochs", "3", "--batch-size", "20", "--out", str(out),
                 "--save", str(out / "model" / "net.safetensors"))
    assert proc.returncode == 0, proc.stderr
    return out


def test_real_sigint_then_resume_equals_the_uninterrupted_run(trained, tmp_path):
    out, ck = tmp_path / "run", tmp_path / "ck"
    args = (*TRAIN, "--epochs", "3", "--batch-size", "20", "--out", str(out),
            "--checkpoint-dir", str(ck))
    proc = _popen(*args)
    deadline = time.monotonic() + 120
    while not (ck / "last.safetensors").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint after two minutes"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)  # during epoch 2 (or 3)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "interrupted" in err and f"--checkpoint-dir {ck} --resume" in err
    assert not (out / "train_history.json").exists()

    resumed = xpnet(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    got, want = _history(out), _history(trained)
    assert got["train_loss"] == want["train_loss"]  # bit for bit: JSON floats round-trip
    assert got["test_acc"] == want["test_acc"] and got["train_acc"] == want["train_acc"]
    assert len(got["epoch_times"]) == 3


def test_sigterm_saves_and_exits_143(tmp_path):
    ck = tmp_path / "ck"
    proc = _popen(*TRAIN, "--epochs", "3", "--batch-size", "20", "--out", str(tmp_path),
                  "--checkpoint-dir", str(ck))
    while not (ck / "last.safetensors").exists() and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err


def test_resume_refuses_other_options_and_missing_runs(trained, tmp_path):
    ck = trained / "checkpoints"
    proc = xpnet(*TRAIN, "--out", str(tmp_path), "--checkpoint-dir", str(ck), "--resume",
                 "--lr", "0.5")
    assert_clean_error(proc, 2)
    assert "--lr 0.5 differs from the run being resumed" in proc.stderr
    proc = xpnet(*TRAIN, "--out", str(tmp_path), "--checkpoint-dir", str(tmp_path / "none"),
                 "--resume")
    assert_clean_error(proc, 1)
    assert "nothing to resume" in proc.stderr
    # a finished run resumed with more epochs goes on (3 -> 4)
    proc = xpnet(*TRAIN, "--out", str(tmp_path / "more"), "--checkpoint-dir", str(ck),
                 "--resume", "--epochs", "4")
    assert proc.returncode == 0, proc.stderr
    assert len(_history(tmp_path / "more")["test_acc"]) == 4


def test_evaluate_and_predict_a_saved_model_on_any_backend(trained, tmp_path):
    record = json.loads((trained / "train_history.json").read_text())
    model = trained / "model" / "net.safetensors"
    proc = xpnet("evaluate", str(model))
    assert proc.returncode == 0, proc.stderr
    assert f"accuracy {record['test_acc']:.4f}" in proc.stdout
    pytest.importorskip("array_api_strict")
    strict = xpnet("evaluate", str(model), "--backend", "array_api_strict", "--device",
                   "device1")
    assert strict.returncode == 0, strict.stderr
    assert proc.stdout.splitlines()[0] == strict.stdout.splitlines()[0]

    # predict on files: .npy pixels (uint8) and IDX, against NumPy's own forward pass
    from xpnet.datasets import load_mnist

    (_, _), (x, t) = load_mnist(source="bundled", normalize=False, flatten=False)
    images = x[:50, 0]
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "t.npy", t[:50])
    pred = xpnet("predict", str(trained / "checkpoints"), "--input", str(tmp_path / "x.npy"),
                 "--labels", str(tmp_path / "t.npy"))
    assert pred.returncode == 0, pred.stderr
    got = np.array([int(v) for v in pred.stdout.split()])
    import safetensors.numpy

    w = safetensors.numpy.load_file(str(trained / "checkpoints" / "best.safetensors"))
    h = images.reshape(50, -1).astype(np.float64) / 255
    h = h @ w["param/W1"] + w["param/b1"]
    h = (h - w["buffer/BatchNorm1.running_mean"]) / np.sqrt(
        w["buffer/BatchNorm1.running_var"] + 1e-6) * w["param/gamma1"] + w["param/beta1"]
    h = np.maximum(h, 0) * (1 - 0.1)  # the book's dropout at inference
    expected = np.argmax(h @ w["param/W2"] + w["param/b2"], axis=1)
    np.testing.assert_array_equal(got, expected)
    assert f"accuracy {np.mean(expected == t[:50]):.4f}" in pred.stderr


def test_predict_and_evaluate_refuse_bad_models_and_inputs(trained, tmp_path):
    model = trained / "model" / "net.safetensors"
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(model.read_bytes()[:-10])
    proc = xpnet("evaluate", str(broken))
    assert_clean_error(proc, 1)
    assert str(broken) in proc.stderr
    pickled = tmp_path / "obj.npy"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    for args in (("predict", str(model), "--input", str(pickled)),
                 ("predict", str(model), "--input", str(tmp_path / "missing.npy")),
                 ("evaluate", str(tmp_path))):
        assert_clean_error(xpnet(*args), 1)
    np.save(tmp_path / "wide.npy", np.zeros((3, 5), np.float32))
    proc = xpnet("predict", str(model), "--input", str(tmp_path / "wide.npy"))
    assert_clean_error(proc, 1)
    assert "784" in proc.stderr
    proc = xpnet("evaluate", str(model), "--input", str(tmp_path / "wide.npy"))
    assert_clean_error(proc, 2)  # evaluate needs labels


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverging_run_exits_1_with_one_line(tmp_path):
    proc = xpnet("train", "--source", "bundled", "--hidden", "50", "--no-batchnorm",
                 "--optimizer", "sgd", "--lr", "1", "--weight-decay", "10", "--epochs", "2",
                 "--quiet", "--out", str(tmp_path))
    assert_clean_error(proc, 1)
    assert "training diverged" in proc.stderr and "lr=1" in proc.stderr
    assert "last.safetensors" in proc.stderr or "no checkpoint" in proc.stderr


def test_convnet_saves_evaluates_and_resumes_with_its_options(tmp_path):
    """``--model convnet`` through the checkpoint machinery: --save then evaluate, and --resume
    takes the conv net's options from the checkpoint (none given again), and refuses a changed
    one."""
    out, ck, model = tmp_path / "out", tmp_path / "ck", tmp_path / "cnn.safetensors"
    args = ("train", "--model", "convnet", "--source", "bundled", "--filters", "6",
            "--filter-size", "3", "--hidden", "24", "--normalization", "group", "--quiet",
            "--checkpoint-dir", str(ck))
    proc = xpnet(*args, "--epochs", "1", "--out", str(out), "--save", str(model))
    assert proc.returncode == 0, proc.stderr
    ev = xpnet("evaluate", str(model))
    assert ev.returncode == 0, ev.stderr
    assert "SimpleConvNet 784-24-10" in ev.stdout
    acc = float(ev.stdout.split()[1])
    assert acc == pytest.approx(json.loads((out / "train_history.json").read_text())["test_acc"],
                                abs=1e-4)
    resumed = xpnet("train", "--checkpoint-dir", str(ck), "--resume", "--epochs", "2",
                    "--quiet", "--out", str(tmp_path / "out2"))
    assert resumed.returncode == 0, resumed.stderr
    cfg = json.loads((tmp_path / "out2" / "train_history.json").read_text())["config"]
    assert (cfg["model"], cfg["conv_param"]["filter_num"], cfg["normalization"],
            cfg["num_groups"]) == ("convnet", 6, "group", 3)
    changed = xpnet("train", "--checkpoint-dir", str(ck), "--resume", "--filters", "8",
                    "--out", str(tmp_path / "out3"))
    assert_clean_error(changed, code=2)
    assert "--filters" in changed.stderr


def test_resume_accepts_options_equal_to_the_values_the_run_used(tmp_path):
    """An option given again with the value the run used (here the defaults it was left at) is
    not a difference: ``--lr 0.001 --beta1 0.9`` resumes a run trained with Adam's defaults,
    while another value is still refused."""
    out = tmp_path / "run"
    proc = xpnet(*TRAIN, "--epochs", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    ck = str(out / "checkpoints")
    proc = xpnet(*TRAIN, "--out", str(out), "--checkpoint-dir", ck, "--resume", "--lr", "0.002")
    assert_clean_error(proc, 2)
    assert "--lr 0.002 differs from the run being resumed (0.001)" in proc.stderr
    proc = xpnet(*TRAIN, "--out", str(out), "--checkpoint-dir", ck, "--resume", "--epochs", "2",
                 "--lr", "0.001", "--beta1", "0.9", "--optimizer", "Adam")
    assert proc.returncode == 0, proc.stderr
    assert len(_history(out)["test_acc"]) == 2
