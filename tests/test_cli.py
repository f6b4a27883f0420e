"""The ``xpnet`` command, run as ``python -m xpnet`` in a subprocess like a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from xpnet.backend import BackendUnavailableError, get_backend


def xpnet(*args: str, cwd=None, timeout: float = 300, env_extra=None
          ) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    env.setdefault("OPENBLAS_NUM_THREADS", "1")  # steadier on small shared machines
    env["MPLBACKEND"] = "Agg"
    env.pop("XPNET_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "xpnet", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=timeout)


def assert_clean_error(proc: subprocess.CompletedProcess, code: int | None = None) -> None:
    assert proc.returncode != 0
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("xpnet") and "error" in last, proc.stderr


def test_version_and_help():
    proc = xpnet("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("xpnet ")
    proc = xpnet("--help")
    assert proc.returncode == 0
    for cmd in ("train", "experiment", "search", "info", "bench"):
        assert cmd in proc.stdout
    proc = xpnet("train", "--help")
    assert proc.returncode == 0 and "--batchnorm" in proc.stdout and "--optimizer" in proc.stdout


@pytest.mark.parametrize("cmd", ["train", "evaluate", "predict", "experiment", "search"])
def test_help_states_each_default_once_and_prints_percent_signs_once(cmd):
    proc = xpnet(cmd, "--help")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())  # argparse wraps lines anywhere
    # an option whose default is resolved later (None) says so in its own help text; argparse's
    # "(default: None)" appended after it would contradict it ("(default relu) (default: None)")
    assert "(default: None)" not in text
    assert "%%" not in text  # descriptions are not %-formatted: "20%%" would print as is
    if cmd == "search":
        assert "20% of them for validation" in text


def test_experiment_help_and_list_name_every_experiment():
    from xpnet.experiments import EXPERIMENTS

    helptext = xpnet("experiment", "--help").stdout
    listing = xpnet("experiment", "list").stdout
    for name in EXPERIMENTS:
        assert name in helptext
        assert name in listing


def test_train_one_epoch_writes_curve_and_history(tmp_path):
    out = tmp_path / "out"
    proc = xpnet("train", "--epochs", "1", "--source", "bundled", "--hidden", "64,32",
                 "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    assert "time per epoch" in proc.stdout
    assert "numpy" in proc.stdout
    png, hist = out / "train_curve.png", out / "train_history.json"
    assert png.read_bytes()[:4] == b"\x89PNG"
    record = json.loads(hist.read_text())
    assert record["backend"] == "numpy"
    assert record["config"]["layers"] == [784, 64, 32, 10]
    assert record["test_acc"] > 0.8
    assert len(record["history"]["test_acc"]) == 1
    assert record["history"]["train_loss"]


def test_train_flags_reach_the_network(tmp_path):
    pytest.importorskip("array_api_strict")
    out = tmp_path / "strict"
    proc = xpnet("train", "--epochs", "1", "--source", "bundled", "--hidden", "32",
                 "--backend", "strict", "--optimizer", "momentum", "--lr", "0.05",
                 "--momentum", "0.8", "--no-batchnorm", "--dropout", "0.1",
                 "--weight-decay", "1e-4", "--activation", "tanh", "--quiet",
                 "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads((out / "train_history.json").read_text())
    cfg = record["config"]
    assert record["backend"] == "array_api_strict"
    assert cfg["optimizer"] == "Momentum"
    assert cfg["optimizer_param"] == {"lr": 0.05, "momentum": 0.8}
    assert (cfg["batchnorm"], cfg["dropout"], cfg["activation"]) == (False, 0.1, "tanh")
    assert cfg["weight_init_std"] == "xavier"
    assert "train:" not in proc.stderr  # --quiet: no progress bar


def test_train_convnet_reaches_the_network(tmp_path):
    out = tmp_path / "cnn"
    proc = xpnet("train", "--model", "convnet", "--epochs", "1", "--source", "bundled",
                 "--filters", "8", "--filter-size", "3", "--hidden", "32", "--normalization",
                 "group", "--num-groups", "2", "--quiet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    record = json.loads((out / "train_history.json").read_text())
    cfg = record["config"]
    assert cfg["model"] == "convnet"
    assert cfg["conv_param"] == {"filter_num": 8, "filter_size": 3, "pad": 0, "stride": 1}
    assert (cfg["hidden_size"], cfg["normalization"], cfg["num_groups"]) == (32, "group", 2)
    assert cfg["weight_init_std"] == "he"
    assert record["test_acc"] > 0.8
    assert (out / "train_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_experiment_quick_writes_png_and_json(tmp_path):
    proc = xpnet("experiment", "optimizer_paths", "--quick", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "optimizer_paths.png").read_bytes()[:4] == b"\x89PNG"
    result = json.loads((tmp_path / "optimizer_paths.json").read_text())
    assert result["experiment"] == "optimizer_paths"
    assert result["nearest_of_book_optimizers"] == "AdaGrad"


def test_info_lists_backends_and_versions():
    proc = xpnet("info")
    assert proc.returncode == 0, proc.stderr
    for word in ("numpy", "array_api_strict", "cupy", "torch", "array-api-compat"):
        assert word in proc.stdout


def test_info_reports_the_kernel_threads():
    proc = xpnet("info", env_extra={"XPNET_NUM_THREADS": "3"})
    assert proc.returncode == 0, proc.stderr
    assert "3 threads for xpnet's NumPy kernels" in proc.stdout
    bad = xpnet("info", env_extra={"XPNET_NUM_THREADS": "many"})
    assert_clean_error(bad)
    assert "XPNET_NUM_THREADS" in bad.stderr


@pytest.mark.parametrize("args", [
    ["train", "--backend", "foo"],
    ["train", "--optimizer", "lamb"],
    ["train", "--hidden", "0,a"],
    ["train", "--hidden", "100,-5"],
    ["train", "--epochs", "0"],
    ["train", "--dropout", "1.5"],
    ["train", "--momentum", "0.5"],  # Adam has no momentum
    ["train", "--model", "convnet", "--dropout", "0.2"],
    ["train", "--model", "convnet", "--no-batchnorm"],
    ["train", "--model", "convnet", "--hidden", "100,50"],
    ["train", "--model", "convnet", "--normalization", "batch", "--num-groups", "2"],
    ["train", "--model", "convnet", "--normalization", "group", "--num-groups", "7"],
    ["train", "--model", "convnet", "--filter-size", "28"],
    ["train", "--model", "rnn"],
    ["train", "--filters", "8"],
    ["train", "--normalization", "layer"],
    ["experiment", "nope"],
    ["experiment", "titanic", "--set", "no_such_option=1"],
    ["experiment", "titanic", "--set", "novalue"],
    ["search", "--trials", "0"],
    ["search", "--workers", "2", "--dask-local", "2"],
    ["search", "--lr", "0.1,0.01"],
    ["search", "--lr", "1e-3"],
    ["search", "--validation", "1"],
    ["search", "--halving", "--min-epochs", "5", "--epochs", "4"],
    ["search", "--halving", "--eta", "1"],
    ["frobnicate"],
], ids=lambda a: " ".join(a))
def test_bad_arguments_exit_2_without_traceback(args):
    assert_clean_error(xpnet(*args), code=2)


def test_search_writes_its_report_resumes_and_refuses_another_search(tmp_path):
    args = ["search", "--trials", "4", "--epochs", "2", "--n-train", "150", "--hidden", "30",
            "--source", "bundled", "--out", str(tmp_path), "--top", "3", "--quiet"]
    proc = xpnet(*args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Best-1 (val acc ")
    assert len([s for s in proc.stdout.splitlines() if s.startswith("Best-")]) == 3
    assert "4 run now" in proc.stdout
    for name in ("search_curves.png", "search_scatter.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    rows = [json.loads(s) for s in (tmp_path / "search.jsonl").read_text().splitlines()]
    assert rows[0]["kind"] == "header" and rows[0]["objective"]["n_val"] == 30
    assert sorted(r["trial"] for r in rows[1:]) == [0, 1, 2, 3]
    # the same command again: nothing to run; the report is the same
    again = xpnet(*args)
    assert again.returncode == 0 and "0 run now" in again.stdout
    assert again.stdout.splitlines()[:3] == proc.stdout.splitlines()[:3]
    # another seed with the same results file: refused in one line, the file left alone
    before = (tmp_path / "search.jsonl").read_bytes()
    other = xpnet(*args, "--seed", "1")
    assert_clean_error(other, code=1)
    assert "seed" in other.stderr.strip().splitlines()[-1]
    assert (tmp_path / "search.jsonl").read_bytes() == before


def test_search_with_halving_on_a_process_pool_reports_the_saving(tmp_path):
    best = tmp_path / "best.safetensors"
    proc = xpnet("search", "--trials", "6", "--epochs", "6", "--min-epochs", "2", "--halving",
                 "--workers", "2", "--n-train", "150", "--hidden", "30", "--source", "bundled",
                 "--out", str(tmp_path), "--quiet", "--test", "--save-best", str(best))
    assert proc.returncode == 0, proc.stderr
    # 6 trials x 2 epochs + 2 x 6 instead of 6 x 6
    assert "24 epochs of training instead of 36 (33% saved)" in proc.stdout
    test_line = [s for s in proc.stdout.splitlines() if s.startswith("test accuracy")][0]
    assert f"saved          {best}" in proc.stdout
    # the saved network is the one that was scored on the test set
    ev = xpnet("evaluate", str(best))
    assert ev.returncode == 0, ev.stderr
    assert test_line.split()[2] in ev.stdout, (test_line, ev.stdout)


def test_missing_backend_is_a_one_line_error():
    try:
        get_backend("cupy")
    except BackendUnavailableError:
        pass
    else:
        pytest.skip("CuPy with a CUDA device is available here")
    proc = xpnet("train", "--backend", "cupy", "--epochs", "1")
    assert_clean_error(proc, code=1)
    assert "cupy" in proc.stderr.lower()


def test_bad_device_is_a_one_line_error():
    assert_clean_error(xpnet("train", "--device", "gpu7", "--epochs", "1"), code=1)


def test_bench_is_forwarded():
    try:
        from xpnet.benchmark import main  # noqa: F401
    except ImportError:
        pytest.skip("xpnet.benchmark is not in this tree")
    proc = xpnet("bench", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()


def test_fallback_note_is_chosen_by_warning_class_not_words(capsys):
    import warnings

    from xpnet.cli import _warnings_as_notes
    from xpnet.datasets import DatasetFallbackWarning

    said: set[str] = set()
    with _warnings_as_notes(said):
        warnings.warn("no full set here", DatasetFallbackWarning, stacklevel=1)
        warnings.warn("Falling back to the bundled digits", UserWarning, stacklevel=1)
        warnings.warn("no full set here either", DatasetFallbackWarning, stacklevel=1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "xpnet: the full MNIST set is not available (no network, not cached): using the "
        "bundled 8,000 training / 2,000 test digits",
        "xpnet: UserWarning: Falling back to the bundled digits",
    ]
