"""xpnet.progress: one switch for every bar (XPNET_PROGRESS, enabled=), tqdm or a stand-in."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import xpnet
from xpnet.progress import SilentProgress, progress, progress_wanted

tqdm_auto = pytest.importorskip("tqdm.auto")


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.fixture
def stderr(monkeypatch):
    """Replace stderr by a stream whose isatty() the test chooses."""
    def use(tty: bool) -> _Stream:
        stream = _Stream(tty)
        monkeypatch.setattr(sys, "stderr", stream)
        return stream
    monkeypatch.delenv("XPNET_PROGRESS", raising=False)
    return use


@pytest.mark.parametrize("env, tty, wanted", [
    (None, True, True), (None, False, False),
    ("0", True, False), ("false", True, False), ("No", True, False), ("off", True, False),
    ("1", False, True), ("yes", False, True),
    ("", True, True), ("maybe", False, False),  # unknown values: the terminal decides
])
def test_environment_and_terminal_decide_by_default(stderr, monkeypatch, env, tty, wanted):
    stderr(tty)
    if env is not None:
        monkeypatch.setenv("XPNET_PROGRESS", env)
    assert progress_wanted() is wanted
    bar = progress(range(3), desc="x")
    assert isinstance(bar, tqdm_auto.tqdm) is wanted
    assert bar.disable is not wanted
    assert list(bar) == [0, 1, 2]
    bar.close()


@pytest.mark.parametrize("env", ["0", "1"])
def test_enabled_forces_either_way(stderr, monkeypatch, env):
    stream = stderr(False)
    monkeypatch.setenv("XPNET_PROGRESS", env)
    on = progress(total=5, desc="forced", unit="step", enabled=True, leave=True)
    assert isinstance(on, tqdm_auto.tqdm) and not on.disable
    on.update(5)
    on.close()
    assert "forced" in stream.getvalue() and "5/5" in stream.getvalue()
    off = progress(total=5, desc="never", enabled=False)
    assert isinstance(off, SilentProgress)
    off.update(2)
    off.close()
    assert "never" not in stream.getvalue()


def test_without_tqdm_a_silent_stand_in(stderr, monkeypatch):
    stream = stderr(True)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # import fails as if not installed
    bar = progress(total=4, desc="d", enabled=True, unit_scale=True)  # tqdm options ignored
    assert isinstance(bar, SilentProgress) and bar.disable
    assert stream.getvalue() == ""


def test_silent_stand_in_has_the_bar_methods():
    with progress(["a", "b"], desc="s", enabled=False) as bar:
        assert len(bar) == 2 and bar.total == 2
        assert [x.upper() for x in bar] == ["A", "B"]
        assert bar.n == 2
        bar.update(3)
        bar.set_postfix(loss="0.1")
        bar.set_postfix_str("x")
        bar.set_description("new")
        bar.refresh()
    assert bar.n == 5 and bar.desc == "new"
    manual = progress(total=None, enabled=False)
    with pytest.raises(TypeError, match="update"):
        iter(manual).__next__()
    with pytest.raises(TypeError, match="total"):
        len(manual)


def test_trainer_draws_through_it(stderr, monkeypatch):
    stream = stderr(False)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((40, 5)), rng.integers(0, 3, 40)
    net = xpnet.MultiLayerNet(5, [6], 3, seed=0)
    xpnet.Trainer(net, x, t, x, t, epochs=2, mini_batch_size=20, verbose=False,
                  progress=True).train()
    assert "train" in stream.getvalue() and "4/4" in stream.getvalue()

    # a Trainer without tqdm still reports, one line per epoch, on stdout
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    xpnet.Trainer(net, x, t, x, t, epochs=2, mini_batch_size=20, verbose=False,
                  progress=True).train()
    assert out.getvalue().count("=== epoch") == 2
