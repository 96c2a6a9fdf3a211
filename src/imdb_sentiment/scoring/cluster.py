"""Joining the Ray cluster `score` runs on, or starting one on this machine.

A cluster address (`--address`, else RAY_ADDRESS) is checked before Ray is asked to join
it: something must answer there within `score.connect_timeout_s`, and answer as a gRPC
server does (Ray's GCS and its client server are gRPC). Ray's own retries wait many
minutes on a closed port, a filtered one or a server that never answers; this check ends
in one line instead. Without an address, Ray starts here registered under a loopback
address, as `tests/test_score.py`'s two nodes are, so the traffic between its processes
stays on loopback; the dashboard is not started.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from pydantic import Field

from imdb_sentiment.core.errors import StageError, one_line
from imdb_sentiment.core.params import Params

# What every worker process gets: no progress bars in the logs, and one tokenizer thread
# (there is an actor per core already).
WORKER_ENV = {"TQDM_DISABLE": "1", "TOKENIZERS_PARALLELISM": "false"}
INSTALL_HINT = "pip install 'imdb-sentiment[scale]' (in a checkout: pip install -e '.[scale]')"
# Ray turns 127.0.0.1 itself into the machine's network address; the rest of 127.0.0.0/8
# it keeps.
LOOPBACK_NODE_IP = "127.0.0.2"
WORKER_LOGS = "the workers' logs are under /tmp/ray/session_latest/logs on each node"
# An HTTP/2 client's first bytes (the connection preface, then an empty SETTINGS frame):
# a gRPC server answers them with a SETTINGS frame of its own (frame type 4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
SETTINGS_FRAME = 4


class ScoreParams(Params):
    """The `score` section: how `imdb-score` joins a Ray cluster."""

    # Seconds to wait for the cluster at --address (or RAY_ADDRESS) to answer.
    connect_timeout_s: float = Field(30.0, gt=0, le=3600)


def import_ray() -> Any:
    """The `ray` module with Ray Data, or one line saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise StageError(f"score runs on Ray Data, which is not installed: {INSTALL_HINT}") from exc
    return ray


def host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a cluster address (`host:port`, `ray://host:port`, `[::1]:port`;
    `auto` as Ray resolves it), or None when it names none (Ray then says so itself)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or ""
        except Exception:  # no cluster recorded on this machine
            return None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    host = host.strip("[]")
    return (host, int(port)) if host and port.isdigit() else None


def wait_for_cluster(address: str, timeout_s: float) -> None:
    """Stop in one line unless a gRPC server answers at `address` within `timeout_s`."""
    target = host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + timeout_s
    late = f"--address {address}: no answer within {timeout_s:g} s (score.connect_timeout_s)"
    try:
        with socket.create_connection(target, timeout=timeout_s) as sock:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(HTTP2_PREFACE)
            answer = b""
            while len(answer) < 9:
                chunk = sock.recv(9 - len(answer))
                if not chunk:
                    break
                answer += chunk
    except TimeoutError as exc:
        raise StageError(late) from exc
    except OSError as exc:
        raise StageError(
            f"--address {address}: cannot connect to Ray ({exc.strerror or one_line(exc)})"
        ) from exc
    if len(answer) < 9 or answer[3] != SETTINGS_FRAME:
        raise StageError(f"--address {address}: what answers there is not a Ray cluster")


def loopback_available(ip: str = LOOPBACK_NODE_IP) -> bool:
    try:
        with socket.socket() as probe:
            probe.bind((ip, 0))
    except OSError:
        return False
    return True


def connect(address: str | None, timeout_s: float = 30.0) -> None:
    """Join the cluster at `address` (or RAY_ADDRESS) once it answers within `timeout_s`;
    with neither, start Ray on this machine, on a loopback address. The workers' output
    stays in Ray's logs: a failure reaches the user as one line (`ray_pool.score_units`)."""
    ray = import_ray()
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": WORKER_ENV}, "log_to_driver": False}
    if address == "local":
        kwargs["include_dashboard"] = False
        if loopback_available():
            kwargs["_node_ip_address"] = LOOPBACK_NODE_IP
    else:
        wait_for_cluster(address, timeout_s)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise StageError(f"--address {address}: cannot connect to Ray ({one_line(exc)})") from exc


def cluster_resources() -> tuple[float, float]:
    ray = import_ray()
    resources = ray.cluster_resources()
    return float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
