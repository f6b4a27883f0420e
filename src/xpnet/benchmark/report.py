"""Ratios, targets, the markdown report and the bar chart of a benchmark run."""

from __future__ import annotations

from typing import Any

from xpnet.benchmark.impls import PEERS

#: The speed targets (issue 14), for xpnet on NumPy in float32, each implementation at its
#: better thread setting: (config, name, numerator, denominator, comparison, bound).
#: "best-peer" is the fastest of torch eager, torch fused and JAX jit in the same run.
TARGETS = [
    ("C1", "xpnet numpy / best peer", "xpnet-numpy-float32", "best-peer", "<=", 0.5),
    ("C2", "xpnet numpy / best peer", "xpnet-numpy-float32", "best-peer", "<=", 0.9),
    ("C2", "xpnet numpy / GEMM bound (numpy)", "xpnet-numpy-float32", "gemm-numpy", "<=", 1.3),
    ("C1-infer", "xpnet numpy / best peer", "xpnet-numpy-float32", "best-peer", "<=", 0.9),
    ("C1-infer", "xpnet numpy / GEMM bound (numpy)", "xpnet-numpy-float32", "gemm-numpy", "<=",
     1.15),
]
#: Information lines (no target of their own any more): (config, name, num, den)
INFO = [
    ("C1", "book f64 / xpnet numpy (speed-up over the book; the old target was >= 3)",
     "book-numpy-float64", "xpnet-numpy-float32"),
    ("C1", "xpnet numpy / torch eager", "xpnet-numpy-float32", "torch-eager-cpu-float32"),
    ("C1", "xpnet numpy / torch fused", "xpnet-numpy-float32", "torch-fused-cpu-float32"),
    ("C1", "xpnet numpy / JAX jit", "xpnet-numpy-float32", "jax-jit-cpu-float32"),
    ("C1", "xpnet numpy / GEMM bound (numpy)", "xpnet-numpy-float32", "gemm-numpy"),
]
#: the torch backend's C1 training step, aten operations (DESIGN.md's leaf count)
OPS_TARGET = ("C1", 100)
#: "no memory growth" over the growth check (RSS after - before)
GROWTH_LIMIT_BYTES = 1 * 2**20
#: GPU launch overhead per operation used for the estimate (seconds, low and high)
LAUNCH_S = (5e-6, 25e-6)


def _rows(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in cfg.get("results", [])}


def _median(rows: dict[str, dict], key: str | None) -> float | None:
    r = rows.get(key) if key else None
    if r is None or r.get("status") != "ok":
        return None
    return r.get("median_ms")


def best_peer(rows: dict[str, dict], device: str = "cpu") -> str | None:
    """The key of the fastest float32 peer (torch eager, torch fused, JAX jit) on ``device``."""
    cands = [r for r in rows.values() if r["impl"] in PEERS and r["dtype"] == "float32"
             and (r.get("device") or "cpu") == device and r.get("status") == "ok"
             and r.get("median_ms")]
    return min(cands, key=lambda r: r["median_ms"])["key"] if cands else None


def gemm_key(row: dict[str, Any]) -> str:
    """The GEMM bound a row is compared with: the same library, on the same device."""
    lib = row["library"]
    dev = row.get("device") or "cpu"
    if lib == "numpy":
        return "gemm-numpy"
    if lib == "torch":
        return "gemm-torch" + ("" if dev == "cpu" else f"-{dev}")
    if lib == "cupy":
        return f"gemm-cupy-{dev}" if dev not in ("", "cpu") else "gemm-cupy"
    if lib == "jax":
        return "gemm-jax" + ("" if dev == "cpu" else f"-{dev}")
    return "gemm-numpy"


