"""The modules of ``python/vsm`` import one another without cycles.

The graph is built from the sources with :mod:`ast`, so every import counts, top-level or inside a
function (a lazy import is still a dependency), except those under ``if TYPE_CHECKING:``, which
never run. An edge goes to the module an import names: ``from . import algorithm`` to the
submodule ``vsm.train.algorithm``, ``from ..data import Dataset`` to the package ``vsm.data``
(its ``__init__``), ``from . import _core`` to the compiled extension (known from its stub).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PYTHON = Path(__file__).resolve().parents[1] / "python"


def _modules(root: Path) -> dict[str, Path | None]:
    """Every module under ``root/vsm`` by dotted name → its source (None: a compiled module known
    only from its ``.pyi`` stub); a package is its ``__init__.py``."""
    mods: dict[str, Path | None] = {}
    for path in sorted((root / "vsm").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    for stub in (root / "vsm").rglob("*.pyi"):
        mods.setdefault(".".join(stub.relative_to(root).with_suffix("").parts), None)
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """The import statements anywhere under ``node`` except in ``if TYPE_CHECKING:`` bodies."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append(child)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                found += _imports(ast.Module(body=[stmt], type_ignores=[]))
        else:
            found += _imports(child)
    return found


def _targets(name: str, is_package: bool, stmt: ast.Import | ast.ImportFrom, mods) -> set[str]:
    """The vsm modules one import statement of module ``name`` depends on."""
    if isinstance(stmt, ast.Import):
        return {a.name for a in stmt.names if a.name in mods}
    if stmt.level:
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (stmt.level - 1)]
        target = ".".join(base + ([stmt.module] if stmt.module else []))
    else:
        target = stmt.module or ""
    if target not in mods:
        return set()
    return {f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in stmt.names}


def import_graph(root: Path = PYTHON) -> dict[str, set[str]]:
    """Module → the vsm modules it imports (self-imports left out)."""
    mods = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        graph[name] = set()
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for stmt in _imports(tree):
            graph[name] |= _targets(name, is_package, stmt, mods)
        graph[name].discard(name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle ``[a, b, ..., a]`` of ``graph``, or None when it is acyclic (iterative DFS)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        state[start] = 1
        todo = [iter(sorted(graph[start]))]
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                todo.append(iter(sorted(graph[nxt])))
    return None


def test_vsm_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 50 and "vsm.train.trainer" in graph  # the sources were found
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_the_graph_sees_lazy_imports_and_skips_type_checking(tmp_path):
    """The checker itself: a function-level import closes a cycle, a TYPE_CHECKING one does not,
    and relative imports resolve to submodules or to the package."""
    root = _write(
        tmp_path,
        {
            "vsm/__init__.py": "from .a import f\n",
            "vsm/_core.pyi": "def g() -> None: ...\n",
            "vsm/a.py": "from . import _core\ndef f():\n    from .pkg import b\n",
            "vsm/pkg/__init__.py": "",
            "vsm/pkg/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import f\n"
                "else:\n    import vsm.pkg\n"
            ),
        },
    )
    graph = import_graph(root)
    assert graph == {
        "vsm": {"vsm.a"},
        "vsm._core": set(),
        "vsm.a": {"vsm._core", "vsm.pkg.b"},
        "vsm.pkg": set(),
        "vsm.pkg.b": {"vsm.pkg"},
    }
    assert find_cycle(graph) is None
    (root / "vsm/pkg/b.py").write_text("def h():\n    from ..a import f\n")
    assert find_cycle(import_graph(root)) == ["vsm.a", "vsm.pkg.b", "vsm.a"]


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        ({"a": {"b"}, "b": set()}, None),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ],
)
def test_find_cycle(graph, cycle):
    assert find_cycle(graph) == cycle
