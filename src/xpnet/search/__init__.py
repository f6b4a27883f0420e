"""Hyperparameter search, reproducible and resumable, from one core to a Dask cluster.

The book's random search (chapter 6.5, experiment 8) as a library:

>>> from xpnet.search import NetworkObjective, loguniform, random_search
>>> from xpnet.datasets import load_mnist_cached
>>> (x, t), (x_test, t_test) = load_mnist_cached()                         # doctest: +SKIP
>>> space = {"lr": loguniform(1e-6, 1e-2), "weight_decay": loguniform(1e-8, 1e-4)}
>>> objective = NetworkObjective(x[:500], t[:500], validation=0.2, epochs=50)  # doctest: +SKIP
>>> result = random_search(space, objective, 100, seed=0,
...                        results="search.jsonl")                         # doctest: +SKIP
>>> result.best["params"], result.evaluate_best(x_test, t_test)            # doctest: +SKIP

* **Spaces** (:mod:`~xpnet.search.spaces`): :func:`loguniform`, :func:`uniform`,
  :func:`intuniform`, :func:`choice`, constants; :func:`sample` draws trial ``i``'s point from
  ``SeedSequence([seed, i])``, so points depend on the seed and the trial number only.
* **Driver** (:mod:`~xpnet.search.driver`): :func:`random_search` -> :class:`SearchResult`
  (``trials``, ``best``, ``top(k)``, ``to_dataframe()``, ``evaluate_best``);
  :func:`load_results` reads a results file back.
* **Executors** (:mod:`~xpnet.search.executors`): in-process, any
  ``concurrent.futures.Executor`` (:func:`process_pool`), a ``distributed.Client`` or a
  scheduler address (:func:`local_cluster` for one machine).
* **Results file** (:mod:`~xpnet.search.results`): JSON Lines, one line per finished trial,
  flushed and fsync-ed; a restarted search skips what is done and refuses another search's file.
* **Successive halving** (:mod:`~xpnet.search.halving`): :class:`Halving`.
* **The book's objective** (:mod:`~xpnet.search.objective`): :class:`NetworkObjective`.
* **Report** (:mod:`~xpnet.search.report`): :func:`format_best`, :func:`write_report`.

Dask is optional (``pip install 'xpnet[search]'``) and imported only when used.
"""

from xpnet.search.driver import SearchResult, load_results, random_search
from xpnet.search.executors import local_cluster, process_pool, run_trial
from xpnet.search.halving import Halving
from xpnet.search.objective import NetworkObjective
from xpnet.search.report import format_best, plot_curves, plot_scatter, write_report
from xpnet.search.results import read_results
from xpnet.search.spaces import (
    choice,
    describe_space,
    intuniform,
    loguniform,
    sample,
    trial_seed,
    uniform,
)

__all__ = [
    "Halving",
    "NetworkObjective",
    "SearchResult",
    "choice",
    "describe_space",
    "format_best",
    "intuniform",
    "load_results",
    "local_cluster",
    "loguniform",
    "plot_curves",
    "plot_scatter",
    "process_pool",
    "random_search",
    "read_results",
    "run_trial",
    "sample",
    "trial_seed",
    "uniform",
    "write_report",
]