def add_ratios(result: dict[str, Any]) -> None:
    """Add per-row ratios, the targets and the information lines to a run's result (in place)."""
    for cfg in result["configs"].values():
        rows = _rows(cfg)
        peer_dev = result["settings"].get("peer_device", "cpu")
        peer = best_peer(rows, peer_dev)
        cfg["best_peer"] = peer
        peer_ms = _median(rows, peer)
        book = _median(rows, "book-numpy-float64")
        for r in rows.values():
            m = r.get("median_ms")
            if r.get("status") != "ok" or not m:
                continue
            ratios = {}
            if peer_ms:
                ratios["vs_best_peer"] = m / peer_ms
            if r["impl"] != "gemm":
                g = _median(rows, gemm_key(r))
                if g:
                    ratios["vs_gemm_bound"] = m / g
            if book:
                ratios["book_speedup"] = book / m
            r["ratios"] = ratios
    result["targets"] = _targets(result)
    result["info"] = _info(result)


def _line(result, cname, name, num, den, op=None, bound=None) -> dict[str, Any]:
    entry: dict[str, Any] = {"config": cname, "name": name}
    if op is not None:
        entry.update(op=op, target=bound)
    cfg = result["configs"].get(cname)
    if not cfg or cfg.get("status") != "ok":
        entry.update(value=None, met=None, reason="config not run")
        return entry
    rows = _rows(cfg)
    den_key = cfg.get("best_peer") if den == "best-peer" else den
    a, b = _median(rows, num), _median(rows, den_key)
    if a is None or b is None:
        missing = num if a is None else (den_key or "a peer (torch / JAX)")
        entry.update(value=None, met=None, reason=f"{missing} did not run")
        return entry
    v = a / b
    entry.update(value=v, numerator=num, denominator=den_key,
                 numerator_threads=rows[num].get("best_threads"),
                 denominator_threads=rows[den_key].get("best_threads"))
    paired = _paired_ratio(rows[num], rows[den_key])
    if paired is not None:
        entry["paired"] = paired
    if op is not None:
        entry["met"] = bool(v <= bound if op == "<=" else v >= bound)
    return entry


def _targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = [_line(result, c, n, a, b, op, bound) for c, n, a, b, op, bound in TARGETS]
    cname, limit = OPS_TARGET
    ops = result.get("opcounts", {}).get(cname, {}).get("torch")
    entry: dict[str, Any] = {"config": cname, "name": "torch backend: aten operations per "
                             "training step (leaf count)", "op": "<=", "target": limit}
    if ops and ops.get("status") == "ok":
        entry.update(value=ops["aten_leaf_ops"], met=ops["aten_leaf_ops"] <= limit)
    else:
        entry.update(value=None, met=None,
                     reason=(ops or {}).get("reason", "not counted in this run"))
    out.append(entry)
    growth = [g for g in result.get("memory_growth", [])
              if g.get("key") == "xpnet-numpy-float32"]
    entry = {"config": "C1", "name": "xpnet numpy: RSS growth over the growth check (MiB)",
             "op": "<=", "target": GROWTH_LIMIT_BYTES / 2**20}
    if growth and growth[0].get("status") == "ok" and "rss_growth_bytes" in growth[0]:
        g = growth[0]
        entry.update(value=g["rss_growth_bytes"] / 2**20, steps=g["steps"],
                     met=g["rss_growth_bytes"] <= GROWTH_LIMIT_BYTES)
    else:
        entry.update(value=None, met=None, reason="not measured in this run")
    out.append(entry)
    return out


