"""Benchmarks of xpnet against PyTorch, the GEMM-only lower bound and the book's code.

``xpnet bench [options]`` and ``python bench/run.py [options]`` both call :func:`main`; see
``bench/README.md`` for the options and for running on a GPU.

Examples
--------
>>> from xpnet.benchmark import main
>>> main(["--quick", "--backend", "numpy", "--configs", "C1", "--out", "/tmp/xb"])  # doctest: +SKIP
0
"""

from xpnet.benchmark.runner import build_parser, main

__all__ = ["build_parser", "main"]
