"""The Titanic passenger table (bundled), as a small standardized tabular task."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from importlib import resources

import numpy as np

__all__ = ["TITANIC_FEATURES", "load_titanic"]

#: Columns usable as features.  ``Sex`` is encoded as 1 for female and 0 for male.
TITANIC_FEATURES = ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")

_TARGET = "Survived"
_FILENAME = "titanic.csv"


def load_titanic(
    features: Sequence[str] = ("Pclass", "Fare", "Age"),
    *,
    test_ratio: float = 0.2,
    seed: int = 0,
    standardize: bool = True,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load the bundled Titanic table as a binary classification task (survived or not).

    Parameters
    ----------
    features : sequence of str, optional
        Columns to use, in this order, from :data:`TITANIC_FEATURES`: ``"Pclass"``,
        ``"Sex"`` (1 = female, 0 = male), ``"Age"``, ``"SibSp"``, ``"Parch"``, ``"Fare"``.
        A single string is taken as one feature.
    test_ratio : float, optional
        Fraction of the passengers put in the test split, in ``(0, 1)``.
    seed : int, optional
        Seed of the split (``numpy.random.default_rng(seed)``); the same seed gives the
        same split and the same arrays.
    standardize : bool, optional
        If True, each feature is shifted and scaled by the *training* split's mean and
        standard deviation (population, ``ddof=0``), so the training features have mean 0
        and standard deviation 1 and the test features are transformed identically
        (their own mean and deviation are close to, not exactly, 0 and 1).  A constant
        training feature is only centred.

    Returns
    -------
    (x_train, t_train), (x_test, t_test) : tuple of tuple of numpy.ndarray
        ``x`` is ``float32`` of shape ``(n, len(features))`` without NaNs; ``t`` is the
        ``int64`` target ``Survived`` (1 = survived) of shape ``(n,)``.

    Raises
    ------
    ValueError
        If a feature is unknown (the message lists the valid ones), ``features`` is
        empty, or ``test_ratio`` is outside ``(0, 1)``.

    Notes
    -----
    The table has 1,309 passengers.  Rows whose ``Survived`` is missing are dropped
    (there are none in the bundled file).  The split is *stratified* on ``Survived``:
    within each class, ``round(test_ratio * count)`` passengers chosen at random go to the
    test split, so both splits keep the overall survival rate; each split is then
    shuffled.  Missing feature values (``Age`` for 263 passengers, ``Fare`` for one) are
    filled with the median of that feature over the training split only, before
    standardization.
    """
    if isinstance(features, str):
        features = (features,)
    features = tuple(features)
    if not features:
        raise ValueError(f"features must name at least one of {TITANIC_FEATURES}")
    unknown = [f for f in features if f not in TITANIC_FEATURES]
    if unknown:
        raise ValueError(
            f"unknown Titanic feature(s) {unknown}; valid features are {list(TITANIC_FEATURES)}"
        )
    if not 0.0 < test_ratio < 1.0:
        raise ValueError(f"test_ratio must be in (0, 1), got {test_ratio!r}")

    x, t = _read_table(features)
    train, test = _stratified_split(t, test_ratio, seed)
    x_train, x_test = x[train], x[test]

    medians = np.nanmedian(x_train, axis=0) if x_train.size else np.zeros(len(features))
    for j, name in enumerate(features):
        if math.isnan(medians[j]):
            raise ValueError(f"feature {name!r} has no value in the training split")
        x_train[np.isnan(x_train[:, j]), j] = medians[j]
        x_test[np.isnan(x_test[:, j]), j] = medians[j]

    if standardize:
        mean = x_train.mean(axis=0)
        std = x_train.std(axis=0)
        std[std == 0] = 1.0
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std

    return (
        (x_train.astype(np.float32), t[train]),
        (x_test.astype(np.float32), t[test]),
    )


def _read_table(features: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Parse the bundled CSV: float64 features with NaN for missing, int64 target."""
    text = (resources.files("xpnet.datasets") / "data" / _FILENAME).read_text(encoding="utf-8")
    rows, targets = [], []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        survived = (row.get(_TARGET) or "").strip()
        if not survived:
            continue
        targets.append(int(float(survived)))
        rows.append([_value(name, row.get(name)) for name in features])
    x = np.array(rows, dtype=np.float64).reshape(len(rows), len(features))
    return x, np.array(targets, dtype=np.int64)


def _value(name: str, text: str | None) -> float:
    text = (text or "").strip()
    if not text:
        return math.nan
    if name == "Sex":
        return {"female": 1.0, "male": 0.0}.get(text.lower(), math.nan)
    return float(text)


def _stratified_split(t: np.ndarray, test_ratio: float, seed: int):
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(t):
        members = rng.permutation(np.flatnonzero(t == cls))
        n_test = int(round(test_ratio * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