def _info(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [_line(result, c, n, a, b) for c, n, a, b in INFO
            if result["configs"].get(c, {}).get("status") == "ok"]


def _paired_ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    """Median over rounds of the ratio of two rows' samples taken in the same round.

    Both rows were timed once per round, close together in time, so a burst of load hits both;
    the median of these per-round ratios is steadier than the ratio of the two medians.
    """
    sa, sb = a.get("samples_ms"), b.get("samples_ms")
    if not sa or not sb or len(sa) != len(sb):
        return None
    ratios = sorted(x / y for x, y in zip(sa, sb, strict=True) if y > 0)
    if not ratios:
        return None
    n = len(ratios)
    return ratios[n // 2] if n % 2 else 0.5 * (ratios[n // 2 - 1] + ratios[n // 2])


def add_gpu_figures(result: dict[str, Any]) -> None:
    """GFLOP/s and the FP32 arithmetic floor for GPU rows (``--gpu`` runs)."""
    gpu = result.get("gpu") or {}
    peak = gpu.get("peak_fp32_tflops")
    for cfg in result["configs"].values():
        gflop = cfg.get("gflop_per_step")
        if not gflop:
            continue
        floor_ms = gflop / peak if peak else None  # GFLOP / TFLOP/s = ms
        cfg["fp32_floor_ms"] = floor_ms
        for r in cfg.get("results", []):
            if r.get("status") != "ok" or not r.get("median_ms"):
                continue
            r["achieved_gflops"] = gflop / (r["median_ms"] / 1e3)
            if floor_ms:
                r["vs_fp32_floor"] = r["median_ms"] / floor_ms


def render(json_path, png: bool = True) -> str:
    """Re-render the markdown (and the chart) of a saved run's JSON; returns the markdown."""
    import json
    from pathlib import Path

    from xpnet.io import atomic_write, write_json

    path = Path(json_path)
    result = json.loads(path.read_text())
    add_ratios(result)
    if result.get("gpu"):
        add_gpu_figures(result)
    md = markdown(result)
    with atomic_write(path.with_suffix(".md"), "w") as f:
        f.write(md)
    write_json(path, result)
    if png:
        bar_chart(result, path.with_suffix(".png"))
    return md


# ------------------------------------------------------------------------------------------------
# Markdown
# ------------------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 2) -> str:
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{digits}f}"


def _mib(v) -> str:
    return "–" if v is None else f"{v / 2**20:.1f}"


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    """The markdown report of a run (after :func:`add_ratios`)."""
    env = result["environment"]
    s = result["settings"]
    threads = ", ".join(str(t) for t in s.get("threads", []))
    lines = [
        "# xpnet benchmark",
        "",
        f"Run {result['created']} — `{result['command']}`",
        "",
        f"xpnet {env.get('xpnet', '?')} (git {env.get('xpnet_git') or '–'}). "
        f"Machine: {env.get('cpu_model') or env.get('machine')}, {env.get('cpu_count')} cores; "
        f"Python {env.get('python')}, NumPy {env.get('numpy')} (BLAS: {_blas(env)}), "
        f"torch {env.get('torch') or '–'}, JAX {env.get('jax') or '–'}, array-api-strict "
        f"{env.get('array_api_strict') or '–'}, CuPy {env.get('cupy') or '–'}.",
        "",
        "Method: each implementation ran in a worker process of its own, one per thread setting "
        f"({threads}), started with the setting in its environment; the workers were warmed up "
        "one at a time, then woken in turn, one sample each per round (rotated order), while the "
        "others slept. One training step = `grads = net.gradient(x, t); optimizer.update("
        "net.params, grads)` (Adam) or its peer's equivalent. Medians over rounds; spread as "
        "the interquartile range. Each implementation's ratios use its better thread setting "
        f"(the faster median). Rounds: {s.get('repeats_note', '?')}.",
        "",
    ]
    la0, la1 = env.get("load_average_at_start"), env.get("load_average_at_end")
    if la0 or la1:
        lines += [f"Load average (1/5/15 min) at start {la0}, at end {la1}, on "
                  f"{env.get('cpu_count')} cores: {_load_verdict(la0, la1, env.get('cpu_count'))}",
                  ""]
    lines += _blas_env_note(env, s)
    if result.get("quick"):
        lines += ["**`--quick`: a smoke test with a few samples, not a measurement.**", ""]
    lines += _summary_table(result)
    lines += _target_section(result)
    lines += _opcount_section(result)
    if result.get("gpu"):
        lines += _gpu_section(result)
    for cname, cfg in result["configs"].items():
        lines += [f"## {cname}: {cfg['description']}", ""]
        if cfg.get("status") != "ok":
            lines += [f"Skipped: {cfg.get('reason')}", ""]
            continue
        ts = [str(t) for t in cfg.get("threads", s.get("threads", []))]
        peer = cfg.get("best_peer")
        lines += [
            f"Best peer: {peer or '–'}. " + (f"{cfg.get('rounds')} rounds in "
                                             f"{cfg.get('seconds')} s." if "rounds" in cfg
                                             else ""),
            "",
            "| implementation | " + " | ".join(f"{t} thr ms" for t in ts) + " | best | "
            "IQR ms | × best peer | × GEMM bound | book ÷ this | CPU/wall | peer CPU | "
            "peak RSS MiB | step alloc MiB |",
            "|---|" + "---|" * len(ts) + "---|---|---|---|---|---|---|---|---|",
        ]
        notes = []
        for r in cfg["results"]:
            if r.get("status") != "ok" or "median_ms" not in r:
                notes.append(f"- {r['label']}: {r.get('status')} — {r.get('reason', '')}")
                continue
            rt = r.get("ratios", {})
            per = [_fmt(r.get("by_threads", {}).get(t, {}).get("median_ms")) for t in ts]
            lines.append(
                f"| {r.get('label', r['key'])} | " + " | ".join(per) + f" | {r['best_threads']} | "
                f"{_fmt(r['iqr_ms'])} | {_fmt(rt.get('vs_best_peer'))} | "
                f"{_fmt(rt.get('vs_gemm_bound'))} | {_fmt(rt.get('book_speedup'))} | "
                f"{_fmt(r.get('cpu_per_wall'))} | {_pct(r.get('peer_cpu_fraction'))} | "
                f"{_mib(r.get('peak_rss_bytes'))} | {_mib(r.get('step_peak_bytes'))} |"
            )
        lines.append("")
        if notes:
            lines += ["Not measured:", "", *notes, ""]
    lines += _memory_section(result)
    lines += _isolation_section(result)
    if result.get("unavailable"):
        lines += ["## Unavailable backends", ""]
        lines += [f"- {u['backend']}: {u['reason']}" for u in result["unavailable"]]
        lines.append("")
    return "\n".join(lines) + "\n"


def _blas_env_note(env: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """A note when the environment forces OpenBLAS's kernels (the workers inherit it)."""
    forced = {k: v for k, v in (env.get("env") or {}).items()
              if k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    unset = set(settings.get("unset_env") or [])
    kept = {k: v for k, v in forced.items() if k not in unset}
    if unset:
        return [f"Removed from the workers' environment: {', '.join(sorted(unset))}.", ""]
    if not kept:
        return []
    return [f"**The environment sets {', '.join(f'{k}={v}' for k, v in kept.items())}, and the "
            "workers inherit it: NumPy's OpenBLAS (xpnet on NumPy, the NumPy GEMM bound, the "
            "book) runs the kernels named there instead of the ones it would detect, while torch "
            "and XLA detect the CPU themselves. `--unset-env OPENBLAS_CORETYPE,OPENBLAS_L2_SIZE` "
            "measures without it.**", ""]


def _target_section(result: dict[str, Any]) -> list[str]:
    lines = ["## Targets (xpnet on NumPy, float32, each side at its better thread setting)", "",
             "'measured' is the ratio of the two medians, 'paired' the median over rounds of the "
             "ratio of the two samples taken in the same round (steadier under bursty load); "
             "'met' judges the ratio of medians.", ""]
    for t in result.get("targets", []):
        if t.get("reason") == "config not run":
            continue
        if t["met"] is None:
            lines.append(f"- {t['config']} {t['name']} {t['op']} {t['target']}: **not measured**"
                         f" ({t.get('reason', '')})")
            continue
        verdict = "met" if t["met"] else "**not met**"
        extra = f", paired {_fmt(t['paired'])}" if t.get("paired") is not None else ""
        if t.get("denominator"):
            extra += f"; {t['numerator']} @{t.get('numerator_threads')}t vs " \
                     f"{t['denominator']} @{t.get('denominator_threads')}t"
        lines.append(f"- {t['config']} {t['name']} {t['op']} {t['target']}: {_fmt(t['value'])}"
                     f"{extra} — {verdict}")
    lines.append("")
    info = [i for i in result.get("info", []) if i.get("value") is not None]
    if info:
        lines += ["Information:", ""]
        for i in info:
            lines.append(f"- {i['config']} {i['name']}: {_fmt(i['value'])}"
                         + (f" (paired {_fmt(i['paired'])})" if i.get("paired") else ""))
        lines.append("")
    return lines


def _opcount_section(result: dict[str, Any]) -> list[str]:
    counts = result.get("opcounts") or {}
    peers = [(cname, r) for cname, cfg in result["configs"].items()
             for r in cfg.get("results", []) if r.get("ops", {}).get("status") == "ok"]
    if not counts and not peers:
        return []
    lo, hi = LAUNCH_S
    lines = ["## Operations per training step", "",
             "torch: `torch.profiler`, leaf aten events minus views/allocations/metadata "
             "(DESIGN.md's count), and kernels (the same tree with views pruned first, so "
             "`mm` counts; closer to GPU launches). numpy / array_api_strict: calls into the "
             "namespace and array operators, counted where they enter the library "
             "(`python bench/opcount.py`). GPU estimate: launches alone at "
             f"{lo * 1e6:.0f}-{hi * 1e6:.0f} us each.", "",
             "| config | implementation | ops (leaf) | kernels | views | draws | "
             ".item() / float() | GPU launch time ms |", "|---|---|---|---|---|---|---|---|"]
    for cname, per in counts.items():
        if not isinstance(per, dict):
            continue
        for backend, c in per.items():
            if not isinstance(c, dict):
                continue
            if c.get("status") != "ok":
                lines.append(f"| {cname} | xpnet [{backend}] | {c.get('status')}: "
                             f"{c.get('reason', '')} | | | | | |")
                continue
            lines.append(_ops_row(cname, f"xpnet [{backend}]", c))
    for cname, r in peers:
        lines.append(_ops_row(cname, r["label"], r["ops"]))
    return [*lines, ""]


def _ops_row(cname: str, label: str, c: dict[str, Any]) -> str:
    lo, hi = LAUNCH_S
    if c.get("counter") == "torch.profiler":
        n = c["aten_kernels"]
        return (f"| {cname} | {label} | {c['aten_leaf_ops']} | {n} | – | – | {c['item_calls']} | "
                f"{n * lo * 1e3:.2f}–{n * hi * 1e3:.2f} |")
    n = c["ops"] + c.get("draws", 0)
    return (f"| {cname} | {label} | {c['ops']} | – | {c['views']} | {c['draws']} | "
            f"{c.get('syncs', 0)} | {n * lo * 1e3:.2f}–{n * hi * 1e3:.2f} |")


def _gpu_section(result: dict[str, Any]) -> list[str]:
    gpu = result["gpu"]
    peak = gpu.get("peak_fp32_tflops")
    source = gpu.get("peak_source") or "unknown: pass --peak-tflops"
    lines = ["## GPU", "",
             f"Device: {gpu.get('device_name') or '?'}; peak FP32 "
             f"{peak if peak else '?'} TFLOP/s ({source}). Strict FP32 (TF32 off). The floor is "
             "the step's matrix-product FLOPs at that peak.", "",
             "| config | implementation | median ms | GFLOP/s | FP32 floor ms | × floor |",
             "|---|---|---|---|---|---|"]
    for cname, cfg in result["configs"].items():
        for r in cfg.get("results", []):
            if r.get("status") != "ok" or "achieved_gflops" not in r:
                continue
            lines.append(f"| {cname} | {r['label']} | {_fmt(r['median_ms'])} | "
                         f"{r['achieved_gflops']:.0f} | {_fmt(cfg.get('fp32_floor_ms'), 3)} | "
                         f"{_fmt(r.get('vs_fp32_floor'))} |")
    return [*lines, ""]


def _load_verdict(la0: Any, la1: Any, cores: Any) -> str:
    """Whether the 1-minute load average says other work shared the CPU during the run."""
    ones = [float(la[0]) for la in (la0, la1) if la]
    if not ones or not cores:
        return "unknown relative to the core count."
    if max(ones) > int(cores):
        return ("the 1-minute load exceeded the core count, so other processes competed for "
                "the CPU during the run (the run's own threads count toward the load too).")
    return "at or below the core count (the run's own threads count toward the load)."


def _blas(env) -> str:
    b = env.get("numpy_blas")
    if isinstance(b, dict):
        return f"{b.get('name', '?')} {b.get('version', '')}".strip()
    return str(b)


_SUMMARY_COLS = [
    ("book f64", "book-numpy-float64"),
    ("torch eager", "torch-eager-{d}-float32"),
    ("torch fused", "torch-fused-{d}-float32"),
    ("JAX jit", "jax-jit-{d}-float32"),
    ("GEMM numpy", "gemm-numpy"),
    ("**xpnet numpy**", "xpnet-numpy-float32"),
    ("xpnet torch", "xpnet-torch-float32"),
    ("xpnet strict", "xpnet-array_api_strict-float32"),
    ("xpnet torch cuda", "xpnet-torch-{d}-float32"),
    ("xpnet cupy", "xpnet-cupy-{d}-float32"),
    ("GEMM torch", "gemm-torch"),
    ("GEMM jax", "gemm-jax"),
    ("GEMM torch cuda", "gemm-torch-{d}"),
    ("GEMM cupy", "gemm-cupy-{d}"),
]


def _summary_table(result) -> list[str]:
    dev = result["settings"].get("peer_device", "cpu")
    cols, seen = [], set()
    for title, key in _SUMMARY_COLS:
        key = key.format(d=dev)
        if key in seen:
            continue
        seen.add(key)
        if any(_median(_rows(c), key) is not None for c in result["configs"].values()):
            cols.append((title, key))
    if not cols:
        return []
    out = ["## Summary (median ms per step or inference pass, better thread setting in "
           "brackets)", "",
           "| config | " + " | ".join(t for t, _ in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for cname, cfg in result["configs"].items():
        if cfg.get("status") != "ok":
            continue
        rows = _rows(cfg)
        cells = []
        for _, k in cols:
            m = _median(rows, k)
            cells.append("–" if m is None else f"{_fmt(m)} ({rows[k]['best_threads']})")
        out.append(f"| {cname} | " + " | ".join(cells) + " |")
    return [*out, ""]


def _memory_section(result) -> list[str]:
    lines = ["## Memory", "",
             "'peak RSS' in the tables is the worker process's peak resident set (its "
             "libraries, model, data and steps: each implementation has a process of its own); "
             "'step alloc' the peak of NumPy buffers allocated during one step (tracemalloc; "
             "NumPy-backed rows only).", ""]
    growth = result.get("memory_growth", [])
    if growth:
        lines += ["| xpnet row | threads | steps | RSS before MiB | RSS after MiB | growth MiB "
                  "| device growth MiB | peak RSS MiB | seconds |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for g in growth:
            if g.get("status") != "ok":
                lines.append(f"| {g.get('key')} | | | error: {g.get('reason')} | | | | | |")
                continue
            lines.append(
                f"| {g['key']} | {g.get('threads', '–')} | {g['steps']} | "
                f"{_mib(g['rss_before_bytes'])} | {_mib(g['rss_after_bytes'])} | "
                f"{_mib(g.get('rss_growth_bytes'))} | {_mib(g.get('device_growth_bytes'))} | "
                f"{_mib(g.get('peak_rss_bytes'))} | {g['seconds']:.1f} |"
            )
        lines.append("")
    return lines


def _isolation_section(result) -> list[str]:
    rows = [r for c in result["configs"].values() for r in c.get("results", [])
            if r.get("status") == "ok"]
    if not rows:
        return []
    fr = [r.get("peer_cpu_fraction") for r in rows if r.get("peer_cpu_fraction") is not None]
    driver = {r.get("driver_pid") for r in rows}
    lines = ["## Isolation", "",
             f"{len(rows)} timed rows (implementation x config), each from worker processes of "
             f"its own (driver pid "
             f"{', '.join(str(d) for d in driver)}; worker pids in the JSON). CPU used by the "
             "sleeping workers while another was timed, as a fraction of the timed wall time: "
             f"median {_pct(_med(fr))}, max {_pct(max(fr) if fr else None)} (the driver waits "
             "for them to go quiet before each sample). CPU/wall in the tables is the timed "
             "worker's own CPU time over its wall time: at most its thread count.", ""]
    one = [b["cpu_per_wall"] for r in rows for t, b in r.get("by_threads", {}).items()
           if t == "1" and b.get("cpu_per_wall") is not None]
    if one and _med(one) < 0.9:
        lines += [f"**The one-thread workers got {_med(one):.2f} of a core (median CPU/wall): "
                  "other processes took the CPU during this run, so its times are not a "
                  "measurement.**", ""]
    return lines


def _med(v: list[float]) -> float | None:
    if not v:
        return None
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


# ------------------------------------------------------------------------------------------------
# Chart
# ------------------------------------------------------------------------------------------------

COLORS = {
    "xpnet": "#1f77b4",
    "torch-eager": "#d62728",
    "torch-fused": "#ff9896",
    "jax-jit": "#9467bd",
    "gemm": "#7f7f7f",
    "book": "#2ca02c",
}


def bar_chart(result: dict[str, Any], path) -> str | None:
    """Write a PNG bar chart (median and IQR per implementation at its better thread setting,
    one panel per config).  Returns None on success, or why the chart was not drawn."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); pip install 'xpnet[plot]' for the chart"
    panels = [(n, c) for n, c in result["configs"].items() if c.get("status") == "ok"
              and any("median_ms" in r for r in c["results"])]
    if not panels:
        return "no configuration was measured"
    heights = [max(2.0, 0.32 * sum(1 for r in c["results"] if "median_ms" in r) + 1.0)
               for _, c in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, (name, cfg) in zip(axes[:, 0], panels, strict=True):
        rows = [r for r in cfg["results"] if "median_ms" in r]
        rows.sort(key=lambda r: r["median_ms"])
        y = list(range(len(rows)))
        med = [r["median_ms"] for r in rows]
        err = [[r["median_ms"] - r["q25_ms"] for r in rows],
               [r["q75_ms"] - r["median_ms"] for r in rows]]
        colors = [COLORS.get(r["impl"], "#8c564b") for r in rows]
        ax.barh(y, med, xerr=err, color=colors, capsize=2)
        ax.set_yticks(y, [f"{r['label']} ({r['best_threads']}t)" for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        fmt = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("median ms (log scale), bars: interquartile range; (n t): threads")
        ax.set_title(f"{name}: {cfg['description']}", fontsize=9)
        for yi, r in zip(y, rows, strict=True):
            ax.text(r["q75_ms"], yi, f"  {_fmt(r['median_ms'])}", va="center", fontsize=7)
        ax.set_xlim(right=max(r["q75_ms"] for r in rows) * 1.6)
    env = result["environment"]
    fig.suptitle(f"xpnet bench — {env.get('cpu_model') or ''} ({env.get('cpu_count')} cores), "
                 "each implementation in its own process", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m xpnet.benchmark.report RUN.json [...]``: re-render saved runs."""
    import argparse
    from pathlib import Path

    parser = argparse.ArgumentParser(
        prog="python -m xpnet.benchmark.report",
        description="Re-render the markdown report and the chart of saved benchmark runs.")
    parser.add_argument("runs", nargs="+", metavar="RUN.json", help="a run's JSON file")
    parser.add_argument("--no-plot", action="store_true", help="markdown only, no chart")
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not Path(r).is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    for run in args.runs:
        render(run, png=not args.no_plot)
        print(f"re-rendered {run}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
