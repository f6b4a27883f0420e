"""Search spaces: four distributions, constants, and the per-trial sampler.

A space is a mapping ``name -> distribution`` (or a constant, any JSON value).  Trial ``i`` of a
search with seed ``s`` draws its point from its own generator,
``numpy.random.default_rng(numpy.random.SeedSequence([s, i]))``, taking the names in sorted
order; so the points depend on the seed and the trial number only -- not on the executor, the
number of workers or the order in which trials finish -- and trial 57 can be drawn without
drawing trials 0-56.

>>> from xpnet.search import choice, loguniform, sample
>>> space = {"lr": loguniform(1e-6, 1e-2), "weight_decay": loguniform(1e-8, 1e-4),
...          "optimizer": choice(["SGD", "Adam"]), "batch_size": 100}
>>> p = sample(space, seed=0, trial=3)
>>> sorted(p)
['batch_size', 'lr', 'optimizer', 'weight_decay']
>>> p == sample(space, seed=0, trial=3)
True
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "Uniform",
    "choice",
    "describe_space",
    "intuniform",
    "loguniform",
    "sample",
    "space_hash",
    "trial_seed",
    "uniform",
]


def _real(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return v


def _json_value(value: Any, what: str) -> Any:
    """``value`` if it is plain JSON (and survives a round trip unchanged), else TypeError."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a plain JSON value (number, string, bool, None, list, "
                        f"dict), got {value!r}") from None
    back = json.loads(text)
    if back != value or type(back) is not type(value):
        raise TypeError(f"{what} must be a plain JSON value that reads back the same "
                        f"(no tuples, NumPy scalars or non-string keys), got {value!r}")
    return back


class Distribution:
    """A one-dimensional distribution of a search space.

    Subclasses implement :meth:`draw` (one value from a NumPy ``Generator``) and
    :meth:`describe` (a JSON description: what makes two spaces the same search).
    """

    kind = ""

    def draw(self, rng: np.random.Generator) -> Any:
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover

    def __repr__(self) -> str:
        d = self.describe()
        args = ", ".join(repr(v) for k, v in d.items() if k != "dist")
        return f"{d['dist']}({args})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Distribution):
            return NotImplemented
        return self.describe() == other.describe()

    def __hash__(self) -> int:
        return hash(json.dumps(self.describe(), sort_keys=True))


