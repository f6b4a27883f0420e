"""How the step time grows with the work: a sweep over width and batch, against the GEMM bound.

``python bench/scaling.py`` (or ``python -m xpnet.benchmark.scaling``) times a C2-like training
step, ``784-[width]x3-10`` with batch norm and dropout 0.2 and Adam, for xpnet on NumPy (float32)
and its peers (torch eager, torch fused, JAX jit) and the GEMM-only bound, over

* widths at a fixed batch (default 64, 256, 1024 at batch 256; ``--full``: 64-2048 at batch
  256), and
* batches at a fixed width (default 32, 256, 1024 at width 256; ``--full``: 32-1024 at width
  256).

Every point is measured as ``xpnet bench`` measures (:func:`xpnet.benchmark.harness.run_config`):
each implementation in a worker process of its own at each thread setting, interleaved over
rounds, medians, the better thread setting kept.  Writes ``NAME.json`` and ``NAME.png`` (ms per
step, and the ratio to the GEMM bound, against width and against batch).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from xpnet.benchmark import harness as H
from xpnet.benchmark import impls as I

DEFAULT_WIDTHS = (64, 256, 1024)
DEFAULT_BATCHES = (32, 256, 1024)
FULL_WIDTHS = (64, 128, 256, 512, 1024, 2048)
FULL_BATCHES = (32, 64, 128, 256, 512, 1024)
BASE_WIDTH = 256
BASE_BATCH = 256
_IMPLS = ("xpnet", "torch-eager", "torch-fused", "jax-jit", "gemm")


def points(widths: tuple[int, ...], batches: tuple[int, ...], base_width: int = BASE_WIDTH,
           base_batch: int = BASE_BATCH) -> list[dict[str, Any]]:
    """The grid: the width sweep at ``base_batch`` and the batch sweep at ``base_width`` (the
    shared point once)."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for w in widths:
        out.setdefault((w, base_batch), {"width": w, "batch": base_batch, "sweeps": []})[
            "sweeps"].append("width")
    for b in batches:
        out.setdefault((base_width, b), {"width": base_width, "batch": b, "sweeps": []})[
            "sweeps"].append("batch")
    return list(out.values())


def specs(impls: list[str]) -> list[I.Spec]:
    """The specs of the sweep's implementations (all float32 on the CPU)."""
    table = {
        "xpnet": I.Spec("xpnet", "numpy", "cpu", "float32"),
        "torch-eager": I.Spec("torch-eager", "torch", "cpu", "float32"),
        "torch-fused": I.Spec("torch-fused", "torch", "cpu", "float32"),
        "jax-jit": I.Spec("jax-jit", "jax", "cpu", "float32"),
        "gemm": I.Spec("gemm", "numpy", "cpu", "float32"),
    }
    return [table[i] for i in impls]


def run(args: argparse.Namespace, log, argv: list[str]) -> dict[str, Any]:
    """Measure every point of the grid; returns the result dict."""
    widths = FULL_WIDTHS if args.full else DEFAULT_WIDTHS
    batches = FULL_BATCHES if args.full else DEFAULT_BATCHES
    if args.widths:
        widths = tuple(int(v) for v in args.widths.split(","))
    if args.batches:
        batches = tuple(int(v) for v in args.batches.split(","))
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted(
        {1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1})
    grid = points(widths, batches)
    unset = [v for v in (args.unset_env or "").split(",") if v]
    env = {k: v for k, v in os.environ.items() if k not in unset}
    result: dict[str, Any] = {
        "schema": "xpnet-scaling/1",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/scaling.py " + shlex.join(argv),
        "network": "784-[width]x3-10, batch norm + dropout 0.2, Adam, float32",
        "threads": threads, "impls": args.impls.split(","), "unset_env": unset,
        "environment": H.environment(), "points": [],
    }
    t0 = time.perf_counter()
    for p in grid:
        cfg = I.mlp_config(p["width"], p["batch"])
        log(f"== width {p['width']}, batch {p['batch']} ({cfg.gemm_flops() / 1e9:.2f} GFLOP)")
        rows, facts = H.run_config(
            cfg, specs(result["impls"]), threads, repeats=args.repeats, warmup=args.warmup,
            sample_s=args.sample_s, budget_s=args.budget, log=log if args.verbose else _quiet,
            memory_steps=-1, growth_steps=0, opcount=False, env=env,
        )
        gemm = next((r for r in rows if r["impl"] == "gemm" and r["status"] == "ok"), None)
        entry = dict(p, gflop_per_step=cfg.gemm_flops() / 1e9, rounds=facts["rounds"],
                     seconds=facts["seconds"], results={})
        for r in rows:
            e: dict[str, Any] = {"label": r["label"], "status": r["status"]}
            if r["status"] == "ok":
                e.update(median_ms=r["median_ms"], iqr_ms=r["iqr_ms"],
                         best_threads=r["best_threads"],
                         by_threads={t: b.get("median_ms") for t, b in r["by_threads"].items()})
                if gemm is not None:
                    e["vs_gemm_bound"] = r["median_ms"] / gemm["median_ms"]
                log(f"   {r['label']:<34} {r['median_ms']:9.3f} ms @{r['best_threads']}t"
                    + (f"  x{e['vs_gemm_bound']:.2f} GEMM" if "vs_gemm_bound" in e else ""))
            else:
                e["reason"] = r.get("reason", "")
                log(f"   {r['label']:<34} {r['status']}: {e['reason']}")
            entry["results"][r["impl"]] = e
        result["points"].append(entry)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["environment"]["load_average_at_end"] = H.load_average()
    return result


