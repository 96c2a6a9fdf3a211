"""Write the lock files: every package the project installs, direct and transitive, at an
exact version with its hashes, for every platform and Python the project supports.

    python scripts/lock.py            (or: make lock; needs the network and uv)

- requirements/dev.txt: the package with every extra (what `make test` installs);
- requirements/runtime.txt: the package and the `onnx` extra (what `make install` and
  `make repro` install), the same versions as dev.txt.

torch is pinned in pyproject.toml but left out of both, with the CUDA libraries only its
CUDA build needs: which build (CPU or CUDA) is the machine's choice, so `make install`
installs `torch==<pin>` first and the locked rest after it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_DIR = ROOT / "requirements"
DEV_EXTRAS = ("onnx", "s3", "scale", "ci", "dev")
RUNTIME_EXTRAS = ("onnx",)
# The oldest Python the lock resolves for (pyproject's requires-python); newer ones too.
PYTHON = "3.11"
# Packages only the CUDA build of torch needs (torch itself, and what it alone pulls in).
BUILD_OF_TORCH = re.compile(r"^(torch|triton|nvidia-(?!ml-py).*|cuda-.*)$")
ENTRY = re.compile(r"^([A-Za-z0-9_.\-]+)==")


def compile_lock(extras: tuple[str, ...], out: Path, *extra_args: str) -> None:
    command = [
        "uv", "pip", "compile", "pyproject.toml", "--universal", "--generate-hashes",
        "--python-version", PYTHON, "--output-file", str(out.relative_to(ROOT)),
        "--custom-compile-command", "make lock", *extra_args,
    ]  # fmt: skip
    for extra in extras:
        command += ["--extra", extra]
    subprocess.run(command, cwd=ROOT, check=True)


def torch_build_packages(lock: Path) -> set[str]:
    """The packages of `lock` that only torch's CUDA build needs: named like its CUDA stack
    and pulled in by torch or by others of that stack alone."""
    via: dict[str, set[str]] = {}
    name = None
    for line in lock.read_text(encoding="utf-8").splitlines():
        if match := ENTRY.match(line):
            name = match.group(1).lower()
            via.setdefault(name, set())
        elif name and line.strip().startswith("#"):
            words = line.strip("# ").removeprefix("via").strip()
            if words and not words.startswith("-r"):
                via[name].add(words.split()[0].lower())
    stack = {package for package in via if BUILD_OF_TORCH.match(package)}
    while True:  # drop those that something outside the stack needs, until none is left
        outside = {package for package in stack if not via[package] <= stack | {"torch"}}
        if not outside - {"torch"}:
            return stack
        stack -= outside - {"torch"}


def main() -> int:
    LOCK_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        full = Path(scratch) / "full.txt"
        compile_lock(DEV_EXTRAS, ROOT / "requirements" / "dev.txt")
        full.write_text((LOCK_DIR / "dev.txt").read_text(encoding="utf-8"), encoding="utf-8")
        skip = sorted(torch_build_packages(full))
    no_emit = [arg for package in skip for arg in ("--no-emit-package", package)]
    compile_lock(DEV_EXTRAS, LOCK_DIR / "dev.txt", *no_emit)
    # The runtime set at dev.txt's versions, so that one environment can hold both.
    compile_lock(RUNTIME_EXTRAS, LOCK_DIR / "runtime.txt", "-c", "requirements/dev.txt", *no_emit)
    print(f"left to the machine's torch build: {', '.join(skip)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
