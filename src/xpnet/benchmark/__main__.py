"""``python -m xpnet.benchmark``: the same as ``xpnet bench``."""

from xpnet.benchmark.runner import main

raise SystemExit(main())
