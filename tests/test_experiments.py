"""Every experiment's quick mode on numpy and array_api_strict: it runs, its result is plain JSON,
its figure is written, and it says what the book says."""

from __future__ import annotations

import json
import math
import os
import warnings

import pytest

from xpnet import experiments


def _backends() -> list[str]:
    """numpy and array_api_strict; or the base names in XPNET_TEST_BACKENDS (see conftest)."""
    raw = os.environ.get("XPNET_TEST_BACKENDS", "").strip()
    if not raw:
        return ["numpy", "array_api_strict"]
    names = []
    for item in raw.split(","):
        base = item.strip().split("-")[0]
        if base and base not in names:
            names.append(base)
    return names


BACKENDS = _backends()

#: array_api_strict (and torch, cupy when XPNET_TEST_BACKENDS names them) prove the code is
#: portable, not the book's numbers: there the slow experiments run shrunk further, and the book
#: checks of those run on numpy only (skipped in a session that doesn't test numpy).
SHRINK = {
    "optimizer_compare": {"iterations": 40},
    "weight_init": {"iterations": 40},
    "batch_norm": {"epochs": 3, "weight_scales": [1.0, 0.01]},
    "overfit_weight_decay": {"epochs": 12},
    "dropout": {"epochs": 12},
    "activation_histograms": {"n_samples": 200, "cs231n_width": 512},
    "titanic": {"epochs": 8},
    "compare": {"epochs": 4},
    "conv_normalizations": {"epochs": 1, "n_train": 300, "n_test": 200},
}
BOOK_BACKENDS = [b for b in BACKENDS if b == "numpy"]
NAMES = list(experiments.EXPERIMENTS)

_cache: dict[tuple[str, str], dict] = {}


