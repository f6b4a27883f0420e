"""Run the xpnet benchmark: the same as ``xpnet bench``, writing to bench/results/ by default.

    python bench/run.py                              # every backend, C1, C2, C3, C1-infer
    python bench/run.py --backend numpy --quick      # a smoke test
    python bench/run.py --gpu                        # the GPU rows, on an NVIDIA machine

Each implementation is timed in a worker process of its own, at 1 thread and at every CPU; see
bench/README.md, or ``python bench/run.py --help`` for every option.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xpnet.benchmark import main

RESULTS = Path(__file__).resolve().parent / "results"


def _argv(argv: list[str]) -> list[str]:
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv = [*argv, "--out", str(RESULTS)]
    return argv


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
