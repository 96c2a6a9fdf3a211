"""The package's shape: each stage's `deps` in dvc.yaml are exactly the project modules its
command imports (a missing one would leave results stale, an extra one would retrain a
model for nothing), the concerns depend on each other one way only, no module imports one
that imports it back, and every module reads in one sitting."""

from __future__ import annotations

import pytest
from dvc_helpers import Reference, clone_with_cache, stage_specs
from helpers import PROJECT_ROOT
from import_closure import PACKAGE, SOURCE_ROOT, import_closure, project_import_graph

CODE_DIR = f"{SOURCE_ROOT}/{PACKAGE}/"
MAX_MODULE_LINES = 300
# The package's concerns, lowest first: each may import only those before it (and itself).
# The commands people type (cli) and the DVC stages (stages) are both at the top, apart.
LAYERS = (
    "core",
    "text",
    "data",
    "evaluation",
    "classical",
    "transformer",
    "inference",
    "scoring",
    "cli",
    "stages",
)
TOP_LAYERS = {"cli", "stages"}


def entry_module(cmd: str) -> str:
    """`python -m imdb_sentiment.stages.x ARGS` -> `imdb_sentiment.stages.x`."""
    words = cmd.split()
    assert words[:2] == ["python", "-m"], f"stage command {cmd!r} is not `python -m MODULE`"
    return words[2]


def declared_code(spec: dict) -> set[str]:
    return {dep for dep in spec["deps"] if dep.startswith(CODE_DIR)}


@pytest.mark.parametrize("stage", list(stage_specs(PROJECT_ROOT)))
def test_code_deps_are_exactly_the_imported_modules(stage: str) -> None:
    spec = stage_specs(PROJECT_ROOT)[stage]
    imported = import_closure(PROJECT_ROOT, entry_module(spec["cmd"]))
    declared = declared_code(spec)
    assert not imported - declared, f"{stage}: imports but does not declare {imported - declared}"
    assert not declared - imported, f"{stage}: declares but never imports {declared - imported}"


def test_no_stage_imports_another_stages_entry_module() -> None:
    specs = stage_specs(PROJECT_ROOT)
    entries = {name: entry_module(spec["cmd"]) for name, spec in specs.items()}
    files = {
        name: f"{SOURCE_ROOT}/" + module.replace(".", "/") + ".py"
        for name, module in entries.items()
    }
    for name, module in entries.items():
        # The stages of one `foreach` (evaluate@rf, evaluate@linear, ...) share a module.
        others = {files[other] for other in specs if entries[other] != module}
        assert not import_closure(PROJECT_ROOT, module) & others, name


def concern(module: str) -> str:
    """`imdb_sentiment.core.params` -> `core`."""
    return module.split(".")[1]


def test_concerns_depend_one_way() -> None:
    wrong = {
        f"{module} -> {target}"
        for module, targets in project_import_graph(PROJECT_ROOT).items()
        if module.count(".") >= 2
        for target in targets
        if target.count(".") >= 1
        and concern(target) != concern(module)
        and (
            LAYERS.index(concern(target)) > LAYERS.index(concern(module))
            or concern(target) in TOP_LAYERS
        )
    }
    assert not wrong, f"imports against the layers {LAYERS}: {sorted(wrong)}"


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = project_import_graph(PROJECT_ROOT)
    reaches: dict[str, set[str]] = {}

    def reachable(module: str) -> set[str]:
        if module not in reaches:
            reaches[module] = set()  # a cycle back here adds nothing new
            found: set[str] = set()
            for target in graph.get(module, ()):
                found |= {target} | reachable(target)
            reaches[module] = found
        return reaches[module]

    cycles = sorted(module for module in graph if module in reachable(module))
    assert not cycles, f"modules that reach themselves through their imports: {cycles}"


def test_modules_stay_readable_in_one_sitting() -> None:
    long = {
        path.name: lines
        for path in (PROJECT_ROOT / CODE_DIR).rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.e2e
def test_editing_a_module_marks_only_the_stages_that_import_it(
    reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from dvc.repo import Repo

    repo = clone_with_cache(reference.repo, tmp_path_factory.mktemp("edits") / "repo")
    specs = stage_specs(repo)
    with Repo(str(repo)) as dvc_repo:
        assert dvc_repo.status() == {}, "the reference clone must start up to date"
    # One module of each concern's folder (and evaluate, one module run as four stages):
    # that every module is a dep of exactly the stages that import it is checked without
    # DVC above; this checks that DVC reads those deps as written.
    modules = [path for path in (repo / CODE_DIR).rglob("*.py") if path.name != "__init__.py"]
    sample = {min(p for p in modules if p.parent == module.parent) for module in modules}
    sample.add(repo / CODE_DIR / "stages" / "evaluate.py")
    for module in sorted(sample):
        relative = module.relative_to(repo).as_posix()
        original = module.read_text(encoding="utf-8")
        module.write_text(original + "\n# an edit that changes no behaviour\n", encoding="utf-8")
        try:
            with Repo(str(repo)) as dvc_repo:
                stale = {name.split(":")[-1] for name in dvc_repo.status()}
        finally:
            module.write_text(original, encoding="utf-8")
        expected = {
            name
            for name, spec in specs.items()
            if relative in import_closure(repo, entry_module(spec["cmd"]))
        }
        assert stale == expected, f"editing {relative}: stale {stale}, expected {expected}"


@pytest.mark.e2e
def test_the_wheel_holds_every_module_and_both_commands(tmp_path_factory) -> None:
    """`pip install .` gives the whole package (every concern's folder) and the commands."""
    import shutil
    import subprocess
    import sys
    import zipfile

    # Built from a copy: setuptools leaves a build/ folder where it builds.
    copy, out = tmp_path_factory.mktemp("project"), tmp_path_factory.mktemp("wheel")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(PROJECT_ROOT / name, copy / name)
    shutil.copytree(PROJECT_ROOT / SOURCE_ROOT, copy / SOURCE_ROOT)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), "."],
        cwd=copy,
        check=True,
        capture_output=True,
    )
    [wheel] = out.glob("imdb_sentiment-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    source = PROJECT_ROOT / SOURCE_ROOT
    modules = {path.relative_to(source).as_posix() for path in source.rglob("*.py")}
    assert modules <= names, f"missing from the wheel: {sorted(modules - names)}"
    [entry_points] = [name for name in names if name.endswith("entry_points.txt")]
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "imdb-predict = imdb_sentiment.cli.predict:main" in scripts
    assert "imdb-score = imdb_sentiment.cli.score:main" in scripts
