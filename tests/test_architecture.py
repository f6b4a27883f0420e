"""The house rules, read from the source's imports (no code of the package is run).

1. Only ``xpnet/backend/`` knows torch and CuPy.  (``xpnet/benchmark/`` is the one other place:
   its PyTorch peers *are* torch code, timed beside xpnet.)
2. No module imports another module's private names: a private function or constant (a name
   starting with ``_``) is used only in its own module, and a private module only inside its own
   package (``xpnet/backend/__init__.py`` may import ``_numpy``; ``cli.py`` may not import
   ``xpnet.experiments._common``).
3. Nothing imports upward: the backend package imports nothing of xpnet outside itself.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import xpnet

ROOT = pathlib.Path(xpnet.__file__).parent
FILES = sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_of(path: pathlib.Path) -> str:
    """The package a file belongs to (for ``__init__.py``: the package itself)."""
    name = _module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(path: pathlib.Path):
    """Yield ``(line, module, imported name or None)`` for every import in ``path``, with
    relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = _package_of(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, None
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join([*base, module] if module else base)
            for a in node.names:
                yield node.lineno, module, a.name


def _is_module(parts: list[str]) -> bool:
    """Whether the dotted name ``parts`` (starting with "xpnet") is a module or package."""
    base = ROOT.parent.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _where(path: pathlib.Path, line: int) -> str:
    return f"{path.relative_to(ROOT.parent)}:{line}"


def test_only_the_backend_package_imports_torch_or_cupy():
    allowed = (ROOT / "backend", ROOT / "benchmark")
    offenders = []
    for path in FILES:
        if any(a in path.parents for a in allowed):
            continue
        for line, module, _ in _imports(path):
            if module.split(".")[0] in ("torch", "cupy", "cupyx"):
                offenders.append(f"{_where(path, line)} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_no_module_imports_another_packages_private_names():
    offenders = []
    for path in FILES:
        own = _package_of(path)
        for line, module, name in _imports(path):
            if not module.startswith("xpnet"):
                continue
            full = module if name is None else f"{module}.{name}"
            parts = full.split(".")
            for i, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    owner = ".".join(parts[:i])
                    is_module = _is_module(parts[: i + 1])
                    # a private module belongs to its package; a private name to its module
                    if not is_module or owner != own:
                        offenders.append(f"{_where(path, line)} imports {full}")
                    break
    assert not offenders, "\n".join(offenders)


def test_the_backend_imports_nothing_above_it():
    offenders = []
    for path in sorted((ROOT / "backend").glob("*.py")):
        for line, module, _ in _imports(path):
            if module.startswith("xpnet") and not module.startswith("xpnet.backend"):
                offenders.append(f"{_where(path, line)} imports {module}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("room, lib", [("_torch", "torch"), ("_cupy", "cupy"),
                                       ("_strict", "array_api_strict")])
def test_each_library_is_named_in_its_own_room_only(room, lib):
    """The library a room is about is imported in no other room (its knowledge stays in one
    file).  NumPy is left out: it is the host library every room copies through."""
    offenders = []
    for path in sorted((ROOT / "backend").glob("*.py")):
        if path.stem == room:
            continue
        for line, module, _ in _imports(path):
            if module.split(".")[0] == lib or module == f"array_api_compat.{lib}":
                offenders.append(f"{_where(path, line)} imports {module}")
    assert not offenders, "\n".join(offenders)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the xpnet modules it imports (at the top or inside a function alike)."""
    graph: dict[str, set[str]] = {}
    for path in FILES:
        me = _module_name(path)
        deps = set()
        for _, module, name in _imports(path):
            if not module.startswith("xpnet"):
                continue
            full = f"{module}.{name}" if name else module
            target = full if name and _is_module(full.split(".")) else module
            if target != me:
                deps.add(target)
        graph[me] = deps
    return graph


def test_no_two_modules_import_each_other():
    """The house has floors: no loop of imports between xpnet's modules, counting the imports
    inside functions too (a lazy import up is a loop the interpreter tolerates, not a design)."""
    graph = _import_graph()
    loops = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if state.get(w) == 1:
                loops.append(" -> ".join([*path[path.index(w):], w]))
            elif w not in state:
                visit(w)
        path.pop()
        state[v] = 2

    for v in sorted(graph):
        if v not in state:
            visit(v)
    assert not loops, "\n".join(loops)
