"""xpnet.search: spaces and sampling, the results file, executors (in-process, a process pool,
a real Dask LocalCluster), resuming after a kill, failed trials, successive halving, the
book's objective and its report."""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import search_objectives as so
from xpnet.search import (
    Halving,
    NetworkObjective,
    choice,
    describe_space,
    format_best,
    intuniform,
    load_results,
    local_cluster,
    loguniform,
    process_pool,
    random_search,
    read_results,
    sample,
    trial_seed,
    uniform,
    write_report,
)
from xpnet.search.results import ResultsFile

ROOT = Path(__file__).resolve().parents[1]
BOOK_SPACE = {"lr": loguniform(1e-6, 1e-2), "weight_decay": loguniform(1e-8, 1e-4)}
TOY_SPACE = {"lr": loguniform(1e-5, 1e-1), "weight_decay": loguniform(1e-8, 1e-4)}


def lines(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines()]


def trial_lines(path: Path) -> list[dict]:
    return [r for r in lines(path) if r["kind"] == "trial"]


def essentials(result) -> list[tuple]:
    """What must not depend on the executor: as JSON text, so floats compare bit for bit."""
    return [json.dumps([r["trial"], r["params"], r["seed"], r["status"], r["metrics"],
                        r["curves"]], sort_keys=True) for r in result.trials]


# --------------------------------------------------------------------------------------------
# spaces and sampling
# --------------------------------------------------------------------------------------------


def test_sample_follows_the_documented_recipe():
    """A NumPy transcription of the documented draw: SeedSequence([seed, trial]), names in
    sorted order, 10 ** U(log10 low, log10 high), integers with both ends, one of the options."""
    space = {"wd": loguniform(1e-8, 1e-4), "lr": loguniform(1e-6, 1e-2), "p": uniform(0.1, 0.5),
             "n": intuniform(1, 4), "opt": choice(["SGD", "Adam", "Momentum"]), "batch": 100}
    for seed, trial in [(0, 0), (0, 7), (3, 7), (12345, 99)]:
        rng = np.random.default_rng(np.random.SeedSequence([seed, trial]))
        want = {"batch": 100}
        want["lr"] = 10.0 ** rng.uniform(-6.0, -2.0)
        want["n"] = int(rng.integers(1, 5))
        want["opt"] = ["SGD", "Adam", "Momentum"][int(rng.integers(3))]
        want["p"] = rng.uniform(0.1, 0.5)
        want["wd"] = 10.0 ** rng.uniform(-8.0, -4.0)
        got = sample(space, seed, trial)
        assert got.keys() == want.keys()
        for k in want:
            if isinstance(want[k], float):
                assert got[k] == pytest.approx(want[k], rel=1e-14), k
            else:
                assert got[k] == want[k], k


def test_sample_depends_on_seed_and_trial_only():
    points = [sample(BOOK_SPACE, 0, i) for i in range(20)]
    assert sample(BOOK_SPACE, 0, 13) == points[13]          # no matter what was drawn before
    assert len({p["lr"] for p in points}) == 20
    assert sample(BOOK_SPACE, 1, 13) != points[13]
    # the order in which the space was written changes nothing
    reordered = {"weight_decay": BOOK_SPACE["weight_decay"], "lr": BOOK_SPACE["lr"]}
    assert sample(reordered, 0, 13) == points[13]
    assert describe_space(reordered) == describe_space(BOOK_SPACE)


def test_distributions_stay_in_their_ranges_and_reach_their_ends():
    space = {"lr": loguniform(1e-6, 1e-2), "k": intuniform(1, 3), "c": choice([1, "a", None])}
    pts = [sample(space, 5, i) for i in range(300)]
    assert all(1e-6 <= p["lr"] <= 1e-2 for p in pts)
    assert {p["k"] for p in pts} == {1, 2, 3}
    assert {p["c"] for p in pts} == {1, "a", None}
    logs = np.log10([p["lr"] for p in pts])
    # log-uniform: each of the four decades gets about a quarter
    counts = np.histogram(logs, bins=4, range=(-6, -2))[0]
    assert counts.min() > 300 / 4 * 0.6


def test_trial_seed_is_a_stream_of_its_own():
    seeds = [trial_seed(0, i) for i in range(100)]
    assert len(set(seeds)) == 100
    assert trial_seed(0, 5) == seeds[5] and trial_seed(1, 5) != seeds[5]
    assert all(0 <= s < 2**32 for s in seeds)


