"""ms/step and the ratio to the GEMM bound over width and batch: ``xpnet.benchmark.scaling``.

    python bench/scaling.py                # 3 widths x 3 batches, a few minutes
    python bench/scaling.py --full         # widths 64-2048, batches 32-1024

Writes bench/results/scaling.{json,png} by default (``--out``, ``--name``).  Each point is
measured as ``xpnet bench`` measures: each implementation in its own process, the better of 1
and every-CPU threads.  See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

from xpnet.benchmark.scaling import main

RESULTS = Path(__file__).resolve().parent / "results"


if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv = [*argv, "--out", str(RESULTS)]
    sys.exit(main(argv))
