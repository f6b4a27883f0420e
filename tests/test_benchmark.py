"""Smoke tests of the benchmark harness (`xpnet bench`, bench/run.py); no timing is asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import xpnet
from xpnet.benchmark import book, harness, main


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    rc = main([
        "--quick", "--backend", "numpy", "--configs", "C1,C3", "--dtype", "float32",
        "--threads", "1", "--out", str(out), "--name", "smoke", "--quiet",
    ])
    return rc, out


def test_quick_run_writes_json_with_expected_keys(quick_run):
    rc, out = quick_run
    assert rc == 0
    result = json.loads((out / "smoke.json").read_text())
    for key in ("schema", "created", "command", "settings", "environment", "configs",
                "targets", "memory_growth", "peak_rss_bytes", "unavailable"):
        assert key in result, key
    assert result["settings"]["backends"] == ["numpy"]
    env = result["environment"]
    assert env["numpy"] == np.__version__ and "numpy_blas" in env
    c1 = result["configs"]["C1"]
    assert c1["status"] == "ok"
    rows = {r["key"]: r for r in c1["results"]}
    xp_row = rows["xpnet-numpy-float32"]
    assert xp_row["status"] == "ok", xp_row.get("reason")
    for key in ("median_ms", "q25_ms", "q75_ms", "min_ms", "max_ms", "n_samples",
                "samples_ms", "param_bytes", "step_peak_bytes"):
        assert key in xp_row, key
    assert xp_row["median_ms"] > 0
    assert rows["gemm-numpy"]["status"] == "ok"
    assert rows["book-numpy-float64"]["status"] == "ok"
    assert "book_speedup" in xp_row["ratios"]
    if "torch-eager-cpu-float32" in rows:  # torch installed: the reference ran beside xpnet
        assert rows["torch-eager-cpu-float32"]["status"] == "ok"
        assert "vs_torch_eager_f32" in xp_row["ratios"]
    # C3 needs SimpleConvNet: either measured or skipped with a reason, never silently absent
    c3 = result["configs"]["C3"]
    assert c3["status"] in ("ok", "skipped")
    if c3["status"] == "skipped":
        assert c3["reason"]
    growth = result["memory_growth"][0]
    assert growth["status"] == "ok" and "rss_growth_bytes" in growth


def test_quick_run_writes_markdown_table(quick_run):
    _, out = quick_run
    md = (out / "smoke.md").read_text()
    assert "| implementation | median ms |" in md
    assert "xpnet [numpy] float32" in md
    assert "## Targets" in md
    assert "× torch eager f32" in md


def test_quick_run_chart_or_reason(quick_run):
    _, out = quick_run
    result = json.loads((out / "smoke.json").read_text())
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result["chart_skipped"]
    else:
        assert (out / "smoke.png").stat().st_size > 1000


def test_thread_limit_restores():
    before = harness.blas_threads()
    xpnet_before = xpnet.get_num_threads()
    with harness.thread_limit(1) as limit:
        if before is not None:
            assert harness.blas_threads() == 1
        assert xpnet.get_num_threads() == 1
        assert limit.applied["xpnet"] == 1
    assert harness.blas_threads() == before
    assert xpnet.get_num_threads() == xpnet_before


def test_bad_usage_exits_2(tmp_path, capsys):
    assert main(["--configs", "C9", "--out", str(tmp_path)]) == 2
    assert main(["--dtype", "float16", "--out", str(tmp_path)]) == 2
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