@pytest.mark.parametrize("make, err", [
    (lambda: loguniform(0, 1), ValueError),
    (lambda: loguniform(1e-2, 1e-3), ValueError),
    (lambda: uniform(1, 1), ValueError),
    (lambda: uniform(0, float("inf")), ValueError),
    (lambda: intuniform(1.5, 3), TypeError),
    (lambda: intuniform(3, 1), ValueError),
    (lambda: choice([]), ValueError),
    (lambda: choice("abc"), TypeError),
    (lambda: choice([(1, 2)]), TypeError),
    (lambda: describe_space({}), ValueError),
    (lambda: describe_space({"lr": np.float32(0.1)}), TypeError),
    (lambda: describe_space({1: loguniform(1e-3, 1e-1)}), TypeError),
    (lambda: sample(BOOK_SPACE, -1, 0), ValueError),
    (lambda: sample(BOOK_SPACE, 0, 1.5), ValueError),
    (lambda: Halving(0, 10), ValueError),
    (lambda: Halving(5, 4), ValueError),
    (lambda: Halving(1, 9, eta=1), ValueError),
])
def test_bad_spaces_and_schedules_are_refused(make, err):
    with pytest.raises(err):
        make()


def test_random_search_checks_its_arguments_before_any_work(tmp_path):
    path = tmp_path / "r.jsonl"
    bad = [
        dict(n_trials=0), dict(seed=-1), dict(mode="maximize"), dict(metric=""),
        dict(halving=(1, 9)), dict(executor="not a scheduler address but a string"),
    ]
    for kw in bad[:-1]:
        args = {"n_trials": 3, **kw}
        with pytest.raises((ValueError, TypeError)):
            random_search(TOY_SPACE, so.toy, results=path, progress=False, **args)
        assert not path.exists()
    with pytest.raises(TypeError, match="executor"):
        random_search(TOY_SPACE, so.toy, 3, executor=object(), progress=False)
    with pytest.raises(ValueError, match="resources"):
        random_search(TOY_SPACE, so.toy, 3, resources={"GPU": 1}, progress=False)
    with pytest.raises(TypeError, match="callable"):
        random_search(TOY_SPACE, "toy", 3, progress=False)


# --------------------------------------------------------------------------------------------
# the driver, in this process
# --------------------------------------------------------------------------------------------


def test_in_process_search_records_every_trial(tmp_path):
    path = tmp_path / "r.jsonl"
    res = random_search(TOY_SPACE, so.toy, 6, seed=4, results=path, progress=False)
    assert [r["trial"] for r in res.trials] == list(range(6))
    for i, r in enumerate(res.trials):
        assert r["params"] == sample(TOY_SPACE, 4, i)
        assert r["seed"] == trial_seed(4, i)
        assert r["metrics"]["val_acc"] == so.score(r["params"], None)
        assert r["metrics"]["seed_mod"] == r["seed"] % 1000  # the objective got the trial seed
        assert r["status"] == "ok" and r["error"] is None and r["wall_s"] >= 0
        assert r["cpu_s"] >= 0
        assert r["worker"].endswith(f":{os.getpid()}")
    # best and top: by the metric, computed here from the points
    want = sorted(range(6), key=lambda i: -so.score(sample(TOY_SPACE, 4, i), None))
    assert [r["trial"] for r in res.top(3)] == want[:3]
    assert res.best["trial"] == want[0]
    # the file: a header, then one line per trial, equal to the records
    head, *rest = lines(path)
    assert head["kind"] == "header" and head["seed"] == 4 and head["metric"] == "val_acc"
    assert head["space"] == describe_space(TOY_SPACE)
    assert sorted(rest, key=lambda r: r["trial"]) == res.trials
    assert load_results(path).trials == res.trials


def test_mode_min_ranks_the_other_way():
    res = random_search(TOY_SPACE, so.toy, 6, mode="min", progress=False)
    want = sorted(range(6), key=lambda i: so.score(sample(TOY_SPACE, 0, i), None))
    assert [r["trial"] for r in res.top()] == want


