"""The chapter-6 experiments of *Deep Learning from Scratch* (and cs231n lecture 7, and the
chapter-7 conv net with its normalizations), on any backend.

Each experiment is a module with

- ``run(*, backend=None, seed=0, quick=False, device=None, progress=None, **overrides) -> dict``:
  computes the experiment and returns plain JSON-able results (lists of floats, the config, the
  backend and device, timings).  ``quick=True`` shrinks it to seconds while keeping the book's
  qualitative result; ``overrides`` change single config entries (see the module's ``FULL``).
- ``plot(result, path)``: draws the book's figure from that dict into a PNG.

>>> from xpnet import experiments
>>> sorted(experiments.EXPERIMENTS)[:2]
['activation_histograms', 'batch_norm']
>>> res = experiments.run("optimizer_paths")          # doctest: +SKIP
>>> experiments.save(res, "out")                       # doctest: +SKIP

From the shell: ``xpnet experiment NAME|all [--quick] [--backend B] [--out DIR]``.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["EXPERIMENTS", "config", "get", "run", "save"]

#: Module names, in DESIGN.md's order.
_MODULES = (
    "optimizer_paths",
    "optimizer_compare",
    "activation_histograms",
    "weight_init",
    "batch_norm",
    "overfit_weight_decay",
    "dropout",
    "hyperparameter_search",
    "titanic",
    "compare",
    "conv_normalizations",
)

#: Experiment name -> module, in DESIGN.md's order.
EXPERIMENTS: dict[str, ModuleType] = {
    name: importlib.import_module(f"xpnet.experiments.{name}") for name in _MODULES
}


def get(name: str) -> ModuleType:
    """The module of experiment ``name``; ``KeyError`` with the valid names otherwise."""
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise KeyError(
            f"unknown experiment {name!r}; valid names are: {', '.join(EXPERIMENTS)}"
        ) from None


def config(name: str, *, quick: bool = False, **overrides: Any) -> dict:
    """The config experiment ``name`` would run with: its ``FULL`` config, shrunk when
    ``quick``, with ``overrides`` applied -- checked without running anything (an unknown key
    or a value of the wrong kind raises ``TypeError`` naming it).

    >>> config("optimizer_paths", steps=10)["steps"]
    10
    """
    from xpnet.experiments import _common

    mod = get(name)
    return _common.make_config(mod.FULL, getattr(mod, "QUICK", {}), quick, overrides)


def run(name: str, **kwargs: Any) -> dict:
    """``EXPERIMENTS[name].run(**kwargs)``."""
    return get(name).run(**kwargs)


def save(result: dict, out_dir: str | os.PathLike = ".") -> tuple[Path, Path]:
    """Write ``NAME.json`` and ``NAME.png`` for a result of :func:`run`; returns both paths."""
    from xpnet.experiments import _common

    name = result["experiment"]
    return _common.save(result, out_dir, name, get(name).plot)
