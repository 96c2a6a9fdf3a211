"""A Hub that cannot be reached stops a stage, and `make quick`, at once with one line that
says how to go without it: the param to set, or `make quick DATA=... MODEL=...`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import OFFLINE_ENV, PROJECT_ROOT

from imdb_sentiment.core import hub
from imdb_sentiment.core.errors import StageError
from imdb_sentiment.data.sources import load_source


def closed_port_url() -> str:
    """An http URL on this machine where nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> str:
    """The Hub's endpoint is a closed port, and offline mode is off (as for a user whose
    network is down)."""
    from huggingface_hub import constants

    url = closed_port_url()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    hub.hub_unreachable.cache_clear()
    yield url
    hub.hub_unreachable.cache_clear()


def test_an_unreachable_hub_stops_at_once_naming_the_local_ways(unreachable_hub: str) -> None:
    start = time.monotonic()
    with pytest.raises(StageError) as caught:
        load_source("stanfordnlp/imdb")
    assert time.monotonic() - start < 10  # not the libraries' minute of retries
    message = str(caught.value)
    assert message.startswith(
        "data.source='stanfordnlp/imdb' is on the Hugging Face Hub, which cannot be reached "
        f"({unreachable_hub}: ConnectError"
    ), message
    assert "make quick DATA=<data folder> MODEL=<model folder>" in message
    assert "set HF_HUB_OFFLINE=1 to use the Hugging Face cache" in message


def test_offline_mode_leaves_the_hub_to_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    # With HF_HUB_OFFLINE the libraries read their cache: no request is made, none waited on.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", closed_port_url())
    hub.hub_unreachable.cache_clear()
    try:
        assert hub.hub_unreachable() is None
    finally:
        hub.hub_unreachable.cache_clear()


@pytest.mark.e2e
@pytest.mark.parametrize(("data", "without"), [("", "DATA= and MODEL="), ("/data", "MODEL=")])
def test_make_quick_offline_fails_fast_naming_data_and_model(
    tmp_path: Path, data: str, without: str
) -> None:
    for name in ("Makefile", "scripts"):
        copy = shutil.copytree if (PROJECT_ROOT / name).is_dir() else shutil.copy2
        copy(PROJECT_ROOT / name, tmp_path / name)
    env = {key: value for key, value in os.environ.items() if key not in OFFLINE_ENV}
    env.update(HF_ENDPOINT=closed_port_url(), HF_HUB_OFFLINE="0", TRANSFORMERS_OFFLINE="0")
    venv = Path(sys.executable).parent.parent
    start = time.monotonic()
    result = subprocess.run(
        ["make", "-o", "install", "quick", f"VENV={venv}", f"DATA={data}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - start < 30, "waited on the Hub's retries"
    assert result.returncode != 0
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: without {without}, make quick reads from the Hugging Face Hub")
    assert error.endswith("give local copies, `make quick DATA=<data folder> MODEL=<model folder>`")
    # It stopped before anything was copied or run.
    assert not (tmp_path / "data").exists() and not (tmp_path / "dvc.lock").exists()
