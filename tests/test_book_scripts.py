"""Scripts in the style of the book's ch06, ported by the mechanical import rewrite alone, run
headless on every backend through XPNET_BACKEND / XPNET_DEVICE (tests/book_scripts/).

Each script runs in this process (``runpy``), as ``python script.py`` would run it, with
matplotlib's Agg backend and ``plt.show`` recording the figure; the backend is chosen only by
the environment, as a reader would (``XPNET_BACKEND=torch python script.py``).  One test runs a
script in a fresh interpreter to check exactly that command.
"""

from __future__ import annotations

import math
import os
import re
import runpy
import subprocess
import sys
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest

import book_reference as book
from conftest import assert_on_backend
from xpnet.datasets import DatasetFallbackWarning, _download

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SCRIPTS = Path(__file__).parent / "book_scripts"
ROOT = Path(__file__).parents[1]

#: The README's rule, as the sed one-liner there:
#: sed -i -E 's/^([[:space:]]*)from (common|dataset)([. ])/\1from xpnet.book.\2\3/'
_RULE = re.compile(r"^([ \t]*)from (common|dataset)([. ])", re.MULTILINE)


def port(source: str) -> str:
    """The mechanical rewrite: ``from common.X`` / ``from dataset.X`` -> ``from xpnet.book...``."""
    return _RULE.sub(r"\1from xpnet.book.\2\3", source)


@pytest.fixture
def run_script(backend, monkeypatch, tmp_path, capsys):
    """Run a ported script from tests/book_scripts/ on ``backend``; return its globals and
    what it printed.  Offline: MNIST falls back to the bundled digits, as with no network."""
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline (test)")

    monkeypatch.setattr(_download, "fetch", offline)
    monkeypatch.setenv("XPNET_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XPNET_BACKEND", backend.name)
    monkeypatch.setenv("XPNET_DEVICE", backend.device_name)
    monkeypatch.delenv("XPNET_DTYPE", raising=False)
    shown = []

    def show(*args, **kwargs):
        fig = plt.gcf()
        shown.append([ax for ax in fig.axes])
        fig.canvas.draw()  # render, as a window would
        plt.close("all")

    monkeypatch.setattr(plt, "show", show)

    def run(name: str):
        source = (SCRIPTS / name).read_text(encoding="utf-8")
        ported = port(source)
        changed = [(a, b) for a, b in zip(source.splitlines(), ported.splitlines(), strict=True)
                   if a != b]
        assert changed and all(b.lstrip().startswith("from xpnet.book.") for _, b in changed)
        path = tmp_path / name
        path.write_text(ported, encoding="utf-8")
        np.random.seed(0)  # noqa: NPY002  (the scripts draw from the global stream, as the book's)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DatasetFallbackWarning)  # offline: bundled digits
            # np.abs(torch tensor) in the book's gradient check: torch's, not ours
            warnings.filterwarnings("ignore", "__array_wrap__", DeprecationWarning)
            g = runpy.run_path(str(path), run_name="__main__")
        out = capsys.readouterr().out
        assert "tensor(" not in out and "Array(" not in out, out
        assert len(shown) == (0 if "plt.show()" not in source else 1)
        return g, out

    yield run
    plt.close("all")


def _numbers(out: str, label: str) -> list[float]:
    """The number after ``label:`` on each line that starts with it (must parse as a float)."""
    vals = []
    for line in out.splitlines():
        if line.startswith(label + ":"):
            vals.append(float(line[len(label) + 1:].split()[0]))
    return vals


# ---------------------------------------------------------------------------------------------
# the scripts
# ---------------------------------------------------------------------------------------------


def test_port_is_the_readme_rule():
    src = ("import numpy as np\nfrom common.optimizer import *\n"
           "    from dataset.mnist import load_mnist\nfrom common import util\n"
           "from commonplace import x\n# from common.util import smooth_curve\n")
    assert port(src) == (
        "import numpy as np\nfrom xpnet.book.common.optimizer import *\n"
        "    from xpnet.book.dataset.mnist import load_mnist\nfrom xpnet.book.common import util\n"
        "from commonplace import x\n# from common.util import smooth_curve\n")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert r"-E 's/^([[:space:]]*)from (common|dataset)([. ])/\1from xpnet.book.\2\3/'" \
        in readme


