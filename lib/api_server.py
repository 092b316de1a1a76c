"""Run the config API (uvicorn) in a background process on loopback, and stop it again.

Used by `make demo`, the end-to-end tests and the benchmarks: one place that knows how to
start the server, wait until ``/health`` answers, and always stop it on the way out.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from lib.errors import PipelineError
from lib.settings import PROJECT_ROOT

__all__ = ["api_process", "free_port", "port_is_free", "uvicorn_command", "wait_until_ready"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def uvicorn_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The config API on ``host``:``port`` with this interpreter (demo, tests, `make up`)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def wait_until_ready(
    process: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float
) -> str:
    """Poll a starting server: "ready", "exited" (it died) or "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        if ready():
            return "ready"
        time.sleep(0.2)
    return "timeout"


@contextmanager
def api_process(
    log_path: Path,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> Iterator[str]:
    """``uvicorn api.main:app`` on 127.0.0.1 (a free port unless given); yields its URL."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            uvicorn_command(port),
            cwd=PROJECT_ROOT,
            env={**os.environ, **env} if env else None,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise PipelineError(f"the config API exited at start; see {log_path}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"the config API did not answer in {timeout:.0f} s; see {log_path}"
                )
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
