"""Time saving and loading a checkpoint of the network ``xpnet train`` builds by default.

    PYTHONPATH=src python bench/checkpoint_io.py [--repeats 21]

784-256-128-10 with batch norm, float32, on NumPy, with its Adam state after one step:
``net.save(path, optimizer=opt)`` (SHA-256 of every array, atomic write) and
``xpnet.load(path, with_optimizer=True)`` (every digest checked, the network rebuilt from its
config). Prints the file size and the median wall time of each over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import xpnet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21, help="timed saves and loads (21)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    net = xpnet.MultiLayerNetExtend(784, [256, 128], 10, use_batchnorm=True, seed=0)
    opt = xpnet.Adam(lr=1e-3)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((100, 784)).astype(np.float32)
    t = np.arange(100) % 10
    opt.update(net.params, net.gradient(x, t))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "net.safetensors")
        save, load = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            net.save(path, optimizer=opt)
            save.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            xpnet.load(path, with_optimizer=True)
            load.append(time.perf_counter() - t0)
        size = os.path.getsize(path)
    print(f"file {size / 1e6:.2f} MB; save {statistics.median(save) * 1e3:.1f} ms, "
          f"load {statistics.median(load) * 1e3:.1f} ms (medians of {args.repeats})")


if __name__ == "__main__":
    main()
