"""The default backend for code that names none: XPNET_BACKEND / XPNET_DEVICE / XPNET_DTYPE,
xpnet.set_default_backend and the xpnet.default_backend context manager."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import xpnet


@pytest.fixture(autouse=True)
def _reset():
    xpnet.set_default_backend()
    yield
    xpnet.set_default_backend()


def _strict():
    return pytest.importorskip("array_api_strict")


def test_without_any_choice_numpy_float32(monkeypatch):
    net = xpnet.MultiLayerNet(4, [3], 2)
    assert net.backend.name == "numpy"
    assert net.dtype == net.xp.float32
    assert xpnet.default_dtype() == "float32"


def test_environment_chooses_backend_device_and_dtype(monkeypatch):
    _strict()
    monkeypatch.setenv("XPNET_BACKEND", "strict")
    monkeypatch.setenv("XPNET_DEVICE", "device1")
    monkeypatch.setenv("XPNET_DTYPE", "float64")
    net = xpnet.MultiLayerNet(4, [3], 2)
    assert net.backend.name == "array_api_strict"
    assert net.backend.device_name == "device1"
    assert net.dtype == net.xp.float64
    # an explicit argument still wins
    assert xpnet.MultiLayerNet(4, [3], 2, backend="numpy", dtype="float32").backend.name == "numpy"


@pytest.mark.parametrize("var, value, word", [
    ("XPNET_BACKEND", "jax-please", "XPNET_BACKEND"),
    ("XPNET_DTYPE", "int32", "XPNET_DTYPE"),
])
def test_a_bad_environment_value_names_the_variable(monkeypatch, var, value, word):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValueError, match=word):
        xpnet.MultiLayerNet(4, [3], 2)


def test_a_bad_environment_device_names_both_variables(monkeypatch):
    monkeypatch.setenv("XPNET_BACKEND", "numpy")
    monkeypatch.setenv("XPNET_DEVICE", "cuda:0")
    with pytest.raises(ValueError, match="XPNET_DEVICE='cuda:0'") as info:
        xpnet.get_backend()
    assert "XPNET_BACKEND='numpy'" in str(info.value)


def test_setter_beats_environment_and_resets(monkeypatch):
    _strict()
    monkeypatch.setenv("XPNET_BACKEND", "numpy")
    xpnet.set_default_backend("array_api_strict", dtype="float64")
    net = xpnet.MultiLayerNetExtend(4, [3], 2, use_batchnorm=True)
    assert net.backend.name == "array_api_strict" and net.dtype == net.xp.float64
    xpnet.set_default_backend()
    assert xpnet.MultiLayerNet(4, [3], 2).backend.name == "numpy"
    assert xpnet.default_dtype() == "float32"


def test_setter_checks_at_once_and_keeps_the_old_default():
    _strict()
    xpnet.set_default_backend("array_api_strict")
    with pytest.raises(ValueError, match="unknown backend"):
        xpnet.set_default_backend("numpyy")
    with pytest.raises(ValueError, match="dtype"):
        xpnet.set_default_backend("numpy", dtype="complex64")
    assert xpnet.get_backend().name == "array_api_strict"


def test_dtype_alone_keeps_the_backend(monkeypatch):
    _strict()
    monkeypatch.setenv("XPNET_BACKEND", "array_api_strict")
    xpnet.set_default_backend(dtype="float64")
    net = xpnet.MultiLayerNet(4, [3], 2)
    assert net.backend.name == "array_api_strict" and net.dtype == net.xp.float64


def test_context_manager_nests_and_restores():
    _strict()
    xpnet.set_default_backend("numpy")
    with xpnet.default_backend("array_api_strict", "device1"):
        assert xpnet.get_backend().device_name == "device1"
        with xpnet.default_backend(dtype="float64"):  # dtype only: the outer backend stays
            net = xpnet.MultiLayerNet(4, [3], 2)
            assert net.backend.device_name == "device1" and net.dtype == net.xp.float64
        with xpnet.default_backend("numpy"):
            assert xpnet.get_backend().name == "numpy"
        assert xpnet.default_dtype() == "float32"
    assert xpnet.get_backend().name == "numpy"


def test_context_manager_restores_after_an_error():
    _strict()
    with pytest.raises(RuntimeError):
        with xpnet.default_backend("array_api_strict"):
            raise RuntimeError("boom")
    assert xpnet.get_backend().name == "numpy"


def test_environment_reaches_a_script_that_names_no_backend(tmp_path):
    """What the book's scripts rely on: ``XPNET_BACKEND=... python script.py``."""
    _strict()
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""
        import xpnet
        net = xpnet.MultiLayerNetExtend(4, [3], 2, use_batchnorm=True)
        print(net.backend.name, net.backend.device_name, xpnet.default_dtype())
    """))
    env = {"XPNET_BACKEND": "array_api_strict", "XPNET_DEVICE": "device1",
           "XPNET_DTYPE": "float64", "PATH": "/usr/bin:/bin"}
    import os
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["array_api_strict", "device1", "float64"]
