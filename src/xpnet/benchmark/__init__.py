"""Benchmarks of xpnet against PyTorch, the GEMM-only lower bound and the book's code.

``xpnet bench [options]`` and ``python bench/run.py [options]`` both call :func:`main`; see
``bench/README.md`` for the options and for running on a GPU.

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
