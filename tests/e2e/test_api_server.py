"""The API as users run it: a real uvicorn process on loopback, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from api.migrate import upgrade
from lib.settings import PROJECT_ROOT
from tests.api.conftest import SEED_BODY
from tests.conftest import create_postgres_database
from tests.servers import TcpProxy, uvicorn_server

pytestmark = pytest.mark.e2e


def server_env(root: Path, models: Path, database_url: str | None = None) -> dict[str, str]:
    env = {
        "DATA_DIR": str(root / "data"),
        "MODEL_DIR": str(models),
        "OUTPUT_DIR": str(root / "output"),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def test_seed_curl_request_works_verbatim(tmp_path: Path, trained_model_dir: Path) -> None:
    with uvicorn_server(server_env(tmp_path, trained_model_dir), tmp_path / "api.log") as url:
        # The seed README's request (docs/scoring-job.md), character for character but for host
        # and port.
        command = f"""curl -s -X POST {url}/campaigns/ \\
  -H "Content-Type: application/json" \\
  -d '{{
    "name": "Black Friday Campaign",
    "model_path": "models/campaign_model_v1.pkl",
    "audience_filter": "country='\\''US'\\'' AND age > 25",
    "features": ["recency", "frequency", "monetary", "engagement_score", "days_since_last_purchase"]
  }}'"""
        out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True)
        body = json.loads(out.stdout)
        assert body["id"] == 1
        assert body["audience_filter"] == "country='US' AND age > 25"
        assert body["is_active"] is True
        assert {"created_at", "updated_at"} <= set(body)
        assert body.pop("warnings") == []  # the answer to a save: no users data, no warnings
        assert httpx.get(f"{url}/campaigns/1").json() == body
    assert (tmp_path / "data" / "campaigns.db").exists()  # the embedded default database


@pytest.mark.postgres
def test_concurrent_creates_store_each_name_once(
    tmp_path: Path, trained_model_dir: Path, postgres_server_url: str
) -> None:
    url_db, drop = create_postgres_database(postgres_server_url)
    try:
        upgrade(url_db)
        names = [f"campaign {i}" for i in range(70)] + [f"campaign {i}" for i in range(30)]
        env = server_env(tmp_path, trained_model_dir, url_db)
        with uvicorn_server(env, tmp_path / "api.log") as url:

            async def create_all() -> list[httpx.Response]:
                limits = httpx.Limits(max_connections=100)
                async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
                    return await asyncio.gather(
                        *(
                            client.post("/campaigns/", json={**SEED_BODY, "name": name})
                            for name in names
                        )
                    )

            responses = asyncio.run(create_all())
            codes = [r.status_code for r in responses]
            assert codes.count(201) == 70, [r.text for r in responses if r.status_code >= 500][:3]
            assert codes.count(409) == 30, codes
            stored = httpx.get(f"{url}/campaigns/", params={"limit": 1000}).json()
            assert sorted(c["name"] for c in stored) == sorted(set(names))
            assert len({c["id"] for c in stored}) == 70
    finally:
        drop()


@pytest.mark.postgres
def test_database_down_is_503_and_recovers_without_restart(
    tmp_path: Path, trained_model_dir: Path, postgres_server_url: str
) -> None:
    url_db, drop = create_postgres_database(postgres_server_url)
    proxy: TcpProxy | None = None
    try:
        upgrade(url_db)
        real = make_url(url_db)
        proxy = TcpProxy(real.host or "127.0.0.1", real.port or 5432)
        proxy.start()
        via_proxy = real.set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False
        )
        with uvicorn_server(
            server_env(tmp_path, trained_model_dir, via_proxy), tmp_path / "api.log"
        ) as url:
            created = httpx.post(f"{url}/campaigns/", json=SEED_BODY)
            assert created.status_code == 201

            proxy.stop()  # the database "crashes"
            for path in ("/campaigns/1", "/campaigns/", "/health"):
                response = httpx.get(f"{url}{path}", timeout=30)
                assert response.status_code == 503, (path, response.text)
                assert "unavailable" in response.text
            down = httpx.post(f"{url}/campaigns/", json={**SEED_BODY, "name": "x"}, timeout=30)
            assert down.status_code == 503

            proxy.start()  # ... and comes back: pooled connections are re-checked
            assert httpx.get(f"{url}/health").json()["status"] == "ok"
            assert httpx.get(f"{url}/campaigns/1").json()["name"] == SEED_BODY["name"]
    finally:
        if proxy is not None:
            proxy.stop()
        drop()


