"""The project modules a stage's command imports, directly or through other project modules,
found by reading the code with `ast` (imports inside functions count: they run too)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "stages"


def module_file(root: Path, module: str) -> Path | None:
    """`stages.x` -> root/stages/x.py (or its package __init__), if it is a project module."""
    if module != PACKAGE and not module.startswith(f"{PACKAGE}."):
        return None
    parts = module.split(".")
    candidate = root.joinpath(*parts).with_suffix(".py")
    if candidate.is_file():
        return candidate
    package = root.joinpath(*parts, "__init__.py")
    return package if package.is_file() else None


def imported_modules(path: Path) -> set[str]:
    """Every module name `path` imports (`from stages import x` gives `stages.x` too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


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
