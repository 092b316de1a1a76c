"""Spark Connect: the local server is locked down, and the job gives the same output over it.

One server for the session (tests/conftest.py ``spark_connect``), started from the installed
pyspark by lib.connect_server exactly as `make up` starts it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psutil
import pytest

from lib import predict, schema
from lib.api_server import port_is_free
from lib.connect_server import ConnectServer, ConnectServerError, connect_url
from lib.errors import InvalidInputError
from lib.settings import PROJECT_ROOT, Settings
from tests.helpers import python_module
from tests.project import Project


def client(port: int, token: str | None):
    """A fresh client session (not the shared one), with or without a token."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    url = connect_url(port) + (f"/;token={token}" if token is not None else "")
    return ConnectSession.builder.remote(url).create()


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_client_without_the_right_token_is_refused(spark_connect, token: str | None) -> None:
    from pyspark.errors.exceptions.connect import SparkConnectGrpcException

    session = client(spark_connect.port, token)
    try:
        with pytest.raises(SparkConnectGrpcException, match=r"(?i)authentication token"):
            session.range(1).collect()
    finally:
        session.stop()


def test_the_token_file_is_readable_by_its_owner_only(spark_connect) -> None:
    assert spark_connect.token_path.stat().st_mode & 0o777 == 0o600
    assert len(spark_connect.token()) >= 32


def test_the_server_listens_on_loopback_only(spark_connect) -> None:
    state = json.loads(spark_connect.state_path.read_text())
    listening = [
        c.laddr
        for c in psutil.Process(state["pid"]).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == spark_connect.port
    ]
    assert listening and {addr.ip for addr in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}


def test_the_hardening_is_set_server_side(connect_session) -> None:
    from pyspark.errors import AnalysisException

    with pytest.raises(AnalysisException, match="RESTRICTED"):
        connect_session.sql(
            "SELECT reflect('java.lang.System', 'getProperty', 'user.name')"
        ).collect()
    with pytest.raises(AnalysisException):
        connect_session.sql("SELECT * FROM parquet.`/etc`").collect()
    assert connect_session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert connect_session.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"


def test_the_job_over_connect_equals_the_classic_run_on_both_scoring_paths(
    project: Project, spark, connect_session, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("connect vs classic", "age > 30 OR country = 'DE'")
    outputs = {}
    runs = [(t, s, p) for t, s in [("classic", spark), ("connect", connect_session)]
            for p in ("python-reads", "spark-reads")]  # fmt: skip
    for transport, session, path in runs:
        out = tmp_path / f"{transport}-{path}.parquet"
        result = predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(project.users),
            output_path=str(out),
            spark=session,
            model_dir=project.models,
            echo=lambda line: None,
            scoring_path=path,
        )
        assert result.scoring_path == path
        outputs[transport, path] = (pd.read_parquet(out).sort_values(schema.USER_ID), result)
    columns = [
        schema.USER_ID,
        schema.SCORE,
        schema.DECILE,
        schema.GROUP,
        "model_sha256",
        schema.CAMPAIGN_ID,
    ]
    first, first_result = outputs["classic", "python-reads"]
    assert len(first) > 0
    for frame, result in outputs.values():  # row for row, bit for bit
        pd.testing.assert_frame_equal(
            first[columns].reset_index(drop=True), frame[columns].reset_index(drop=True)
        )
        assert result.decile_cut_points == first_result.decile_cut_points


def test_bigquery_without_the_connector_is_refused_over_connect(
    project: Project, connect_session
) -> None:
    campaign_id = project.create_campaign("connect bigquery", "age > 20")
    with pytest.raises(InvalidInputError, match="spark-bigquery connector"):
        predict.run_job(
            campaign_id,
            config_api_url=project.url,
            input_path=str(project.users),
            output_path="bigquery:my-project.marketing.predictions",
            spark=connect_session,
            model_dir=project.models,
            echo=lambda line: None,
        )


