"""The project modules a stage's command imports, directly or through other project modules,
found by reading the code with `ast` (imports inside functions count: they run too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "imdb_sentiment"
SOURCE_ROOT = "src"


def module_file(root: Path, module: str) -> Path | None:
    """`imdb_sentiment.x.y` -> root/src/imdb_sentiment/x/y.py (or its package __init__), if
    it is a project module."""
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        return None
    parts = module.split(".")
    candidate = root.joinpath(SOURCE_ROOT, *parts).with_suffix(".py")
    if candidate.is_file():
        return candidate
    package = root.joinpath(SOURCE_ROOT, *parts, "__init__.py")
    return package if package.is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Every module name `path` imports (`from imdb_sentiment.core import atomic` gives
    `imdb_sentiment.core.atomic` too), with the packages each one passes through."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
    return names | {
        ".".join(name.split(".")[:i]) for name in names for i in range(1, name.count(".") + 1)
    }


def import_closure(root: Path, module: str) -> set[str]:
    """The files (relative to `root`, as dvc.yaml names them) of `module` and of every
    project module it reaches. Empty package __init__ files are left out: they hold no code."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        path = module_file(root, pending.pop())
        if path is None or path in seen:
            continue
        seen.add(path)
        pending.extend(imported_modules(path))
    return {
        path.relative_to(root).as_posix()
        for path in seen
        if not (path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip())
    }


def project_import_graph(root: Path) -> dict[str, set[str]]:
    """{module: the project modules it imports, at any depth of its code}, for every module
    of the package."""
    package_dir = root / SOURCE_ROOT / PACKAGE
    graph: dict[str, set[str]] = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(root / SOURCE_ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[module] = {
            name
            for name in imported_modules(path)
            if name != module and module_file(root, name) is not None
        }
    return graph
