"""Command line and driver of the benchmark: ``xpnet bench`` / ``python bench/run.py``."""

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
from xpnet.benchmark import report as R
from xpnet.io import atomic_write, write_json

_ALL_CONFIGS = ("C1", "C2", "C3", "C1-infer")
_GPU_CONFIGS = ("C1", "C2", "C1-infer")
_CONFIG_ALIASES = {"infer": "C1-infer", "inference": "C1-infer", "c1-infer": "C1-infer"}
_CPU_BACKENDS = ("numpy", "torch", "array_api_strict", "cupy")
_ALL_IMPLS = ("xpnet", "torch-eager", "torch-fused", "jax-jit", "gemm", "book")


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``xpnet bench``."""
    p = argparse.ArgumentParser(
        prog="xpnet bench",
        description=(
            "Time a training step (gradient + Adam) and inference of xpnet on each backend beside "
            "its peers -- torch.nn with eager and fused Adam, JAX jit -- the GEMM-only lower "
            "bound and the book's float64 code. Each implementation runs in a worker process of "
            "its own, at each thread setting; the workers are timed in turn over rounds. Writes "
            "JSON, a markdown report and a PNG chart."
        ),
    )
    p.add_argument(
        "--backend", action="append", default=None, metavar="NAME[,NAME]",
        help="xpnet backend(s): numpy, torch, array_api_strict, cupy; repeatable or a comma "
        "list (default: every backend, unavailable ones reported; --gpu: cupy and torch on the "
        "GPU). A backend named here that cannot run is an error: exit status 2.",
    )
    p.add_argument(
        "--device", default=None,
        help="device of the torch and cupy backends and of the torch peers, e.g. 'cuda', "
        "'cuda:1' (default: cpu; --gpu: cuda)",
    )
    p.add_argument("--dtype", default="float32",
                   help="comma list of float32, float64 (default: float32)")
    p.add_argument("--configs", default=None,
                   help="comma list of C1, C2, C3, C1-infer (alias: infer); default: all "
                   "(--gpu: C1, C2, C1-infer)")
    p.add_argument("--impls", default=",".join(_ALL_IMPLS),
                   help="comma list of implementations to time: " + ", ".join(_ALL_IMPLS)
                   + " (default: all)")
    p.add_argument("--threads", default=None,
                   help="comma list of thread counts, each implementation timed at each "
                   f"(default: 1,{_cpus()} -- 1 and every CPU; --gpu: 1)")
    p.add_argument("--repeats", type=int, default=None,
                   help="rounds (one sample per implementation and thread setting per round; "
                   "default: C1 60, C2 20, C3 20, inference 30)")
    p.add_argument("--warmup", type=int, default=None,
                   help="warm-up steps per worker (default: 50 for C1, 10 for C2/C3, 5 for "
                   "inference)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of rounds per config before stopping early (default 150; "
                   "quick: 20); at least 3 rounds; the memory-growth check gets the same")
    p.add_argument("--growth-steps", type=int, default=None,
                   help="C1 steps of the memory-growth check of each xpnet row (default 2000; "
                   "0 skips it)")
    p.add_argument("--unset-env", default=None, metavar="VAR[,VAR]",
                   help="environment variables to remove from the workers' environment, e.g. "
                   "OPENBLAS_CORETYPE,OPENBLAS_L2_SIZE (a forced OpenBLAS core type can slow "
                   "NumPy's BLAS; the report says when one is set)")
    p.add_argument("--quick", action="store_true",
                   help="tiny repeats and warm-up: a smoke test, not a measurement")
    p.add_argument("--no-reference", action="store_true",
                   help="time xpnet only (the same as --impls xpnet)")
    p.add_argument("--no-opcount", action="store_true",
                   help="skip the operation counts per step")
    p.add_argument("--gpu", action="store_true",
                   help="the GPU rows: xpnet on CuPy and torch CUDA, torch.nn on CUDA and the "
                   "GEMM bounds there, with achieved GFLOP/s and the FP32 arithmetic floor; exit "
                   "status 2 where there is no NVIDIA GPU")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the GPU's peak FP32 TFLOP/s for the floor (default: looked up by "
                   "device name in xpnet.benchmark.probe.PEAK_FP32_TFLOPS)")
    p.add_argument("--out", default="bench-results", help="output directory (default: %(default)s)")
    p.add_argument("--name", default="bench",
                   help="file name stem: NAME.json, NAME.md, NAME.png (default: %(default)s)")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG chart")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return p


def _split(values: list[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


class UsageError(Exception):
    """Bad options, or a backend asked for by name that cannot run here."""


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 on success, 1 if an implementation failed, 2 on bad usage or
    (``--gpu``) when there is no GPU."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr,
                                                                   flush=True))
    try:
        result = run(args, log, argv if argv is not None else sys.argv[1:])
    except UsageError as exc:
        print(f"xpnet bench: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result["_markdown"])
    errors = [r for c in result["configs"].values() for r in c.get("results", [])
              if r.get("status") == "error"]
    errors += [g for g in result.get("memory_growth", []) if g.get("status") == "error"]
    for e in errors:
        print(f"xpnet bench: {e.get('key')} failed: {e.get('reason')}", file=sys.stderr)
    return 1 if errors else 0


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options; return what the run needs."""
    dtypes = _split(args.dtype)
    for d in dtypes:
        if d not in ("float32", "float64"):
            raise UsageError(f"unknown dtype {d!r}; use float32, float64")
    configs = []
    for c in _split(args.configs) or list(_GPU_CONFIGS if args.gpu else _ALL_CONFIGS):
        c = _CONFIG_ALIASES.get(c.lower(), c.upper())
        if c not in I.CONFIGS:
            raise UsageError(f"unknown config {c!r}; use {', '.join(_ALL_CONFIGS)}")
        configs.append(c)
    impls = ["xpnet"] if args.no_reference else _split(args.impls)
    for i in impls:
        if i not in _ALL_IMPLS:
            raise UsageError(f"unknown implementation {i!r}; use {', '.join(_ALL_IMPLS)}")
    try:
        threads = [int(t) for t in _split(args.threads)] if args.threads else (
            [1] if args.gpu else sorted({1, _cpus()}))
    except ValueError as exc:
        raise UsageError(f"--threads takes a comma list of positive integers: {exc}") from exc
    if not threads or min(threads) < 1:
        raise UsageError("--threads takes a comma list of positive integers")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        raise UsageError("--peak-tflops must be positive")
    unset = _split(args.unset_env)
    env = {k: v for k, v in os.environ.items() if k not in unset}
    return {"dtypes": dtypes, "configs": configs, "impls": impls,
            "threads": list(dict.fromkeys(threads)), "unset_env": unset, "env": env}


