"""The C3 convolution layer (30 filters 5x5 on 100 images 1x28x28, float32) on NumPy: the
portable ``im2col`` against a ``sliding_window_view`` one, forward + backward.

The candidate (below) would be the NumPy room's ``Kernels.im2col``: a strided view of every
window and one copy into the book's layout, where the portable code stacks ``FH * FW`` strided
slices.  It is not in xpnet because it did not measure faster (the issue's condition): in CPU
time the two were within 1% of each other over 21 interleaved processes (bench/README.md).

    python bench/conv_layer.py [--rounds 9] [--threads 1] [--need-dx]

Each variant runs in a fresh process of its own, the processes interleaved over the rounds;
each reports the median of its samples, the table the median over rounds, in wall time and in
the process's CPU time (steadier on a shared machine; one thread, so CPU time is work time).
Without ``--need-dx`` the backward is the one ``SimpleConvNet`` runs on its first layer (no
input gradient, so no ``col2im``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("portable", "sliding_window_view")


def im2col_sliding_window_view(x, filter_h, filter_w, stride, pad):  # noqa: ANN001, ANN201
    """The candidate NumPy kernel: :func:`xpnet.functions.im2col`'s matrix from
    ``numpy.lib.stride_tricks.sliding_window_view``."""
    import numpy as np

    n, c = x.shape[:2]
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(x, (filter_h, filter_w), axis=(2, 3))
    if stride > 1:
        win = win[:, :, ::stride, ::stride]
    out_h, out_w = win.shape[2:4]
    col = np.empty((n, out_h, out_w, c, filter_h, filter_w), dtype=x.dtype)
    np.copyto(col, win.transpose(0, 2, 3, 1, 4, 5))
    return col.reshape(n * out_h * out_w, c * filter_h * filter_w)


def worker(variant: str, need_dx: bool, steps: int, samples: int) -> dict[str, float]:
    import numpy as np

    from xpnet.backend import kernels_for
    from xpnet.functions import im2col
    from xpnet.layers import Convolution

    kernels = kernels_for("numpy")
    kernels.im2col = im2col_sliding_window_view if variant != "portable" else None
    rng0 = np.random.default_rng(1)
    probe = rng0.random((3, 2, 9, 8)).astype(np.float32)
    for s, p in ((1, 0), (2, 1), (1, 2)):  # the candidate computes the portable matrix
        assert np.array_equal(im2col_sliding_window_view(probe, 3, 2, s, p),
                              im2col(probe, 3, 2, s, p))
    rng = np.random.default_rng(0)
    x = rng.random((100, 1, 28, 28)).astype(np.float32)
    W = (0.01 * rng.standard_normal((30, 1, 5, 5))).astype(np.float32)
    layer = Convolution(W, np.zeros(30, np.float32))
    layer.need_dx = need_dx
    layer.dW_out, layer.db_out = np.empty_like(W), np.empty(30, np.float32)
    dout = rng.standard_normal((100, 30, 24, 24)).astype(np.float32)

    def step():
        layer.forward(x)
        layer.backward(dout)

    for _ in range(20):
        step()
    wall, cpu = [], []
    for _ in range(samples):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        wall.append((time.perf_counter() - t0) / steps * 1e3)
        cpu.append((time.process_time() - c0) / steps * 1e3)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--need-dx", action="store_true")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.need_dx, args.steps, args.samples)))
        return 0
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    per: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for r in range(args.rounds):
        for v in VARIANTS[r % 2:] + VARIANTS[:r % 2]:
            cmd = [sys.executable, __file__, "--worker", v, "--steps", str(args.steps),
                   "--samples", str(args.samples), "--threads", str(args.threads)]
            if args.need_dx:
                cmd.append("--need-dx")
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
            per[v].append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"C3 conv layer forward + backward{' (with dx)' if args.need_dx else ''}, "
          f"median of {args.rounds} processes each, {args.threads} thread(s):")
    for clock in ("wall", "cpu"):
        t = {v: [r[clock] for r in per[v]] for v in VARIANTS}
        med = {v: statistics.median(t[v]) for v in VARIANTS}
        paired = statistics.median(a / b for a, b in zip(t["portable"],
                                                           t["sliding_window_view"],
                                                           strict=True))
        for v in VARIANTS:
            print(f"  {clock:4s} {v:22s} {med[v]:7.3f} ms   "
                  f"(rounds: {', '.join(f'{x:.2f}' for x in t[v])})")
        print(f"  {clock:4s} portable / sliding_window_view: "
              f"{med['portable'] / med['sliding_window_view']:.2f} (paired by round: "
              f"{paired:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
