"""xpnet.io: atomic writes, plain-JSON conversion, write_json."""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from xpnet.io import atomic_write, to_jsonable, write_json


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- atomic_write ------------------------------------------------------------------------------


def test_atomic_write_creates_the_file(tmp_path):
    path = tmp_path / "a.bin"
    with atomic_write(path) as f:
        f.write(b"\x00\x01\x02")
        assert not path.exists()  # nothing under the final name until the block ends
    assert path.read_bytes() == b"\x00\x01\x02"
    assert _names(tmp_path) == ["a.bin"]


@pytest.mark.parametrize("exc", [RuntimeError("writer failed"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, exc):
    path = tmp_path / "result.json"
    path.write_text("old content\n")
    with pytest.raises(type(exc)):
        with atomic_write(path, "w") as f:
            f.write("new, half-")
            f.flush()
            # the new bytes exist somewhere in the folder, under another name
            assert any(p.read_text() == "new, half-" for p in tmp_path.iterdir())
            raise exc
    assert path.read_text() == "old content\n"
    assert _names(tmp_path) == ["result.json"]


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="boom"):
        with atomic_write(tmp_path / "new.txt", "w") as f:
            f.write("x")
            raise ValueError("boom")
    assert _names(tmp_path) == []


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "ro.txt"
    path.write_text("v1")
    os.chmod(path, 0o640)
    with atomic_write(path, "w") as f:
        f.write("v2 – ünïcode")
    assert path.read_text(encoding="utf-8") == "v2 – ünïcode"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_new_file_gets_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "cache.bin") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "cache.bin").stat().st_mode) == 0o644


def test_atomic_write_rejects_bad_arguments_before_touching_anything(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass
    with pytest.raises(ValueError, match="text mode"):
        with atomic_write(tmp_path / "x", "wb", encoding="utf-8"):
            pass
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "no" / "such" / "folder.txt", "w"):
            pass
    assert _names(tmp_path) == []


# -- to_jsonable ---------------------------------------------------------------------------------


def test_to_jsonable_numpy_scalars_and_arrays():
    out = to_jsonable({
        "f32": np.float32(0.5), "f64": np.float64(0.25), "i": np.int64(7), "u8": np.uint8(3),
        "b": np.bool_(True), "arr": np.array([[1.5, 2.0]], dtype=np.float32),
        "ints": np.arange(3), "zero_d": np.asarray(4.0), "tuple": (1, (2, 3)),
    })
    assert out == {"f32": 0.5, "f64": 0.25, "i": 7, "u8": 3, "b": True,
                   "arr": [[1.5, 2.0]], "ints": [0, 1, 2], "zero_d": 4.0,
                   "tuple": [1, [2, 3]]}
    assert type(out["f32"]) is float and type(out["i"]) is int and type(out["b"]) is bool
    assert all(type(v) is int for v in out["ints"])


def test_to_jsonable_non_finite_become_none():
    out = to_jsonable([float("nan"), float("inf"), -np.inf, np.float32("nan"),
                       np.array([1.0, np.nan])])
    assert out == [None, None, None, None, [1.0, None]]
    json.dumps(out, allow_nan=False)  # would raise on a NaN left behind


def test_to_jsonable_paths_keys_and_others():
    out = to_jsonable({
        Path("a") / "b.json": PurePosixPath("/x/y"), 1: "one", False: None, 2.5: "f",
        "set": {3, 1, 2}, "obj": complex(1, 2),
    })
    assert out == {str(Path("a") / "b.json"): "/x/y", "1": "one", "false": None, "2.5": "f",
                   "set": [1, 2, 3], "obj": "(1+2j)"}
    # keys as json.dumps writes them
    assert list(out)[1:4] == list(json.loads(json.dumps({1: 0, False: 0, 2.5: 0})))


def test_to_jsonable_refuses_device_arrays(backend):
    x = backend.asarray(np.array([1.0, 2.0], dtype=np.float32))
    if backend.name == "numpy":
        assert to_jsonable(x) == [1.0, 2.0]
    else:
        with pytest.raises(TypeError, match="to_numpy"):
            to_jsonable({"curve": x})


# -- write_json ----------------------------------------------------------------------------------


def test_write_json_round_trip_rounding_and_atomicity(tmp_path):
    path = tmp_path / "r.json"
    data = {"loss": [1 / 3, np.float32(2 / 3)], "nan": float("nan"), "n": np.int32(5)}
    assert write_json(path, data) == path
    text = path.read_text()
    assert text.endswith("}\n") and "NaN" not in text
    assert json.loads(text) == {"loss": [1 / 3, float(np.float32(2 / 3))], "nan": None, "n": 5}
    write_json(path, data, digits=3, indent=None)
    assert json.loads(path.read_text()) == {"loss": [0.333, 0.667], "nan": None, "n": 5}
    assert _names(tmp_path) == ["r.json"]


def test_write_json_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    write_json(path, {"v": 1})

    def broken(*a, **k):  # fails after the temporary file was written and synced
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        write_json(path, {"v": 2})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"v": 1}
    assert _names(tmp_path) == ["r.json"]


def test_write_json_checks_digits(tmp_path):
    with pytest.raises(ValueError, match="digits"):
        write_json(tmp_path / "x.json", {}, digits=0)
    assert _names(tmp_path) == []
    assert math.isclose(json.loads(write_json(tmp_path / "y.json", 0.123456789,
                                              digits=2).read_text()), 0.12)
