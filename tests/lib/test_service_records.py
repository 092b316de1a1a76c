"""`make up` / `make down` records (pid files under CACHE_DIR) shared by every checkout of one
user: a checkout never forgets or stops another checkout's running server, an API started on
one API_HOST is not mistaken for another, and API_PORT=0 is refused where it cannot work.

Stand-ins are plain sleeping processes whose command lines look like the servers'."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from lib.connect_server import SERVER_MAIN, ConnectServer, ServerIdentity, process_start_time
from lib.errors import PipelineError
from lib.services import ApiService, up
from lib.settings import PROJECT_ROOT, Settings, get_settings

SLEEP = "import time; time.sleep(60)"


@pytest.fixture
def fake_uvicorn() -> Iterator[int]:
    process = subprocess.Popen([sys.executable, "-c", SLEEP, "uvicorn", "api.main:app"])
    yield process.pid
    process.kill()
    process.wait()


@pytest.fixture
def fake_connect_server() -> Iterator[int]:
    argv = [sys.executable, "-c", SLEEP, "org.apache.spark.deploy.SparkSubmit", str(SERVER_MAIN)]
    process = subprocess.Popen(argv)
    yield process.pid
    process.kill()
    process.wait()


def api_record(service: ApiService, pid: int, **fields: object) -> None:
    service.state_path.parent.mkdir(parents=True, exist_ok=True)
    state = {"pid": pid, "project_root": str(PROJECT_ROOT), "started": process_start_time(pid)}
    service.state_path.write_text(json.dumps({**state, **fields}))


def test_another_checkouts_running_api_keeps_its_record(tmp_path: Path, fake_uvicorn: int) -> None:
    service = ApiService(Settings(cache_dir=tmp_path, output_dir=tmp_path, api_port=8931))
    api_record(service, fake_uvicorn, project_root=str(tmp_path))  # another checkout's
    assert service._pid() is None
    assert service.stop() is False
    assert service.state_path.exists()


def test_an_api_started_on_another_host_is_reported_not_reused(
    tmp_path: Path, fake_uvicorn: int
) -> None:
    service = ApiService(Settings(cache_dir=tmp_path, output_dir=tmp_path, api_port=8932))
    api_record(service, fake_uvicorn, host="0.0.0.0")
    with pytest.raises(PipelineError) as err:
        service._pid()
    assert "listens on 0.0.0.0, not on API_HOST=127.0.0.1" in str(err.value)
    assert "`make down API_HOST=0.0.0.0 API_PORT=8932`" in str(err.value)


def test_a_record_of_an_exited_api_is_forgotten(tmp_path: Path) -> None:
    service = ApiService(Settings(cache_dir=tmp_path, output_dir=tmp_path, api_port=8933))
    api_record(service, 2**22 + 12345)  # no such process
    assert service._pid() is None and not service.state_path.exists()


def test_make_up_refuses_api_port_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "0")
    monkeypatch.setenv("CACHE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        with pytest.raises(PipelineError, match="needs a fixed API_PORT"):
            up()
    finally:
        get_settings.cache_clear()


def test_make_down_leaves_another_checkouts_spark_connect_alone(
    tmp_path: Path, fake_connect_server: int
) -> None:
    server = ConnectServer(15999, settings=Settings(cache_dir=tmp_path, output_dir=tmp_path))
    theirs = replace(ServerIdentity.current(), project_root=str(tmp_path))
    server.state_path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "pid": fake_connect_server,
        "started": process_start_time(fake_connect_server),
        "identity": asdict(theirs),
    }
    server.state_path.write_text(json.dumps(state))
    server.token_path.write_text("their-token")
    assert server.stop() is False
    assert server.state_path.exists() and server.token_path.read_text() == "their-token"
