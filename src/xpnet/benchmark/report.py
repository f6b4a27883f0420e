"""Ratios, targets, the markdown report and the bar chart of a benchmark run."""

from __future__ import annotations

from typing import Any

#: The speed targets of the benchmark issue, for xpnet on NumPy in float32:
#: (config, name, numerator, denominator, comparison, bound).
TARGETS = [
    ("C1", "xpnet numpy / torch eager (f32)", "xpnet-numpy-float32", "torch-eager", "<=", 0.6),
    ("C1", "book f64 / xpnet numpy (speed-up)", "book-numpy-float64", "xpnet-numpy-float32",
     ">=", 3.0),
    ("C2", "xpnet numpy / torch eager (f32)", "xpnet-numpy-float32", "torch-eager", "<=", 0.9),
    ("C2", "xpnet numpy / GEMM bound (numpy f32)", "xpnet-numpy-float32", "gemm-numpy", "<=",
     1.4),
    ("C1-infer", "xpnet numpy / torch eager (f32)", "xpnet-numpy-float32", "torch-eager", "<=",
     1.0),
]

GROWTH_LIMIT_BYTES = 8 * 2**20


def _median(rows: dict[str, dict], key: str) -> float | None:
    r = rows.get(key)
    if r is None or r.get("status") != "ok":
        return None
    return r.get("median_ms")


def _find(rows: dict[str, dict], key: str, torch_device: str) -> str:
    """Resolve the short names used in TARGETS to row keys."""
    if key == "torch-eager":
        return f"torch-eager-{torch_device}-float32"
    if key == "torch-fused":
        return f"torch-fused-{torch_device}-float32"
    return key


def _gemm_key(row: dict[str, Any], torch_device: str) -> str:
    lib = row["backend"]
    if lib in ("numpy", "array_api_strict"):
        return "gemm-numpy"
    if lib == "torch":
        return "gemm-torch" + ("" if torch_device == "cpu" else f"-{torch_device}")
    return f"gemm-{lib}"  # cupy: on the current device


def add_ratios(result: dict[str, Any]) -> None:
    """Add per-row ratios and the target table to a run's result dict (in place)."""
    tdev = result["settings"]["torch_device"]
    for cfg in result["configs"].values():
        rows = {r["key"]: r for r in cfg.get("results", [])}
        torch_eager = _median(rows, f"torch-eager-{tdev}-float32")
        book = _median(rows, "book-numpy-float64")
        for r in rows.values():
            m = r.get("median_ms")
            if r.get("status") != "ok" or not m:
                continue
            ratios = {}
            if torch_eager:
                ratios["vs_torch_eager_f32"] = m / torch_eager
            if r["impl"] != "GEMM bound":
                g = _median(rows, _gemm_key(r, tdev))
                if g:
                    ratios["vs_gemm_bound"] = m / g
            if book:
                ratios["book_speedup"] = book / m
            r["ratios"] = ratios
    targets = []
    for cname, name, num, den, op, bound in TARGETS:
        cfg = result["configs"].get(cname)
        entry: dict[str, Any] = {"config": cname, "name": name, "op": op, "target": bound}
        if not cfg or cfg.get("status") != "ok":
            entry.update(value=None, met=None, reason="config not run")
            targets.append(entry)
            continue
        rows = {r["key"]: r for r in cfg.get("results", [])}
        a, b = _median(rows, _find(rows, num, tdev)), _median(rows, _find(rows, den, tdev))
        if a is None or b is None:
            entry.update(value=None, met=None, reason="a compared implementation did not run")
        else:
            v = a / b
            entry.update(value=v, met=bool(v <= bound if op == "<=" else v >= bound))
            paired = _paired_ratio(rows[_find(rows, num, tdev)], rows[_find(rows, den, tdev)])
            if paired is not None:
                entry["paired"] = paired
        targets.append(entry)
    for g in result.get("memory_growth", []):
        if g.get("backend") == "numpy" and g.get("status") == "ok" and "rss_growth_bytes" in g:
            v = g["rss_growth_bytes"]
            targets.append({
                "config": "C1", "name": f"RSS growth over {g['steps']} steps, xpnet numpy (MiB)",
                "op": "<=", "target": GROWTH_LIMIT_BYTES / 2**20, "value": v / 2**20,
                "met": bool(v <= GROWTH_LIMIT_BYTES),
            })
    result["targets"] = targets


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