def test_failing_and_nan_trials_are_recorded_and_the_search_goes_on(tmp_path):
    space = {"lr": loguniform(1e-6, 1.0), "weight_decay": loguniform(1e-9, 1e-5)}
    path = tmp_path / "r.jsonl"
    res = random_search(space, so.bad_trials, 30, seed=1, results=path, progress=False)
    assert len(res.trials) == 30
    kinds = {"raised": 0, "nan": 0, "missing": 0, "ok": 0}
    for r in res.trials:
        lr, wd = r["params"]["lr"], r["params"]["weight_decay"]
        if lr < 1e-4:
            kinds["raised"] += 1
            assert r["status"] == "failed"
            assert r["error"].startswith("ArithmeticError: diverged at lr=")
            assert "bad_trials" in r["traceback"]
        elif lr > 1e-2:
            kinds["nan"] += 1
            assert r["status"] == "failed" and "non-finite metric val_acc" in r["error"]
            assert r["metrics"]["val_acc"] is None  # NaN is written as null
        elif wd < 1e-7:
            kinds["missing"] += 1
            assert r["status"] == "failed" and "no metric 'val_acc'" in r["error"]
        else:
            kinds["ok"] += 1
            assert r["status"] == "ok"
    assert all(kinds.values()), kinds  # the seed gives every kind at least once
    assert res.best["status"] == "ok"
    assert {r["trial"] for r in res.failed} == {r["trial"] for r in res.trials
                                                if r["status"] == "failed"}
    assert len(trial_lines(path)) == 30


def test_a_restart_skips_what_is_done_and_retry_failed_runs_failures_again(tmp_path):
    path = tmp_path / "r.jsonl"
    first = random_search(TOY_SPACE, so.toy, 4, results=path, progress=False)
    assert first.ran == 4
    more = random_search(TOY_SPACE, so.toy, 7, results=path, progress=False)  # extend to 7
    assert more.ran == 3 and essentials(more)[:4] == essentials(first)
    again = random_search(TOY_SPACE, so.toy, 7, results=path, progress=False)
    assert again.ran == 0 and essentials(again) == essentials(more)
    assert sorted(r["trial"] for r in trial_lines(path)) == list(range(7))

    # failures are final unless asked
    path2 = tmp_path / "bad.jsonl"
    space = {"lr": loguniform(1e-6, 1e-2)}
    res = random_search(space, so.bad_trials, 5, results=path2, progress=False)
    n_failed = len(res.failed)
    assert n_failed > 0
    assert random_search(space, so.bad_trials, 5, results=path2, progress=False).ran == 0
    res = random_search(space, so.bad_trials, 5, results=path2, retry_failed=True,
                        progress=False)
    assert res.ran == n_failed and len(res.trials) == 5


@pytest.mark.parametrize("change, word, detail", [
    ({"seed": 1}, "seed", "0 in the file, 1 now"),
    ({"space": {"lr": loguniform(1e-4, 1e-1), "weight_decay": loguniform(1e-8, 1e-4)}},
     "space", "lr: "),
    ({"space": {"lr": loguniform(1e-5, 1e-1)}}, "space", "weight_decay: "),
    ({"objective": so.bad_trials}, "objective", "bad_trials"),
    ({"metric": "train_acc"}, "metric", "train_acc"),
    ({"mode": "min"}, "mode", "min"),
    ({"halving": Halving(1, 3)}, "halving", "min_budget"),
])
def test_a_file_of_another_search_is_refused_and_left_alone(tmp_path, change, word, detail):
    path = tmp_path / "r.jsonl"
    random_search(TOY_SPACE, so.toy, 3, seed=0, results=path, progress=False)
    before = path.read_bytes()
    args = {"space": TOY_SPACE, "objective": so.toy, "seed": 0, **change}
    with pytest.raises(ValueError, match=f"its {word} differs") as info:
        random_search(args.pop("space"), args.pop("objective"), 3, results=path,
                      progress=False, **args)
    assert detail in str(info.value)
    assert path.read_bytes() == before


def test_a_resumed_search_compares_headers_as_json(tmp_path):
    """A tuple in the objective's description reads back as a list: still the same search."""
    path = tmp_path / "r.jsonl"
    obj = small_objective(net_kwargs={"hidden_size_list": (6, 5)})
    random_search(TOY_SPACE | {"lr": loguniform(1e-2, 1.0)}, obj, 2, results=path,
                  progress=False)
    res = random_search(TOY_SPACE | {"lr": loguniform(1e-2, 1.0)}, obj, 2, results=path,
                        progress=False)
    assert res.ran == 0


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path):
    path = tmp_path / "r.jsonl"
    random_search(TOY_SPACE, so.toy, 3, results=path, progress=False)
    good = path.read_bytes()
    torn = json.dumps(trial_lines(path)[0])[:40]  # a crash in the middle of writing a line
    path.write_bytes(good + torn.encode())
    header, records = read_results(path)
    assert header["kind"] == "header" and len(records) == 3  # read: ignored
    res = random_search(TOY_SPACE, so.toy, 5, results=path, progress=False)
    assert res.ran == 2
    text = path.read_text()
    assert torn not in text and text.endswith("\n")
    assert sorted(r["trial"] for r in trial_lines(path)) == list(range(5))


