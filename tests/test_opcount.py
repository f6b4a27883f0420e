"""Operations per training step: the counters count what they claim, and the C1 step of xpnet
does not grow beyond the counts pinned in ``bench/opcount_pins.json``.

When a change *removes* operations, the pin test passes and warns: lower the pins with
``python bench/opcount.py --update`` and commit ``bench/opcount_pins.json`` with the change.
When it fails, the change added operations to the C1 step (a kernel launch each on a GPU):
remove them, or argue for them in review -- never update the pins to make it pass.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from xpnet.benchmark import opcount

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT / "bench" / "opcount_pins.json"


def _torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def c1_counts():
    backends = ["numpy", "array_api_strict"] + (["torch"] if _torch_installed() else [])
    return opcount.count_in_subprocess("C1", backends)


def test_the_pins_file_documents_its_update():
    doc = json.loads(PINS.read_text())
    assert "python bench/opcount.py --update" in doc["update"]
    assert set(doc["C1"]) >= {"numpy", "array_api_strict", "torch"}
    assert opcount.PINS_PATH == PINS


def test_c1_step_does_not_add_operations(c1_counts):
    pins = json.loads(PINS.read_text())["C1"]
    for backend in ("numpy", "array_api_strict"):
        assert c1_counts[backend]["status"] == "ok", c1_counts[backend]
    grew, shrank = opcount.compare(c1_counts, pins)
    assert not grew, ("the C1 training step now asks for more operations than pinned: "
                      + "; ".join(grew) + " (see this file's docstring)")
    if shrank:
        warnings.warn("fewer operations than pinned -- lower the pins: "
                      "python bench/opcount.py --update; " + "; ".join(shrank), stacklevel=1)


def test_c1_torch_count_is_reported_or_torch_is_missing(c1_counts):
    if not _torch_installed():
        pytest.skip("torch is not installed: no profiler count")
    t = c1_counts["torch"]
    assert t["status"] == "ok", t
    # 17 matrix products per C1 step (6 forward, 6 dW, 5 dX): the kernel count sees each
    assert t["kernels_by_name"].get("aten::mm", 0) + t["kernels_by_name"].get("aten::addmm", 0) \
        == 17
    assert t["aten_leaf_ops"] > 17 and t["item_calls"] == 0


def test_namespace_counts_see_the_matrix_products_and_the_draws(c1_counts):
    for backend, matmul in (("numpy", "matmul"), ("array_api_strict", "__matmul__")):
        c = c1_counts[backend]
        assert c["ops_by_name"].get(matmul) == 17, (backend, c["ops_by_name"])
        assert c["draws"] == 5  # one dropout mask per hidden layer


# -- the counters on hand-written steps ---------------------------------------------------------


def test_strict_counter_counts_entries_once():
    xps = pytest.importorskip("array_api_strict")
    a = xps.asarray([[1.0, 2.0], [3.0, 4.0]])
    b = xps.asarray([[0.5, 0.5], [0.5, 0.5]])
    tally = opcount.Tally()
    with opcount.counting_strict(tally):
        tally.active = True
        c = xps.sum(a * b, axis=0)  # 2 ops: __mul__, sum
        c = c + 1.0  # 1 op
        d = xps.reshape(a, (4,))  # a view
        _ = a @ b  # 1 op
        float(d[0])  # a view (getitem) and a host read
        tally.active = False
    s = tally.summary()
    assert s["ops"] == 4, s
    assert s["ops_by_name"] == {"__mul__": 1, "sum": 1, "__add__": 1, "__matmul__": 1}
    assert s["views"] == 2 and s["syncs"] == 1
    # the patches are gone
    assert not hasattr(xps.sum, "__wrapped__")
    assert float(xps.sum(c)) == pytest.approx(7.0)  # (0.5 + 1.5 + 1) + (1 + 2 + 1)


def test_numpy_counter_counts_operators_and_in_place_operations():
    tally = opcount.Tally()
    with opcount.counting_numpy(tally):
        a = np.ones((3, 3), np.float32)  # patched: a counting array (an alloc-free fill)
        b = np.arange(9, dtype=np.float32).reshape(3, 3).view(opcount.CountedArray)
        tally.active = True
        c = a * b  # 1
        c += 1.0  # 1, in place
        np.multiply(a, b, out=c)  # 1
        s = np.sum(c, axis=0)  # 1 (the reduction inside is not counted again)
        v = c.T  # a view, not counted
        c[0] = 0.0  # 1: setitem
        tally.active = False
    summary = tally.summary()
    assert summary["ops"] == 5, summary
    assert summary["ops_by_name"] == {"multiply": 2, "add": 1, "sum": 1, "setitem": 1}
    assert isinstance(s, opcount.CountedArray) and v.shape == (3, 3)
    np.testing.assert_array_equal(np.asarray(s), [9.0, 12.0, 15.0])  # column sums of 0..8
    assert not isinstance(np.ones(2), opcount.CountedArray)  # the patches are gone


def test_torch_counter_prunes_views_and_counts_products():
    torch = pytest.importorskip("torch")
    a, b = torch.ones(8, 8), torch.ones(8, 8)

    def step():
        c = a @ b.T  # matmul -> mm (its only children are views): one kernel
        c.relu_()  # one kernel
        return c.reshape(64)  # a view: nothing

    counts = opcount.torch_step_counts(step, warm=1)
    assert counts["kernels_by_name"] == {"aten::mm": 1, "aten::clamp_min_": 1}, counts
    assert counts["aten_kernels"] == 2
    assert counts["aten_leaf_ops"] == 1  # DESIGN.md's leaf count misses mm (it calls a view)


def test_compare_reports_growth_and_shrinkage():
    counts = {"numpy": {"status": "ok", "ops": 10}, "torch": {"status": "ok",
                                                              "aten_leaf_ops": 5,
                                                              "aten_kernels": 9}}
    pins = {"numpy": {"ops": 12}, "torch": {"aten_leaf_ops": 5, "aten_kernels": 8}}
    grew, shrank = opcount.compare(counts, pins)
    assert grew == ["torch aten_kernels: 9 > pinned 8"]
    assert shrank == ["numpy ops: 10 < pinned 12"]