def _probe(args, explicit: list[str], log) -> dict[str, Any]:
    from xpnet.benchmark.probe import probe

    names = explicit or (["cupy", "torch"] if args.gpu else list(_CPU_BACKENDS))
    log("== probing backends" + (" and the GPU" if args.gpu else ""))
    return probe(names, args.device, gpu=args.gpu)


def run(args: argparse.Namespace, log, argv: list[str]) -> dict[str, Any]:
    """Probe, time every config, count, write JSON/markdown/PNG; returns the result dict."""
    opt = _options(args)
    explicit = _split(args.backend)
    answer = _probe(args, explicit, log)
    backends, unavailable = [], []
    for name, a in answer["backends"].items():
        if a["ok"]:
            backends.append(name)
        elif explicit or a.get("usage"):
            raise UsageError(f"backend {name!r} cannot run here: {a['reason']}")
        else:
            unavailable.append({"backend": name, "reason": a["reason"]})
    gpu = answer.get("gpu")
    if args.gpu:
        if not (gpu["torch"]["ok"] or gpu["cupy"]["ok"]):
            raise UsageError(f"--gpu needs an NVIDIA GPU, and there is none here: torch: "
                             f"{gpu['torch']['reason']}; CuPy: {gpu['cupy']['reason']}")
        if args.peak_tflops:
            gpu["peak_fp32_tflops"] = args.peak_tflops
            gpu["peak_source"] = "--peak-tflops"
    device = args.device or ("cuda" if args.gpu else "cpu")
    peer_device = device if (args.gpu or str(device).startswith("cuda")) else "cpu"
    quick = 1 if args.quick else 0
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "schema": "xpnet-bench/2",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "xpnet bench " + shlex.join(argv),
        "quick": bool(args.quick),
        "settings": {
            "backends": backends, "device": args.device, "peer_device": peer_device,
            "dtypes": opt["dtypes"], "configs": opt["configs"], "impls": opt["impls"],
            "threads": opt["threads"], "unset_env": opt["unset_env"],
            "quick": bool(args.quick), "repeats": args.repeats,
            "warmup": args.warmup, "budget_s": args.budget, "gpu": bool(args.gpu),
        },
        "environment": H.environment(),
        "driver_pid": os.getpid(),
        "unavailable": unavailable,
        "configs": {},
        "memory_growth": [],
        "opcounts": {},
    }
    if gpu:
        result["gpu"] = gpu
    notes = []
    for cname in opt["configs"]:
        d = H.defaults_for(I.CONFIGS[cname])
        notes.append(f"{cname} {args.repeats or d['repeats'][quick]}")
    result["settings"]["repeats_note"] = ", ".join(notes)
    budget = args.budget if args.budget is not None else (20.0 if quick else 150.0)
    growth_steps = args.growth_steps if args.growth_steps is not None else H.GROWTH_STEPS[quick]

    for cname in opt["configs"]:
        cfg = I.CONFIGS[cname]
        log(f"== {cname}: {cfg.description}")
        entry: dict[str, Any] = {"description": cfg.description, "kind": cfg.kind,
                                 "threads": opt["threads"]}
        if cfg.gemm_shapes():
            entry["gflop_per_step"] = round(cfg.gemm_flops() / 1e9, 4)
        result["configs"][cname] = entry
        if cfg.conv:
            import xpnet

            if not hasattr(xpnet, "SimpleConvNet"):
                reason = "xpnet has no SimpleConvNet yet (the techniques issue adds it)"
                entry.update(status="skipped", reason=reason)
                log(f"   skipped: {reason}")
                continue
        specs = _specs(cfg, backends, opt, device, args.gpu)
        if not specs:
            entry.update(status="skipped", reason="nothing to time for this config")
            continue
        d = H.defaults_for(cfg)
        repeats = args.repeats if args.repeats is not None else d["repeats"][quick]
        warmup = args.warmup if args.warmup is not None else d["warmup"][quick]
        rows, facts = H.run_config(
            cfg, specs, opt["threads"], repeats=repeats, warmup=warmup,
            sample_s=d["sample_s"][quick], budget_s=budget, log=log,
            memory_steps=1, growth_steps=growth_steps if cname == "C1" else 0,
            growth_budget_s=budget, opcount=not args.no_opcount, env=opt["env"],
        )
        entry.update(status="ok", repeats=repeats, warmup=warmup, budget_s=budget,
                     results=rows, **facts)
        xpnet_rows = [r for r in rows if r["impl"] == "xpnet"]
        if cfg.kind == "infer" or cfg.conv:
            pass
        elif not args.no_opcount and xpnet_rows:
            counted = [b for b in ("numpy", "array_api_strict", "torch")
                       if any(r["backend"] == b for r in xpnet_rows)]
            if counted:
                log(f"   counting operations per step: {', '.join(counted)}")
                try:
                    from xpnet.benchmark.opcount import count_in_subprocess

                    result["opcounts"][cname] = count_in_subprocess(cfg, counted)
                except Exception as exc:  # reported, not fatal
                    result["opcounts"][cname] = {b: {"status": "error", "reason": str(exc)}
                                                 for b in counted}
        for r in rows:
            if "memory_growth" in r:
                g = dict(r["memory_growth"], key=r["key"], threads=r.get("best_threads"))
                result["memory_growth"].append(g)
        for r in rows:
            if r.get("status") == "ok":
                log(f"   {r['label']:<40} {r['median_ms']:9.3f} ms @{r['best_threads']}t "
                    f"(IQR {r['iqr_ms']:.3f}, n={r['n_samples']}x{r['steps_per_sample']})")
            else:
                log(f"   {r['label']:<40} {r['status']}: {r.get('reason', '')}")

    result["environment"]["load_average_at_end"] = H.load_average()
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    R.add_ratios(result)
    if gpu:
        R.add_gpu_figures(result)
    md = R.markdown(result)
    stem = out_dir / args.name
    json_path, md_path, png_path = (stem.with_suffix(s) for s in (".json", ".md", ".png"))
    result["files"] = {"json": str(json_path), "markdown": str(md_path)}
    if not args.no_plot:
        why = R.bar_chart(result, png_path)
        if why:
            log(f"   no chart: {why}")
            result["files"]["png"] = None
            result["chart_skipped"] = why
        else:
            result["files"]["png"] = str(png_path)
    with atomic_write(md_path, "w") as f:
        f.write(md)
    write_json(json_path, result)
    log(f"== wrote {json_path}, {md_path}" + (f", {png_path}" if result["files"].get("png")
                                                else "") + f" in {result['seconds']} s")
    result["_markdown"] = md
    return result


