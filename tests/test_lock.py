"""The lock files agree with pyproject.toml: every requirement of the package and its extras
is locked at a version its specifier allows, every locked package carries hashes, and the
runtime lock is the dev lock's subset at the same versions. A requirement changed in
pyproject.toml without `make lock` fails here."""

from __future__ import annotations

import re
import tomllib

import pytest
from helpers import PROJECT_ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

LOCKS = {"runtime": ("onnx",), "dev": ("onnx", "s3", "scale", "ci", "dev")}
ENTRY = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")
# Installed on its own, at its pinned version, as the machine's build (Makefile).
TORCH = "torch"


def locked(name: str) -> dict[str, list[tuple[str, str, int]]]:
    """{package: [(version, markers, hash count)]} of requirements/<name>.txt."""
    entries: dict[str, list[tuple[str, str, int]]] = {}
    current = None
    for line in (PROJECT_ROOT / "requirements" / f"{name}.txt").read_text().splitlines():
        if match := ENTRY.match(line):
            package, version, markers = match.groups()
            current = [version, (markers or "").strip(), 0]
            entries.setdefault(canonicalize_name(package), []).append(current)
        elif line.strip().startswith("--hash=sha256:") and current is not None:
            current[2] += 1
    return {package: [tuple(entry) for entry in found] for package, found in entries.items()}


def project_requirements(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    names = list(project["dependencies"])
    for extra in extras:
        names += project["optional-dependencies"][extra]
    return [Requirement(name) for name in names]


@pytest.mark.parametrize("lock", list(LOCKS))
def test_every_requirement_is_locked_at_a_version_it_allows(lock: str) -> None:
    entries = locked(lock)
    for requirement in project_requirements(LOCKS[lock]):
        name = canonicalize_name(requirement.name)
        if name == TORCH:
            assert name not in entries, "torch is installed on its own, not from the lock"
            assert str(requirement.specifier).startswith("=="), "torch needs an exact pin"
            continue
        assert name in entries, f"{requirement} is not in requirements/{lock}.txt: make lock"
        for version, _, _ in entries[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"requirements/{lock}.txt has {name}=={version}, pyproject.toml asks for "
                f"{requirement}: make lock"
            )


@pytest.mark.parametrize("lock", list(LOCKS))
def test_every_locked_package_has_hashes(lock: str) -> None:
    missing = [name for name, found in locked(lock).items() if any(h == 0 for *_, h in found)]
    assert not missing, f"no hashes for {missing} in requirements/{lock}.txt"


def test_the_runtime_lock_is_the_dev_locks_subset_at_the_same_versions() -> None:
    runtime, dev = locked("runtime"), locked("dev")
    differ = {
        name: (found, dev.get(name))
        for name, found in runtime.items()
        if {version for version, *_ in found} != {version for version, *_ in dev.get(name, [])}
    }
    assert not differ, f"runtime and dev lock these differently: {differ}"


@pytest.mark.parametrize("lock", list(LOCKS))
def test_what_the_lock_says_pyproject_asks_for_is_still_asked_for(lock: str) -> None:
    """A requirement dropped from pyproject.toml leaves the lock too."""
    asked = {canonicalize_name(r.name) for r in project_requirements(LOCKS[lock])}
    text = (PROJECT_ROOT / "requirements" / f"{lock}.txt").read_text()
    direct = set()
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        if ENTRY.match(block.splitlines()[0]) and "imdb-sentiment (pyproject.toml)" in block:
            direct.add(canonicalize_name(ENTRY.match(block.splitlines()[0]).group(1)))
    assert direct and not direct - asked, (
        f"locked for pyproject.toml, no longer asked: {direct - asked}"
    )


def test_the_cuda_build_of_torch_is_left_to_the_machine() -> None:
    for lock in LOCKS:
        cuda = [n for n in locked(lock) if re.match(r"^(nvidia-(?!ml-py)|cuda-|triton$)", n)]
        assert not cuda, f"requirements/{lock}.txt locks torch's CUDA stack: {cuda}"
