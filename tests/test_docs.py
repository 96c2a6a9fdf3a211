"""The generated params reference is current."""

from __future__ import annotations

import subprocess
import sys

from helpers import PROJECT_ROOT


def test_params_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/params_reference.py", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
