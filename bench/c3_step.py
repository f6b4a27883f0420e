"""C3: one training step of the book's chapter-7 ``SimpleConvNet`` (conv 30x5x5 - ReLU - pool 2 -
100 - ReLU - 10, batch 100, Adam lr 0.001), xpnet against ``torch.nn`` and the book's own code.

    python bench/c3_step.py [--rounds 7] [--threads 1] [--impls a,b,...] [--out FILE]
    python bench/c3_step.py --profile xpnet-numpy        # what dominates one step (cProfile)
    python bench/c3_step.py --profile torch-eager        # (torch.profiler for torch.nn)

Every implementation is timed in a fresh process of its own (timing peers in one process is
unfair on a 2-core machine: idle OpenMP/BLAS pools steal each other's cores), the processes are
interleaved over ``--rounds`` rounds in a rotated order, and each process reports the median of
its samples (a sample: ``--steps`` steps after ``--warmup`` warm-up steps), in wall time and in
the process's CPU time -- with one thread (the default) CPU time is the work done, and stays
steady when other processes load the machine, which wall time does not.  The tables give the
medians over rounds and the ratios the issue sets as targets: the book's step / xpnet numpy's
(target >= 3) and xpnet numpy's / torch's (target <= 1.5).

Implementations:

- ``xpnet-numpy``, ``xpnet-torch``, ``xpnet-array_api_strict``: ``xpnet.SimpleConvNet`` float32
  + ``xpnet.Adam``, the book's loop (``opt.update(net.params, net.gradient(x, t))``);
- ``xpnet-torch-portable`` (and ``xpnet-numpy-portable``, the same as ``xpnet-numpy`` while the
  NumPy room has no convolution kernel): the same with the backend's convolution and pooling
  kernel slots emptied (the portable ``im2col`` code), to measure the fast paths;
- ``torch-eager``: ``nn.Sequential(Conv2d, ReLU, MaxPool2d, Flatten, Linear, ReLU, Linear)``,
  ``CrossEntropyLoss``, ``torch.optim.Adam(foreach=False)``, float32; ``torch-fused``: the same
  with ``Adam(fused=True)``;
- ``book``: the book's ``common/`` code for this network, float64, transcribed below
  (``Convolution``, ``Pooling``, ``im2col``, ``col2im`` and ``SimpleConvNet`` of
  ``common/layers.py``, ``common/util.py``, ``ch07/simple_convnet.py``; ``Relu``, ``Affine``,
  ``SoftmaxWithLoss`` and ``Adam`` from :mod:`xpnet.benchmark.book`).  The book's repository
  (``oreilly-japan/deep-learning-from-scratch``) is MIT-licensed, Copyright (c) 2016 Koki Saito.
  Kept as the book has it on purpose: float64, ``dx`` of the first convolution computed, the
  pooling's fancy-index scatter, Relu's boolean-mask copies.

Data are synthetic MNIST-shaped batches (timings don't depend on pixel values).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

IMPLS = ("xpnet-numpy", "xpnet-numpy-portable", "xpnet-torch", "xpnet-torch-portable",
         "xpnet-array_api_strict", "torch-eager", "torch-fused", "book")
DEFAULT_IMPLS = ("xpnet-numpy", "xpnet-torch", "xpnet-torch-portable", "torch-eager",
                 "torch-fused", "book")
CONV_SLOTS = ("conv2d", "conv2d_backward", "im2col", "col2im", "max_pool2d",
              "max_pool2d_backward")


# ------------------------------------------------------------------------------------------------
# the book's chapter-7 code, float64 (common/util.py, common/layers.py, ch07/simple_convnet.py)
# ------------------------------------------------------------------------------------------------


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    import numpy as np

    N, C, H, W = input_data.shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    img = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], "constant")
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            col[:, :, y, x, :, :] = img[:, :, y:y_max:stride, x:x_max:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N * out_h * out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    import numpy as np

    N, C, H, W = input_shape
    out_h = (H + 2 * pad - filter_h) // stride + 1
    out_w = (W + 2 * pad - filter_w) // stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)
    img = np.zeros((N, C, H + 2 * pad + stride - 1, W + 2 * pad + stride - 1))
    for y in range(filter_h):
        y_max = y + stride * out_h
        for x in range(filter_w):
            x_max = x + stride * out_w
            img[:, :, y:y_max:stride, x:x_max:stride] += col[:, :, y, x, :, :]
    return img[:, :, pad:H + pad, pad:W + pad]


class BookConvolution:
    def __init__(self, W, b, stride=1, pad=0):
        self.W, self.b, self.stride, self.pad = W, b, stride, pad
        self.x = self.col = self.col_W = self.dW = self.db = None

    def forward(self, x):
        import numpy as np

        FN, C, FH, FW = self.W.shape
        N, C, H, W = x.shape
        out_h = 1 + int((H + 2 * self.pad - FH) / self.stride)
        out_w = 1 + int((W + 2 * self.pad - FW) / self.stride)
        col = im2col(x, FH, FW, self.stride, self.pad)
        col_W = self.W.reshape(FN, -1).T
        out = np.dot(col, col_W) + self.b
        out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)
        self.x, self.col, self.col_W = x, col, col_W
        return out

    def backward(self, dout):
        import numpy as np

        FN, C, FH, FW = self.W.shape
        dout = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
        self.db = np.sum(dout, axis=0)
        self.dW = np.dot(self.col.T, dout)
        self.dW = self.dW.transpose(1, 0).reshape(FN, C, FH, FW)
        dcol = np.dot(dout, self.col_W.T)
        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)


class BookPooling:
    def __init__(self, pool_h, pool_w, stride=1, pad=0):
        self.pool_h, self.pool_w, self.stride, self.pad = pool_h, pool_w, stride, pad
        self.x = self.arg_max = None

    def forward(self, x):
        import numpy as np

        N, C, H, W = x.shape
        out_h = int(1 + (H - self.pool_h) / self.stride)
        out_w = int(1 + (W - self.pool_w) / self.stride)
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)
        col = col.reshape(-1, self.pool_h * self.pool_w)
        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1)
        out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        self.x, self.arg_max = x, arg_max
        return out

    def backward(self, dout):
        import numpy as np

        dout = dout.transpose(0, 2, 3, 1)
        pool_size = self.pool_h * self.pool_w
        dmax = np.zeros((dout.size, pool_size))
        dmax[np.arange(self.arg_max.size), self.arg_max.flatten()] = dout.flatten()
        dmax = dmax.reshape(dout.shape + (pool_size,))
        dcol = dmax.reshape(dmax.shape[0] * dmax.shape[1] * dmax.shape[2], -1)
        return col2im(dcol, self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


class BookSimpleConvNet:
    """``ch07/simple_convnet.py``; a seeded ``RandomState`` instead of the global generator."""

    def __init__(self, input_dim=(1, 28, 28),
                 conv_param={"filter_num": 30, "filter_size": 5, "pad": 0, "stride": 1},  # noqa: B006
                 hidden_size=100, output_size=10, weight_init_std=0.01, seed=0):
        import numpy as np

        from xpnet.benchmark.book import Affine, Relu, SoftmaxWithLoss

        rs = np.random.RandomState(seed)
        filter_num = conv_param["filter_num"]
        filter_size = conv_param["filter_size"]
        filter_pad = conv_param["pad"]
        filter_stride = conv_param["stride"]
        input_size = input_dim[1]
        conv_output_size = (input_size - filter_size + 2 * filter_pad) / filter_stride + 1
        pool_output_size = int(filter_num * (conv_output_size / 2) * (conv_output_size / 2))
        self.params = {}
        self.params["W1"] = weight_init_std * rs.randn(filter_num, input_dim[0], filter_size,
                                                       filter_size)
        self.params["b1"] = np.zeros(filter_num)
        self.params["W2"] = weight_init_std * rs.randn(pool_output_size, hidden_size)
        self.params["b2"] = np.zeros(hidden_size)
        self.params["W3"] = weight_init_std * rs.randn(hidden_size, output_size)
        self.params["b3"] = np.zeros(output_size)
        self.layers = OrderedDict()
        self.layers["Conv1"] = BookConvolution(self.params["W1"], self.params["b1"],
                                               conv_param["stride"], conv_param["pad"])
        self.layers["Relu1"] = Relu()
        self.layers["Pool1"] = BookPooling(pool_h=2, pool_w=2, stride=2)
        self.layers["Affine1"] = Affine(self.params["W2"], self.params["b2"])
        self.layers["Relu2"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W3"], self.params["b3"])
        self.last_layer = SoftmaxWithLoss()

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.last_layer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        grads["W1"], grads["b1"] = self.layers["Conv1"].dW, self.layers["Conv1"].db
        grads["W2"], grads["b2"] = self.layers["Affine1"].dW, self.layers["Affine1"].db
        grads["W3"], grads["b3"] = self.layers["Affine2"].dW, self.layers["Affine2"].db
        return grads


# ------------------------------------------------------------------------------------------------
# one implementation, in this process
# ------------------------------------------------------------------------------------------------


def _batches(n_pool: int = 4, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [(rng.random((100, 1, 28, 28)), rng.integers(0, 10, 100)) for _ in range(n_pool)]


def _cycle(items):
    state = [0]

    def nxt():
        i = state[0]
        state[0] = (i + 1) % len(items)
        return items[i]

    return nxt


def build(impl: str):
    """``(step, sync)`` for ``impl``: ``step()`` takes one training step."""
    host = _batches()
    if impl.startswith("xpnet-"):
        import xpnet
        from xpnet.backend import kernels_for

        name = impl[len("xpnet-"):]
        portable = name.endswith("-portable")
        name = name.removesuffix("-portable")
        if portable:
            k = kernels_for(name)
            for slot in CONV_SLOTS:
                if getattr(k, slot, None) is not None:
                    setattr(k, slot, None)
        be = xpnet.get_backend(name)
        net = xpnet.SimpleConvNet(input_dim=(1, 28, 28),
                                  conv_param={"filter_num": 30, "filter_size": 5, "pad": 0,
                                              "stride": 1},
                                  hidden_size=100, output_size=10, weight_init_std=0.01,
                                  backend=be, dtype="float32", seed=0)
        opt = xpnet.Adam(lr=0.001)
        data = [(be.asarray(x, dtype="float32"), be.asarray(t)) for x, t in host]
        nxt = _cycle(data)

        def step():
            x, t = nxt()
            opt.update(net.params, net.gradient(x, t))

        return step, be.synchronize
    if impl.startswith("torch-"):
        import torch

        nn = torch.nn
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(1, 30, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                              nn.Linear(30 * 12 * 12, 100), nn.ReLU(), nn.Linear(100, 10))
        fused = impl == "torch-fused"
        opt = torch.optim.Adam(model.parameters(), lr=0.001, eps=1e-7,
                               **({"fused": True} if fused else {"foreach": False}))
        loss_fn = nn.CrossEntropyLoss()
        data = [(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(t)) for x, t in host]
        nxt = _cycle(data)

        def step():
            x, t = nxt()
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), t).backward()
            opt.step()

        return step, lambda: None
    if impl == "book":
        from xpnet.benchmark.book import Adam

        net = BookSimpleConvNet(seed=0)
        opt = Adam(lr=0.001)
        nxt = _cycle(host)

        def step():
            x, t = nxt()
            opt.update(net.params, net.gradient(x, t))

        return step, lambda: None
    raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def worker(impl: str, steps: int, warmup: int, samples: int) -> dict:
    import gc

    step, sync = build(impl)
    for _ in range(warmup):
        step()
    sync()
    wall, cpu = [], []
    for _ in range(samples):
        gc.collect()
        gc.disable()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        sync()
        wall.append((time.perf_counter() - t0) / steps * 1e3)
        cpu.append((time.process_time() - c0) / steps * 1e3)
        gc.enable()
    return {"impl": impl, "wall_ms": wall, "cpu_ms": cpu, "median_ms": statistics.median(wall),
            "median_cpu_ms": statistics.median(cpu)}


def profile(impl: str, steps: int) -> None:
    step, sync = build(impl)
    for _ in range(20):
        step()
    if impl.startswith("torch-") or impl == "xpnet-torch":
        import torch
        from torch.profiler import ProfilerActivity

        with torch.profiler.profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
        return
    import cProfile
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    sync()
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(20)


# ------------------------------------------------------------------------------------------------
# the driver: fresh processes, interleaved rounds
# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--impls", default=",".join(DEFAULT_IMPLS),
                    help=f"comma list of {', '.join(IMPLS)}")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10, help="steps per sample")
    ap.add_argument("--samples", type=int, default=5, help="samples per process")
    ap.add_argument("--warmup", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="threads of BLAS/OpenMP/torch")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--profile", default=None, metavar="IMPL",
                    help="profile IMPL over --steps steps instead of timing")
    args = ap.parse_args(argv)
    _set_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.samples)))
        return 0
    if args.profile:
        profile(args.profile, args.steps)
        return 0
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    unknown = [i for i in impls if i not in IMPLS]
    if unknown:
        ap.error(f"unknown implementations {unknown}; known: {', '.join(IMPLS)}")
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    per_round: dict[str, dict[str, list[float]]] = {i: {"wall": [], "cpu": []} for i in impls}
    for r in range(args.rounds):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for impl in order:
            cmd = [sys.executable, __file__, "--worker", impl, "--steps", str(args.steps),
                   "--samples", str(args.samples), "--warmup", str(args.warmup),
                   "--threads", str(args.threads)]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if res.returncode != 0:
                print(f"{impl}: failed\n{res.stderr}", file=sys.stderr)
                return 1
            out = json.loads(res.stdout.strip().splitlines()[-1])
            per_round[impl]["wall"].append(out["median_ms"])
            per_round[impl]["cpu"].append(out["median_cpu_ms"])
            print(f"round {r + 1}/{args.rounds} {impl:24s} {out['median_ms']:8.2f} ms wall "
                  f"{out['median_cpu_ms']:8.2f} ms cpu", flush=True)
    # CPU time is work time with one thread, and steadier than wall time on a shared machine;
    # with more threads only wall time means what a user waits
    clocks = ("wall", "cpu") if args.threads == 1 else ("wall",)
    med = {c: {i: statistics.median(per_round[i][c]) for i in impls} for c in clocks}
    ratios: dict[str, dict[str, float]] = {}
    for c in clocks:
        m = med[c]
        print(f"\nC3 step, {c} time, median of {args.rounds} processes, {args.threads} "
              f"thread(s):")
        for i in impls:
            v = sorted(per_round[i][c])
            print(f"  {i:24s} {m[i]:8.2f} ms   (min {v[0]:.2f}, max {v[-1]:.2f})")
        r_c = ratios[c] = {}
        if "xpnet-numpy" in m:
            x = m["xpnet-numpy"]
            if "book" in m:
                r_c["book / xpnet-numpy (target >= 3)"] = m["book"] / x
            for t in ("torch-eager", "torch-fused"):
                if t in m:
                    r_c[f"xpnet-numpy / {t} (target <= 1.5)"] = x / m[t]
            if "xpnet-numpy-portable" in m:
                r_c["xpnet-numpy-portable / xpnet-numpy"] = m["xpnet-numpy-portable"] / x
        if "xpnet-torch" in m and "xpnet-torch-portable" in m:
            r_c["xpnet-torch-portable / xpnet-torch"] = (m["xpnet-torch-portable"]
                                                         / m["xpnet-torch"])
        if "xpnet-torch" in m and "torch-eager" in m:
            r_c["xpnet-torch / torch-eager"] = m["xpnet-torch"] / m["torch-eager"]
        for k, v in r_c.items():
            print(f"  {k:44s} {v:6.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "config": "C3", "threads": args.threads, "rounds": args.rounds,
            "steps_per_sample": args.steps, "samples_per_process": args.samples,
            "warmup": args.warmup, "per_round_ms": per_round, "median_ms": med,
            "ratios": ratios,
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
