"""Command line and driver of the benchmark: ``xpnet bench`` / ``python bench/run.py``."""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from xpnet.benchmark import harness as H
from xpnet.benchmark import report as R
from xpnet.io import atomic_write, write_json

_ALL_CONFIGS = ("C1", "C2", "C3", "C1-infer")
_CONFIG_ALIASES = {"infer": "C1-infer", "inference": "C1-infer", "c1-infer": "C1-infer"}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="xpnet bench",
        description=(
            "Time a training step (gradient + Adam) and inference of xpnet on each backend, "
            "side by side in one process with the equivalent torch.nn model (eager and fused "
            "Adam), the GEMM-only lower bound and the book's float64 code. Writes JSON, "
            "a markdown table and a PNG chart."
        ),
    )
    p.add_argument(
        "--backend", action="append", default=None, metavar="NAME[,NAME]",
        help="xpnet backend(s): numpy, torch, array_api_strict, cupy; repeatable or a comma "
        "list (default: every backend, unavailable ones reported). A backend named here that "
        "cannot run (e.g. cupy without a CUDA device) is an error: exit status 2.",
    )
    p.add_argument(
        "--device", default=None,
        help="device for the torch and cupy backends and the torch.nn reference, e.g. 'cuda', "
        "'cuda:1' (default: torch on cpu, cupy on its current device)",
    )
    p.add_argument("--dtype", default="float32,float64",
                   help="comma list of float32, float64 (default: both)")
    p.add_argument(
        "--configs", default=",".join(_ALL_CONFIGS),
        help="comma list of C1, C2, C3, C1-infer (alias: infer); default: all",
    )
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per implementation (default: per config; see README)")
    p.add_argument("--warmup", type=int, default=None,
                   help="warm-up steps per implementation (default: 50 for C1, 10 for C2/C3)")
    p.add_argument(
        "--budget", type=float, default=None,
        help="seconds of timed rounds per config before stopping early (default 150; "
        "quick: 20); the memory-growth check gets the same per backend",
    )
    p.add_argument("--growth-steps", type=int, default=None,
                   help="steps of the memory-growth check (default 2000; 0 skips it)")
    p.add_argument(
        "--threads", type=int, default=None,
        help="threads for NumPy's BLAS, torch and xpnet's NumPy kernels during the run (default: "
        "the libraries' own defaults); 1 gives steadier small-layer timings on a loaded shared "
        "machine",
    )
    p.add_argument("--quick", action="store_true",
                   help="tiny repeats and warm-up: a smoke test, not a measurement")
    p.add_argument("--no-reference", action="store_true",
                   help="time xpnet only (no torch.nn, GEMM bound or book rows)")
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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return 0 on success, 1 if an implementation failed, 2 on bad usage."""
    parser = build_parser()
    args = parser.parse_args(argv)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr,
                                                                   flush=True))
    try:
        with H.thread_limit(args.threads) as threads:
            result = run(args, log, argv if argv is not None else sys.argv[1:], threads.applied)
    except UsageError as exc:
        print(f"xpnet bench: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result["_markdown"])
    errors = [r for c in result["configs"].values() for r in c.get("results", [])
              if r.get("status") == "error"]
    errors += [g for g in result.get("memory_growth", []) if g.get("status") == "error"]
    for e in errors:
        print(f"xpnet bench: {e.get('key', e.get('backend'))} failed: {e.get('reason')}",
              file=sys.stderr)
    return 1 if errors else 0


class UsageError(Exception):
    """Bad options, or a backend asked for by name that cannot run here."""


def _resolve_backends(args) -> tuple[list[Any], list[dict[str, str]]]:
    from xpnet.backend import BACKEND_NAMES, get_backend

    explicit = _split(args.backend)
    names = explicit or list(BACKEND_NAMES)
    backends, unavailable = [], []
    for name in names:
        dev = args.device if name in ("torch", "cupy") else None
        try:
            backends.append(get_backend(name, dev))
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        except Exception as exc:  # BackendUnavailableError, ImportError
            if explicit:
                raise UsageError(f"backend {name!r} cannot run here: {exc}") from exc
            unavailable.append({"backend": name, "reason": str(exc)})
    return backends, unavailable


def _xpnet_core_missing() -> str | None:
    try:
        import xpnet
    except Exception as exc:  # pragma: no cover
        return f"xpnet does not import: {exc}"
    missing = [n for n in ("MultiLayerNetExtend", "Adam") if not hasattr(xpnet, n)]
    if missing:
        return f"xpnet has no {', '.join(missing)} yet"
    return None


def _torch_device(args) -> tuple[str | None, str]:
    """The device of the torch.nn reference and torch GEMM rows (or None and a reason)."""
    from xpnet.backend import BackendUnavailableError, get_backend

    dev = str(args.device or "cpu")
    if dev.isdigit():  # a CuPy device index: compare against torch on that GPU
        dev = f"cuda:{dev}"
    try:
        return get_backend("torch", dev).device_name, ""
    except (BackendUnavailableError, ValueError) as exc:
        return None, f"no PyTorch reference rows: {exc}"


def run(args: argparse.Namespace, log, argv: list[str],
        threads: dict[str, Any] | None = None) -> dict[str, Any]:
    quick = 1 if args.quick else 0
    dtypes = _split(args.dtype)
    for d in dtypes:
        if d not in ("float32", "float64"):
            raise UsageError(f"unknown dtype {d!r}; use float32, float64")
    configs = []
    for c in _split(args.configs):
        c = _CONFIG_ALIASES.get(c.lower(), c.upper())
        if c not in H.CONFIGS:
            raise UsageError(f"unknown config {c!r}; use {', '.join(_ALL_CONFIGS)}")
        configs.append(c)
    backends, unavailable = _resolve_backends(args)
    core_missing = _xpnet_core_missing()
    tdev, tdev_reason = _torch_device(args)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    t_start = time.perf_counter()
    result: dict[str, Any] = {
        "schema": "xpnet-bench/1",
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "xpnet bench " + shlex.join(argv),
        "settings": {
            "backends": [b.name for b in backends],
            "device": args.device,
            "torch_device": tdev or "cpu",
            "dtypes": dtypes,
            "configs": configs,
            "quick": bool(args.quick),
            "repeats": args.repeats,
            "warmup": args.warmup,
            "reference": not args.no_reference,
            "threads": args.threads,
            "budget_s": args.budget,
            "threads_applied": threads or {},
        },
        "environment": H.environment(),
        "unavailable": unavailable,
        "configs": {},
    }
    notes = []
    for cname in configs:
        d = H._DEFAULTS[cname]
        notes.append(f"{cname} {args.repeats or d['repeats'][quick]}")
    result["settings"]["repeats_note"] = ", ".join(notes)

    for cname in configs:
        cfg = H.CONFIGS[cname]
        log(f"== {cname}: {cfg.description}")
        entry: dict[str, Any] = {"description": cfg.description, "kind": cfg.kind}
        result["configs"][cname] = entry
        if core_missing:
            entry.update(status="skipped", reason=core_missing)
            log(f"   skipped: {core_missing}")
            continue
        if cfg.conv:
            import xpnet

            if not hasattr(xpnet, "SimpleConvNet"):
                reason = "xpnet has no SimpleConvNet yet (the techniques issue adds it)"
                entry.update(status="skipped", reason=reason)
                log(f"   skipped: {reason}")
                continue
        cands = _candidates(cfg, backends, dtypes, tdev, tdev_reason, args, log)
        d = H._DEFAULTS[cname]
        repeats = args.repeats if args.repeats is not None else d["repeats"][quick]
        warmup = args.warmup if args.warmup is not None else d["warmup"][quick]
        t0 = time.perf_counter()
        budget = args.budget if args.budget is not None else (20.0 if quick else 150.0)
        rounds = H.run_timed(cands, repeats, warmup, d["sample_s"][quick], log, budget)
        for c in cands:
            H.measure_step_peak(c, steps=1 if cfg.kind == "infer" or quick else 3)
        entry.update(
            status="ok", repeats=repeats, rounds=rounds, budget_s=budget, warmup=warmup,
            seconds=round(time.perf_counter() - t0, 2),
            rss_after_bytes=H.rss_bytes(), peak_rss_bytes=H.peak_rss_bytes(),
            results=[c.result() for c in cands],
        )
        del cands
        gc.collect()
        for r in entry["results"]:
            if "median_ms" in r:
                log(f"   {r['label']:<44} {r['median_ms']:9.3f} ms  "
                    f"(IQR {r['iqr_ms']:.3f}, n={r['n_samples']}x{r['steps_per_sample']})")
            else:
                log(f"   {r['label']:<44} {r['status']}: {r.get('reason', '')}")

    growth_steps = args.growth_steps
    if growth_steps is None:
        growth_steps = H.GROWTH_STEPS[quick]
    result["memory_growth"] = []
    if growth_steps > 0 and not core_missing and "C1" in configs:
        log(f"== memory growth: C1, {growth_steps} steps")
        for be in backends:
            budget = args.budget if args.budget is not None else (20.0 if quick else 150.0)
            result["memory_growth"].append(
                H.memory_growth(be, "float32", growth_steps, log, budget)
            )
    result["peak_rss_bytes"] = H.peak_rss_bytes()
    result["environment"]["load_average_at_end"] = H.load_average()
    result["seconds"] = round(time.perf_counter() - t_start, 1)

    R.add_ratios(result)
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


def _candidates(cfg, backends, dtypes, tdev, tdev_reason, args, log) -> list[H.Candidate]:
    host = H._host_batches(cfg, 1 if cfg.kind == "infer" else 8)
    cands: list[H.Candidate] = []

    def add(make, key, impl, backend, device, dtype):
        try:
            cands.append(make())
        except Exception as exc:
            cands.append(H._unavailable(key, impl, backend, device, dtype,
                                        f"{type(exc).__name__}: {exc}", status="error"))
            log(f"   {key}: could not build: {exc}")

    for be in backends:
        for dt in dtypes:
            add(lambda be=be, dt=dt: H.xpnet_candidate(cfg, be, dt, host),
                f"xpnet-{be.name}-{dt}", "xpnet", be.name, str(be.device), dt)
    if args.no_reference:
        return cands
    if tdev is None:
        cands.append(H._unavailable("torch", "torch.nn", "torch", "", "", tdev_reason))
    else:
        for dt in dtypes:
            add(lambda dt=dt: H.torch_candidate(cfg, tdev, dt, host, fused=False),
                f"torch-eager-{tdev}-{dt}", "torch.nn", "torch", tdev, dt)
            if cfg.kind == "train":
                add(lambda dt=dt: H.torch_candidate(cfg, tdev, dt, host, fused=True),
                    f"torch-fused-{tdev}-{dt}", "torch.nn fused", "torch", tdev, dt)
    if not cfg.conv:
        add(lambda: H.gemm_candidate(cfg, "numpy"), "gemm-numpy", "GEMM bound", "numpy", "",
            "float32")
        if tdev is not None:
            add(lambda: H.gemm_candidate(cfg, "torch", tdev),
                "gemm-torch" + ("" if tdev == "cpu" else f"-{tdev}"), "GEMM bound",
                "torch", tdev, "float32")
        if any(b.name == "cupy" for b in backends):
            add(lambda: H.gemm_candidate(cfg, "cupy", "cuda"), "gemm-cupy", "GEMM bound",
                "cupy", "cuda", "float32")
        add(lambda: H.book_candidate(cfg, host), "book-numpy-float64", "book", "numpy", "",
            "float64")
    return cands


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
