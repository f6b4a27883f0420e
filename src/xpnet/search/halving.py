"""Successive halving: train every trial briefly, continue only the best.

Synchronous rungs (Jamieson & Talwalkar 2016, https://arxiv.org/abs/1502.07943; the inner loop
of Hyperband, Li et al. 2018, https://arxiv.org/abs/1603.06560): rung 0 trains all ``n``
trials for ``min_budget`` epochs; the best ``max(1, n_r // eta)`` of the ``n_r`` trials of a rung
go on to the next one, with ``eta`` times the budget, until ``max_budget``.  Each rung starts
training from scratch with the same trial seed (no checkpoint is carried over), so a rung's
result is the one a plain search with that many epochs would give, and a rung is decided only
when all of its trials are done: the outcome does not depend on the order in which they finish.

>>> from xpnet.search import Halving
>>> Halving(2, 50).budgets()
[2, 6, 18, 50]
>>> [Halving(2, 50).keep(n) for n in (100, 33, 11)]
[33, 11, 3]
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Halving", "promote"]


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Halving:
    """Successive halving's schedule.

    Parameters
    ----------
    min_budget : int
        Epochs of the first rung (every trial).
    max_budget : int
        Epochs of the last rung.
    eta : int
        Each rung keeps the best ``1/eta`` of the previous one (at least one trial) and
        multiplies the budget by ``eta`` (the last rung gets ``max_budget``).  Default 3.

    Notes
    -----
    Differs from Hyperband's brackets (several ``min_budget`` values) and from asynchronous
    halving (ASHA, Ray Tune's default), which promotes as soon as a trial is in the top
    ``1/eta`` of those finished so far -- faster with many workers, but its choices depend on
    finishing order.  Here they depend on the seed only.

    Examples
    --------
    >>> h = Halving(min_budget=1, max_budget=9, eta=3)
    >>> h.budgets(), h.cost(27), h.describe()["eta"]
    ([1, 3, 9], 81, 3)
    """

    min_budget: int
    max_budget: int
    eta: int = 3

    def __post_init__(self) -> None:
        lo = _positive_int(self.min_budget, "min_budget")
        hi = _positive_int(self.max_budget, "max_budget")
        if isinstance(self.eta, bool) or not isinstance(self.eta, numbers.Integral) \
                or self.eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {self.eta!r}")
        if hi < lo:
            raise ValueError(f"max_budget ({hi}) must be >= min_budget ({lo})")
        object.__setattr__(self, "min_budget", lo)
        object.__setattr__(self, "max_budget", hi)
        object.__setattr__(self, "eta", int(self.eta))

    def budgets(self) -> list[int]:
        """The epochs of each rung: ``min_budget * eta**r`` below ``max_budget``, then
        ``max_budget``."""
        out = []
        b = self.min_budget
        while b < self.max_budget:
            out.append(b)
            b *= self.eta
        out.append(self.max_budget)
        return out

    def keep(self, n: int) -> int:
        """How many of a rung's ``n`` trials go on to the next rung: ``max(1, n // eta)``."""
        return max(1, int(n) // self.eta)

    def sizes(self, n_trials: int) -> list[int]:
        """The number of trials of each rung when no trial fails."""
        sizes = [int(n_trials)]
        for _ in self.budgets()[1:]:
            sizes.append(self.keep(sizes[-1]))
        return sizes

    def cost(self, n_trials: int) -> int:
        """Epochs of training the whole schedule takes when no trial fails."""
        return sum(n * b for n, b in zip(self.sizes(n_trials), self.budgets(), strict=True))

    def describe(self) -> dict[str, Any]:
        return {"min_budget": self.min_budget, "max_budget": self.max_budget, "eta": self.eta}


def promote(records: Iterable[Mapping[str, Any]], entered: int, keep: int, metric: str,
            mode: str) -> list[int]:
    """The trial numbers that go on from a rung: the ``keep`` best successful ``records``.

    Parameters
    ----------
    records : iterable of dict
        The rung's trial records (``trial``, ``status``, ``metrics``).
    entered : int
        How many trials entered the rung (failed ones included); informs nothing but checks.
    keep : int
        How many go on (fewer when fewer succeeded).
    metric, mode : str
        The metric to rank by and ``"max"`` or ``"min"``; ties go to the lower trial number.

    Returns
    -------
    list of int
        Trial numbers, best first.
    """
    ok = [r for r in records if r["status"] == "ok"]
    if len(ok) > entered:
        raise ValueError(f"{len(ok)} successful records for a rung of {entered} trials")
    sign = -1.0 if mode == "max" else 1.0
    ok.sort(key=lambda r: (sign * float(r["metrics"][metric]), int(r["trial"])))
    return [int(r["trial"]) for r in ok[:keep]]
