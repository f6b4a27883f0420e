"""``bench/oracle_errors.py``: every layer's float64 forward and gradients agree with the NumPy
oracles, torch autograd and central differences, and a wrong layer shows up in its table."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

import xpnet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "oracle_errors.py")

#: SoftmaxWithLoss's forward is the book's -mean(log(y[t] + 1e-7)), its backward the exact
#: (y - onehot) / N: central differences of the forward differ by up to 1e-7 / (N * min y[t])
#: (1.2e-6 at the script's inputs, where one y[t] is 0.02) -- the one documented exception.
SOFTMAX_NUMERICAL_BOUND = 2e-6


def _load_script():
    spec = importlib.util.spec_from_file_location("oracle_errors", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["oracle_errors"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _f64_errors(records):
    for rec in records:
        for be, cols in rec["errors"].items():
            for col, errs in cols.items():
                if col.endswith("_f64"):
                    for q, err in errs.items():
                        yield rec["case"], be, col, q, err


def test_every_layer_agrees_with_every_oracle_in_float64(backend, capsys):
    mod = _load_script()
    records = mod.main(["--no-write"], backends=[backend])
    assert len(records) == len(mod._cases()) >= 20
    seen = set()
    for case, be, col, q, err in _f64_errors(records):
        seen.add(col)
        bound = (SOFTMAX_NUMERICAL_BOUND if case == "SoftmaxWithLoss" and col == "numerical_f64"
                 else 1e-6)
        assert err < bound, (case, be, col, q, err)
    expected = {"numpy_f64", "numerical_f64"} | ({"torch_f64"} if mod._torch_available() else set())
    if backend.has_float64:
        assert seen == expected
    # every gradient of every case with a backward was measured against every oracle
    for rec in records:
        for cols in rec["errors"].values():
            for col, errs in cols.items():
                want = rec["quantities"] if col != "numerical_f64" else rec["quantities"][1:]
                assert sorted(errs) == sorted(want), (rec["case"], col)
    assert "| Affine | dx, dW, db |" in capsys.readouterr().out


def test_a_wrong_gradient_shows_up_in_every_column(monkeypatch):
    """A ReLU backward 0.1% off (the kind of bug the table is for) is reported as such."""
    mod = _load_script()
    right = xpnet.layers.Relu.backward
    monkeypatch.setattr(xpnet.layers.Relu, "backward", lambda self, d: right(self, d) * 1.001)
    (rec,) = mod.main(["--no-write", "--layers", "Relu", "--no-numerical"],
                      backends=[xpnet.get_backend("numpy")])
    cols = rec["errors"]["numpy"]
    assert cols["numpy_f64"]["out"] == 0.0
    assert cols["numpy_f64"]["dx"] > 1e-4
    assert cols["numpy_f32"]["dx"] > 1e-4
    if "torch_f64" in cols:
        assert cols["torch_f64"]["dx"] > 1e-4


def test_cli_subset_writes_markdown_and_json(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    out = subprocess.run([sys.executable, SCRIPT, "--layers", "Affine,Relu", "--backends",
                          "numpy", "--out", str(tmp_path)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    md = (tmp_path / "oracle_errors.md").read_text()
    assert md == out.stdout
    assert md.count("| Affine |") == 2 and md.count("| Relu |") == 2
    assert "| Sigmoid |" not in md
    assert "--layers Affine,Relu" in md and "max(1, |oracle|)" in md
    data = json.loads((tmp_path / "oracle_errors.json").read_text())
    assert [r["case"] for r in data["records"]] == ["Affine", "Relu"]


def test_cli_rejects_unknown_layer():
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    out = subprocess.run([sys.executable, SCRIPT, "--layers", "Affine,Nope", "--no-write"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2
    assert "Nope" in out.stderr


def test_rel_error_is_relative_above_one_and_absolute_below():
    mod = _load_script()
    assert mod.rel_error([2.0, 0.5], [1.0, 0.25]) == 1.0  # |2-1|/1
    assert mod.rel_error([10.5], [10.0]) == pytest.approx(0.05)
    assert mod.rel_error([0.25], [0.0]) == 0.25
    with pytest.raises(ValueError, match="shape"):
        mod.rel_error([1.0, 2.0], [1.0])