@pytest.mark.postgres
def test_api_refuses_to_start_on_an_unmigrated_database(
    tmp_path: Path, trained_model_dir: Path, postgres_server_url: str
) -> None:
    url_db, drop = create_postgres_database(postgres_server_url)
    try:
        env = {**server_env(tmp_path, trained_model_dir, url_db)}
        out = subprocess.run(
            [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", "0"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert "run `make migrate`" in out.stderr
        assert "Traceback" not in out.stderr
    finally:
        drop()


def test_api_start_on_a_database_the_migration_refuses_is_one_line(
    tmp_path: Path, trained_model_dir: Path
) -> None:
    """The embedded SQLite database is migrated at start: a stored row that breaks a new
    constraint stops the server with one line naming it, not a traceback, and leaves no
    _alembic_tmp_* table behind (which made every later start fail)."""
    from alembic import command
    from sqlalchemy import create_engine, inspect, text

    from api.migrate import alembic_config

    url_db = f"sqlite:///{tmp_path / 'data' / 'campaigns.db'}"
    (tmp_path / "data").mkdir()
    command.upgrade(alembic_config(url_db), "0001")
    engine = create_engine(url_db)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO campaigns (name, model_path, features, is_active, created_at, "
                "updated_at) VALUES ('odd', 'm.pkl', '[\"recency\"]', 2, "
                "'2026-11-26 12:00:00', '2026-11-26 12:00:00')"
            )
        )
    env = {**os.environ, **server_env(tmp_path, trained_model_dir, url_db)}
    command_line = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    for _ in range(2):  # the second start fails the same way, not on a leftover table
        out = subprocess.run(
            [*command_line, "--port", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode != 0
        assert "Traceback" not in out.stderr, out.stderr
        errors = [line for line in out.stderr.splitlines() if "❌" in line]
        assert len(errors) == 1, out.stderr
        assert "table campaigns: id 1 breaks ck_campaigns_is_active_boolean" in errors[0]
    assert not [t for t in inspect(engine).get_table_names() if t.startswith("_alembic")]
    engine.dispose()


def test_make_migrate_equivalent_prints_the_revision(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'm.db'}"}
    out = subprocess.run(
        [sys.executable, "-m", "api.migrate"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    from api.migrate import head_revision

    assert f"is at revision {head_revision()}" in out.stdout


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of each kind, for a real server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'campaigns.db'}"
        return
    url, drop = create_postgres_database(request.getfixturevalue("postgres_server_url"))
    try:
        upgrade(url)
        yield url
    finally:
        drop()


RACE_ROUNDS = 30
RACE_ANSWERS = {200, 201, 204, 404, 409}


def test_concurrent_delete_and_writes_are_404_or_409_never_500(
    tmp_path: Path, trained_model_dir: Path, served_database: str
) -> None:
    """DELETE races PUT, POST run, PATCH run (and another DELETE) on one campaign, round
    after round: whoever loses is told the campaign or run is gone (404) or taken (409)."""
    env = server_env(tmp_path, trained_model_dir, served_database)
    with uvicorn_server(env, tmp_path / "api.log") as url:

        async def one_round(client: httpx.AsyncClient, n: int) -> list[httpx.Response]:
            created = await client.post("/campaigns/", json={**SEED_BODY, "name": f"race {n}"})
            assert created.status_code == 201, created.text
            cid = created.json()["id"]
            run = (await client.post(f"/campaigns/{cid}/runs", json={})).json()
            beat = {"heartbeat_at": "2026-11-26T12:00:00Z", "scored_rows": n}
            return await asyncio.gather(
                client.put(f"/campaigns/{cid}", json={"is_active": n % 2 == 0}),
                client.delete(f"/campaigns/{cid}"),
                client.post(f"/campaigns/{cid}/runs", json={"status": "queued"}),
                client.patch(f"/campaigns/{cid}/runs/{run['id']}", json=beat),
                client.put(f"/campaigns/{cid}", json={"name": f"race {n} renamed"}),
                client.patch(f"/campaigns/{cid}/runs/{run['id']}", json={"status": "failed"}),
                client.post(f"/campaigns/{cid}/runs", json={}),
                client.delete(f"/campaigns/{cid}"),
                client.get(f"/campaigns/{cid}/runs"),
            )

        async def race() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                rounds = [await one_round(client, n) for n in range(RACE_ROUNDS)]
            return [response for answers in rounds for response in answers]

        responses = asyncio.run(race())
    codes = Counter(r.status_code for r in responses)
    failures = [
        (r.request.method, r.request.url.path, r.text) for r in responses if r.status_code >= 500
    ]
    assert not failures, failures[:3]
    assert set(codes) <= RACE_ANSWERS, codes
    assert codes[204] == RACE_ROUNDS  # exactly one DELETE per round wins
    assert codes[404] >= RACE_ROUNDS  # ... and the other is told the campaign is gone


def test_oversized_bodies_are_413_over_the_wire(tmp_path: Path, trained_model_dir: Path) -> None:
    """Through uvicorn: a declared size over the limit, and a chunked body that grows past it."""
    with uvicorn_server(server_env(tmp_path, trained_model_dir), tmp_path / "api.log") as url:
        port = int(url.rsplit(":", 1)[1])

        def exchange(head: bytes, chunks: list[bytes]) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                sock.sendall(head)
                try:
                    for chunk in chunks:
                        sock.sendall(chunk)
                except OSError:  # the server may answer and close before the rest is sent
                    pass
                answer = b""
                while data := sock.recv(65536):
                    answer += data
                return answer

        head = b"POST /campaigns/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        # Far too large to be worth reading: answered at once, before any body is sent.
        declared = exchange(head + b"Content-Length: 50000000\r\nConnection: close\r\n\r\n", [])
        assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
        assert b"larger than" in declared
        # Sent in full: read, dropped, answered.
        sent = exchange(
            head + b"Content-Length: 2000000\r\nConnection: close\r\n\r\n", [b"x" * 2_000_000]
        )
        assert sent.startswith(b"HTTP/1.1 413"), sent[:200]
        piece = b"x" * 65536
        chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        streamed = exchange(
            b"POST /campaigns/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            [chunk] * 20 + [b"0\r\n\r\n"],
        )
        assert streamed.startswith(b"HTTP/1.1 413"), streamed[:200]
        assert httpx.get(f"{url}/health").status_code == 200  # and the server carries on
