"""A local Spark Connect server: one warm Spark for notebooks, `make score` and the tests.

    python -m lib.connect_server run      # foreground (make spark); Ctrl-C stops it
    python -m lib.connect_server start    # background, waits until it answers (make up)
    python -m lib.connect_server stop     # stops the server `start` started, by pid (make down)
    python -m lib.connect_server status   # one line; exit 0 when up
    python -m lib.connect_server env      # SPARK_REMOTE=... lines for a shell or a Makefile

Every client process (a notebook kernel, a papermill run, a test) then connects in
about a second to a JVM that is already warm, instead of starting its own.

The server comes from the installed pyspark (``bin/spark-submit`` and the connect jar ship
in the wheel), runs :mod:`lib.connect_driver` with Spark's Connect plugin so that every
session shares one pool of Python workers, is warmed by `make up` with one tiny scoring job
(:mod:`lib.warm_up`), binds to 127.0.0.1 only, runs this interpreter for Python workers, and has the
hardening of :func:`lib.spark.build_spark` set server-side (restricted SQL, no SQL on files,
UTC, Arrow). A Connect server runs any plan or Python function a client sends, so it requires
Spark's pre-shared token: a random one per start, kept in a file only the user can read and
handed to the server through its environment (not its command line, which ``ps`` shows).

The state file records which checkout, interpreter and pyspark started the server; a server
on the port that another checkout, venv or pyspark version started is reported, never reused.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from lib.api_server import wait_until_ready
from lib.connect_driver import READY_LINE
from lib.errors import PipelineError, run_cli
from lib.files import atomic_write_bytes, same_file
from lib.settings import PROJECT_ROOT, Settings, get_settings

__all__ = [
    "ConnectServer",
    "ServerIdentity",
    "connect_url",
    "local_server",
]

# The server runs this Python driver (not Spark's SparkConnectServer class): see its
# docstring for why (one pool of Python workers for every session).
SERVER_MAIN = Path(__file__).with_name("connect_driver.py")
SHARED_WORKERS_CONF = {
    "spark.plugins": "org.apache.spark.sql.connect.SparkConnectPlugin",
    "spark.sql.artifact.isolation.enabled": "false",
}
TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # noqa: S105 - a variable's name, not a secret


class ConnectServerError(PipelineError):
    """The local Spark Connect server cannot be started, reached or stopped."""


@dataclass(frozen=True)
class ServerIdentity:
    """Who started a server: a server is reused only by the same checkout, venv and pyspark."""

    project_root: str
    python: str
    pyspark: str

    @classmethod
    def current(cls) -> ServerIdentity:
        import pyspark

        return cls(str(PROJECT_ROOT), sys.executable, pyspark.__version__)

    def differences(self, other: ServerIdentity) -> list[str]:
        """What tells ``other`` from this one, both sides shown; empty when they are the same.

        Compared by file identity, not text: the same checkout or venv reached through a
        symlink or another spelling is the same. An interpreter is known by its folder
        (a venv's ``bin/``: ``python`` and ``python3`` there are one environment).
        """
        found = []
        if not same_file(self.project_root, other.project_root):
            found.append(f"checkout {self.project_root} here, {other.project_root} there")
        if not same_file(Path(self.python).parent, Path(other.python).parent):
            found.append(f"python {self.python} here, {other.python} there")
        if self.pyspark != other.pyspark:
            found.append(f"pyspark {self.pyspark} here, {other.pyspark} there")
        return found


def connect_url(port: int) -> str:
    """The client URL for a local server. ``localhost`` (not 127.0.0.1): pyspark sends a
    token over a plain local channel only to that host name; anything else requires TLS."""
    return f"sc://localhost:{port}"


class ConnectServer:
    """The server on one port, with its state and token files under CACHE_DIR."""

    def __init__(self, port: int | None = None, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.port = port or self.settings.spark_connect_port
        base = self.settings.cache_dir / "spark-connect"
        self.state_path = base / f"server-{self.port}.json"
        self.token_path = base / f"server-{self.port}.token"
        self.log_path = self.settings.output_dir / "logs" / f"spark-connect-{self.port}.log"

    # ---- state ---------------------------------------------------------------------------
    def _state(self) -> dict[str, object] | None:
        try:
            state = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def token(self) -> str | None:
        try:
            return self.token_path.read_text().strip() or None
        except OSError:
            return None

    def _listening(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def running_pid(self) -> int | None:
        """The pid of *our* server on this port (same checkout, venv, pyspark), if it is up.

        Raises ConnectServerError when the port is served by someone else's server.
        """
        state = self._state()
        pid = int(str(state.get("pid", 0))) if state else 0
        started = state.get("started") if state else None
        alive = pid > 0 and _is_connect_server(pid, started if isinstance(started, int) else None)
        if state and alive:
            theirs = ServerIdentity(**state["identity"])  # type: ignore[arg-type]
            differences = ServerIdentity.current().differences(theirs)
            if differences:
                raise ConnectServerError(
                    f"port {self.port} is served by a Spark Connect server started from "
                    f"another checkout, venv or pyspark ({'; '.join(differences)}); stop it "
                    "there with `make down`, or set SPARK_CONNECT_PORT to another port"
                )
            return pid
        if self._listening():
            raise ConnectServerError(
                f"port {self.port} is in use by a program this project did not start; stop "
                "it, or set SPARK_CONNECT_PORT to another port"
            )
        if state:  # a stale state file: the server died
            self._forget()
        return None

    def _forget(self) -> None:
        self.state_path.unlink(missing_ok=True)
        self.token_path.unlink(missing_ok=True)

    # ---- the command ---------------------------------------------------------------------
    def command(self) -> list[str]:
        import pyspark

        from lib.spark import LOCAL_AUTH_CONF, is_local_master, server_conf

        spark_home = Path(pyspark.__file__).parent
        master = self.settings.spark_master or "local[*]"
        args = [
            str(spark_home / "bin" / "spark-submit"),
            "--name",
            "Spark Connect server (spark-ml-pipeline)",
            "--master",
            master,
        ]
        conf = {
            **(LOCAL_AUTH_CONF if is_local_master(master) else {}),  # Spark's internal ports
            **server_conf(self.settings),
            **SHARED_WORKERS_CONF,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.port),
        }
        for key, value in conf.items():
            args += ["--conf", f"{key}={value}"]
        return [*args, str(SERVER_MAIN)]

    def environment(self, token: str) -> dict[str, str]:
        import pyspark

        return {
            **os.environ,
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            TOKEN_ENV: token,
        }

    def _private_dir(self) -> None:
        """The folder for the token and the state: ours, 0700, not a link (a shared CACHE_DIR
        must not let another user plant links or read what is inside)."""
        folder = self.state_path.parent
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.getuid():
            raise ConnectServerError(f"{folder} must be a folder of your own, not a link")
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(folder, 0o700)

    def _new_token(self) -> str:
        token = secrets.token_urlsafe(32)
        self._private_dir()
        self.token_path.unlink(missing_ok=True)
        fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        return token

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self, timeout: float = 120) -> int:
        """Start the server in the background (or find it running); returns its pid."""
        pid = self.running_pid()
        if pid is not None:
            return pid
        token = self._new_token()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(
            self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600
        )
        with os.fdopen(log_fd, "ab") as log:
            started_at = log.seek(0, os.SEEK_END)  # this start's lines follow
            process = subprocess.Popen(
                self.command(),
                env=self.environment(token),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.settings.cache_dir,
                start_new_session=True,  # Ctrl-C in the terminal that ran `make up` spares it
            )
        self._write_state(process.pid)

        def ready() -> bool:
            # The plugin listens before the context has finished starting (the block manager
            # comes later): ready is when the driver says so, and the port is the JVM's.
            return _log_has(self.log_path, started_at, READY_LINE) and _owns_listening_port(
                process.pid, self.port
            )

        outcome = wait_until_ready(process, ready, timeout)
        if outcome == "ready":
            return process.pid
        if outcome == "exited":
            self._forget()
            raise ConnectServerError(
                f"the Spark Connect server exited with {process.returncode} while "
                f"starting; see {self.log_path}:\n{_tail(self.log_path)}"
            )
        self.stop()
        raise ConnectServerError(
            f"the Spark Connect server did not answer within {timeout:.0f} s; see {self.log_path}"
        )

    def warm_up(self, timeout: float = 180) -> str | None:
        """Run one tiny scoring job on the server (:mod:`lib.warm_up`), in a process of its
        own (a Connect client changes process-wide pyspark state). Returns why it failed,
        in one line, or None: a server that cannot warm up still serves, more slowly."""
        env = {
            **os.environ,
            "CACHE_DIR": str(self.settings.cache_dir),
            "SPARK_CONNECT_PORT": str(self.port),
        }
        env.pop("SPARK_REMOTE", None)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "lib.warm_up"],
                env=env,
                cwd=PROJECT_ROOT,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"no answer within {timeout:.0f} s"
        if done.returncode == 0:
            return None
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit code {done.returncode}"

    def _write_state(self, pid: int) -> None:
        self._private_dir()
        state = {
            "pid": pid,
            "started": process_start_time(pid),
            "port": self.port,
            "identity": asdict(ServerIdentity.current()),
            "log": str(self.log_path),
            "started_at": time.time(),
        }
        atomic_write_bytes(self.state_path, json.dumps(state).encode())  # replaces, never follows

    def stop(self, timeout: float = 30) -> bool:
        """Stop our server by pid (nothing else); returns whether one was running."""
        state = self._state()
        pid = int(str(state.get("pid", 0))) if state else 0
        started = state.get("started") if state else None
        alive = pid > 0 and _is_connect_server(pid, started if isinstance(started, int) else None)
        if not alive:
            self._forget()  # stale records of a server that has exited
            return False
        theirs = ServerIdentity(**state["identity"])  # type: ignore[index, arg-type]
        if ServerIdentity.current().differences(theirs):
            return False  # another checkout's running server: its records stay for its clients
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._forget()
        return True

    def run_foreground(self) -> int:
        """`make spark`: the server in this terminal until Ctrl-C."""
        if self.running_pid() is not None:
            raise ConnectServerError(
                f"a Spark Connect server of this project already runs on port {self.port} "
                "(`make down` stops it)"
            )
        token = self._new_token()
        process = subprocess.Popen(self.command(), env=self.environment(token))
        self._write_state(process.pid)
        print(
            f"Spark Connect on {connect_url(self.port)} (token in {self.token_path}); Ctrl-C stops"
        )
        try:
            return process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            return process.wait()
        finally:
            self._forget()

    def client_env(self) -> dict[str, str]:
        """What a client process needs to use this server: SPARK_REMOTE only. The project's
        client (lib.spark.connect_spark) reads the token from the token file itself, so the
        token never appears in an environment listing or on a command line (`make lab`)."""
        return {"SPARK_REMOTE": connect_url(self.port)} if self.token() else {}

    def owns_port(self) -> bool:
        """Is the listener on our port this project's server (not a squatter)?"""
        pid = self.running_pid()
        return pid is not None and _owns_listening_port(pid, self.port)


def local_server(settings: Settings | None = None) -> ConnectServer | None:
    """The project's local server when it is up (for `make score` and notebooks), else None."""
    server = ConnectServer(settings=settings)
    try:
        return server if server.running_pid() is not None else None
    except ConnectServerError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return Path(f"/proc/{pid}").exists() and "zombie" not in _proc_state(pid)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return ""


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (/proc/<pid>/stat field 22): a pid that was
    recycled for another process has another start time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _is_connect_server(pid: int, started: int | None = None) -> bool:
    """Is ``pid`` our live Spark Connect server JVM (never a recycled pid, another user's
    process, or one that merely mentions the driver's name)?"""
    if not _alive(pid):
        return False
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.getuid():
            return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    if started is not None and process_start_time(pid) != started:
        return False
    return b"org.apache.spark.deploy.SparkSubmit" in cmdline and cmdline.rstrip().endswith(
        str(SERVER_MAIN).encode()
    )


def _owns_listening_port(pid: int, port: int) -> bool:
    """Does ``pid`` itself hold the listening socket on ``port`` (not a squatter)?"""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(inode)
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _log_has(path: Path, offset: int, line: str) -> bool:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return line.encode() in log.read()
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lib.connect_server", description=__doc__)
    parser.add_argument("action", choices=["run", "start", "stop", "status", "env"])
    parser.add_argument("--port", type=int, default=None, help="default: SPARK_CONNECT_PORT")
    args = parser.parse_args(argv)
    server = ConnectServer(args.port)
    if args.action == "run":
        return server.run_foreground()
    if args.action == "start":
        pid = server.start()
        print(f"✅ Spark Connect on {connect_url(server.port)} (pid {pid}, log {server.log_path})")
        return 0
    if args.action == "stop":
        stopped = server.stop()
        print("🛑 Spark Connect stopped" if stopped else "Spark Connect was not running")
        return 0
    if args.action == "env":
        env: Mapping[str, str] = server.client_env() if server.running_pid() else {}
        for key, value in env.items():
            print(f"{key}={value}")
        return 0
    running = server.running_pid()
    state = f"up, pid {running}" if running else "down"
    print(f"Spark Connect: {state} ({connect_url(server.port)})")
    return 0 if running else 1


if __name__ == "__main__":
    run_cli(main)
