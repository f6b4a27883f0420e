"""Ensembles and test-time augmentation on the bundled digits (cs231n lecture 7).

Trains ``--members`` independently seeded ``MultiLayerNetExtend(784, [100, 100], 10,
use_batchnorm=True, seed=i)`` with ``Trainer(..., epochs=5, optimizer="Adam",
optimizer_param={"lr": 1e-3}, verbose=False, seed=i)`` on the bundled MNIST split
(``load_mnist(source="bundled")``: 8,000 training / 2,000 test digits), then reports the test
accuracy of every member, of their ensemble (mean softmax), and of both with test-time
augmentation (softmax averaged over the 9 copies shifted by up to one pixel)::

    PYTHONPATH=src python bench/ensemble_tta.py                      # numpy, 5 members
    PYTHONPATH=src python bench/ensemble_tta.py --backend torch --out /tmp/e.json

Writes JSON (default ``bench/results/ensemble_tta.json``) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import xpnet
from xpnet import Ensemble, MultiLayerNetExtend, Trainer, tta_predict
from xpnet.datasets import load_mnist


def _accuracy(be, proba, t) -> float:
    return float(np.mean(be.to_numpy(proba).argmax(axis=1) == t))


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--shifts", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ensemble_tta.json"))
    args = ap.parse_args(argv)

    (x_train, t_train), (x_test, t_test) = load_mnist(source="bundled")
    be = xpnet.get_backend(args.backend)
    members, rows = [], []
    for i in range(args.members):
        net = MultiLayerNetExtend(784, [100, 100], 10, use_batchnorm=True, backend=be, seed=i)
        t0 = time.perf_counter()
        Trainer(net, x_train, t_train, x_test, t_test, epochs=args.epochs, optimizer="Adam",
                optimizer_param={"lr": 1e-3}, verbose=False, seed=i).train()
        train_s = time.perf_counter() - t0
        acc = net.accuracy(x_test, t_test)
        tta = _accuracy(be, tta_predict(net, x_test, shifts=args.shifts), t_test)
        members.append(net)
        rows.append({"seed": i, "test_acc": acc, "test_acc_tta": tta,
                     "train_seconds": round(train_s, 2)})
        print(f"member seed={i}: test {acc:.4f}  with TTA {tta:.4f}  ({train_s:.1f} s)")

    ens = Ensemble(members)
    t0 = time.perf_counter()
    ens_acc = ens.accuracy(x_test, t_test)
    ens_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ens_tta = _accuracy(be, tta_predict(ens, x_test, shifts=args.shifts), t_test)
    ens_tta_s = time.perf_counter() - t0
    accs = [r["test_acc"] for r in rows]
    ttas = [r["test_acc_tta"] for r in rows]
    result = {
        "what": "ensemble and test-time augmentation on the bundled digits",
        "command": " ".join(["PYTHONPATH=src python bench/ensemble_tta.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "config": {
            "network": "MultiLayerNetExtend(784, [100, 100], 10, use_batchnorm=True, seed=i)",
            "trainer": f"Trainer(epochs={args.epochs}, optimizer='Adam', lr=1e-3, "
                       "mini_batch_size=100, seed=i)",
            "data": "load_mnist(source='bundled'): 8,000 train / 2,000 test",
            "tta": f"mean softmax over shifts dx, dy in [-{args.shifts}, {args.shifts}], "
                   "zero fill",
            "backend": be.name,
            "members": args.members,
        },
        "members": rows,
        "member_mean": statistics.fmean(accs),
        "member_min": min(accs),
        "member_max": max(accs),
        "member_tta_mean": statistics.fmean(ttas),
        "ensemble": ens_acc,
        "ensemble_tta": ens_tta,
        "ensemble_predict_seconds": round(ens_s, 3),
        "ensemble_tta_seconds": round(ens_tta_s, 3),
        "commit": _commit(),
        "machine": {"python": platform.python_version(), "numpy": np.__version__,
                    "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    print(f"members: mean {result['member_mean']:.4f} (min {min(accs):.4f}, max {max(accs):.4f})"
          f"; with TTA mean {result['member_tta_mean']:.4f}")
    print(f"ensemble of {args.members}: {ens_acc:.4f}; with TTA {ens_tta:.4f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