def test_the_cli_job_uses_spark_remote(project: Project, spark_connect, tmp_path: Path) -> None:
    campaign_id = project.create_campaign("connect cli", "age > 40")
    env = {
        **project.env,
        "SPARK_REMOTE": connect_url(spark_connect.port),
        "SPARK_CONNECT_AUTHENTICATE_TOKEN": spark_connect.token(),
    }
    output = str(tmp_path / "out.parquet")
    out = python_module(
        "lib.predict", "--campaign-id", str(campaign_id), "--output", output, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Using incubator modules" not in out.stderr  # no JVM of its own in the client
    users = pd.read_parquet(project.users)
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == int((users.age > 40).sum())


def _python_daemon_of_a_new_session(server: ConnectServer) -> set[int]:
    """The parent process (Spark's Python daemon) of the workers a new session's job uses."""
    session = client(server.port, server.token())
    try:

        def daemon(batches):
            import os

            import pyarrow as pa

            for _ in batches:
                pass
            yield pa.RecordBatch.from_pylist([{"daemon": os.getppid()}])

        return {
            row.daemon
            for row in session.range(0, 4, 1, 2).mapInArrow(daemon, "daemon long").collect()
        }
    finally:
        session.stop()


def test_every_session_shares_the_servers_python_workers(spark_connect) -> None:
    # Spark's own server class gave each session a Python daemon and workers of its own:
    # about 1.5 s of start-up per `make score`, and three processes left behind each time.
    first = _python_daemon_of_a_new_session(spark_connect)
    second = _python_daemon_of_a_new_session(spark_connect)
    assert len(first) == 1
    assert second == first


def test_the_warm_up_job_scores_and_summarises_on_the_server(
    connect_session, tmp_path: Path
) -> None:
    from lib.warm_up import WARM_UP_USERS, warm_up

    audience = warm_up(connect_session, tmp_path)
    assert 0 < audience < WARM_UP_USERS  # the filter ran and kept some users
    written = pd.read_parquet(tmp_path / "predictions.parquet")
    assert len(written) == audience
    assert written[schema.SCORE].between(0, 1).all()


def test_a_server_started_elsewhere_is_reported_not_reused(spark_connect) -> None:
    state = json.loads(spark_connect.state_path.read_text())
    try:
        foreign = {**state, "identity": {**state["identity"], "project_root": "/elsewhere"}}
        spark_connect.state_path.write_text(json.dumps(foreign))
        same_port = ConnectServer(spark_connect.port, settings=spark_connect.settings)
        with pytest.raises(ConnectServerError, match="another checkout, venv or pyspark") as err:
            same_port.start()
        assert f"checkout {PROJECT_ROOT} here, /elsewhere there" in str(err.value)
    finally:
        spark_connect.state_path.write_text(json.dumps(state))
    assert spark_connect.running_pid() == state["pid"]


def test_the_same_checkout_through_a_symlink_reuses_the_server(
    spark_connect, tmp_path: Path
) -> None:
    state = json.loads(spark_connect.state_path.read_text())
    link = tmp_path / "checkout"
    link.symlink_to(PROJECT_ROOT)
    try:
        spelled = {**state, "identity": {**state["identity"], "project_root": str(link)}}
        spark_connect.state_path.write_text(json.dumps(spelled))
        same_port = ConnectServer(spark_connect.port, settings=spark_connect.settings)
        assert same_port.running_pid() == state["pid"]
    finally:
        spark_connect.state_path.write_text(json.dumps(state))


def test_a_port_taken_by_another_program_is_reported(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        server = ConnectServer(port, settings=Settings(cache_dir=tmp_path, output_dir=tmp_path))
        with pytest.raises(ConnectServerError, match="in use by a program"):
            server.start()


def test_make_score_uses_the_local_server_when_it_is_up(
    spark_connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib import runner
    from lib.settings import get_settings

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("SPARK_MASTER", raising=False)
    monkeypatch.delenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", raising=False)
    monkeypatch.setenv("SPARK_CONNECT_PORT", str(spark_connect.port))
    monkeypatch.setenv("CACHE_DIR", str(spark_connect.settings.cache_dir))
    get_settings.cache_clear()
    try:
        runner._use_local_spark_connect()
        assert os.environ["SPARK_REMOTE"] == connect_url(spark_connect.port)
        assert "SPARK_CONNECT_AUTHENTICATE_TOKEN" not in os.environ  # read from its file
    finally:
        for name in ("SPARK_REMOTE", "SPARK_CONNECT_AUTHENTICATE_TOKEN"):
            os.environ.pop(name, None)
        get_settings.cache_clear()


def test_the_env_command_gives_make_lab_the_client_variables(spark_connect) -> None:
    env = {
        **os.environ,
        "CACHE_DIR": str(spark_connect.settings.cache_dir),
        "SPARK_CONNECT_PORT": str(spark_connect.port),
    }
    out = subprocess.run(
        [sys.executable, "-m", "lib.connect_server", "env"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert out.returncode == 0, out.stderr
    # The token stays in its file: `env $(...) jupyter lab` would show it to `ps`.
    assert out.stdout.splitlines() == [f"SPARK_REMOTE={connect_url(spark_connect.port)}"]


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # exited meanwhile (a Python worker of the warm-up job)
        return ""


def _services(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lib.services", action],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=PROJECT_ROOT,
    )


def _services_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from lib.api_server import free_port

    return {
        **os.environ,
        "CACHE_DIR": str(tmp_path / "cache"),
        "DATA_DIR": str(tmp_path / "data"),
        "OUTPUT_DIR": str(tmp_path / "output"),
        "API_PORT": str(free_port()),
        "SPARK_CONNECT_PORT": str(free_port()),
        "SPARK_MASTER": "local[1]",
        **extra,
    }


def test_make_up_is_idempotent_and_make_down_stops_only_what_it_started(tmp_path: Path) -> None:
    env = _services_env(tmp_path)

    def services(action: str) -> subprocess.CompletedProcess[str]:
        return _services(action, env)

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        first = services("up")
        assert first.returncode == 0, first.stderr[-3000:]
        assert f"http://127.0.0.1:{env['API_PORT']}" in first.stdout
        assert f"sc://localhost:{env['SPARK_CONNECT_PORT']}" in first.stdout
        # The first scoring job's start-up is paid by `make up` (lib.warm_up), in a folder it
        # removes again.
        assert "Spark Connect warmed up" in first.stdout, first.stdout
        assert not list((tmp_path / "cache").glob("warm-up-*"))
        settings = Settings(cache_dir=tmp_path / "cache")
        server_pid = ConnectServer(int(env["SPARK_CONNECT_PORT"]), settings=settings).running_pid()
        assert server_pid is not None
        server_tree = psutil.Process(server_pid).children(recursive=True)
        assert any("connect_driver.py" in _cmdline(p) for p in server_tree)
        pids = {p for p in psutil.pids() if psutil.pid_exists(p)}
        second = services("up")  # idempotent: the same processes answer
        assert second.returncode == 0  # the same lines, and no second warm-up
        assert second.stdout.splitlines() == [
            line for line in first.stdout.splitlines() if "warmed up" not in line
        ]
        assert services("status").returncode == 0
        started = [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if env["SPARK_CONNECT_PORT"] in " ".join(p.info["cmdline"] or [])
            or env["API_PORT"] in " ".join(p.info["cmdline"] or [])
        ]
        assert len(started) >= 2 and set(started) <= pids
        down = services("down")
        assert down.returncode == 0 and "Spark Connect stopped" in down.stdout
        # The server's driver and Python workers go with its JVM.
        _gone, alive = psutil.wait_procs(server_tree, timeout=10)
        assert not alive
        assert not [
            p
            for p in started
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert services("status").returncode == 1
        assert bystander.poll() is None  # nothing else was stopped
    finally:
        bystander.kill()
        services("down")


def test_make_up_with_the_spark_port_taken_starts_nothing(tmp_path: Path) -> None:
    # The report: `up` said the Connect port was taken, but the API it had started stayed up.
    env = _services_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["SPARK_CONNECT_PORT"])))
        squatter.listen()
        out = _services("up", env)
    assert out.returncode != 0
    errors = [line for line in out.stderr.splitlines() if line.startswith("❌")]
    assert len(errors) == 1 and "nothing was started" in errors[0], out.stderr
    assert port_is_free(int(env["API_PORT"]))
    assert _services("status", env).returncode == 1


def test_make_up_stops_the_api_it_started_when_spark_fails_to_start(tmp_path: Path) -> None:
    env = _services_env(tmp_path, SPARK_DRIVER_MEMORY="1x")  # the JVM refuses to start
    try:
        out = _services("up", env)
        assert out.returncode != 0
        errors = [line for line in out.stderr.splitlines() if line.startswith("❌")]
        assert len(errors) == 1, out.stderr
        assert "stopped what this `make up` had started (the config API)" in errors[0]
        assert port_is_free(int(env["API_PORT"]))
        assert not (tmp_path / "cache" / "services" / f"api-{env['API_PORT']}.json").exists()
    finally:
        _services("down", env)


def test_the_projects_client_finds_the_token_and_dials_loopback_itself(
    spark_connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPARK_REMOTE alone: the client reads the token file of *our* server on that port and
    connects to 127.0.0.1 (``localhost`` might resolve to ::1, where anyone could listen)."""
    from lib.settings import get_settings
    from lib.spark import connect_spark

    monkeypatch.delenv("SPARK_CONNECT_AUTHENTICATE_TOKEN", raising=False)
    monkeypatch.setenv("CACHE_DIR", str(spark_connect.settings.cache_dir))
    monkeypatch.setenv("SPARK_CONNECT_MODE_ENABLED", "0")  # restored after: classic tests follow
    get_settings.cache_clear()
    try:
        session = connect_spark(connect_url(spark_connect.port))
        from pyspark.sql import functions as F

        assert type(F.col("x")).__module__.startswith("pyspark.sql.connect")  # notebooks' F
        assert session.range(3).count() == 3
        assert session.conf.get("spark.sql.runSQLOnFiles") == "false"
        assert session.client._builder.endpoint != "127.0.0.1"  # the URL says localhost...
        channel_target = type(session.client._builder).__name__
        assert channel_target == "LoopbackChannelBuilder"  # ...the channel dials 127.0.0.1
        session.stop()
    finally:
        get_settings.cache_clear()


def test_the_token_file_is_never_sent_to_a_port_our_server_does_not_own(
    spark_connect, tmp_path: Path
) -> None:
    """A squatter on another port gets no token: the file belongs to our server only."""
    import socket
    import threading

    from lib.spark import connect_spark

    received: list[bytes] = []
    mode = os.environ.get("SPARK_CONNECT_MODE_ENABLED")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen(1)
        port = squatter.getsockname()[1]
        # Pretend the token file of *this* port exists (copied from our real server).
        fake = ConnectServer(port, settings=spark_connect.settings)
        fake._private_dir()
        fake.token_path.write_text(spark_connect.token())

        def accept() -> None:
            squatter.settimeout(10)
            try:
                conn, _ = squatter.accept()
                conn.settimeout(2)
                received.append(conn.recv(65536))
                conn.close()
            except OSError:
                pass

        listener = threading.Thread(target=accept)
        listener.start()
        try:
            with pytest.raises(Exception):
                connect_spark(connect_url(port)).range(1).collect()
        finally:
            listener.join()
            fake.token_path.unlink(missing_ok=True)
            if mode is None:  # pyspark's remote builder sets it; classic tests follow
                os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    assert not any(spark_connect.token().encode() in chunk for chunk in received)
