"""The benchmark harness (`xpnet bench`, bench/run.py): isolation, thread settings, reports.

No timing is asserted: these check that each implementation ran in a worker process of its own
with the thread setting it was given, that the JSON and markdown carry what the report promises,
and the pieces with exact answers (GEMM FLOPs, the GPU floor, the ratios and targets, the JAX
peer's arithmetic).
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from xpnet.benchmark import book, harness, impls, main, probe, report, threads


def _quick(out, *extra):
    return main(["--quick", "--configs", "C1", "--growth-steps", "10", "--out", str(out),
                 "--quiet", *extra])


@pytest.fixture(scope="module")
def numpy_run(tmp_path_factory):
    """xpnet, the GEMM bound and the book on NumPy at 1 and 2 threads: six workers."""
    out = tmp_path_factory.mktemp("bench")
    rc = _quick(out, "--backend", "numpy", "--impls", "xpnet,gemm,book", "--threads", "1,2",
                "--no-opcount", "--name", "smoke")
    return rc, out, json.loads((out / "smoke.json").read_text())


def test_quick_run_writes_json_with_expected_keys(numpy_run):
    rc, _, result = numpy_run
    assert rc == 0
    for key in ("schema", "created", "command", "settings", "environment", "configs",
                "targets", "info", "memory_growth", "unavailable", "driver_pid", "opcounts"):
        assert key in result, key
    assert result["settings"]["backends"] == ["numpy"]
    assert result["settings"]["threads"] == [1, 2]
    c1 = result["configs"]["C1"]
    assert c1["status"] == "ok" and c1["rounds"] >= 1
    rows = {r["key"]: r for r in c1["results"]}
    assert set(rows) == {"xpnet-numpy-float32", "gemm-numpy", "book-numpy-float64"}
    for row in rows.values():
        assert row["status"] == "ok", row.get("reason")
        for key in ("median_ms", "q25_ms", "q75_ms", "iqr_ms", "min_ms", "max_ms", "n_samples",
                    "samples_ms", "best_threads", "by_threads", "cpu_per_wall",
                    "peer_cpu_fraction", "peak_rss_bytes", "worker_pid"):
            assert key in row, (row["key"], key)
        assert set(row["by_threads"]) == {"1", "2"}
        assert row["best_threads"] in (1, 2)
        assert row["median_ms"] == row["by_threads"][str(row["best_threads"])]["median_ms"]
    assert "book_speedup" in rows["xpnet-numpy-float32"]["ratios"]
    assert "vs_gemm_bound" in rows["xpnet-numpy-float32"]["ratios"]
    assert rows["xpnet-numpy-float32"]["step_peak_bytes"] > 0
    growth = result["memory_growth"][0]
    assert growth["key"] == "xpnet-numpy-float32" and growth["status"] == "ok"
    assert growth["steps"] == 10 and "rss_growth_bytes" in growth


def test_each_implementation_ran_in_a_worker_process_of_its_own(numpy_run):
    _, _, result = numpy_run
    assert result["driver_pid"] == os.getpid()
    pids = []
    for row in result["configs"]["C1"]["results"]:
        for t, run in row["by_threads"].items():
            assert run["worker_pid"] != os.getpid(), (row["key"], t)
            assert run["driver_pid"] == os.getpid()
            pids.append(run["worker_pid"])
    assert len(set(pids)) == len(pids) == 6  # one process per implementation and setting


def test_each_worker_saw_its_thread_setting(numpy_run):
    _, _, result = numpy_run
    for row in result["configs"]["C1"]["results"]:
        for t, run in row["by_threads"].items():
            seen = run["threads_seen"]
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                        "XPNET_NUM_THREADS"):
                assert seen["env"][var] == t, (row["key"], var, seen["env"])
            assert seen["xpnet"] == int(t)
            assert seen["cpus_allowed"] == min(int(t), len(os.sched_getaffinity(0)))
            blas = threads.blas_threads(seen)
            if blas is not None:  # OpenBLAS (threadpoolctl or its own getter) answered
                assert blas == int(t), (row["key"], seen["threadpools"])
            # NumPy-only workers: no other library's thread pool in the timed process
            assert "torch" not in seen["loaded"] and "jax" not in seen["loaded"]


def test_quick_run_writes_markdown_and_chart(numpy_run):
    _, out, result = numpy_run
    md = (out / "smoke.md").read_text()
    assert "| implementation | 1 thr ms | 2 thr ms | best |" in md
    assert "xpnet [numpy] float32" in md
    assert "## Targets" in md and "## Isolation" in md and "## Memory" in md
    assert "--quick" in md
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result["chart_skipped"]
    else:
        assert (out / "smoke.png").stat().st_size > 1000


def test_torch_peer_runs_apart_with_its_threads_and_is_counted(tmp_path):
    pytest.importorskip("torch")
    rc = _quick(tmp_path, "--backend", "numpy", "--impls", "torch-fused", "--threads", "1",
                "--name", "torch")
    assert rc == 0
    result = json.loads((tmp_path / "torch.json").read_text())
    (row,) = result["configs"]["C1"]["results"]
    assert row["key"] == "torch-fused-cpu-float32" and row["status"] == "ok", row.get("reason")
    assert row["worker_pid"] != os.getpid()
    seen = row["threads_seen"]
    assert seen["torch"] == 1 and seen["env"]["OMP_NUM_THREADS"] == "1"
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "1"  # NumPy's BLAS idles in a torch worker
    assert "torch" in seen["loaded"] and "jax" not in seen["loaded"]
    ops = row["ops"]
    assert ops["status"] == "ok" and ops["counter"] == "torch.profiler"
    assert ops["kernels_by_name"].get("aten::addmm", 0) + ops["kernels_by_name"].get(
        "aten::mm", 0) >= 6  # one product per layer forward at least
    # no xpnet row ran: the targets say so instead of judging
    assert all(t["met"] is None for t in result["targets"])


def test_unset_env_reaches_the_workers_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    rc = _quick(tmp_path, "--backend", "numpy", "--impls", "gemm", "--threads", "1",
                "--growth-steps", "0", "--no-opcount", "--no-plot", "--name", "env",
                "--unset-env", "OPENBLAS_CORETYPE")
    assert rc == 0
    result = json.loads((tmp_path / "env.json").read_text())
    (row,) = result["configs"]["C1"]["results"]
    assert row["threads_seen"]["env"]["OPENBLAS_CORETYPE"] is None
    assert result["environment"]["env"]["OPENBLAS_CORETYPE"] == "Haswell"  # the driver's
    md = (tmp_path / "env.md").read_text()
    assert "Removed from the workers' environment: OPENBLAS_CORETYPE." in md
    kept = report._blas_env_note({"env": {"OPENBLAS_CORETYPE": "Haswell"}}, {})
    assert "OPENBLAS_CORETYPE=Haswell" in kept[0] and "--unset-env" in kept[0]
    assert report._blas_env_note({"env": {}}, {}) == []


def test_a_failing_implementation_is_reported_not_fatal():
    cfg = impls.CONFIGS["C1"]
    rows, facts = harness.run_config(
        cfg, [impls.Spec("xpnet", "no-such-backend")], [1], repeats=1, warmup=1, sample_s=0.0,
        budget_s=None, log=lambda m: None, opcount=False)
    (row,) = rows
    assert row["status"] == "error"
    assert "no-such-backend" in row["reason"]
    assert facts["rounds"] == 0


def test_thread_env_sets_every_library_before_import():
    env = threads.thread_env(1, "jax", base={"XLA_FLAGS": "--xla_dump_to=/tmp/x",
                                              "OMP_NUM_THREADS": "8"})
    assert env["OMP_NUM_THREADS"] == "1" and env["XPNET_NUM_THREADS"] == "1"
    assert "--xla_dump_to=/tmp/x" in env["XLA_FLAGS"]
    assert "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    env = threads.thread_env(2, "torch", base={})
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert env["OPENBLAS_NUM_THREADS"] == "1"  # NumPy's BLAS is not the timed library
    assert "XLA_FLAGS" not in env
    assert threads.thread_env(2, "numpy", base={})["OPENBLAS_NUM_THREADS"] == "2"


# -- the GEMM bound --------------------------------------------------------------------------------


def test_gemm_flops_match_the_issue():
    c2 = impls.CONFIGS["C2"]
    # forward and dW: every layer; dX: every layer but the first -- 2 m k n each
    layers = [(784, 1024), (1024, 1024), (1024, 1024), (1024, 10)]
    fwd = sum(2 * 512 * i * o for i, o in layers)
    dx = sum(2 * 512 * i * o for i, o in layers[1:])
    assert c2.gemm_flops() == 2 * fwd + dx
    assert c2.gemm_flops() / 1e9 == pytest.approx(8.12, abs=0.01)  # "about 8.1 GFLOP"
    assert len(c2.gemm_shapes()) == 4 + 4 + 3
    infer = impls.CONFIGS["C1-infer"]
    assert [k for k, *_ in infer.gemm_shapes()] == ["fwd"] * 6


def test_gemm_bound_allocates_nothing_per_step():
    impl = impls.build_gemm(impls.CONFIGS["C1"], impls.Spec("gemm", "numpy"))
    impl.step()
    tracemalloc.start()
    try:
        for _ in range(3):
            impl.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024, f"the GEMM bound allocated {peak} bytes in 3 steps"


def test_gemm_bound_computes_the_products_into_its_outputs():
    cfg = impls.Config("tiny", "train", "", hidden=(3,), batch=4, input_size=5, output_size=2)
    spec = impls.Spec("gemm", "numpy")
    impl = impls.build_gemm(cfg, spec)
    impl.step()
    triples = impl.step.operands  # the (a, b, out) triples the step loops over
    assert len(triples) == len(cfg.gemm_shapes())
    for (kind, m, k, n), (a, b, out) in zip(cfg.gemm_shapes(), triples, strict=True):
        assert a.shape == (m, k) and b.shape == (k, n) and out.shape == (m, n), kind
        np.testing.assert_allclose(out, np.asarray(a, np.float64) @ np.asarray(b, np.float64),
                                   rtol=1e-5)


# -- the GPU path ---------------------------------------------------------------------------------


def test_peak_table_gives_the_issues_floors():
    gflop = impls.CONFIGS["C2"].gemm_flops() / 1e9
    h200 = probe.peak_tflops("NVIDIA H200")[0]
    a100 = probe.peak_tflops("NVIDIA A100-SXM4-80GB")[0]
    assert gflop / h200 == pytest.approx(0.12, abs=0.005)  # ms: GFLOP / (TFLOP/s)
    assert gflop / a100 == pytest.approx(0.42, abs=0.01)
    assert probe.peak_tflops("NVIDIA H100 PCIe")[1] == "H100 PCIe"
    assert probe.peak_tflops("Some Unknown Accelerator") is None
    assert probe.peak_tflops(None) is None


def _has_gpu() -> bool:
    import xpnet

    try:
        xpnet.get_backend("cupy")
        return True
    except xpnet.BackendUnavailableError:
        pass
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def test_gpu_flag_without_a_gpu_exits_2_with_one_line(tmp_path, capsys):
    if _has_gpu():
        pytest.skip("there is a GPU here")
    rc = main(["--gpu", "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("xpnet bench: error: --gpu needs an NVIDIA GPU")
    assert "torch" in err[0] and "CuPy" in err[0]
    assert not list(tmp_path.iterdir())  # nothing written


def test_gpu_figures_from_a_result():
    result = {"gpu": {"peak_fp32_tflops": 19.5}, "configs": {"C2": {
        "gflop_per_step": 8.12, "results": [{"status": "ok", "median_ms": 0.84}]}}}
    report.add_gpu_figures(result)
    cfg = result["configs"]["C2"]
    assert cfg["fp32_floor_ms"] == pytest.approx(8.12 / 19.5)
    row = cfg["results"][0]
    assert row["achieved_gflops"] == pytest.approx(8.12 / 0.84e-3)
    assert row["vs_fp32_floor"] == pytest.approx(0.84 / (8.12 / 19.5))


# -- ratios and targets ---------------------------------------------------------------------------


def _row(key, impl, ms, library="numpy", dtype="float32", device="cpu", samples=None):
    return {"key": key, "label": key, "impl": impl, "library": library, "dtype": dtype,
            "device": device, "status": "ok", "median_ms": ms, "iqr_ms": 0.0, "best_threads": 1,
            "by_threads": {"1": {"median_ms": ms}}, "samples_ms": samples or [ms, ms, ms]}


def test_ratios_use_the_fastest_peer_and_the_same_librarys_bound():
    rows = [
        _row("xpnet-numpy-float32", "xpnet", 2.0, samples=[2.0, 2.2, 1.8]),
        _row("torch-eager-cpu-float32", "torch-eager", 3.0, "torch"),
        _row("torch-fused-cpu-float32", "torch-fused", 2.5, "torch"),
        _row("jax-jit-cpu-float32", "jax-jit", 4.0, "jax"),
        _row("torch-fused-cpu-float64", "torch-fused", 1.0, "torch", dtype="float64"),
        _row("gemm-numpy", "gemm", 0.5, samples=[0.5, 0.5, 0.6]),
        _row("gemm-torch", "gemm", 0.4, "torch"),
        _row("book-numpy-float64", "book", 8.0, dtype="float64"),
        _row("xpnet-torch-float32", "xpnet", 3.2, "torch"),
    ]
    result = {"settings": {"peer_device": "cpu"}, "memory_growth": [], "opcounts": {},
              "configs": {"C1": {"status": "ok", "description": "C1", "results": rows}}}
    report.add_ratios(result)
    c1 = result["configs"]["C1"]
    assert c1["best_peer"] == "torch-fused-cpu-float32"  # float64 rows are no peers
    r = {x["key"]: x for x in rows}
    assert r["xpnet-numpy-float32"]["ratios"]["vs_best_peer"] == pytest.approx(2.0 / 2.5)
    assert r["xpnet-numpy-float32"]["ratios"]["vs_gemm_bound"] == pytest.approx(4.0)
    assert r["xpnet-torch-float32"]["ratios"]["vs_gemm_bound"] == pytest.approx(8.0)
    assert r["xpnet-numpy-float32"]["ratios"]["book_speedup"] == pytest.approx(4.0)
    (target,) = [t for t in result["targets"] if t["config"] == "C1"
                 and t["name"].endswith("best peer")]
    assert target["value"] == pytest.approx(0.8) and target["met"] is False  # <= 0.5
    assert target["paired"] == pytest.approx(0.8)  # median of 2.0/2.5, 2.2/2.5, 1.8/2.5
    ops = [t for t in result["targets"] if "aten" in t["name"]][0]
    assert ops["met"] is None and ops["reason"]
    c2 = [t for t in result["targets"] if t["config"] == "C2"]
    assert c2 and all(t["met"] is None and t["reason"] == "config not run" for t in c2)
    md = report.markdown({**result, "created": "now", "command": "x", "environment": {},
                          "settings": {"peer_device": "cpu", "threads": [1]}})
    assert "C1 xpnet numpy / best peer <= 0.5: 0.80" in md and "**not met**" in md


def test_targets_judge_operation_counts_and_memory_growth():
    result = {"settings": {"peer_device": "cpu"}, "configs": {},
              "opcounts": {"C1": {"torch": {"status": "ok", "aten_leaf_ops": 96}}},
              "memory_growth": [{"key": "xpnet-numpy-float32", "status": "ok", "steps": 2000,
                                 "rss_growth_bytes": 3 * 2**20}]}
    report.add_ratios(result)
    ops = next(t for t in result["targets"] if "aten" in t["name"])
    assert ops["value"] == 96 and ops["met"] is True
    mem = next(t for t in result["targets"] if "RSS growth" in t["name"])
    assert mem["value"] == pytest.approx(3.0) and mem["met"] is False


# -- usage ----------------------------------------------------------------------------------------


def test_bad_usage_exits_2(tmp_path, capsys):
    assert main(["--configs", "C9", "--out", str(tmp_path)]) == 2
    assert main(["--dtype", "float16", "--out", str(tmp_path)]) == 2
    assert main(["--threads", "0", "--out", str(tmp_path)]) == 2
    assert main(["--impls", "xpnet,tensorflow", "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err


def test_cupy_requested_without_device_is_an_error(tmp_path, capsys):
    import xpnet

    try:
        xpnet.get_backend("cupy")
    except xpnet.BackendUnavailableError:
        pass
    else:
        pytest.skip("CuPy sees a CUDA device here")
    rc = main(["--backend", "cupy", "--quick", "--out", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cupy" in err.lower() and ("cuda" in err.lower() or "not installed" in err.lower())


# -- the JAX peer and the book --------------------------------------------------------------------


def test_jax_peer_computes_xpnets_step():
    """The JAX peer does the same arithmetic as xpnet (dropout off): same loss, and the same
    parameters after one Adam step from the same weights; its GEMM row computes the same
    products as NumPy's.  Run in a child process: JAX's threads would make the later tests
    that fork unsafe (JAX warns so)."""
    import importlib.util
    import subprocess

    if importlib.util.find_spec("jax") is None:  # (JAX itself is not imported here)
        pytest.skip("jax is not installed (pip install -e '.[bench]')")

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(impls.__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, __file__, "jax-checks"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "jax checks passed" in proc.stdout


def _jax_checks() -> None:
    """What :func:`test_jax_peer_computes_xpnets_step` runs in its child process."""
    import jax
    import jax.numpy as jnp

    import xpnet

    cfg = impls.Config("tiny", "train", "", hidden=(16, 12), batch=8, input_size=20,
                       output_size=4, dropout=0.0)
    net = impls.xpnet_net(cfg, xpnet.get_backend("numpy"), "float32", seed=3)
    rng = np.random.default_rng(0)
    x = rng.random((8, 20)).astype(np.float32)
    t = rng.integers(0, 4, 8)
    params = {k: jnp.asarray(np.array(v)) for k, v in net.params.items()}
    running = {f"{s}{i}": jnp.zeros(n, jnp.float32)
               for i, n in enumerate(cfg.hidden, start=1) for s in ("mean", "var")}
    fns = impls.jax_functions(cfg)
    jloss, _ = fns["loss"](params, running, jnp.asarray(x), jnp.asarray(t), None)
    xloss = float(net.loss(x, t, train_flg=True))
    assert float(jloss) == pytest.approx(xloss, rel=1e-5), (float(jloss), xloss)

    opt = xpnet.Adam(lr=0.001)
    opt.update(net.params, net.gradient(x, t))
    zeros = {k: jnp.zeros_like(v) for k, v in params.items()}
    new, *_ = jax.jit(fns["train_step"])(params, running, zeros, dict(zeros),
                                         jnp.zeros((), jnp.float32), jax.random.key(0),
                                         jnp.asarray(x), jnp.asarray(t))
    hidden_biases = {f"b{i}" for i in range(1, len(cfg.hidden) + 1)}
    for k, v in net.params.items():
        # a bias right before batch norm has a zero gradient in exact arithmetic: both sides
        # hold rounding noise there, which Adam's first step turns into up to +-lr
        atol = 1.01e-3 if k in hidden_biases else 1e-6
        np.testing.assert_allclose(np.asarray(new[k]), np.asarray(v), rtol=1e-4, atol=atol,
                                   err_msg=k)

    tiny = impls.Config("tiny", "train", "", hidden=(3,), batch=4, input_size=5, output_size=2)
    ref = impls.build_gemm(tiny, impls.Spec("gemm", "numpy"))
    ref.step()
    jx = impls.build_gemm(tiny, impls.Spec("gemm", "jax"))
    jx.step()
    jx.sync()
    for got, (_, _, want) in zip(jx.step.state["out"], ref.step.operands, strict=True):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
    print("jax checks passed")


def test_book_reference_learns():
    rng = np.random.default_rng(0)
    x, t = rng.random((20, 30)), rng.integers(0, 3, 20)
    net = book.MultiLayerNetExtend(30, [16, 16], 3, use_dropout=True, dropout_ration=0.2,
                                   use_batchnorm=True, seed=0)
    assert all(v.dtype == np.float64 for v in net.params.values())
    opt = book.Adam(lr=0.01)
    first = net.loss(x, t, train_flg=True)
    for _ in range(100):
        opt.update(net.params, net.gradient(x, t))
    assert net.loss(x, t, train_flg=True) < first


def test_load_verdict_depends_on_the_load():
    from xpnet.benchmark.report import _load_verdict

    assert "competed" in _load_verdict([3.1, 1, 1], [0.5, 1, 1], 2)
    assert "competed" in _load_verdict([0.2, 1, 1], [2.5, 1, 1], 2)
    assert "at or below" in _load_verdict([0.4, 3, 3], [1.9, 3, 3], 2)
    assert "unknown" in _load_verdict(None, None, 2)


# -- scaling --------------------------------------------------------------------------------------


def test_scaling_grid_shares_the_base_point():
    from xpnet.benchmark import scaling

    grid = scaling.points((64, 256, 1024), (32, 256), base_width=256, base_batch=256)
    assert [(p["width"], p["batch"]) for p in grid] == [(64, 256), (256, 256), (1024, 256),
                                                         (256, 32)]
    assert grid[1]["sweeps"] == ["width", "batch"]
    full = scaling.points(scaling.FULL_WIDTHS, scaling.FULL_BATCHES)
    assert min(p["width"] for p in full) == 64 and max(p["width"] for p in full) == 2048
    assert min(p["batch"] for p in full) == 32 and max(p["batch"] for p in full) == 1024


def test_scaling_run_writes_json_and_figure(tmp_path):
    from xpnet.benchmark import scaling

    rc = scaling.main(["--widths", "32,64", "--batches", "16", "--impls", "xpnet,gemm",
                       "--threads", "1", "--repeats", "2", "--warmup", "1", "--sample-s", "0",
                       "--out", str(tmp_path), "--name", "sc"])
    assert rc == 0
    result = json.loads((tmp_path / "sc.json").read_text())
    assert len(result["points"]) == 3  # (32, 256), (64, 256) and (256, 16)
    for p in result["points"]:
        xp_row, gemm = p["results"]["xpnet"], p["results"]["gemm"]
        assert xp_row["status"] == gemm["status"] == "ok"
        assert xp_row["vs_gemm_bound"] == pytest.approx(xp_row["median_ms"] / gemm["median_ms"])
        assert p["gflop_per_step"] == pytest.approx(
            impls.mlp_config(p["width"], p["batch"]).gemm_flops() / 1e9)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result["figure_skipped"]
    else:
        assert (tmp_path / "sc.png").stat().st_size > 1000


def test_gpu_mode_times_the_gpu_rows_against_their_own_bounds():
    from xpnet.benchmark import runner

    opt = {"impls": list(runner._ALL_IMPLS), "dtypes": ["float32"]}
    specs = runner._specs(impls.CONFIGS["C2"], ["cupy", "torch"], opt, "cuda", True)
    keys = [s.key for s in specs]
    assert keys == ["xpnet-cupy-cuda-float32", "xpnet-torch-cuda-float32",
                    "torch-eager-cuda-float32", "torch-fused-cuda-float32",
                    "jax-jit-cuda-float32", "gemm-torch-cuda", "gemm-cupy-cuda",
                    "gemm-jax-cuda"]
    rows = {s.key: {"key": s.key, "library": s.library, "device": s.device} for s in specs}
    assert report.gemm_key(rows["xpnet-cupy-cuda-float32"]) == "gemm-cupy-cuda"
    assert report.gemm_key(rows["xpnet-torch-cuda-float32"]) == "gemm-torch-cuda"
    cpu = runner._specs(impls.CONFIGS["C1-infer"], ["numpy"], opt, "cpu", False)
    assert [s.key for s in cpu] == ["xpnet-numpy-float32", "torch-eager-cpu-float32",
                                    "jax-jit-cpu-float32", "gemm-numpy", "gemm-torch",
                                    "gemm-jax", "book-numpy-float64"]  # no fused inference


def test_missing_jax_makes_its_rows_unavailable_with_a_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax -> ImportError
    with pytest.raises(impls.Unavailable, match="jax is not installed"):
        impls.build(impls.CONFIGS["C1"], impls.Spec("jax-jit", "jax"))
    with pytest.raises(impls.Unavailable, match="jax is not installed"):
        impls.build(impls.CONFIGS["C1"], impls.Spec("gemm", "jax"))


if __name__ == "__main__" and sys.argv[1:] == ["jax-checks"]:
    _jax_checks()


def test_report_command_help_and_missing_file(tmp_path, capsys):
    """``python -m xpnet.benchmark.report``: --help prints usage, a missing file is an error
    (exit 2) naming it, and a saved run is re-rendered."""
    from xpnet.benchmark import report

    with pytest.raises(SystemExit) as info:
        report.main(["--help"])
    assert info.value.code == 0
    assert "RUN.json" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        report.main([str(tmp_path / "nope.json")])
    assert info.value.code == 2
    assert "nope.json" in capsys.readouterr().err
    import shutil
    from pathlib import Path
    run = tmp_path / "run.json"
    shutil.copy(Path(__file__).parent.parent / "bench" / "results" / "cpu-2core.json", run)
    assert report.main([str(run), "--no-plot"]) == 0
    md = run.with_suffix(".md").read_text()
    assert "## Targets" in md and "C2 xpnet numpy / best peer" in md