def render(json_path, png: bool = True) -> str:
    """Re-render the markdown (and the chart) of a saved run's JSON; returns the markdown."""
    import json
    from pathlib import Path

    from xpnet.io import atomic_write, write_json

    path = Path(json_path)
    result = json.loads(path.read_text())
    add_ratios(result)
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


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    s = result["settings"]
    lines = [
        "# xpnet benchmark",
        "",
        f"Run {result['created']} — `{result['command']}`",
        "",
        f"xpnet {env.get('xpnet', '?')} (git {env.get('xpnet_git') or '–'}). "
        f"Machine: {env.get('cpu_model') or env.get('machine')}, {env.get('cpu_count')} cores; "
        f"Python {env.get('python')}, NumPy {env.get('numpy')} "
        f"(BLAS: {_blas(env)}, {env.get('numpy_blas_threads') or '?'} threads; xpnet's "
        f"elementwise kernels: {env.get('xpnet_threads', '?')} threads), "
        f"torch {env.get('torch') or '–'} "
        f"({env.get('torch_threads', '–')} threads), array-api-strict "
        f"{env.get('array_api_strict') or '–'}, CuPy {env.get('cupy') or '–'}.",
        "",
        "One training step = `grads = net.gradient(x, t); optimizer.update(net.params, grads)` "
        "(Adam); medians over round-robin interleaved samples, spread as the interquartile range. "
        f"Repeats: {s['repeats_note']}. Ratios: time ÷ PyTorch eager float32 "
        "(`torch.nn` + `torch.optim.Adam`, same run), time ÷ the GEMM-only bound of the same "
        "library, and the book's float64 time ÷ this time (speed-up over the book).",
        "",
    ]
    la0, la1 = env.get("load_average_at_start"), env.get("load_average_at_end")
    if la0 or la1:
        lines += [f"Load average (1/5/15 min) at start {la0}, at end {la1}, on "
                  f"{env.get('cpu_count')} cores: {_load_verdict(la0, la1, env.get('cpu_count'))}",
                  ""]
    if env.get("env"):
        lines += [f"Environment variables: `{env['env']}`", ""]
    lines += _summary_table(result)
    lines += ["## Targets (xpnet on NumPy, float32)", "",
              "'measured' is the ratio of the two medians; 'paired' the median over rounds of "
              "the ratio of the two samples taken in the same round (steadier under bursty "
              "load). 'met' judges the ratio of medians.", "",
              "| config | ratio | target | measured | paired | met |",
              "|---|---|---|---|---|---|"]
    for t in result.get("targets", []):
        if t.get("reason") == "config not run":
            continue
        met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
        lines.append(f"| {t['config']} | {t['name']} | {t['op']} {t['target']} | "
                     f"{_fmt(t['value'])} | {_fmt(t.get('paired'))} | {met} |")
    lines.append("")
    for cname, cfg in result["configs"].items():
        lines += [f"## {cname}: {cfg['description']}", ""]
        if cfg.get("status") != "ok":
            lines += [f"Skipped: {cfg.get('reason')}", ""]
            continue
        lines += [
            "| implementation | median ms | IQR ms | min–max ms | × torch eager f32 "
            "| × GEMM bound | book ÷ this | step peak MiB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        notes = []
        for r in cfg["results"]:
            if r.get("status") != "ok" or "median_ms" not in r:
                notes.append(f"- {r['label']}: {r.get('status')} — {r.get('reason', '')}")
                continue
            rt = r.get("ratios", {})
            lines.append(
                f"| {r['label']} | {_fmt(r['median_ms'])} | {_fmt(r['iqr_ms'])} | "
                f"{_fmt(r['min_ms'])}–{_fmt(r['max_ms'])} | {_fmt(rt.get('vs_torch_eager_f32'))} "
                f"| {_fmt(rt.get('vs_gemm_bound'))} | {_fmt(rt.get('book_speedup'))} | "
                f"{_mib(r.get('step_peak_bytes'))} |"
            )
        lines.append("")
        if notes:
            lines += ["Not measured:", "", *notes, ""]
    lines += _memory_section(result)
    if result.get("unavailable"):
        lines += ["## Unavailable backends", ""]
        lines += [f"- {u['backend']}: {u['reason']}" for u in result["unavailable"]]
        lines.append("")
    return "\n".join(lines) + "\n"


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
    ("torch eager f32", "torch-eager-{t}-float32"),
    ("torch fused f32", "torch-fused-{t}-float32"),
    ("GEMM numpy f32", "gemm-numpy"),
    ("xpnet numpy f32", "xpnet-numpy-float32"),
    ("xpnet numpy f64", "xpnet-numpy-float64"),
    ("xpnet torch f32", "xpnet-torch-float32"),
    ("xpnet strict f32", "xpnet-array_api_strict-float32"),
    ("xpnet cupy f32", "xpnet-cupy-float32"),
]


