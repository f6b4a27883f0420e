"""The search driver: :func:`random_search` and its :class:`SearchResult`.

The driver samples the points, hands trials to an executor, and is the only process that writes
the results file.  Everything a trial depends on -- its point, its seed, its budget -- is a
function of the search's seed and the trial's number (and, with halving, of the rungs before,
which are decided only when complete), so where and in which order trials run changes nothing
but the wall time.
"""

from __future__ import annotations

import datetime
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from xpnet.progress import progress as progress_bar
from xpnet.search.executors import make_runner
from xpnet.search.halving import Halving, promote
from xpnet.search.results import FORMAT, ResultsFile, read_results
from xpnet.search.spaces import describe_space, sample, space_hash, trial_seed

__all__ = ["SearchResult", "load_results", "random_search"]


def describe_objective(objective: Any) -> dict[str, Any]:
    """The objective's ``describe()`` when it has one, else its importable name."""
    describe = getattr(objective, "describe", None)
    if callable(describe):
        d = describe()
        if not isinstance(d, Mapping):
            raise TypeError(f"objective.describe() must return a dict, got {type(d).__name__}")
        return dict(d)
    target = getattr(objective, "func", objective)  # functools.partial
    name = getattr(target, "__qualname__", type(target).__qualname__)
    return {"callable": f"{getattr(target, '__module__', '?')}.{name}"}


