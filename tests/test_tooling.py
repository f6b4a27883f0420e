"""The project's tooling: the nox sessions that the README names must exist."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _nox_sessions() -> set[str]:
    pytest.importorskip("nox", reason="nox is not installed (pip install -e '.[dev]')")
    from nox import registry

    registry.reset()
    try:
        runpy.run_path(str(ROOT / "noxfile.py"))
        return set(registry.get())
    finally:
        registry.reset()


def test_nox_defines_one_named_session_per_backend():
    names = _nox_sessions()
    for backend in ("numpy", "array_api_strict", "torch", "cupy"):
        assert f"tests-{backend}" in names
        assert f"bench-{backend}" in names
    assert "lint" in names


def test_every_nox_session_the_docs_name_exists():
    names = _nox_sessions()
    named = set()
    for doc in ("README.md", "bench/README.md", "noxfile.py"):
        for line in (ROOT / doc).read_text().splitlines():
            for m in re.finditer(r"nox (?:-R )?-s ((?:[\w-]+ ?)+)", line):
                args = m.group(1).split(" -- ")[0]  # what follows -- goes to the session
                named.update(w for w in args.split() if not w.startswith("-"))
    assert named, "no `nox -s` command found in the docs"
    assert named <= names, f"sessions named in the docs but not defined: {named - names}"