def _specs(cfg: I.Config, backends: list[str], opt: dict[str, Any], device: str,
           gpu: bool) -> list[I.Spec]:
    """What to time for ``cfg``."""
    impls, dtypes = opt["impls"], opt["dtypes"]
    specs: list[I.Spec] = []
    on_gpu = gpu or str(device).startswith("cuda")
    if "xpnet" in impls:
        for b in backends:
            if gpu and b not in ("cupy", "torch"):
                continue
            dev = device if b in ("torch", "cupy") else "cpu"
            if b == "cupy" and dev == "cpu":
                dev = "cuda"
            for dt in dtypes:
                specs.append(I.Spec("xpnet", b, dev, dt))
    peer_dev = device if on_gpu else "cpu"
    for dt in dtypes:
        if "torch-eager" in impls:
            specs.append(I.Spec("torch-eager", "torch", peer_dev, dt))
        if "torch-fused" in impls and cfg.kind == "train":
            specs.append(I.Spec("torch-fused", "torch", peer_dev, dt))
        if "jax-jit" in impls and not cfg.conv:
            specs.append(I.Spec("jax-jit", "jax", peer_dev, dt))
    if "gemm" in impls and not cfg.conv:
        if not gpu:
            specs.append(I.Spec("gemm", "numpy", "cpu", "float32"))
        torch_rows = ("xpnet" in impls and "torch" in backends) or any(
            i in impls for i in ("torch-eager", "torch-fused"))
        if torch_rows:  # the bound of the torch rows, in torch
            specs.append(I.Spec("gemm", "torch", peer_dev, "float32"))
        if "cupy" in backends:
            specs.append(I.Spec("gemm", "cupy", device if device != "cpu" else "cuda",
                                "float32"))
        if "jax-jit" in impls:  # the floor of JAX's own step (XLA's GEMM is not OpenBLAS)
            specs.append(I.Spec("gemm", "jax", peer_dev, "float32"))
    if "book" in impls and not cfg.conv and not gpu:
        specs.append(I.Spec("book", "numpy", "cpu", "float64"))
    return specs


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