def _quiet(_msg: str) -> None:
    pass


def figure(result: dict[str, Any], path: Path) -> str | None:
    """ms/step and the ratio to the GEMM bound against width and against batch (log axes)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        return f"matplotlib is not installed ({exc})"
    from xpnet.benchmark.report import COLORS

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), squeeze=False)
    for col, sweep, xkey in ((0, "width", "width"), (1, "batch", "batch")):
        pts = sorted((p for p in result["points"] if sweep in p["sweeps"]),
                     key=lambda p: p[xkey])
        if not pts:
            continue
        for impl in result["impls"]:
            xs, ms, ratio = [], [], []
            for p in pts:
                e = p["results"].get(impl)
                if e and e.get("status") == "ok":
                    xs.append(p[xkey])
                    ms.append(e["median_ms"])
                    ratio.append(e.get("vs_gemm_bound"))
            if not xs:
                continue
            label = next(p["results"][impl]["label"] for p in pts if impl in p["results"])
            style = dict(marker="o", color=COLORS.get(impl), label=label,
                         linestyle="--" if impl == "gemm" else "-")
            axes[0, col].plot(xs, ms, **style)
            if impl != "gemm" and all(r is not None for r in ratio):
                axes[1, col].plot(xs, ratio, **style)
        fixed = (f"batch {pts[0]['batch']}" if sweep == "width" else f"width {pts[0]['width']}")
        axes[0, col].set(xscale="log", yscale="log", xlabel=sweep, ylabel="ms per step",
                         title=f"step time vs {sweep} ({fixed})")
        axes[1, col].set(xscale="log", xlabel=sweep, ylabel="× GEMM bound (numpy)",
                         title=f"ratio to the preallocated GEMM bound vs {sweep}")
        axes[1, col].axhline(1.0, color="#7f7f7f", linewidth=0.8)
        for ax in axes[:, col]:
            ax.set_xticks([p[xkey] for p in pts], [str(p[xkey]) for p in pts])
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            if ax.get_yscale() == "log":
                ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _p: f"{v:g}"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    env = result["environment"]
    fig.suptitle(f"xpnet scaling — {result['network']}; {env.get('cpu_model') or ''} "
                 f"({env.get('cpu_count')} cores), each implementation in its own process, "
                 "better of threads " + ",".join(str(t) for t in result["threads"]), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``python bench/scaling.py``."""
    p = argparse.ArgumentParser(
        prog="python bench/scaling.py",
        description="ms/step and the ratio to the GEMM bound over width and batch, each "
        "implementation in its own process (see xpnet.benchmark.scaling).")
    p.add_argument("--full", action="store_true",
                   help="widths 64-2048 and batches 32-1024 (default: 3 of each)")
    p.add_argument("--widths", default=None, help="comma list (overrides the grid's widths)")
    p.add_argument("--batches", default=None, help="comma list (overrides the grid's batches)")
    p.add_argument("--impls", default=",".join(_IMPLS),
                   help="comma list of " + ", ".join(_IMPLS) + " (default: all)")
    p.add_argument("--threads", default=None, help="comma list (default: 1 and every CPU)")
    p.add_argument("--repeats", type=int, default=7, help="rounds per point (default 7)")
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps (default 5)")
    p.add_argument("--sample-s", type=float, default=0.05,
                   help="seconds of steps per sample for small steps (default 0.05)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of rounds per point (default 30)")
    p.add_argument("--unset-env", default=None, metavar="VAR[,VAR]",
                   help="environment variables to remove from the workers' environment "
                   "(e.g. OPENBLAS_CORETYPE)")
    p.add_argument("--out", default="bench-results", help="output directory")
    p.add_argument("--name", default="scaling", help="file stem (default: scaling)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every worker")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, write JSON and PNG; 0, or 1 when an implementation failed."""
    from xpnet.io import write_json

    args = build_parser().parse_args(argv)
    for i in args.impls.split(","):
        if i not in _IMPLS:
            print(f"scaling: error: unknown implementation {i!r}; use {', '.join(_IMPLS)}",
                  file=sys.stderr)
            return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run(args, log, argv if argv is not None else sys.argv[1:])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, png_path = out / f"{args.name}.json", out / f"{args.name}.png"
    why = figure(result, png_path)
    result["png"] = None if why else str(png_path)
    if why:
        result["figure_skipped"] = why
    write_json(json_path, result)
    log(f"== wrote {json_path}" + ("" if why else f", {png_path}")
        + f" in {result['seconds']} s")
    errors = [e for p in result["points"] for e in p["results"].values()
              if e["status"] == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