def _summary_table(result) -> list[str]:
    tdev = result["settings"]["torch_device"]
    cols = []
    for title, key in _SUMMARY_COLS:
        key = key.format(t=tdev)
        if any(_median({r["key"]: r for r in c.get("results", [])}, key) is not None
               for c in result["configs"].values()):
            cols.append((title, key))
    if not cols:
        return []
    out = ["## Summary (median ms per step or per inference pass)", "",
           "| config | " + " | ".join(t for t, _ in cols) + " |",
           "|---|" + "---|" * len(cols)]
    for cname, cfg in result["configs"].items():
        if cfg.get("status") != "ok":
            continue
        rows = {r["key"]: r for r in cfg.get("results", [])}
        out.append(f"| {cname} | " + " | ".join(_fmt(_median(rows, k)) for _, k in cols) + " |")
    return [*out, ""]


def _memory_section(result) -> list[str]:
    lines = ["## Memory", ""]
    peak = result.get("peak_rss_bytes")
    lines.append(f"Peak RSS of the whole run: {_mib(peak)} MiB. 'Step peak' above is the peak of "
                 "NumPy buffers allocated during three steps (tracemalloc; NumPy-backed rows "
                 "only).")
    lines.append("")
    growth = result.get("memory_growth", [])
    if growth:
        lines += ["| xpnet backend | dtype | steps | RSS before MiB | RSS after MiB | growth MiB "
                  "| device growth MiB | seconds |", "|---|---|---|---|---|---|---|---|"]
        for g in growth:
            if g.get("status") != "ok":
                lines.append(f"| {g['backend']} | {g['dtype']} | {g['steps']} | error: "
                             f"{g.get('reason')} | | | | |")
                continue
            lines.append(
                f"| {g['backend']} | {g['dtype']} | {g['steps']} | {_mib(g['rss_before_bytes'])} "
                f"| {_mib(g['rss_after_bytes'])} | {_mib(g.get('rss_growth_bytes'))} | "
                f"{_mib(g.get('device_growth_bytes'))} | {g['seconds']:.1f} |"
            )
        lines.append("")
    return lines


# ------------------------------------------------------------------------------------------------
# Chart
# ------------------------------------------------------------------------------------------------

_COLORS = {
    "xpnet": "#1f77b4",
    "torch.nn": "#d62728",
    "torch.nn fused": "#ff9896",
    "torch.nn foreach": "#ff9896",
    "GEMM bound": "#7f7f7f",
    "book": "#2ca02c",
}


def bar_chart(result: dict[str, Any], path) -> str | None:
    """Write a PNG bar chart (median and IQR per implementation, one panel per config).

    Returns None on success, or the reason the chart was not drawn (matplotlib missing).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as exc:
        return f"matplotlib is not installed ({exc}); pip install 'xpnet[plot]' for the chart"
    panels = [(n, c) for n, c in result["configs"].items() if c.get("status") == "ok"]
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
        colors = [_COLORS.get(r["impl"], "#9467bd") for r in rows]
        ax.barh(y, med, xerr=err, color=colors, capsize=2)
        ax.set_yticks(y, [r["label"] for r in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        fmt = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:g}")
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("median ms (log scale), bars: interquartile range")
        ax.set_title(f"{name}: {cfg['description']}", fontsize=9)
        for yi, r in zip(y, rows, strict=True):
            ax.text(r["q75_ms"], yi, f"  {_fmt(r['median_ms'])}", va="center", fontsize=7)
        ax.set_xlim(right=max(r["q75_ms"] for r in rows) * 1.6)
    env = result["environment"]
    fig.suptitle(f"xpnet bench — {env.get('cpu_model') or ''} ({env.get('cpu_count')} cores)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


if __name__ == "__main__":  # pragma: no cover
    import sys

    for _p in sys.argv[1:]:
        render(_p)
        print(f"re-rendered {_p}")
