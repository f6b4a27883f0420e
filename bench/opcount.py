"""Operations per xpnet training step, per backend: ``xpnet.benchmark.opcount``.

    python bench/opcount.py                   # C1 on numpy, array_api_strict, torch
    python bench/opcount.py --config C2
    python bench/opcount.py --update          # rewrite bench/opcount_pins.json

``tests/test_opcount.py`` fails when the C1 step's count grows above the pin in
``bench/opcount_pins.json`` and reminds you to lower the pin when it shrinks.  Update the pins
only after a change that *removes* operations (run this with ``--update`` and commit the JSON
with the change); never to make a test pass that caught added operations.
"""

from __future__ import annotations

import sys

from xpnet.benchmark.opcount import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
