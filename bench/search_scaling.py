"""Wall time of one random search in this process, on a process pool and on a local Dask
cluster; and what successive halving saves.

The search is the book's experiment 8 (784-100x6-10 ReLU net, SGD, batch 100, 50 epochs,
lr = 10^U(-6, -2), weight decay = 10^U(-8, -4), 20 % of the digits for validation) scaled to
about a minute in one process here: 20 trials on 6,000 digits (4,800 training, 1,200
validation; the first 6,000 of the bundled 8,000 training digits) instead of 100 trials on 500.

Each way of running it is timed in a fresh interpreter (``--mode``), started by this script
with ``OMP_NUM_THREADS = OPENBLAS_NUM_THREADS = MKL_NUM_THREADS = XPNET_NUM_THREADS = 1``, so
every trial -- in the driver, in a pool worker or in a Dask worker -- trains on one thread
(the same BLAS thread count is also what makes the per-trial results bit-identical, which
this script checks).  The modes are interleaved over ``--rounds`` rounds; the report gives the
median.  Times: ``search_s``, the ``random_search`` call, with the workers already started and
xpnet imported in them; ``total_s``, everything from loading the data to stopping the pool or
cluster.  On a machine shared with other jobs the wall times depend on how much of the cores
those jobs took: each run also records the CPU time of its trials (``cpu_s``, which does not
depend on the load) and ``others_cores``, the CPU that other processes used meanwhile (the
machine's busy time from ``/proc/stat`` minus this run's own, per second of wall time).

Halving: the book's own set-up (100 trials, 500 digits, 50 epochs) in full and with
``Halving(2, 50, eta=3)`` (rungs of 2, 6, 18, 50 epochs), in this process.

    python bench/search_scaling.py                      # all, ~5 minutes on 2 idle cores
    python bench/search_scaling.py --rounds 1 --skip-halving --n-train 500 --trials 6
    python bench/search_scaling.py --mode dask          # one mode, prints its JSON

Writes ``bench/results/search_scaling.json`` (``--out``) and prints a markdown summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "XPNET_NUM_THREADS": "1"}
MODES = ("in-process", "pool-2", "dask-2")
SCALED = {"n_train": 6000, "trials": 20, "epochs": 50}
BOOK = {"n_train": 500, "trials": 100, "epochs": 50}


def _search_inputs(n_train: int, epochs: int):
    from xpnet.datasets import load_mnist_cached
    from xpnet.search import NetworkObjective, loguniform

    (x, t), _ = load_mnist_cached("bundled")  # the same digits offline and online
    objective = NetworkObjective(x[:n_train], t[:n_train], validation=0.2, epochs=epochs,
                                 batch_size=100, optimizer="SGD", backend="numpy",
                                 dtype="float32", seed=0)
    space = {"lr": loguniform(1e-6, 1e-2), "weight_decay": loguniform(1e-8, 1e-4)}
    return space, objective


def _digest(result) -> str:
    rows = [[r["trial"], r["params"], r["seed"], r["status"], r["metrics"], r["curves"]]
            for r in result.trials]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def _warm(_: object = None) -> int:
    """Import what a trial needs (in a worker, before the clock starts)."""
    import xpnet.search.objective  # noqa: F401

    time.sleep(0.3)  # long enough that a pool's second task goes to its second process
    return os.getpid()


def run_mode(mode: str) -> dict:
    """One timed search (in this interpreter); returns its timings and a digest of results."""
    from xpnet.search import local_cluster, process_pool, random_search

    space, objective = _search_inputs(SCALED["n_train"], SCALED["epochs"])
    t0 = time.perf_counter()
    if mode == "in-process":
        t1 = time.perf_counter()
        res = random_search(space, objective, SCALED["trials"], seed=0, progress=False)
        t2 = time.perf_counter()
    elif mode == "pool-2":
        with process_pool(2) as pool:
            list(pool.map(_warm, range(2)))
            t1 = time.perf_counter()
            res = random_search(space, objective, SCALED["trials"], seed=0, executor=pool,
                                progress=False)
            t2 = time.perf_counter()
    elif mode == "dask-2":
        import logging

        with local_cluster(2, silence_logs=logging.ERROR) as client:
            client.wait_for_workers(2)
            client.run(_warm)
            t1 = time.perf_counter()
            res = random_search(space, objective, SCALED["trials"], seed=0, executor=client,
                                progress=False)
            t2 = time.perf_counter()
    else:
        raise ValueError(f"unknown mode {mode!r}")
    t3 = time.perf_counter()
    best = res.best
    return {"mode": mode, "search_s": t2 - t1, "total_s": t3 - t0,
            "trial_s_sum": sum(r["wall_s"] for r in res.trials),
            "trial_cpu_s_sum": sum(r["cpu_s"] for r in res.trials),
            "workers": sorted({r["worker"] for r in res.trials}),
            "digest": _digest(res), "failed": len(res.failed),
            "best": {"trial": best["trial"], "val_acc": best["metrics"]["val_acc"],
                     "params": best["params"]}}


def run_halving() -> dict:
    from xpnet.search import Halving, random_search

    space, objective = _search_inputs(BOOK["n_train"], BOOK["epochs"])
    t0 = time.perf_counter()
    full = random_search(space, objective, BOOK["trials"], seed=0, progress=False)
    t1 = time.perf_counter()
    h = Halving(2, BOOK["epochs"], eta=3)
    half = random_search(space, objective, BOOK["trials"], seed=0, halving=h, progress=False)
    t2 = time.perf_counter()
    rank = [r["trial"] for r in full.top()]
    saving = half.halving_saving()
    return {
        "setup": BOOK, "halving": h.describe(), "budgets": h.budgets(),
        "rung_sizes": [len(r["trials"]) for r in half.rungs],
        "full": {"wall_s": t1 - t0, "epochs": BOOK["trials"] * BOOK["epochs"],
                 "best_trial": full.best["trial"],
                 "best_val_acc": full.best["metrics"]["val_acc"],
                 "top5": [(r["trial"], r["metrics"]["val_acc"]) for r in full.top(5)]},
        "halving_run": {"wall_s": t2 - t1, "epochs": saving["epochs_used"],
                        "saved_fraction": saving["saved_fraction"],
                        "best_trial": half.best["trial"],
                        "best_val_acc": half.best["metrics"]["val_acc"],
                        "best_rank_in_full_search": rank.index(half.best["trial"]) + 1},
    }


def _child(args: list[str]) -> dict:
    env = dict(os.environ)
    env.update(ONE_THREAD)
    env.setdefault("XPNET_PROGRESS", "0")
    src = str(HERE.parent / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return None


def _machine_busy_s() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:  # pragma: no cover - not Linux
        return None
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _timed_child(args: list[str]) -> dict:
    """Run a child; add the CPU time that others used meanwhile (the machine's busy time
    minus the child's own and its children's, in cores on average)."""
    import resource

    busy0, mine0 = _machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    w0 = time.perf_counter()
    res = _child(args)
    wall = time.perf_counter() - w0
    busy1, mine1 = _machine_busy_s(), resource.getrusage(resource.RUSAGE_CHILDREN)
    mine = (mine1.ru_utime - mine0.ru_utime) + (mine1.ru_stime - mine0.ru_stime)
    res["child_wall_s"] = wall
    res["child_cpu_s"] = mine
    if busy0 is not None:
        res["others_cores"] = max(0.0, (busy1 - busy0 - mine) / wall)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=MODES, help="run one mode here and print its JSON")
    p.add_argument("--halving-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--n-train", type=int, default=SCALED["n_train"],
                   help="digits of the timed search (validation included)")
    p.add_argument("--trials", type=int, default=SCALED["trials"])
    p.add_argument("--epochs", type=int, default=SCALED["epochs"])
    p.add_argument("--skip-halving", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "search_scaling.json"))
    a = p.parse_args(argv)
    SCALED.update(n_train=a.n_train, trials=a.trials, epochs=a.epochs)
    sizes = ["--n-train", str(a.n_train), "--trials", str(a.trials), "--epochs", str(a.epochs)]
    if a.mode:
        print(json.dumps(run_mode(a.mode)))
        return 0
    if a.halving_only:
        print(json.dumps(run_halving()))
        return 0

    runs: list[dict] = []
    for r in range(a.rounds):
        order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]  # rotate: no mode always first
        for mode in order:
            load = _load()
            res = _timed_child(["--mode", mode, *sizes])
            res.update(round=r, load_before=load, load_after=_load())
            runs.append(res)
            print(f"round {r} {mode:10s} search {res['search_s']:6.1f} s  total "
                  f"{res['total_s']:6.1f} s  CPU per trial "
                  f"{res['trial_cpu_s_sum'] / SCALED['trials']:.2f} s  others used "
                  f"{res.get('others_cores', float('nan')):.2f} cores", file=sys.stderr,
                  flush=True)
    summary = {}
    for mode in MODES:
        mine = [x for x in runs if x["mode"] == mode]
        summary[mode] = {"search_s_median": statistics.median(x["search_s"] for x in mine),
                         "total_s_median": statistics.median(x["total_s"] for x in mine),
                         "search_s": [x["search_s"] for x in mine],
                         "cpu_per_trial_s_median": statistics.median(
                             x["trial_cpu_s_sum"] / SCALED["trials"] for x in mine),
                         "others_cores": [x.get("others_cores") for x in mine]}
    digests = {x["digest"] for x in runs}
    report = {"setup": {**SCALED, "network": "784-100x6-10 relu", "optimizer": "SGD",
                        "batch_size": 100, "validation": 0.2, "threads_per_trial": 1,
                        "space": "lr 10^U(-6,-2), weight_decay 10^U(-8,-4)"},
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "runs": runs, "summary": summary,
              "identical_results_in_every_mode": len(digests) == 1}
    if not a.skip_halving:
        load = _load()
        report["halving"] = _timed_child(["--halving-only"])
        report["halving"]["load_before"] = load
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")

    base = summary["in-process"]["search_s_median"]
    print(f"| {SCALED['trials']} trials x {SCALED['epochs']} epochs, {SCALED['n_train']} digits "
          "| search (median) | with "
          "start-up | speed-up | CPU per trial | others' load (cores) |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        s = summary[mode]
        others = ", ".join(f"{v:.2f}" for v in s["others_cores"] if v is not None)
        print(f"| {mode} | {s['search_s_median']:.1f} s | {s['total_s_median']:.1f} s | "
              f"{base / s['search_s_median']:.2f}x | {s['cpu_per_trial_s_median']:.2f} s | "
              f"{others} |")
    print(f"\nper-trial results identical in every mode: "
          f"{report['identical_results_in_every_mode']}")
    if "halving" in report:
        h = report["halving"]
        hr = h["halving_run"]
        print(f"\nhalving on the book's set-up ({BOOK['trials']} trials x {BOOK['epochs']} "
              f"epochs, {BOOK['n_train']} digits), rungs {h['budgets']} epochs with "
              f"{h['rung_sizes']} trials: {hr['epochs']} epochs instead of "
              f"{h['full']['epochs']} ({100 * hr['saved_fraction']:.0f}% saved), "
              f"{hr['wall_s']:.1f} s instead of {h['full']['wall_s']:.1f} s; "
              f"best val acc {hr['best_val_acc']:.3f} (trial {hr['best_trial']}, rank "
              f"{hr['best_rank_in_full_search']} in the full search) vs "
              f"{h['full']['best_val_acc']:.3f} (trial {h['full']['best_trial']})")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