class LogUniform(Distribution):
    """``10 ** U(log10(low), log10(high))``: the book's ``10 ** np.random.uniform(-6, -2)``."""

    def __init__(self, low: float, high: float):
        low, high = _real(low, "low"), _real(high, "high")
        if not 0 < low < high:
            raise ValueError(f"loguniform needs 0 < low < high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def draw(self, rng: np.random.Generator) -> float:
        v = 10.0 ** float(rng.uniform(math.log10(self.low), math.log10(self.high)))
        return min(max(v, self.low), self.high)  # 10 ** log10(x) may miss x by an ulp

    def describe(self) -> dict[str, Any]:
        return {"dist": "loguniform", "low": self.low, "high": self.high}


class Uniform(Distribution):
    """``U(low, high)``."""

    def __init__(self, low: float, high: float):
        low, high = _real(low, "low"), _real(high, "high")
        if not low < high:
            raise ValueError(f"uniform needs low < high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def draw(self, rng: np.random.Generator) -> float:
        return float(rng.uniform(self.low, self.high))

    def describe(self) -> dict[str, Any]:
        return {"dist": "uniform", "low": self.low, "high": self.high}


class IntUniform(Distribution):
    """An integer from ``low`` to ``high``, both included, each equally likely."""

    def __init__(self, low: int, high: int):
        for what, v in (("low", low), ("high", high)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral):
                raise TypeError(f"intuniform's {what} must be an integer, got {v!r}")
        low, high = int(low), int(high)
        if not low <= high:
            raise ValueError(f"intuniform needs low <= high, got low={low!r}, high={high!r}")
        self.low, self.high = low, high

    def draw(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high, endpoint=True))

    def describe(self) -> dict[str, Any]:
        return {"dist": "intuniform", "low": self.low, "high": self.high}


class Choice(Distribution):
    """One of ``options`` (plain JSON values), each equally likely."""

    def __init__(self, options: Sequence[Any]):
        if isinstance(options, (str, bytes, Mapping)) or not isinstance(options, Sequence):
            raise TypeError(f"choice needs a list of options, got {options!r}")
        if len(options) == 0:
            raise ValueError("choice needs at least one option")
        self.options = [_json_value(o, f"choice option {o!r}") for o in options]

    def draw(self, rng: np.random.Generator) -> Any:
        return self.options[int(rng.integers(len(self.options)))]

    def describe(self) -> dict[str, Any]:
        return {"dist": "choice", "options": list(self.options)}


def loguniform(low: float, high: float) -> LogUniform:
    """A log-uniform distribution on ``[low, high]`` (``0 < low < high``).

    ``loguniform(1e-6, 1e-2)`` is the book's learning-rate draw ``10 ** U(-6, -2)``.

    >>> loguniform(1e-6, 1e-2)
    loguniform(1e-06, 0.01)
    """
    return LogUniform(low, high)


def uniform(low: float, high: float) -> Uniform:
    """A uniform distribution on ``[low, high)``.

    >>> uniform(0.0, 0.5)
    uniform(0.0, 0.5)
    """
    return Uniform(low, high)


def intuniform(low: int, high: int) -> IntUniform:
    """A uniform distribution over the integers ``low, ..., high`` (both ends included).

    >>> intuniform(1, 4)
    intuniform(1, 4)
    """
    return IntUniform(low, high)


def choice(options: Sequence[Any]) -> Choice:
    """One of ``options`` (numbers, strings, booleans, None, lists, dicts), equally likely.

    >>> choice(["SGD", "Adam"])
    choice(['SGD', 'Adam'])
    """
    return Choice(options)


def _check_space(space: Any) -> None:
    if not isinstance(space, Mapping):
        raise TypeError(f"space must be a dict of name -> distribution or constant, got "
                        f"{type(space).__name__}")
    if not space:
        raise ValueError("space is empty: give at least one parameter")
    for name in space:
        if not isinstance(name, str) or not name:
            raise TypeError(f"space names must be non-empty strings, got {name!r}")


def describe_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical JSON description of ``space``: names sorted, each a distribution's
    :meth:`~Distribution.describe` or ``{"const": value}``.

    Two spaces with the same description are the same search (the results file stores it).

    Raises
    ------
    TypeError, ValueError
        For a space that is not a non-empty dict of string names, or a constant that is not
        plain JSON.

    Examples
    --------
    >>> describe_space({"lr": loguniform(1e-3, 1e-1), "momentum": 0.9})
    {'lr': {'dist': 'loguniform', 'low': 0.001, 'high': 0.1}, 'momentum': {'const': 0.9}}
    """
    _check_space(space)
    out = {}
    for name in sorted(space):
        value = space[name]
        if isinstance(value, Distribution):
            out[name] = value.describe()
        else:
            out[name] = {"const": _json_value(value, f"space[{name!r}]")}
    return out


def space_hash(space: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical description of ``space`` (see :func:`describe_space`)."""
    text = json.dumps(describe_space(space), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _check_seed_trial(seed: Any, trial: Any) -> tuple[int, int]:
    for what, v in (("seed", seed), ("trial", trial)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise ValueError(f"{what} must be an integer >= 0, got {v!r}")
    return int(seed), int(trial)


def sample(space: Mapping[str, Any], seed: int, trial: int) -> dict[str, Any]:
    """The point of trial ``trial`` in a search with seed ``seed``.

    Parameters
    ----------
    space : dict
        ``name -> distribution`` (:func:`loguniform`, :func:`uniform`, :func:`intuniform`,
        :func:`choice`) or a constant.
    seed, trial : int
        Non-negative integers.

    Returns
    -------
    dict
        ``name -> value`` (Python floats, ints or the chosen option), drawn from
        ``numpy.random.default_rng(numpy.random.SeedSequence([seed, trial]))`` in sorted name
        order; constants are passed through.

    Notes
    -----
    Optuna's and Ray Tune's samplers draw from one shared stream, so a point depends on how
    many were drawn before it (and, in parallel runs, on timing); here every trial has its own
    stream.  Adding a parameter to a space changes the draws of the names sorted after it.

    Examples
    --------
    >>> p = sample({"lr": loguniform(1e-6, 1e-2)}, seed=0, trial=0)
    >>> 1e-6 <= p["lr"] <= 1e-2
    True
    """
    seed, trial = _check_seed_trial(seed, trial)
    _check_space(space)
    rng = np.random.default_rng(np.random.SeedSequence([seed, trial]))
    out: dict[str, Any] = {}
    for name in sorted(space):
        value = space[name]
        out[name] = value.draw(rng) if isinstance(value, Distribution) else value
    return out


def trial_seed(seed: int, trial: int) -> int:
    """The training seed of trial ``trial`` (for its initial weights and mini-batch order).

    The first 32-bit word of the first child of ``SeedSequence([seed, trial])`` -- a stream
    independent of the one :func:`sample` draws the point from.

    >>> trial_seed(0, 1) == trial_seed(0, 1) != trial_seed(0, 2)
    True
    """
    seed, trial = _check_seed_trial(seed, trial)
    child = np.random.SeedSequence([seed, trial]).spawn(1)[0]
    return int(child.generate_state(1, np.uint32)[0])