def test_a_broken_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "r.jsonl"
    random_search(TOY_SPACE, so.toy, 3, results=path, progress=False)
    rows = path.read_text().splitlines()
    rows[2] = rows[2][:10]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="line 3"):
        random_search(TOY_SPACE, so.toy, 3, results=path, progress=False)
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    with pytest.raises(ValueError, match="not an xpnet search results file"):
        random_search(TOY_SPACE, so.toy, 3, results=other, progress=False)


def test_only_one_search_may_hold_a_results_file(tmp_path):
    path = tmp_path / "r.jsonl"
    header = {"kind": "header", "format": "xpnet.search/1", "seed": 0}
    with ResultsFile(path, header):
        with pytest.raises(RuntimeError, match="in use"):
            ResultsFile(path, header)
    with ResultsFile(path, header) as again:  # released
        assert again.records == []


def test_a_killed_search_restarts_and_ends_with_every_trial_exactly_once(tmp_path):
    path = tmp_path / "r.jsonl"
    script = (
        "import search_objectives as so\n"
        "from xpnet.search import loguniform, random_search\n"
        "space = {'lr': loguniform(1e-5, 1e-1), 'weight_decay': loguniform(1e-8, 1e-4)}\n"
        f"random_search(space, so.Slow(0.25), 12, seed=3, results={str(path)!r}, "
        "progress=False)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if path.exists() and len(trial_lines(path)) >= 3:
                break
            if proc.poll() is not None:
                pytest.fail(f"the search ended before it was killed: {proc.stderr.read()}")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done_before = {r["trial"] for r in trial_lines(path)}
    assert 3 <= len(done_before) < 12
    res = random_search(TOY_SPACE, so.Slow(0.25), 12, seed=3, results=path, progress=False)
    assert res.ran == 12 - len(done_before)
    assert sorted(r["trial"] for r in trial_lines(path)) == list(range(12))
    fresh = random_search(TOY_SPACE, so.toy, 12, seed=3, progress=False)
    assert essentials(res) == essentials(fresh)


# --------------------------------------------------------------------------------------------
# successive halving
# --------------------------------------------------------------------------------------------


def expected_rungs(space, seed, n, halving, metric_of):
    """The rungs, computed here from the points: all trials at the first budget, then the best
    n // eta (at least one) of each rung, ties to the lower trial number."""
    ids = list(range(n))
    out = []
    budgets = halving.budgets()
    for r, b in enumerate(budgets):
        scores = {i: metric_of(sample(space, seed, i), b) for i in ids}
        ok = [i for i in ids if scores[i] is not None]
        ranked = sorted(ok, key=lambda i: (-scores[i], i))
        keep = [] if r == len(budgets) - 1 else ranked[:max(1, len(ids) // halving.eta)]
        out.append((b, ids, keep))
        if not keep:
            break
        ids = sorted(keep)
    return out


def test_halving_rungs_keep_the_right_trials(tmp_path):
    h = Halving(min_budget=1, max_budget=9, eta=3)
    path = tmp_path / "h.jsonl"
    res = random_search(TOY_SPACE, so.toy, 20, seed=2, results=path, halving=h,
                        progress=False)
    want = expected_rungs(TOY_SPACE, 2, 20, h, so.score)
    assert [(w[0], len(w[1])) for w in want] == [(1, 20), (3, 6), (9, 2)]
    assert [(r["budget"], r["trials"], r["promoted"]) for r in res.rungs] == [
        (b, ids, keep) for b, ids, keep in want]
    # every (trial, rung) ran once, with the rung's budget
    ran = sorted((r["rung"], r["trial"], r["budget"]) for r in trial_lines(path))
    assert ran == sorted((k, i, b) for k, (b, ids, _) in enumerate(want) for i in ids)
    assert res.best["trial"] == sorted(want[-1][1], key=lambda i: -so.score(
        sample(TOY_SPACE, 2, i), 9))[0]
    assert res.best["budget"] == 9 and len(res.best["curves"]["val_acc"]) == 9
    # trials eliminated early rank after those that went on
    order = [r["trial"] for r in res.top()]
    assert order[:2] == sorted(want[2][1], key=lambda i: -so.score(sample(TOY_SPACE, 2, i), 9))
    assert set(order[2:6]) == set(want[1][1]) - set(want[2][1])
    saving = res.halving_saving()
    assert saving["epochs_used"] == 20 * 1 + 6 * 3 + 2 * 9 == h.cost(20)
    assert saving["epochs_full_search"] == 20 * 9
    # the rung lines are in the file
    assert [r["rung"] for r in lines(path) if r["kind"] == "rung"] == [0, 1, 2]


def test_halving_skips_failed_trials():
    space = {"lr": loguniform(1e-6, 1.0)}
    h = Halving(1, 4, eta=2)

    def metric_of(p, b):
        return None if p["lr"] < 1e-4 or p["lr"] > 1e-2 else so.score(p, b)

    res = random_search(space, so.bad_trials, 12, seed=1, halving=h, progress=False)
    want = expected_rungs(space, 1, 12, h, metric_of)
    assert [(r["trials"], r["promoted"]) for r in res.rungs] == [(i, k) for _, i, k in want]
    assert all(so.bad_trials(sample(space, 1, i), seed=0, budget=1)["val_acc"] == so.score(
        sample(space, 1, i), 1) for i in want[0][2])


def test_halving_resumes_after_a_crash_in_a_later_rung(tmp_path):
    h = Halving(1, 9, eta=3)
    path = tmp_path / "h.jsonl"
    want = expected_rungs(TOY_SPACE, 2, 20, h, so.score)
    victim = sample(TOY_SPACE, 2, want[1][1][-1])["lr"]  # a trial of rung 1
    with pytest.raises(KeyboardInterrupt):
        random_search(TOY_SPACE, so.InterruptAt(victim, 3), 20, seed=2, results=path,
                      halving=h, progress=False)
    partial = trial_lines(path)
    assert {r["rung"] for r in partial} == {0, 1}
    res = random_search(TOY_SPACE, so.toy, 20, seed=2, results=path, halving=h,
                        progress=False)
    assert res.ran == 20 + 6 + 2 - len(partial)
    keys = [(r["trial"], r["rung"]) for r in trial_lines(path)]
    assert len(keys) == len(set(keys)) == 28
    fresh = random_search(TOY_SPACE, so.toy, 20, seed=2, halving=h, progress=False)
    assert essentials(res) == essentials(fresh)
    assert [r["promoted"] for r in res.rungs] == [r["promoted"] for r in fresh.rungs]


def test_halving_refuses_another_number_of_trials(tmp_path):
    path = tmp_path / "h.jsonl"
    h = Halving(1, 3)
    random_search(TOY_SPACE, so.toy, 6, results=path, halving=h, progress=False)
    with pytest.raises(ValueError, match="n_trials differs"):
        random_search(TOY_SPACE, so.toy, 9, results=path, halving=h, progress=False)


# --------------------------------------------------------------------------------------------
# the book's objective
# --------------------------------------------------------------------------------------------


def digits(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic, learnable 'digits': 3 classes around 3 centres in 16 dimensions."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, 16))
    x = centres[t] + 0.5 * rng.normal(size=(n, 16))
    return x.astype(np.float32), t


def small_objective(backend="numpy", **kw) -> NetworkObjective:
    x, t = digits(120)
    args = {"net_kwargs": {"hidden_size_list": [12, 12]}, "epochs": 2, "batch_size": 20,
            "backend": backend}
    args.update(kw)
    return NetworkObjective(x, t, **args)


def test_validation_rows_never_overlap_training_rows_nor_the_test_set():
    n, n_test = 200, 60
    rng = np.random.default_rng(1)
    ids = rng.permutation(n + n_test) + 1000.0  # a unique id in the first column of every row
    x_all = np.column_stack([ids, rng.random((n + n_test, 3))]).astype(np.float64)
    t_all = rng.integers(0, 3, n + n_test)
    x, t, x_test = x_all[:n], t_all[:n], x_all[n:]
    obj = NetworkObjective(x, t, validation=0.2, net_kwargs={"hidden_size_list": [4]},
                           epochs=1, backend="numpy", dtype="float64", seed=7)
    train_ids, val_ids = set(obj.x_train[:, 0]), set(obj.x_val[:, 0])
    assert len(val_ids) == int(n * 0.2) == len(obj.x_val)
    assert train_ids.isdisjoint(val_ids)
    assert train_ids | val_ids == set(x[:, 0])
    assert val_ids.isdisjoint(x_test[:, 0]) and train_ids.isdisjoint(x_test[:, 0])
    # the book's shuffle_dataset then the first int(N * rate) rows, with a seeded permutation
    perm = np.random.default_rng(7).permutation(n)
    np.testing.assert_array_equal(obj.x_val, x[perm[:40]])
    np.testing.assert_array_equal(obj.t_train, t[perm[40:]])
    assert set(obj.val_index) | set(obj.train_index) == set(range(n))


def test_network_objective_on_every_backend(backend):
    """Same trial seed, float64: the same training on every backend (NumPy as reference)."""
    obj = small_objective(backend, dtype="float64")
    ref = small_objective("numpy", dtype="float64")
    params = {"lr": 0.1, "weight_decay": 1e-4, "momentum": 0.8, "optimizer": "Momentum"}
    got = obj(params, seed=11, budget=3)
    want = ref(params, seed=11, budget=3)
    assert got["backend"] == backend.name and got["device"] == backend.device_name
    assert got["epochs"] == 3 and len(got["curves"]["val_acc"]) == 3
    np.testing.assert_allclose(got["curves"]["train_loss"], want["curves"]["train_loss"],
                               rtol=1e-9)
    assert got["curves"]["val_acc"] == want["curves"]["val_acc"]
    assert want["train_acc"] > 0.6  # it learned something: the check above is not vacuous


def test_network_objective_refuses_what_it_cannot_use():
    x, t = digits(50)
    with pytest.raises(ValueError, match="validation"):
        NetworkObjective(x, t, validation=1.5)
    with pytest.raises(ValueError, match="validation"):
        NetworkObjective(x, t, validation=50)
    with pytest.raises(ValueError, match="net"):
        NetworkObjective(x, t, net="ResNet")
    with pytest.raises(ValueError, match="hiden_size_list"):
        NetworkObjective(x, t, net_kwargs={"hiden_size_list": [3]})
    with pytest.raises(ValueError, match="seed"):
        NetworkObjective(x, t, net_kwargs={"hidden_size_list": [3], "seed": 1})
    with pytest.raises(ValueError, match="optimizer"):
        NetworkObjective(x, t, optimizer="LBFGS")
    with pytest.raises(ValueError, match="t must"):
        NetworkObjective(x, t[:10])
    obj = small_objective()
    with pytest.raises(ValueError, match="momentum"):  # SGD has none: refused up front
        random_search({"lr": loguniform(1e-3, 1e-1), "momentum": uniform(0.5, 0.9)}, obj, 2,
                      progress=False)
    with pytest.raises(ValueError, match="dropout"):
        random_search({"lr": loguniform(1e-3, 1e-1), "dropout": 0.5}, obj, 2, progress=False)
    # with a choice of optimizers, their keywords are accepted
    res = random_search({"lr": loguniform(1e-2, 1e-1), "optimizer": choice(["SGD", "Momentum"]),
                         "activation": choice(["relu", "tanh"])}, obj, 3, progress=False)
    assert len(res.trials) == 3


def test_evaluate_best_retrains_the_best_trial_and_uses_the_test_set_once(tmp_path):
    obj = small_objective(epochs=3)
    x_test, t_test = digits(60, seed=9)
    res = random_search({"lr": loguniform(1e-3, 1.0)}, obj, 4, seed=5, progress=False)
    best = res.best
    calls = []
    real = obj.evaluate

    def spy(*args, **kw):
        calls.append(kw["x_test"])
        return real(*args, **kw)

    obj.evaluate = spy
    acc = res.evaluate_best(x_test, t_test)
    assert len(calls) == 1 and calls[0] is x_test
    assert res.test_acc == acc and 0.0 <= acc <= 1.0
    # the same network as the trial's: its validation accuracy is the recorded one
    assert res.best_check["val_acc"] == best["metrics"]["val_acc"]
    # an independent score of the retrained network on the test set
    net, _ = obj.fit(best["params"], seed=best["seed"], budget=None)
    pred = np.argmax(np.asarray(net.predict(x_test)), axis=1)
    assert acc == pytest.approx(float(np.mean(pred == t_test)))
    # an objective without evaluate (or a result loaded from a file, without objective=)
    res2 = random_search({"lr": loguniform(1e-3, 1.0)}, so.toy, 2, progress=False)
    with pytest.raises(TypeError, match="objective"):
        res2.evaluate_best(x_test, t_test)


def test_the_best_network_is_saved_as_a_checkpoint(tmp_path):
    import xpnet

    x_test, t_test = digits(30, seed=9)
    obj = small_objective()
    res = random_search({"lr": loguniform(1e-2, 1.0)}, obj, 3, seed=2, progress=False)
    # without the test set: the loaded network scores the recorded validation accuracy
    path = res.save_best(tmp_path / "best.safetensors")
    net = xpnet.load(path)
    assert net.accuracy(obj.x_val, obj.t_val) == res.best["metrics"]["val_acc"]
    assert res.best_check["val_acc"] == res.best_check["val_acc_recorded"]
    # with it: one training for both, the checkpoint scores the reported test accuracy
    acc = res.evaluate_best(x_test, t_test, save=tmp_path / "best2.safetensors")
    again = xpnet.load(res.best_path)
    assert again.accuracy(x_test, t_test) == acc
    for k, v in net.params.items():
        np.testing.assert_array_equal(np.asarray(again.params[k]), np.asarray(v))
    # a network class without save is refused before any training
    nosave = small_objective(net=so.no_save_net_class())
    res = random_search({"lr": loguniform(1e-2, 1.0)}, nosave, 2, progress=False)
    with pytest.raises(RuntimeError, match="no save method"):
        res.evaluate_best(x_test, t_test, save=tmp_path / "x.safetensors")
    assert res.test_acc is None and not (tmp_path / "x.safetensors").exists()


def test_worker_backend_and_device_come_from_the_process_that_runs_the_trial(monkeypatch):
    pytest.importorskip("array_api_strict")
    monkeypatch.setenv("XPNET_BACKEND", "array_api_strict")
    monkeypatch.setenv("XPNET_DEVICE", "device1")
    obj = small_objective(backend="worker", device="worker")
    assert obj.describe()["backend"] == "worker"
    out = obj({"lr": 0.1}, seed=1, budget=1)
    assert (out["backend"], out["device"]) == ("array_api_strict", "device1")
    monkeypatch.delenv("XPNET_BACKEND")
    monkeypatch.delenv("XPNET_DEVICE")
    out = obj({"lr": 0.1}, seed=1, budget=1)
    assert (out["backend"], out["device"]) == ("numpy", "cpu")
    # None: this process's default, resolved when the objective is made and sent by name
    monkeypatch.setenv("XPNET_BACKEND", "array_api_strict")
    obj = small_objective(backend=None)
    monkeypatch.delenv("XPNET_BACKEND")
    assert obj.backend == "array_api_strict"
    assert obj({"lr": 0.1}, seed=1, budget=1)["backend"] == "array_api_strict"


def test_network_search_through_the_driver_matches_direct_calls(tmp_path):
    obj = small_objective()
    res = random_search({"lr": loguniform(1e-2, 1.0), "weight_decay": loguniform(1e-6, 1e-3)},
                        obj, 3, seed=9, progress=False)
    for r in res.trials:
        direct = obj(r["params"], seed=trial_seed(9, r["trial"]), budget=None)
        assert r["metrics"]["val_acc"] == direct["val_acc"]
        assert r["curves"]["train_loss"] == direct["curves"]["train_loss"]


# --------------------------------------------------------------------------------------------
# executors: a process pool and a real Dask LocalCluster give the same results
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def in_process_reference():
    obj = small_objective(epochs=2)
    return obj, random_search(BOOK_SPACE | {"lr": loguniform(1e-2, 1.0)}, obj, 6, seed=21,
                              progress=False)


def test_process_pool_gives_the_same_results(in_process_reference, tmp_path):
    obj, ref = in_process_reference
    env_before = dict(os.environ)
    with process_pool(2) as pool:
        res = random_search(BOOK_SPACE | {"lr": loguniform(1e-2, 1.0)}, obj, 6, seed=21,
                            executor=pool, results=tmp_path / "p.jsonl", progress=False)
        where = random_search(TOY_SPACE, so.where, 4, executor=pool, progress=False)
    assert essentials(res) == essentials(ref)
    assert {r["worker"] for r in res.trials}.isdisjoint({ref.trials[0]["worker"]})
    assert essentials(load_results(tmp_path / "p.jsonl")) == essentials(ref)
    # the workers got one BLAS and one xpnet thread, and malloc thresholds that keep a
    # training step's blocks in the heap; this process's environment is unchanged
    for r in where.trials:
        assert r["metrics"]["xpnet_threads"] == 1 and r["metrics"]["openblas"] == 1
        assert r["metrics"]["mmap_threshold"] == 32 * 2**20
        assert r["metrics"]["trim_threshold"] == 64 * 2**20
        assert r["metrics"]["pid"] != os.getpid()
    assert dict(os.environ) == env_before


def test_a_lost_process_pool_worker_is_recorded_as_failed(tmp_path):
    victim = sample(TOY_SPACE, 0, 2)["lr"]
    with process_pool(1) as pool:
        res = random_search(TOY_SPACE, so.DieOnce(victim, str(tmp_path / "m"), always=True), 4,
                            executor=pool, progress=False)
    assert len(res.trials) == 4
    lost = [r for r in res.trials if r["status"] == "failed"]
    assert 2 in {r["trial"] for r in lost}
    assert all("worker was lost" in r["error"] for r in lost)
    assert all(r["status"] == "ok" for r in res.trials if r["trial"] < 2)


@pytest.fixture(scope="module")
def dask_client():
    pytest.importorskip("distributed", reason="dask.distributed is not installed")
    import dask

    # A task is tried twice: the retry test needs one more try, the failure test no more.
    # One task per worker at a time, so that a worker's death hits only the trial it ran
    # (with the default 1.1, a queued trial would count a strike too).
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):
        with local_cluster(2, silence_logs=logging.CRITICAL) as client:
            client.wait_for_workers(2, timeout=60)
            yield client


def test_dask_local_cluster_gives_the_same_results(dask_client, in_process_reference,
                                                   tmp_path):
    obj, ref = in_process_reference
    path = tmp_path / "d.jsonl"
    res = random_search(BOOK_SPACE | {"lr": loguniform(1e-2, 1.0)}, obj, 6, seed=21,
                        executor=dask_client, results=path, progress=False)
    assert essentials(res) == essentials(ref)
    workers = set(dask_client.scheduler_info()["workers"])
    assert {r["worker"] for r in res.trials} <= workers
    assert essentials(load_results(path)) == essentials(ref)
    where = random_search(TOY_SPACE, so.where, 4, executor=dask_client, progress=False)
    for r in where.trials:
        assert r["metrics"]["xpnet_threads"] == 1 and r["metrics"]["openblas"] == 1
        # xpnet's setting, not the nanny's own MALLOC_TRIM_THRESHOLD_=65536
        assert r["metrics"]["mmap_threshold"] == 32 * 2**20
        assert r["metrics"]["trim_threshold"] == 64 * 2**20
    # halving on the cluster: the same rungs as in this process
    h = Halving(1, 4, eta=2)
    d = random_search(TOY_SPACE, so.toy, 8, seed=3, halving=h, executor=dask_client,
                      progress=False)
    local = random_search(TOY_SPACE, so.toy, 8, seed=3, halving=h, progress=False)
    assert d.rungs == local.rungs and essentials(d) == essentials(local)


def test_dask_takes_a_large_objective_without_a_warning(dask_client):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = random_search(TOY_SPACE, so.Heavy(), 3, executor=dask_client, progress=False)
    assert [r["metrics"]["size"] for r in res.trials] == [3e6] * 3
    assert not [w for w in caught if "large graph" in str(w.message)]


def test_dask_retries_a_killed_workers_trial_or_records_it_failed(dask_client, tmp_path):
    victim = sample(TOY_SPACE, 0, 1)["lr"]
    res = random_search(TOY_SPACE, so.DieOnce(victim, str(tmp_path / "once")), 4,
                        executor=dask_client, progress=False)
    assert (tmp_path / "once").exists()  # a worker did die on trial 1
    assert [r["status"] for r in res.trials] == ["ok"] * 4  # and Dask ran it again
    assert res.trials[1]["metrics"]["val_acc"] == so.score(sample(TOY_SPACE, 0, 1), None)

    res = random_search(TOY_SPACE, so.DieOnce(victim, str(tmp_path / "always"), always=True),
                        4, executor=dask_client, progress=False)
    assert [r["status"] for r in res.trials] == ["ok", "failed", "ok", "ok"]
    assert "KilledWorker" in res.trials[1]["error"]
    dask_client.wait_for_workers(2, timeout=60)  # the nanny brings the workers back


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------


def test_report_lists_the_best_and_draws_both_figures(tmp_path):
    pytest.importorskip("matplotlib")
    res = random_search(TOY_SPACE, so.toy, 8, progress=False)
    text = format_best(res, 3).splitlines()
    assert len(text) == 3
    best = res.best
    assert text[0].startswith(f"Best-1 (val acc {best['metrics']['val_acc']:.4g}) | lr ")
    assert f"[trial {best['trial']}]" in text[0]
    paths = write_report(res, tmp_path, top=4)
    for p in paths.values():
        assert p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG"
    assert set(paths) == {"curves", "scatter"}


def test_to_dataframe_has_one_row_per_trial():
    pd = pytest.importorskip("pandas")
    res = random_search(TOY_SPACE, so.toy, 5, progress=False)
    df = res.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 5
    assert {"trial", "status", "lr", "weight_decay", "val_acc", "seed", "wall_s"} <= set(df)
    assert df["val_acc"].tolist() == [r["metrics"]["val_acc"] for r in res.trials]
    assert math.isclose(df["lr"].iloc[2], sample(TOY_SPACE, 0, 2)["lr"])
