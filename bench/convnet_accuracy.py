"""The book's chapter-7 SimpleConvNet on the bundled digits: accuracy and epoch time per backend.

    python bench/convnet_accuracy.py [--backends numpy,torch,array_api_strict] [--epochs 10]
                                     [--threads 1] [--out bench/results/convnet_accuracy.json]

``ch07/train_convnet.py``'s setup -- ``SimpleConvNet(input_dim=(1, 28, 28), conv_param={30
filters 5x5, pad 0, stride 1}, hidden_size=100, output_size=10, weight_init_std=0.01)``, Adam lr
0.001, batch 100 -- on the 8,000 bundled training digits (``load_mnist(flatten=False,
source="bundled")``), test accuracy on the 2,000 held out after every epoch, float32, seed 0,
through :class:`xpnet.Trainer`.  Each backend runs in a process of its own, one after the other
(``--threads`` BLAS/OpenMP threads).  The issue's bar: at least 97.5% on the 2,000 (numpy).

Epoch time is the Trainer's: 80 steps plus the evaluation of 2,000 training and 2,000 test
digits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def worker(backend: str, epochs: int, seed: int, init: str = "0.01", lr: float = 0.001,
           normalization: str | None = None) -> dict:
    import xpnet
    from xpnet.datasets import load_mnist

    (x, t), (xt, tt) = load_mnist(flatten=False, source="bundled")
    net = xpnet.SimpleConvNet(input_dim=(1, 28, 28),
                              conv_param={"filter_num": 30, "filter_size": 5, "pad": 0,
                                          "stride": 1},
                              hidden_size=100, output_size=10,
                              weight_init_std=float(init) if init[0].isdigit() else init,
                              backend=backend, dtype="float32", seed=seed,
                              normalization=normalization)
    trainer = xpnet.Trainer(net, x, t, xt, tt, epochs=epochs, mini_batch_size=100,
                            optimizer="Adam", optimizer_param={"lr": lr},
                            evaluate_sample_num_per_epoch=2000, verbose=False, seed=seed)
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    return {
        "backend": backend, "epochs": epochs, "seed": seed, "weight_init_std": init,
        "lr": lr, "normalization": normalization,
        "test_acc": trainer.test_acc_list, "train_acc": trainer.train_acc_list,
        "epoch_times_s": trainer.epoch_times, "total_s": total,
        "final_test_acc": trainer.test_acc_list[-1],
        "final_train_loss": sum(trainer.train_loss_list[-80:]) / 80,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", default="numpy,torch,array_api_strict")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", default="0.01", help="weight_init_std (the book's 0.01)")
    ap.add_argument("--lr", type=float, default=0.001, help="Adam's learning rate")
    ap.add_argument("--normalization", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.epochs, args.seed, args.init, args.lr,
                                args.normalization)))
        return 0
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    results = []
    for be in [b.strip() for b in args.backends.split(",") if b.strip()]:
        cmd = [sys.executable, __file__, "--worker", be, "--epochs", str(args.epochs),
               "--seed", str(args.seed), "--threads", str(args.threads), "--init", args.init,
               "--lr", str(args.lr)]
        if args.normalization:
            cmd += ["--normalization", args.normalization]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if res.returncode != 0:
            print(f"{be}: failed\n{res.stderr}", file=sys.stderr)
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        results.append(r)
        times = sorted(r["epoch_times_s"])
        med = times[len(times) // 2]
        print(f"{be:18s} test acc per epoch "
              f"{' '.join(f'{a:.4f}' for a in r['test_acc'])}\n{'':18s} final "
              f"{r['final_test_acc']:.4f}, epoch time median {med:.2f} s "
              f"(min {times[0]:.2f}, max {times[-1]:.2f})", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"threads": args.threads, "runs": results},
                                             indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
