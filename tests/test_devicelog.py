"""xpnet.devicelog: per-step scalars converted in batches, one transfer per flush."""

from __future__ import annotations

import numpy as np
import pytest

import xpnet
from xpnet.devicelog import DeviceLog, to_floats


def _count_transfers(monkeypatch, be) -> list[int]:
    """Record the size of every ``be.to_numpy`` call (each one is a device synchronization)."""
    sizes: list[int] = []
    real = be.to_numpy

    def counting(x):
        host = real(x)
        sizes.append(int(np.asarray(host).size))
        return host

    monkeypatch.setattr(be, "to_numpy", counting)
    return sizes


def test_device_log_converts_in_batches(backend, monkeypatch):
    transfers = _count_transfers(monkeypatch, backend)
    log = DeviceLog(backend, flush_every=4)
    values = [0.5 * i - 1.0 for i in range(10)]
    for i, v in enumerate(values):
        log.append(backend.asarray(np.float32(v)))
        assert len(log) == i + 1
        if i == 2:
            assert transfers == []  # appending never synchronizes
    assert log.values() == values  # exact: these are float32-representable
    if backend.name == "numpy":
        assert transfers == []  # NumPy values are on the host already
    else:
        assert transfers == [4, 4, 2]  # two automatic flushes, then the rest at once
    assert log.values() == values and len(log) == 10


def test_device_log_without_auto_flush_transfers_once(backend, monkeypatch):
    transfers = _count_transfers(monkeypatch, backend)
    log = DeviceLog(backend)
    for i in range(50):
        log.append(backend.asarray(np.float32(i)))
    assert transfers == []
    assert log.values() == [float(i) for i in range(50)]
    assert transfers == ([] if backend.name == "numpy" else [50])


def test_to_floats_mixes_host_and_device_values_in_order(backend, monkeypatch):
    transfers = _count_transfers(monkeypatch, backend)
    dev = [backend.asarray(np.float32(v)) for v in (0.25, 0.75)]
    one = backend.asarray(np.array([1.5], dtype=np.float32))  # shape (1,) is fine
    values = [1, dev[0], np.float32(2.5), 3.0, dev[1], np.asarray(4.0), one]
    assert to_floats(values) == [1.0, 0.25, 2.5, 3.0, 0.75, 4.0, 1.5]
    assert transfers == []  # without backend=, the arrays' own backend is looked up
    assert to_floats(values, backend) == [1.0, 0.25, 2.5, 3.0, 0.75, 4.0, 1.5]
    assert transfers == ([] if backend.name == "numpy" else [3])


def test_to_floats_groups_by_device():
    pytest.importorskip("array_api_strict")
    a = xpnet.get_backend("array_api_strict")
    b = xpnet.get_backend("array_api_strict", device="device1")
    values = [a.asarray(1.0), b.asarray(2.0), a.asarray(3.0)]
    assert to_floats(values, a) == [1.0, 2.0, 3.0]  # stacking across devices would raise


def test_to_floats_rejects_what_is_not_a_scalar(backend):
    with pytest.raises(ValueError, match=r"values\[1\].*scalar"):
        to_floats([1.0, backend.asarray(np.zeros(3, dtype=np.float32))])
    with pytest.raises(TypeError, match=r"values\[0\] is a str"):
        to_floats(["0.5"])


def test_device_log_keeps_pending_values_when_a_flush_fails(backend):
    log = DeviceLog(backend)
    log.append(1.0)
    log.append("bad")
    with pytest.raises(TypeError):
        log.flush()
    assert len(log) == 2  # nothing was lost


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_device_log_checks_flush_every(bad):
    with pytest.raises(ValueError, match="flush_every"):
        DeviceLog(flush_every=bad)
