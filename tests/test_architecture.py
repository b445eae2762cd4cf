"""The layers hold: no import cycle among mlpx's modules, the library never imports the study application, and the
moved modules' older import paths are the moved modules themselves.

The import graph is read from the sources (ast), so the checks are deterministic and import nothing.
"""
import ast
import random
import subprocess
import sys
from pathlib import Path

import pytest

import mlpx

PACKAGE = Path(mlpx.__file__).resolve().parent
# older import paths kept as aliases of the moved study modules (mlpx/_moved.py)
MOVED = ("cli", "cli_train", "cli_info", "report", "plot", "executors", "autoencoder", "experiments")
ALIASES = {f"mlpx.{name}" for name in MOVED}
# Imports inside functions that close a cycle, on purpose: the model's ``fit`` and ``save`` methods hand over to the
# training loop and the file format, which both build on the model. (mlpx.checkpoint's ``resume`` attribute is the
# older home of mlpx.training.resume, forwarded lazily for compatibility.)
# Within the backend package, the GPU backends look the backend registry (mlpx.backend: get_ops, cupy_status) up
# when they are built or unpickled by name; the registry builds them. Nothing else may close a cycle.
ALLOWED_LAZY = {("mlpx.model", "mlpx.training"), ("mlpx.model", "mlpx.serialization"),
                ("mlpx.checkpoint", "mlpx.training"),
                ("mlpx.backend.cupy_ops", "mlpx.backend"), ("mlpx.backend.emulated", "mlpx.backend")}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _imports(name: str, path: Path, modules: dict, lazy: bool) -> set[str]:
    """The mlpx modules ``name`` imports: at module level (class bodies included), or also inside functions."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()

    def visit(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (lazy or not in_function):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (lazy or not in_function):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module
                for alias in child.names:  # from package import submodule: the submodule (parents are implicit)
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
            visit(child, inside)

    visit(tree, False)
    return {m for m in found if m in modules and m != name}


def _graph(lazy: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules, lazy) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (as a path), or None; deterministic (sorted) depth-first search."""
    state, stack = {}, []

    def dfs(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_import_cycle_at_module_level():
    cycle = _cycle(_graph(lazy=False))
    assert cycle is None, f"import cycle at module level: {' -> '.join(cycle)}"


def test_no_import_cycle_beyond_the_models_fit_and_save():
    graph = _graph(lazy=True)
    for source, target in ALLOWED_LAZY:
        graph[source].discard(target)
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle (imports inside functions included): {' -> '.join(cycle)}"


def test_the_library_never_imports_the_study_application():
    graph = _graph(lazy=True)
    library = [m for m in graph if not m.startswith("mlpx.study") and m not in ALIASES and m != "mlpx.__main__"]
    offenders = {m: sorted(t for t in graph[m] if t.startswith("mlpx.study")) for m in library}
    assert not {m: t for m, t in offenders.items() if t}


def test_library_modules_import_alone_in_any_order_without_the_study():
    """In a fresh interpreter, every library module imports (in a shuffled, seeded order) and none of them loads
    mlpx.study."""
    library = sorted(m for m in _modules() if not m.startswith("mlpx.study") and m not in ALIASES
                     and m not in ("mlpx.__main__", "mlpx.backend.step_counts"))
    random.Random(16).shuffle(library)
    code = ("import importlib, sys\n"
            f"for name in {library!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as err:  # optional dependencies (numba, cupy, torch, sklearn) may be absent\n"
            "        if 'mlpx' in str(err): raise\n"
            "print(sorted(m for m in sys.modules if m.startswith('mlpx.study')))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("name", MOVED)
def test_moved_modules_keep_their_old_import_path(name):
    import importlib

    old, new = importlib.import_module(f"mlpx.{name}"), importlib.import_module(f"mlpx.study.{name}")
    assert old is new


def test_old_experiment_submodule_paths_are_the_moved_modules():
    import mlpx.experiments.store
    import mlpx.study.experiments.store

    assert mlpx.experiments.store is mlpx.study.experiments.store
    from mlpx.cli import main

    assert main is mlpx.study.cli.main
