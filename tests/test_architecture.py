"""The house rules of the package, checked on its source (issue 10):

* the import graph of ``ssafuse`` (every import, function-local ones included) has no cycle;
* no module imports a private (``_``-prefixed) name from another module;
* no function is longer than 80 lines unless the comment block right above it says why
  (a line starting ``# long:``);
* the README's "Python API" example runs as it is written.

The graph is built from the source with :mod:`ast`, not by importing, so an import hidden in
a function counts as much as one at the top. Importing a submodule is an edge to that
submodule only (not to its package's ``__init__``), as Python resolves it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ssafuse"
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _absolute(module: str, path: Path, level: int, name: str | None) -> str:
    """The absolute module a ``from ... import`` statement in ``module`` names."""
    if level == 0:
        return name or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _imports(module: str, path: Path):
    """``(target module, imported name or None, line)`` for every import in a module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node.level, node.module)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:  # `from . import markings`: the submodule itself
                    yield sub, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def import_graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _ in _imports(module, path):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or ``None``."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = GREY
        stack.append(node)
        for nxt in sorted(graph[node]):
            if colour[nxt] == GREY:
                return stack[stack.index(nxt):] + [nxt]
            if colour[nxt] == WHITE:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = BLACK
        return None

    for node in sorted(graph):
        if colour[node] == WHITE:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself can fail: a three-module loop is found, a chain is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_the_import_graph_of_ssafuse_has_no_cycle():
    graph = import_graph()
    assert sum(len(v) for v in graph.values()) > 50, "the graph builder found no imports"
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_name_is_imported_from_another_module():
    found = []
    for module, path in MODULES.items():
        for target, name, line in _imports(module, path):
            if target.split(".")[0] != "ssafuse" or name is None:
                continue
            if name.startswith("_") and not name.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {name} from {target}")
    assert not found, "\n".join(found)


def _long_functions(path: Path, root: Path = ROOT) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        length = node.end_lineno - node.lineno + 1
        k, said = first - 2, False  # the comment block right above the def (or decorator)
        while k >= 0 and lines[k].strip().startswith("#"):
            said = said or lines[k].strip().startswith("# long:")
            k -= 1
        if length > MAX_FUNCTION_LINES and not said:
            out.append(f"{path.relative_to(root)}:{node.lineno} {node.name}: {length} lines")
    return out


def test_long_function_checker_sees_a_long_function(tmp_path):
    body = "\n".join(f"    x{k} = {k}" for k in range(MAX_FUNCTION_LINES + 5))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n")
    assert len(_long_functions(tmp_path / "m.py", tmp_path)) == 1
    (tmp_path / "m.py").write_text(f"# long: a table of constants\ndef f():\n{body}\n")
    assert _long_functions(tmp_path / "m.py", tmp_path) == []


def test_no_function_is_longer_than_80_lines_without_saying_why():
    found = [f for path in MODULES.values() for f in _long_functions(path)]
    assert not found, "\n".join(found)


def _says_why(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or in the block of lines just above it (up to the
    blank line or ``def`` before it)."""
    if "#" in lines[lineno - 1]:
        return True
    k = lineno - 2
    while k >= 0 and lines[k].strip() and not lines[k].lstrip().startswith(("def ", '"""')):
        if lines[k].strip().startswith("#"):
            return True
        k -= 1
    return False


def test_function_local_imports_say_why():
    """An import inside a function is for an optional or heavy dependency, with a comment on
    its line or the line above saying so."""
    found = []
    for module, path in MODULES.items():
        lines = path.read_text().splitlines()
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, (ast.Import, ast.ImportFrom)) and not _says_why(
                        lines, node.lineno):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: "
                                 f"{lines[node.lineno - 1].strip()}")
    assert not found, "\n".join(found)


def _readme_python_api() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README's Python API section has no python block"
    return blocks[0]


def test_readme_python_api_example_runs(tmp_path):
    """The README's example, run as written from a folder holding the bundled samples."""
    (tmp_path / "sample_tles").symlink_to(ROOT / "sample_tles")
    code = _readme_python_api()
    assert "import ssafuse" in code and "ssafuse.screen(" in code
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "store" / "catalogue" / "catalogue.parquet").exists()


def test_every_public_name_has_a_docstring():
    import ssafuse

    missing = [name for name in ssafuse.__all__ if name != "__version__"
               and not (getattr(ssafuse, name).__doc__ or "").strip()]
    assert not missing, missing


@pytest.mark.parametrize("name", ["screen", "assess", "correlate", "ingest", "read_file",
                                  "build_catalogue", "run_nightly", "export_run", "Store"])
def test_the_verbs_a_user_needs_are_top_level(name):
    import ssafuse

    assert name in ssafuse.__all__
    assert callable(getattr(ssafuse, name))


def test_importing_ssafuse_does_not_import_dask_or_matplotlib():
    code = textwrap.dedent("""
        import sys, ssafuse
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("dask", "distributed", "matplotlib"))
        print(heavy)
        assert not heavy, heavy
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