def _header(space: Mapping[str, Any], objective: Any, n_trials: int, seed: int, metric: str,
            mode: str, halving: Halving | None) -> dict[str, Any]:
    from xpnet import __version__

    return {
        "kind": "header",
        "format": FORMAT,
        "seed": seed,
        "space": describe_space(space),
        "space_hash": space_hash(space),
        "objective": describe_objective(objective),
        "metric": metric,
        "mode": mode,
        "halving": None if halving is None else halving.describe(),
        "n_trials": n_trials,
        "xpnet_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _check_args(space: Any, objective: Any, n_trials: Any, seed: Any, metric: Any, mode: Any,
                halving: Any) -> None:
    if not callable(objective):
        raise TypeError(f"objective must be callable as objective(params, *, seed, budget), got "
                        f"{type(objective).__name__}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, numbers.Integral) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(metric, str) or not metric:
        raise TypeError(f"metric must be the name of a metric, got {metric!r}")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if halving is not None and not isinstance(halving, Halving):
        raise TypeError(f"halving must be a Halving(min_budget, max_budget, eta) or None, got "
                        f"{halving!r}")
    describe_space(space)  # raises for a bad space


def random_search(space: Mapping[str, Any], objective: Callable[..., Mapping[str, Any]],
                  n_trials: int, *, seed: int = 0, executor: Any = None,
                  results: str | os.PathLike[str] | None = None, metric: str = "val_acc",
                  mode: str = "max", halving: Halving | None = None,
                  resources: Mapping[str, float] | None = None, retry_failed: bool = False,
                  progress: bool | None = None) -> SearchResult:
    """Random search: ``n_trials`` points of ``space``, each scored by ``objective``.

    Parameters
    ----------
    space : dict
        ``name -> distribution or constant`` (see :mod:`xpnet.search.spaces`).  Trial ``i``'s
        point is ``sample(space, seed, i)``; its training seed ``trial_seed(seed, i)``.
    objective : callable
        ``objective(params, *, seed, budget) -> dict`` of metrics (numbers), optionally with
        ``"curves"`` (name -> list of numbers per epoch) and ``"backend"``, ``"device"``.
        ``budget`` is None without halving (the objective's own length), else the rung's
        epochs.  Must be picklable (defined at module level) for process pools and Dask.
        :class:`~xpnet.search.NetworkObjective` is the book's.
    n_trials : int
    seed : int
        The search's seed (>= 0).
    executor : None, concurrent.futures.Executor, distributed.Client or str
        Where trials run: None in this process, one after the other; an executor (e.g.
        :func:`~xpnet.search.process_pool`); a Dask client or a scheduler's address (see
        :mod:`xpnet.search.executors`).  Results do not depend on it.
    results : path, optional
        A JSON Lines file (see :mod:`xpnet.search.results`).  Each finished trial is appended
        as it finishes.  If it already holds trials of the same search (seed, space, objective,
        metric, mode, halving), those are not run again; a file of another search is refused
        with a ``ValueError`` naming what differs.
    metric : str
        The metric to rank by (default ``"val_acc"``).
    mode : {"max", "min"}
    halving : Halving, optional
        Successive halving (see :class:`~xpnet.search.Halving`): rung ``r`` trains the
        survivors of rung ``r-1`` for ``budgets()[r]`` epochs.
    resources : dict, optional
        Dask resources each trial needs (e.g. ``{"GPU": 1}``); Dask executors only.
    retry_failed : bool
        Run the failed trials of a resumed file again (their new records supersede them).
    progress : bool, optional
        A progress bar over trials (None: when standard error is a terminal, see
        :func:`xpnet.progress.progress`).

    Returns
    -------
    SearchResult

    Notes
    -----
    A trial's record (``SearchResult.trials``, one line of the results file) has ``trial``,
    ``params``, ``seed``, ``status`` (``"ok"`` / ``"failed"``), ``metrics``, ``curves``,
    ``error`` (``"TypeName: message"``), ``traceback``, ``backend``, ``device``, ``worker``,
    ``wall_s``, ``cpu_s`` (the worker process's CPU time during the trial), and ``rung`` /
    ``budget`` (None without halving).  A trial that raises, lacks
    the metric or reports a non-finite metric is recorded as failed and the search goes on; a
    trial whose worker was lost (the executor raised) is recorded as failed with that error.

    Optuna reseeds its sampler from the OS under ``n_jobs > 1`` (its FAQ: parallel runs are not
    reproducible); Ray Tune and Keras Tuner draw from one stream shared by all trials.  Here
    the same seed gives the same points and, on NumPy, bit-identical per-trial results in this
    process, on a process pool and on a Dask cluster.

    Examples
    --------
    >>> import numpy as np
    >>> from xpnet.search import loguniform, random_search
    >>> def objective(params, *, seed, budget):
    ...     return {"val_acc": 1.0 - abs(np.log10(params["lr"]) + 3.0) / 10}
    >>> result = random_search({"lr": loguniform(1e-6, 1e-1)}, objective, 8, progress=False)
    >>> len(result.trials), result.best["trial"] in range(8)
    (8, True)
    """
    _check_args(space, objective, n_trials, seed, metric, mode, halving)
    n_trials, seed = int(n_trials), int(seed)
    validate = getattr(objective, "validate_space", None)
    if callable(validate):
        validate(space)
    header = _header(space, objective, n_trials, seed, metric, mode, halving)
    t0 = time.perf_counter()
    with ResultsFile(results, header) as store:
        done: dict[tuple[int, int | None], dict] = {}
        rungs: dict[int, dict] = {}
        for rec in store.records:
            if rec.get("kind") == "trial":
                done[(int(rec["trial"]), rec.get("rung"))] = rec
            elif rec.get("kind") == "rung":
                rungs[int(rec["rung"])] = rec
        ran = 0

        def needed(i: int, rung: int | None) -> bool:
            rec = done.get((i, rung))
            return rec is None or (retry_failed and rec["status"] != "ok")

        def job(i: int, rung: int | None, budget: int | None) -> dict[str, Any]:
            return {"trial": i, "rung": rung, "budget": budget, "params": sample(space, seed, i),
                    "seed": trial_seed(seed, i), "metric": metric}

        if halving is None:
            plan = [(None, None, list(range(n_trials)))]
            total = n_trials
        else:
            plan = None
            total = sum(halving.sizes(n_trials))
        runner = make_runner(executor, objective, resources=resources)
        bar = progress_bar(total=total, desc="search", unit="trial", enabled=progress)
        try:
            def run(jobs: list[dict]) -> None:
                nonlocal ran
                for rec in runner.run(jobs):
                    rec = store.append(rec)
                    done[(rec["trial"], rec["rung"])] = rec
                    ran += 1
                    bar.update(1)
                    _postfix(bar, done, metric, mode)

            if plan is not None:
                ids = plan[0][2]
                bar.update(sum(1 for i in ids if not needed(i, None)))
                run([job(i, None, None) for i in ids if needed(i, None)])
            else:
                ids = list(range(n_trials))
                budgets = halving.budgets()
                for r, budget in enumerate(budgets):
                    todo = [i for i in ids if needed(i, r)]
                    bar.update(len(ids) - len(todo))
                    run([job(i, r, budget) for i in todo])
                    recs = [done[(i, r)] for i in ids]
                    last = r == len(budgets) - 1
                    keep = 0 if last else halving.keep(len(ids))
                    promoted = promote(recs, len(ids), keep, metric, mode)
                    line = {"kind": "rung", "rung": r, "budget": budget, "trials": ids,
                            "promoted": promoted,
                            "failed": [x["trial"] for x in recs if x["status"] != "ok"]}
                    old = rungs.get(r)
                    if old is None or any(old.get(k) != line[k] for k in line):
                        rungs[r] = store.append(line)
                    if last or not promoted:
                        break
                    if bar.total is not None:  # fewer survivors than planned (failures)
                        planned = halving.sizes(n_trials)[r + 1]
                        bar.total -= planned - len(promoted)
                        if hasattr(bar, "refresh"):
                            bar.refresh()
                    ids = sorted(promoted)
        finally:
            bar.close()
            runner.close()
        wall = time.perf_counter() - t0
        return SearchResult._build(store.header, store.records, objective=objective,
                                   path=store.path, wall_s=wall, ran=ran, n_trials=n_trials)


def _postfix(bar: Any, done: Mapping, metric: str, mode: str) -> None:
    if getattr(bar, "disable", True):
        return
    vals = [r["metrics"][metric] for r in done.values() if r["status"] == "ok"]
    failed = sum(1 for r in done.values() if r["status"] != "ok")
    if vals:
        best = max(vals) if mode == "max" else min(vals)
        bar.set_postfix_str(f"best {metric} {best:.4g}" + (f", {failed} failed" if failed
                                                             else ""))


class SearchResult:
    """What a search found.

    Attributes
    ----------
    trials : list of dict
        One record per trial, by trial number (with halving: the record of the last rung the
        trial reached).  See :func:`random_search` for the fields.
    records : list of dict
        Every trial record (every rung), in the order they finished.
    rungs : list of dict
        With halving: per rung, ``rung``, ``budget``, ``trials``, ``promoted``, ``failed``.
    metric, mode : str
    seed : int
    space : dict
        The canonical description of the space.
    header : dict
        The results file's header.
    path : pathlib.Path or None
        The results file.
    wall_s : float or None
        Wall time of the call that returned this result.
    ran : int
        Trials (trial-rung runs) run by that call; the rest came from the results file.
    test_acc : float or None
        Set by :meth:`evaluate_best`.
    best_path : pathlib.Path or None
        The checkpoint written by :meth:`save_best` or ``evaluate_best(save=...)``.
    """

    def __init__(self, header: Mapping[str, Any], records: list[dict], *, objective: Any = None,
                 path: Path | None = None, wall_s: float | None = None, ran: int = 0,
                 n_trials: int | None = None):
        self.header = dict(header)
        self.metric = str(header["metric"])
        self.mode = str(header["mode"])
        self.seed = int(header["seed"])
        self.space = header["space"]
        self.halving = header.get("halving")
        self.objective = objective
        self.path = path
        self.wall_s = wall_s
        self.ran = ran
        self.test_acc: float | None = None
        self.best_check: dict[str, Any] | None = None
        self.best_path: Path | None = None
        self.n_trials = int(header.get("n_trials") if n_trials is None else n_trials)
        self.records = [r for r in records if r.get("kind") == "trial"]
        rung_lines: dict[int, dict] = {}
        for r in records:
            if r.get("kind") == "rung":
                rung_lines[int(r["rung"])] = r  # the last line of a rung wins
        self.rungs = [rung_lines[k] for k in sorted(rung_lines)]
        latest: dict[tuple[int, Any], dict] = {}
        for r in self.records:
            if int(r["trial"]) < self.n_trials:
                latest[(int(r["trial"]), r.get("rung"))] = r
        if self.halving is None:
            by_trial = {t: r for (t, rung), r in latest.items() if rung is None}
        else:
            # a trial's deepest rung among those it was promoted to
            reached = {t: 0 for t in range(self.n_trials)}
            for line in self.rungs:
                for t in line["promoted"]:
                    reached[int(t)] = max(reached.get(int(t), 0), int(line["rung"]) + 1)
            by_trial = {}
            for t, rung in reached.items():
                while rung >= 0 and (t, rung) not in latest:
                    rung -= 1
                if rung >= 0:
                    by_trial[t] = latest[(t, rung)]
        self.trials = [by_trial[t] for t in sorted(by_trial)]

    @classmethod
    def _build(cls, header: Mapping[str, Any], records: list[dict], **kw: Any) -> SearchResult:
        return cls(header, records, **kw)

    # -- ranking ------------------------------------------------------------------------------

    def _key(self, rec: Mapping[str, Any]) -> tuple:
        v = float(rec["metrics"][self.metric])
        rung = rec.get("rung") or 0
        return (-rung, -v if self.mode == "max" else v, int(rec["trial"]))

    def top(self, k: int | None = None) -> list[dict]:
        """The ``k`` best successful trials (all when None), best first.

        Ranked by the metric (ties: the lower trial number); with halving, a trial that
        reached a later rung ranks before every trial eliminated earlier.
        """
        ok = sorted((r for r in self.trials if r["status"] == "ok"), key=self._key)
        return ok if k is None else ok[:int(k)]

    @property
    def best(self) -> dict | None:
        """The best successful trial (None when every trial failed)."""
        top = self.top(1)
        return top[0] if top else None

    @property
    def failed(self) -> list[dict]:
        """The failed trials."""
        return [r for r in self.trials if r["status"] != "ok"]

    # -- cost ---------------------------------------------------------------------------------

    def budget_used(self) -> int | None:
        """Epochs trained, summed over every trial record (None when budgets are unknown)."""
        total = 0
        for r in self.records:
            b = r.get("budget")
            if b is None:
                b = r.get("metrics", {}).get("epochs")
            if b is None:
                return None
            total += int(b)
        return total

    def halving_saving(self) -> dict[str, Any] | None:
        """With halving: epochs used, the epochs of the same trials all at ``max_budget``,
        and the fraction saved."""
        if self.halving is None:
            return None
        used = self.budget_used() or 0
        full = self.n_trials * int(self.halving["max_budget"])
        return {"epochs_used": used, "epochs_full_search": full,
                "saved_fraction": 1.0 - used / full if full else 0.0}

    # -- output -------------------------------------------------------------------------------

    def to_dataframe(self) -> Any:
        """One row per trial: ``trial``, ``status``, the parameters, the metrics (named
        ``metric_NAME`` where a parameter has the same name), ``rung``, ``budget``, ``seed``,
        ``wall_s``, ``cpu_s``, ``worker``, ``backend``, ``device``, ``error``.  Needs
        pandas."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise RuntimeError("to_dataframe needs pandas: pip install pandas") from exc
        rows = []
        for r in self.trials:
            row: dict[str, Any] = {"trial": r["trial"], "status": r["status"]}
            row.update(r["params"])
            for k, v in r["metrics"].items():
                row[f"metric_{k}" if k in r["params"] else k] = math.nan if v is None else v
            for k in ("rung", "budget", "seed", "wall_s", "cpu_s", "worker", "backend",
                      "device", "error"):
                row[k] = r.get(k)
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the header, ``trials``, ``rungs``, ``best``, ``wall_s``, ``ran``."""
        return {"header": self.header, "trials": self.trials, "rungs": self.rungs,
                "best": self.best, "wall_s": self.wall_s, "ran": self.ran,
                "test_acc": self.test_acc}

    def __repr__(self) -> str:
        best = self.best
        b = "none" if best is None else \
            f"trial {best['trial']} {self.metric}={best['metrics'][self.metric]:.4g}"
        return (f"SearchResult({len(self.trials)} trials, {len(self.failed)} failed, best: "
                f"{b})")

    # -- the test set, once -------------------------------------------------------------------

    def _refit_best(self, objective: Any, **kw: Any) -> dict[str, Any]:
        obj = objective if objective is not None else self.objective
        if obj is None or not callable(getattr(obj, "evaluate", None)):
            raise TypeError("this needs an objective with an evaluate method (such as "
                            "NetworkObjective); pass objective=")
        best = self.best
        if best is None:
            raise RuntimeError("no trial succeeded: there is no best trial")
        out = obj.evaluate(best["params"], seed=best["seed"], budget=best.get("budget"), **kw)
        self.best_check = {"trial": best["trial"],
                           "val_acc_recorded": best["metrics"].get(self.metric),
                           **{k: out[k] for k in out if k != "test_acc"}}
        if out.get("path") is not None:
            self.best_path = Path(out["path"])
        return out

    def evaluate_best(self, x_test: Any, t_test: Any, *, objective: Any = None,
                      save: str | os.PathLike[str] | None = None) -> float:
        """Train the best trial again and return its accuracy on the test set.

        The test set is used here only, once, for the trial the validation metric chose.
        The network is rebuilt from the trial's parameters, seed and budget -- on NumPy it is
        bit-identical to the trial's: :attr:`best_check` holds the validation accuracy
        recorded and the one measured again -- and, with ``save``, written as an xpnet
        checkpoint (with its optimizer; :func:`xpnet.load` reads it back).

        Parameters
        ----------
        x_test, t_test : arrays
        objective : optional
            The objective, when this result was loaded from a file (:func:`load_results`);
            it must have an ``evaluate`` method (as :class:`NetworkObjective` has).
        save : path, optional
            Also save the network there (:attr:`best_path`).

        Returns
        -------
        float
            Also stored as :attr:`test_acc`.
        """
        out = self._refit_best(objective, x_test=x_test, t_test=t_test, save=save)
        self.test_acc = float(out["test_acc"])
        return self.test_acc

    def save_best(self, path: str | os.PathLike[str], *, objective: Any = None) -> Path:
        """Train the best trial again and save it as an xpnet checkpoint (no test set).

        Returns the checkpoint's path (read it with :func:`xpnet.load`).
        """
        return Path(self._refit_best(objective, save=path)["path"])


def load_results(path: str | os.PathLike[str], *, objective: Any = None) -> SearchResult:
    """Read a results file into a :class:`SearchResult` (without running anything).

    Raises
    ------
    FileNotFoundError
        When the file does not exist or holds no header.
    """
    header, records = read_results(path)
    if header is None:
        raise FileNotFoundError(f"no search results in {path}")
    return SearchResult(header, records, objective=objective, path=Path(path))
