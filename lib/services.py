"""`make up` / `make down`: the config API and the Spark Connect server in the background.

    python -m lib.services up      # start both (or find them running), wait until both answer
    python -m lib.services down    # stop what `up` started, by pid, and nothing else
    python -m lib.services status

With both up, a notebook or `make score` talks to a running API and a warm Spark: a re-run
of notebook 04 takes seconds instead of a JVM start. Logs: OUTPUT_DIR/logs/api-<port>.log and
OUTPUT_DIR/logs/spark-connect-<port>.log.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from lib.api_server import port_is_free, uvicorn_command, wait_until_ready
from lib.connect_server import ConnectServer, connect_url, process_start_time
from lib.errors import PipelineError, run_cli
from lib.files import atomic_write_bytes, same_file
from lib.settings import (
    DEFAULT_API_HOST,
    PROJECT_ROOT,
    Settings,
    api_url_for,
    get_settings,
    is_loopback,
)

__all__ = ["ApiService", "down", "up"]


class ApiService:
    """uvicorn api.main:app on API_HOST:API_PORT (default 127.0.0.1:8000), detached, with a
    pid file."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.host, self.port = self.settings.api_host, self.settings.api_port
        self.url = api_url_for(self.host, self.port)
        self.state_path = self.settings.cache_dir / "services" / f"api-{self.port}.json"
        self.log_path = self.settings.output_dir / "logs" / f"api-{self.port}.log"

    def _pid(self) -> int | None:
        try:
            state = json.loads(self.state_path.read_text())
            pid = int(state["pid"])
            same_checkout = same_file(str(state.get("project_root")), PROJECT_ROOT)
            started = state.get("started")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        cmdline = _cmdline(pid)
        # The start time tells our process from a recycled pid (never signal someone else's).
        same_process = started is not None and process_start_time(pid) == started
        if not (same_process and "uvicorn" in cmdline and "api.main:app" in cmdline):
            self.state_path.unlink(missing_ok=True)  # stale: that API has exited
            return None
        if not same_checkout:
            return None  # another checkout's running API: not ours, and its record stays
        host = state.get("host", DEFAULT_API_HOST)
        if host != self.host:
            raise PipelineError(
                f"the config API `make up` started on port {self.port} listens on {host}, "
                f"not on API_HOST={self.host}; stop it first with `make down API_HOST={host} "
                f"API_PORT={self.port}`"
            )
        return pid

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 60) -> int:
        pid = self._pid()
        if pid is not None and self.healthy():
            return pid
        if not port_is_free(self.port):
            raise PipelineError(
                f"port {self.port} is in use by a program `make up` did not start (another "
                "checkout's API?); stop it, or set API_PORT to another port"
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                uvicorn_command(self.port, self.host),
                cwd=PROJECT_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": process.pid,
            "project_root": str(PROJECT_ROOT),
            "started": process_start_time(process.pid),
            "host": self.host,
        }
        atomic_write_bytes(self.state_path, json.dumps(state).encode())
        outcome = wait_until_ready(process, self.healthy, timeout)
        if outcome == "ready":
            return process.pid
        if outcome == "exited":
            self.state_path.unlink(missing_ok=True)
            raise PipelineError(
                f"the config API exited with {process.returncode} while starting; "
                f"see {self.log_path}"
            )
        self.stop()
        raise PipelineError(f"the config API did not answer within {timeout:.0f} s")

    def stop(self) -> bool:
        pid = self._pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _cmdline(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        self.state_path.unlink(missing_ok=True)
        return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def up() -> int:
    """Start both services, or neither: a failure stops what this call started, and says so.

    Both ports are checked first (a port held by a program we did not start fails before
    anything starts); a server that then fails to come up (a JVM that exits, a timeout)
    stops the other one this call had started. What was already running stays running.
    """
    api, spark = ApiService(), ConnectServer()
    if api.port == 0:
        raise PipelineError(
            "`make up` needs a fixed API_PORT (0, any free port, is for `make demo` only); "
            "nothing was started"
        )
    api_running = api._pid() is not None and api.healthy()
    if not api_running and not port_is_free(api.port):
        raise PipelineError(
            f"port {api.port} is in use by a program `make up` did not start (another "
            "checkout's API?); stop it, or set API_PORT to another port; nothing was started"
        )
    try:
        spark_running = spark.running_pid() is not None  # raises if another program has it
    except PipelineError as err:
        raise PipelineError(f"{err}; nothing was started") from None
    started: list[tuple[str, ApiService | ConnectServer]] = []
    try:
        if not api_running:  # listed first: Ctrl-C while it starts must stop it too
            started.append(("the config API", api))
        api_pid = api.start()
        shown = f"docs: {api.url}/docs; pid {api_pid}, log {api.log_path}"
        print(f"✅ Config API on {api.url} ({shown})")
        if not is_loopback(api.host):
            print(
                f"⚠️ The config API listens on {api.host}:{api.port}, beyond this machine: it "
                "has no authentication, so whoever reaches that address can read and change "
                "campaigns (API_HOST=127.0.0.1, the default, keeps it on this machine)"
            )
        if not spark_running:
            started.append(("Spark Connect", spark))
        spark_pid = spark.start()
        shown = f"pid {spark_pid}, log {spark.log_path}"
        print(f"✅ Spark Connect on {connect_url(spark.port)} ({shown})")
        if not spark_running:
            # A first scoring job pays the JVM's and the Python workers' start-up: pay it here,
            # once, rather than in the learner's first `make score` (lib.warm_up).
            failed = spark.warm_up()
            if failed is None:
                print("✅ Spark Connect warmed up (one tiny scoring job)")
            else:
                print(f"⚠️ Spark Connect warm-up failed ({failed}): the first run will be slower")
    except BaseException as err:
        # stop() stops only a process it recorded, and says whether there was one.
        stopped = [name for name, service in reversed(started) if service.stop()]
        undone = " and ".join(reversed(stopped))
        if isinstance(err, KeyboardInterrupt):
            why = "interrupted"
        elif isinstance(err, PipelineError | OSError):
            why = str(err).strip().splitlines()[0].rstrip(":")  # the log tail stays in the log
        else:
            raise  # a bug: its traceback, after the clean-up
        raise PipelineError(
            f"{why}; stopped what this `make up` had started ({undone})"
            if undone
            else f"{why}; nothing was started"
        ) from None
    print("   notebooks (make lab) and make score use both; `make down` stops them")
    return 0


def down() -> int:
    stopped_api = ApiService().stop()
    stopped_spark = ConnectServer().stop()
    print("🛑 Config API stopped" if stopped_api else "Config API was not running (by make up)")
    print("🛑 Spark Connect stopped" if stopped_spark else "Spark Connect was not running")
    return 0


def status() -> int:
    api, spark = ApiService(), ConnectServer()
    api_up = api._pid() is not None and api.healthy()
    spark_up = spark.running_pid() is not None
    print(f"Config API:    {'up' if api_up else 'down'} ({api.url})")
    print(f"Spark Connect: {'up' if spark_up else 'down'} ({connect_url(spark.port)})")
    return 0 if api_up and spark_up else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.services", description=__doc__)
    parser.add_argument("action", choices=["up", "down", "status"])
    action = parser.parse_args(argv).action
    return {"up": up, "down": down, "status": status}[action]()


if __name__ == "__main__":
    run_cli(main)
