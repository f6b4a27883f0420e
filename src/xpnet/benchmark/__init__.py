"""Benchmarks of xpnet against its peers (torch.nn eager and fused, JAX jit), the GEMM-only
lower bound and the book's code, each implementation timed in a worker process of its own.

``xpnet bench [options]`` and ``python bench/run.py [options]`` both call :func:`main`; see
``bench/README.md`` for the method, the options and running on a GPU.  Modules: ``impls``
(what is timed), ``worker`` and ``harness`` (the processes and the rounds), ``threads``,
``report``, ``runner`` (the command line), ``opcount`` (operations per step), ``scaling`` (the
width/batch sweep), ``probe`` (backends, GPU), ``book`` (the book's float64 code).

Examples
--------
>>> from xpnet.benchmark import main
>>> main(["--quick", "--backend", "numpy", "--configs", "C1", "--out", "/tmp/xb"])  # doctest: +SKIP
0
"""

from __future__ import annotations

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark with command-line arguments (``xpnet bench`` forwards here)."""
    from xpnet.benchmark.runner import main as _main

    return _main(argv)


def build_parser():  # noqa: ANN201
    """The argparse parser of ``xpnet bench``."""
    from xpnet.benchmark.runner import build_parser as _build

    return _build()