def test_optimizer_paths_float_parameters(run_script):
    """Python-float parameters: every optimizer moves them (rebinding the dict entries), each
    history holds 30 distinct floats, and the paths are the book's to 1e-12."""
    g, out = run_script("optimizer_paths.py")
    assert list(g["paths"]) == list(book.OPTIMIZERS)
    for name, (xs, ys) in g["paths"].items():
        assert all(type(v) is float for v in xs + ys), name
        assert len(set(xs)) == 30, name  # one object recorded 30 times would give 1
        bx, by = book.path(name)
        np.testing.assert_allclose(xs, bx, rtol=0, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(ys, by, rtol=0, atol=1e-12, err_msg=name)
    # the printed end points are the book's 31st point
    for name in book.OPTIMIZERS:
        line = next(s for s in out.splitlines() if s.startswith(name + ": ("))
        x, y = (float(v) for v in line.split("(")[1].rstrip(")").split(","))
        bx, by = book.path(name, 31)
        assert math.isclose(x, bx[-1], abs_tol=1e-12) and math.isclose(y, by[-1], abs_tol=1e-12)


def test_optimizer_mnist_np_from_star_import(run_script, backend):
    """No ``import numpy``: ``np`` comes from ``from common.optimizer import *``; losses print
    and plot as numbers; networks on the chosen backend, in float64."""
    source = (SCRIPTS / "optimizer_mnist.py").read_text(encoding="utf-8")
    assert "import numpy" not in source
    g, out = run_script("optimizer_mnist.py")
    for key, net in g["networks"].items():
        assert_on_backend(backend, net.params["W1"], dtype="float64")
        losses = g["train_loss"][key]
        assert len(losses) == 24 and all(type(v) is float for v in losses)
        printed = _numbers(out, key)
        assert len(printed) == 3 and all(0 < v < 5 for v in printed), (key, printed)
    # Adam and Momentum learn in 24 steps: the smoothed end of their curves is below the start
    for key in ("Momentum", "Adam"):
        curve = np.asarray(g["train_loss"][key])
        assert curve[-4:].mean() < curve[:4].mean(), key


def test_gradient_check_float64(run_script, backend):
    """``numerical_gradient`` / ``numerical_gradient_2d`` against backprop on a batch-norm
    network: float64 differences (float32 would give ~1e-4)."""
    if backend.name == "array_api_strict" and not backend.is_default_device:
        pytest.skip("np.abs(...) of the book's check needs NumPy to read the arrays, which "
                    "array_api_strict refuses off its CPU device (CuPy dispatches np.abs and "
                    "np.average to itself; torch converts)")
    g, out = run_script("gradient_check.py")
    diffs = {k: _numbers(out, k)[0] for k in ("b1", "gamma1", "beta1", "b2", "gamma2", "beta2",
                                               "b3", "W3")}
    for key, d in diffs.items():
        assert 0 <= d < 1e-6, (key, d)
    # the losses print as numbers, and the two spellings of the loss agree
    a, b = _numbers(out, "softmax_loss")[0], _numbers(out, "cross_entropy_error")[0]
    assert 0.5 < a < 5 and math.isclose(a, b, rel_tol=1e-12)
    assert_on_backend(backend, g["grad_numerical"]["W3"], dtype="float64", shape=(20, 10))


def test_hyperparameter_search_with_shuffle_and_trainer(run_script):
    g, out = run_script("hyperparam_search.py")
    assert g["x_val"].shape == (40, 784) and g["x_train"].shape == (160, 784)
    assert len(g["results_val"]) == 3
    for key, accs in g["results_val"].items():
        assert len(accs) == 3 and all(type(a) is float and 0 <= a <= 1 for a in accs), key
        assert accs[-1] == _numbers(out, "val acc")[list(g["results_val"]).index(key)]
    assert len([s for s in out.splitlines() if s.startswith("Best-")]) == 3


def test_batchnorm_compare_one_optimizer_for_two_networks(run_script, backend):
    g, out = run_script("batchnorm_compare.py")
    for train_acc, bn_acc in g["results"].values():
        assert len(train_acc) == len(bn_acc) == 3
        assert all(type(a) is float and 0 <= a <= 1 for a in train_acc + bn_acc)
    lines = [s for s in out.splitlines() if s.startswith("epoch:")]
    assert len(lines) == 6
    assert all(float(p) >= 0 for s in lines for p in s.split("|")[1].split(" - "))


def test_dropout_trainer(run_script, backend):
    g, out = run_script("dropout_trainer.py")
    trainer = g["trainer"]
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 3
    assert len(trainer.train_loss_list) == 9 and all(
        type(v) is float and v > 0 for v in trainer.train_loss_list)
    assert "test acc: 0." in out
    assert_on_backend(backend, g["network"].params["W1"], dtype="float64")


def test_a_script_runs_as_a_reader_runs_it(tmp_path):
    """``XPNET_BACKEND=torch python script.py`` in a fresh interpreter (numpy when torch is
    missing): the ported optimizer-paths script prints the book's end points."""
    try:
        import torch  # noqa: F401

        name = "torch"
    except ImportError:
        name = "numpy"
    path = tmp_path / "optimizer_paths.py"
    path.write_text(port((SCRIPTS / "optimizer_paths.py").read_text(encoding="utf-8")))
    env = dict(os.environ, XPNET_BACKEND=name, MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    bx, by = book.path("Adam", 31)
    line = next(s for s in proc.stdout.splitlines() if s.startswith("Adam: ("))
    x, y = (float(v) for v in line.split("(")[1].rstrip(")").split(","))
    assert math.isclose(x, bx[-1], abs_tol=1e-12) and math.isclose(y, by[-1], abs_tol=1e-12)