def quick_result(name: str, backend: str) -> dict:
    """Run ``name`` in quick mode once per test session (several tests read the same result)."""
    if backend == "array_api_strict":
        pytest.importorskip("array_api_strict")
    key = (name, backend)
    if key not in _cache:
        mod = experiments.get(name)
        kw = {"source": "bundled"} if "source" in mod.FULL else {}  # never touch the network
        if backend != "numpy":
            kw.update(SHRINK.get(name, {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in deliberately bad nets
            _cache[key] = mod.run(backend=backend, seed=0, quick=True, progress=False, **kw)
    return _cache[key]


@pytest.fixture(params=BACKENDS)
def bname(request):
    """A backend name (the experiments take names; conftest's ``backend`` is an object)."""
    return request.param


@pytest.fixture(params=BOOK_BACKENDS)
def book_bname(request):
    """A backend on which the slow experiments run at their quick size."""
    return request.param


# -- every experiment -------------------------------------------------------------------------


def test_registry_has_the_eleven_experiments():
    assert NAMES == [
        "optimizer_paths", "optimizer_compare", "activation_histograms", "weight_init",
        "batch_norm", "overfit_weight_decay", "dropout", "hyperparameter_search", "titanic",
        "compare", "conv_normalizations",
    ]
    for mod in experiments.EXPERIMENTS.values():
        assert callable(mod.run) and callable(mod.plot)
    with pytest.raises(KeyError, match="valid names"):
        experiments.get("nope")


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_is_plain_json(name, bname):
    res = quick_result(name, bname)
    assert res["experiment"] == name
    assert res["backend"] == bname
    assert res["quick"] is True
    text = json.dumps(res, allow_nan=False)  # only plain JSON types, no NaN
    assert json.loads(text) == res


@pytest.mark.parametrize("name", NAMES)
def test_plot_writes_a_png(name, tmp_path):
    res = quick_result(name, BACKENDS[0])
    json_path, png_path = experiments.save(res, tmp_path)
    assert png_path.name == f"{name}.png" and json_path.name == f"{name}.json"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png_path.stat().st_size > 10_000
    assert json.loads(json_path.read_text())["experiment"] == name


def test_unknown_override_is_rejected():
    with pytest.raises(TypeError, match="unknown experiment option"):
        experiments.run("optimizer_paths", no_such_option=1)


@pytest.mark.parametrize("name", [n for n in NAMES if "n_test" in experiments.get(n).FULL])
def test_n_test_limits_the_test_digits(name):
    """``n_test`` keeps the first digits of the test set (``None``: all of it)."""
    kw = {"n_test": 37, "n_train": 100, "source": "bundled"}
    kw.update({k: v for k, v in {"epochs": 1, "normalizations": ["none"],
                                 "activations": ["relu"], "dropout_ratios": [0.0],
                                 "weight_decay_lambdas": [0.0]}.items()
               if k in experiments.get(name).FULL})
    result = experiments.run(name, backend="numpy", quick=True, progress=False, **kw)
    assert result["n_test"] == 37


def test_same_numbers_on_numpy_and_strict():
    pytest.importorskip("array_api_strict")
    a = quick_result("titanic", "numpy")["runs"]
    b = quick_result("titanic", "array_api_strict")["runs"]
    for k in a:  # strict ran fewer epochs: its steps are the first of numpy's
        n = min(len(a[k]["train_loss"]), len(b[k]["train_loss"]))
        assert n > 0
        for x, y in zip(a[k]["train_loss"][:n], b[k]["train_loss"][:n], strict=True):
            assert math.isclose(x, y, rel_tol=1e-4, abs_tol=1e-6), k


# -- what the book says -----------------------------------------------------------------------


def test_optimizer_paths_adagrad_ends_nearest(bname):
    res = quick_result("optimizer_paths", bname)
    d = res["final_distance"]
    assert res["nearest_of_book_optimizers"] == "AdaGrad"
    assert d["AdaGrad"] < min(d["SGD"], d["Momentum"], d["Adam"])
    for p in res["paths"].values():
        assert len(p["x"]) == res["config"]["steps"] + 1
        assert (p["x"][0], p["y"][0]) == (-7.0, 2.0)


def test_optimizer_compare_sgd_is_slowest(book_bname):
    final = quick_result("optimizer_compare", book_bname)["final_loss"]
    assert final["SGD"] > max(final["Momentum"], final["AdaGrad"], final["Adam"])


def test_activation_histograms_he_keeps_relu_spread(book_bname):
    res = quick_result("activation_histograms", book_bname)
    small, he = res["book"]["relu/0.01"][-1], res["book"]["relu/he"][-1]
    assert he["std"] > 1000 * small["std"]  # std 0.01: the signal vanishes layer by layer
    assert small["frac_near_zero"] > 0.99
    assert he["frac_near_zero"] < 0.75
    # sigmoid with std 1 saturates; std 0.01 piles up at 0.5
    assert res["book"]["sigmoid/1"][-1]["std"] > 3 * res["book"]["sigmoid/0.01"][-1]["std"]
    # cs231n: 0.01 collapses, 0.05 saturates, Xavier stays in between
    cs = res["cs231n"]
    assert cs["0.01"][-1]["std"] < 0.05
    assert cs["0.05"][-1]["std"] > cs["xavier"][-1]["std"] > cs["0.01"][-1]["std"]


def test_weight_init_std001_does_not_learn(book_bname):
    res = quick_result("weight_init", book_bname)
    final = res["final_loss"]
    assert final["std=0.01"] > 2.2  # stuck near ln(10)
    assert final["He"] < final["Xavier"] < final["std=0.01"]
    assert res["test_acc"]["He"] > 0.6


def test_batch_norm_learns_faster_at_most_scales(book_bname):
    res = quick_result("batch_norm", book_bname)
    n = len(res["scales"])
    assert res["bn_faster_count"] > n / 2
    assert max(s["bn_train_acc"][-1] for s in res["scales"]) > 0.6


def test_weight_decay_shrinks_the_gap(book_bname):
    runs = quick_result("overfit_weight_decay", book_bname)["runs"]
    plain, decayed = runs["0.0"], runs["0.1"]
    assert plain["train_acc"][-1] > 0.9  # overfits the 300 digits
    assert decayed["gap"] < plain["gap"]


def test_dropout_shrinks_the_gap(book_bname):
    runs = quick_result("dropout", book_bname)["runs"]
    plain, dropped = runs["0.0"], runs["0.2"]
    assert plain["train_acc"][-1] > 0.9
    assert dropped["test_acc"][-1] > 0.5  # it learned, rather than merely not overfitting
    assert dropped["gap"] < plain["gap"]


def test_hyperparameter_search_ranks_trials(bname):
    res = quick_result("hyperparameter_search", bname)
    trials = res["trials"]
    assert len(trials) == res["config"]["trials"]
    assert all(t["status"] == "ok" for t in trials)
    accs = [t["metrics"]["val_acc"] for t in trials]
    assert accs == sorted(accs, reverse=True)
    assert res["best"]["trial"] == trials[0]["trial"]
    cfg = res["config"]
    for t in trials:
        lr, wd = t["params"]["lr"], t["params"]["weight_decay"]
        assert 10 ** cfg["lr_exp"][0] <= lr <= 10 ** cfg["lr_exp"][1]
        assert 10 ** cfg["weight_decay_exp"][0] <= wd <= 10 ** cfg["weight_decay_exp"][1]
        assert len(t["curves"]["val_acc"]) == len(t["curves"]["train_acc"]) == cfg["epochs"]
        assert t["curves"]["val_acc"][-1] == t["metrics"]["val_acc"]
        assert t["backend"] == bname
    assert res["n_val"] == int(cfg["n_train"] * cfg["validation_rate"])


def test_hyperparameter_search_parallel_matches_sequential():
    seq = quick_result("hyperparameter_search", "numpy")
    par = experiments.run("hyperparameter_search", quick=True, workers=2, executor="thread",
                          source="bundled", progress=False)
    assert [(t["trial"], t["metrics"], t["curves"]) for t in par["trials"]] == [
        (t["trial"], t["metrics"], t["curves"]) for t in seq["trials"]]


def test_hyperparameter_search_with_halving_resumes_from_its_file(tmp_path):
    path = tmp_path / "search.jsonl"
    kw = {"quick": True, "source": "bundled", "progress": False, "halving": True,
          "results": str(path), "trials": 6, "epochs": 6, "min_epochs": 2, "eta": 3}
    first = experiments.run("hyperparameter_search", **kw)
    lines = path.read_text().splitlines()
    again = experiments.run("hyperparameter_search", **kw)
    assert path.read_text().splitlines() == lines  # nothing ran twice, nothing was added
    assert again["timings"]["trials_run"] == 0
    assert [t["trial"] for t in again["trials"]] == [t["trial"] for t in first["trials"]]
    # 6 trials at 2 epochs, the best 2 at 6 epochs: 6 * 2 + 2 * 6 instead of 6 * 6
    assert first["halving"]["epochs_used"] == 24 and first["halving"]["epochs_full_search"] == 36
    assert first["best"]["budget"] == 6


def test_titanic_beats_the_majority_baseline(bname):
    res = quick_result("titanic", bname)
    for r in res["runs"].values():
        assert r["final_test_acc"] > res["majority_baseline"]


def test_compare_runs_every_pair(bname):
    """Issue 10's complete experiment: every activation with none / batch / layer norm, nothing
    unavailable; the feature-map normalizations are pointed to the conv net's experiment."""
    res = quick_result("compare", bname)
    assert res["activations"] == ["sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu",
                                  "maxout"]
    assert res["normalizations"] == ["none", "batch", "layer"]
    assert res["unavailable"] == {}
    assert res["elsewhere"] == {"instance": "conv_normalizations",
                                "group": "conv_normalizations"}
    assert set(res["runs"]) == {f"{a}/{n}" for a in res["activations"]
                                for n in res["normalizations"]}
    for r in res["runs"].values():
        assert len(r["test_acc"]) == res["config"]["epochs"]
        assert all(0.0 <= a <= 1.0 for a in r["test_acc"])


def test_compare_relu_beats_sigmoid_and_batch_norm_rescues_it(book_bname):
    runs = quick_result("compare", book_bname)["runs"]
    assert runs["relu/none"]["final_test_acc"] > runs["sigmoid/none"]["final_test_acc"]
    assert runs["sigmoid/batch"]["final_test_acc"] > runs["sigmoid/none"]["final_test_acc"]


def test_conv_normalizations_runs_every_method(bname):
    res = quick_result("conv_normalizations", bname)
    runs = res["runs"]
    assert list(runs) == ["none", "batch", "layer", "instance", "group"]
    epochs = res["config"]["epochs"]
    for r in runs.values():
        assert len(r["test_acc"]) == epochs
        assert len(r["train_loss"]) == epochs * res["iter_per_epoch"]
    assert runs["group"]["num_groups"] not in (None, 1, res["config"]["filter_num"])


def test_conv_normalizations_every_method_learns_faster_than_none(book_bname):
    """The book's small initial weights (std 0.01) leave the unnormalized conv net slow to
    start; each normalization rescales the feature maps and learns faster."""
    runs = quick_result("conv_normalizations", book_bname)["runs"]
    for name in ("batch", "layer", "instance", "group"):
        assert runs[name]["mean_test_acc"] > runs["none"]["mean_test_acc"] + 0.05, name
        assert runs[name]["final_test_acc"] > 0.7, name
