"""The API never answers 5xx to a client's input, on SQLite and PostgreSQL.

One test (or one parametrised family) per class of input an adversarial review broke the
API with: unencodable text, NaN, datetimes that overflow in UTC, null on non-nullable
fields, lax integers in paths, huge bodies and echoes, malformed stored rows, and the
database constraints and run staleness that back what the API promises.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from api.limits import MAX_BODY_BYTES, MAX_ECHO_CHARS, MAX_ERRORS
from api.models import name_key
from tests.api.conftest import SEED_BODY, reset_caches

JSON_HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """Direct access to the database under test, for writes that go around the API."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def create(client: TestClient, **overrides: object) -> dict:
    response = client.post("/campaigns/", json={**SEED_BODY, **overrides})
    assert response.status_code == 201, response.text
    return response.json()


def post_raw(client: TestClient, path: str, body: bytes, method: str = "post"):
    return client.request(method.upper(), path, content=body, headers=JSON_HEADERS)


def locs(response) -> list[list]:
    return [item["loc"] for item in response.json()["detail"]]


# -- 1. text no database can store faithfully ------------------------------------------------

# JSON text (not Python objects): a lone surrogate only exists as a JSON escape.
UNSAFE = [r"a\ud800b", r"\udfff", "a\\u0000b"]
TEXT_FIELDS = [
    ("/campaigns/", "post", {**SEED_BODY}, ["name"]),
    ("/campaigns/", "post", {**SEED_BODY}, ["model_path"]),
    ("/campaigns/", "post", {**SEED_BODY}, ["audience_filter"]),
    ("/campaigns/", "post", {**SEED_BODY}, ["features", 0]),
    ("/campaigns/1", "put", {}, ["name"]),
    ("/campaigns/1/runs", "post", {}, ["output_path"]),
    ("/campaigns/1/runs", "post", {}, ["error_message"]),
    ("/campaigns/1/runs/1", "patch", {}, ["error_message"]),
    ("/audience/preview", "post", {}, ["audience_filter"]),
]


def _with_json_text(body: dict, path: list, raw: str) -> bytes:
    """``body`` as JSON with the value at ``path`` replaced by the JSON string ``raw``."""
    marker = "@@MARKER@@"
    body = json.loads(json.dumps(body))  # a copy
    target = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = marker
    return json.dumps(body).replace(json.dumps(marker), f'"{raw}"').encode()


@pytest.mark.parametrize("raw", UNSAFE)
@pytest.mark.parametrize(("path", "method", "body", "field"), TEXT_FIELDS)
def test_unstorable_text_is_422_naming_the_field(
    client: TestClient, path: str, method: str, body: dict, field: list, raw: str
) -> None:
    create(client)
    client.post("/campaigns/1/runs", json={})
    response = post_raw(client, path, _with_json_text(body, field, raw), method)
    assert response.status_code == 422, response.text
    assert ["body", *field] in locs(response)
    json.loads(response.content.decode("utf-8", errors="strict"))  # encodable, valid JSON
    assert [c["name"] for c in client.get("/campaigns/").json()] == [SEED_BODY["name"]]


@pytest.mark.parametrize(
    "body",
    [
        rb'{"is_active": "\ud83d", "name": 1}',  # a wrong type, echoed
        rb'{"\ud800x": 1}',  # an unknown key, named in loc
        rb'{"features": ["\udc00", {"\ud800": [NaN]}]}',
    ],
)
def test_unencodable_echoes_are_escaped(client: TestClient, body: bytes) -> None:
    response = post_raw(client, "/campaigns/", body.replace(b"NaN", b"1e999"))
    assert response.status_code == 422
    detail = json.loads(response.content.decode("utf-8", errors="strict"))["detail"]
    assert "\\ud8" in json.dumps(detail) or "\\udc" in json.dumps(detail), detail


# -- 2. NaN and Infinity are not JSON ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/campaigns/", b'{"name": NaN}'),
        ("/campaigns/", b'{"is_active": Infinity}'),
        ("/campaigns/1/runs", b'{"input_rows": -Infinity}'),
        ("/audience/preview", b'{"sample_size": NaN}'),
        ("/campaigns/", b"[" * 5000 + b"]" * 5000),  # deeper than the parser's recursion
        ("/campaigns/", b'{"name": "\xff"}'),  # not UTF-8
    ],
)
def test_non_json_bodies_are_422(client: TestClient, path: str, body: bytes) -> None:
    create(client)
    response = post_raw(client, path, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "json_invalid"


# -- 3. datetimes that leave the calendar in UTC -------------------------------------------------


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
@pytest.mark.parametrize("field", ["started_at", "finished_at"])
def test_datetimes_overflowing_utc_are_422(client: TestClient, stamp: str, field: str) -> None:
    cid = create(client)["id"]
    response = client.post(f"/campaigns/{cid}/runs", json={field: stamp})
    assert response.status_code == 422, response.text
    assert locs(response) == [["body", field]]
    run = client.post(f"/campaigns/{cid}/runs", json={}).json()
    patched = client.patch(f"/campaigns/{cid}/runs/{run['id']}", json={"heartbeat_at": stamp})
    assert patched.status_code == 422


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59Z"),
        ("3000-01-01T00:30:00+00:30", "3000-01-01T00:00:00Z"),
        ("2999-11-26T12:00:00+02:00", "2999-11-26T10:00:00Z"),
    ],
)
def test_datetimes_at_the_edges_are_stored_in_utc(
    client: TestClient, sent: str, stored: str
) -> None:
    # finished_at: started_at and heartbeat_at are never stored in the future (section 10),
    # and no time may precede the run's creation (api.run_states).
    cid = create(client)["id"]
    created = client.post(f"/campaigns/{cid}/runs", json={}).json()
    url = f"/campaigns/{cid}/runs/{created['id']}"
    run = client.patch(url, json={"status": "failed", "finished_at": sent})
    assert run.status_code == 200, run.text
    assert run.json()["finished_at"] == stored
    again = client.get(f"/campaigns/{cid}/runs/{run.json()['id']}").json()
    assert again["finished_at"] == stored


# -- 4. null on fields that cannot be null ----------------------------------------------------


def test_null_status_on_run_patch_is_422_and_changes_nothing(client: TestClient) -> None:
    cid = create(client)["id"]
    run = client.post(f"/campaigns/{cid}/runs", json={"status": "queued"}).json()
    response = client.patch(f"/campaigns/{cid}/runs/{run['id']}", json={"status": None})
    assert response.status_code == 422
    assert "may not be null" in response.text
    assert client.get(f"/campaigns/{cid}/runs/{run['id']}").json()["status"] == "queued"


# -- 7. strict integers in paths and queries --------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/campaigns/1_0",
        "/campaigns/+1",
        "/campaigns/1.0",
        "/campaigns/01",
        "/campaigns/%201",
        "/campaigns/1%20",
        "/campaigns/0x1",
        "/campaigns/１",  # a full-width digit: int() reads it as 1
        "/campaigns/1/runs/0_1",
        "/campaigns/1/runs/+1",
        "/campaigns/?offset=+1",
        "/campaigns/?offset=00",
        "/campaigns/?limit=1_0",
        "/campaigns/?limit=1.0",
        "/campaigns/?is_active=1",
        "/campaigns/?is_active=yes",
        "/campaigns/1/runs?limit=+5",
        "/campaigns/1/audience?sample_size=+1",
    ],
)
def test_lax_integers_are_422(client: TestClient, path: str) -> None:
    for i in range(10):
        create(client, name=f"c{i}")
    client.post("/campaigns/1/runs", json={})
    response = client.get(path)
    assert response.status_code == 422, (path, response.text)


def test_plain_decimals_still_work(client: TestClient) -> None:
    for i in range(10):
        create(client, name=f"c{i}")
    assert client.get("/campaigns/10").json()["name"] == "c9"
    assert len(client.get("/campaigns/?offset=0&limit=3&is_active=true").json()) == 3


# -- 8. bounded bodies and bounded echoes -----------------------------------------------------


def test_declared_large_body_is_413_json(client: TestClient) -> None:
    body = b'{"name": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = post_raw(client, "/campaigns/", body)
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_streamed_large_body_is_413_json(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = client.post("/campaigns/", content=chunks(), headers=JSON_HEADERS)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body larger than")


def test_422_echoes_a_bounded_excerpt(client: TestClient) -> None:
    # Just under the limit: 80,000 unknown keys and three missing fields, each of whose
    # errors would otherwise echo the whole body.
    body = {f"u{i}": 1 for i in range(80_000)}
    body["name"] = "n" * 5000
    raw = json.dumps(body).encode()
    assert len(raw) < MAX_BODY_BYTES
    response = post_raw(client, "/campaigns/", raw)
    assert response.status_code == 422
    assert len(response.content) < 20_000
    detail = response.json()["detail"]
    assert len(detail) == MAX_ERRORS + 1
    assert detail[-1]["type"] == "too_many_errors"
    for item in detail[:-1]:
        shown = item.get("input")
        assert len(json.dumps(shown)) <= 2 * MAX_ECHO_CHARS + 10, shown


# -- 6. malformed stored rows -----------------------------------------------------------------


@contextmanager
def around_the_api(engine: Engine, table: str, constraint: str) -> Iterator[Connection]:
    """A connection that may write what ``constraint`` forbids, as a writer on an older or
    hand-altered schema could. The constraint is back (and valid) afterwards."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.execute(text("PRAGMA ignore_check_constraints = ON"))
            yield connection
            connection.execute(text("PRAGMA ignore_check_constraints = OFF"))
            return
        definition = connection.scalar(
            text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :name"),
            {"name": constraint},
        )
        connection.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT {constraint}"))
        yield connection
        # Back for new rows at once; the rows written above stay until the test ends.
        connection.execute(
            text(f"ALTER TABLE {table} ADD CONSTRAINT {constraint} {definition} NOT VALID")
        )


def _clean_up(engine: Engine, table: str, constraint: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM campaigns"))
        if engine.dialect.name == "postgresql":
            connection.execute(text(f"ALTER TABLE {table} VALIDATE CONSTRAINT {constraint}"))


def _insert(name: str, features: str = '["recency"]', is_active: str = "true") -> str:
    stamp = "'2026-11-26 12:00:00'"
    return (
        "INSERT INTO campaigns (name, name_key, model_path, features, is_active, created_at, "
        f"updated_at) VALUES ('{name}', '{name_key(name)}', 'models/campaign_model_v1.pkl', "
        f"'{features}', {is_active}, {stamp}, {stamp})"
    )


def _malformed_rows(dialect: str) -> dict[str, tuple[str, str]]:
    """name -> (INSERT statement, what the 409 must mention)."""
    rows = {
        "scalar features": (_insert("scalar features", '"recency"'), "features"),
        "numbers as features": (_insert("numbers as features", "[1, 2]"), "features"),
        "object features": (_insert("object features", '{"a": 1}'), "features"),
    }
    if dialect == "sqlite":  # PostgreSQL's own types refuse these
        rows |= {
            "not json": (_insert("not json", "not json"), "features"),
            "is_active 2": (_insert("is_active 2", is_active="2"), "is_active"),
            "is_active yes": (_insert("is_active yes", is_active="'yes'"), "is_active"),
            "bad timestamp": (
                _insert("bad timestamp").replace("'2026-11-26 12:00:00')", "'garbage')"),
                "updated_at",
            ),
        }
    return rows


def test_malformed_rows_are_409_alone_and_skipped_in_lists(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    good_first = create(client, name="good first")
    rows = _malformed_rows(engine.dialect.name)
    constraint = "ck_campaigns_features_array"
    try:
        with around_the_api(engine, "campaigns", constraint) as connection:
            for statement, _ in rows.values():
                connection.execute(text(statement))
        good_last = create(client, name="good last")
        ids = {c["name"]: c["id"] for c in [good_first, good_last]}
        with engine.connect() as connection:
            stored = connection.execute(text("SELECT name, id FROM campaigns")).all()
        ids |= dict(stored)  # type: ignore[arg-type]

        for name, (_, field) in rows.items():
            response = client.get(f"/campaigns/{ids[name]}")
            assert response.status_code == 409, (name, response.text)
            message = response.json()["detail"]
            assert "malformed" in message and field in message, message

        with caplog.at_level(logging.WARNING, logger="api"):
            listing = client.get("/campaigns/")
        assert listing.status_code == 200
        assert [c["name"] for c in listing.json()] == ["good first", "good last"]
        assert listing.headers["x-total-count"] == str(len(rows) + 2)  # stored rows
        assert listing.headers["x-skipped-count"] == str(len(rows))
        assert sum("skipping" in r.message for r in caplog.records) == len(rows)
        # A malformed row can be repaired through the API by sending the wrong fields...
        broken = ids["scalar features"]
        repaired = client.put(f"/campaigns/{broken}", json={"features": SEED_BODY["features"]})
        assert repaired.status_code == 200, repaired.text
        assert client.get(f"/campaigns/{broken}").status_code == 200
        # ... but a change that leaves it malformed is refused without writing.
        other = ids["numbers as features"]
        assert client.put(f"/campaigns/{other}", json={"is_active": False}).status_code == 409
        assert client.get(f"/campaigns/{other}/audience").status_code == 409
        assert client.delete(f"/campaigns/{other}").status_code == 204
    finally:
        _clean_up(engine, "campaigns", constraint)


def test_malformed_runs_are_409_alone_and_skipped_in_lists(
    client: TestClient, engine: Engine
) -> None:
    cid = create(client)["id"]
    good = client.post(f"/campaigns/{cid}/runs", json={}).json()
    # SQLite stores text in a BIGINT column; PostgreSQL's types refuse that, so there the
    # damage is a status outside the known set.
    field, value = (
        ("input_rows", "'many'") if engine.dialect.name == "sqlite" else ("status", "'lost'")
    )
    constraint = "ck_campaign_runs_status_known"
    try:
        with around_the_api(engine, "campaign_runs", constraint) as connection:
            connection.execute(
                text(
                    f"INSERT INTO campaign_runs (campaign_id, status, {field}, created_at) "
                    f"VALUES ({cid}, 'running', {value}, '2026-11-26 12:00:00')"
                    if field == "input_rows"
                    else "INSERT INTO campaign_runs (campaign_id, status, created_at) "
                    f"VALUES ({cid}, {value}, '2026-11-26 12:00:00')"
                )
            )
        bad_id = good["id"] + 1
        response = client.get(f"/campaigns/{cid}/runs/{bad_id}")
        assert response.status_code == 409
        assert field in response.json()["detail"]
        listing = client.get(f"/campaigns/{cid}/runs")
        assert [r["id"] for r in listing.json()] == [good["id"]]
        assert listing.headers["x-skipped-count"] == "1"
        repair = {field: None if field == "input_rows" else "failed"}
        fixed = client.patch(f"/campaigns/{cid}/runs/{bad_id}", json=repair)
        assert fixed.status_code == 200, fixed.text
    finally:
        _clean_up(engine, "campaign_runs", constraint)


# -- 9. the database constrains what the API guarantees ---------------------------------------

CAMPAIGN = (
    "INSERT INTO campaigns (name, name_key, model_path, features, is_active, holdout_share, "
    "input_tolerance, created_at, updated_at) VALUES ({name}, {name_key}, {model_path}, "
    "{features}, {is_active}, {holdout_share}, {input_tolerance}, {stamp}, {stamp})"
)
CAMPAIGN_OK = {
    "name": "'ok'",
    "name_key": f"'{name_key('ok')}'",
    "model_path": "'models/campaign_model_v1.pkl'",
    "features": "'[\"recency\"]'",
    "is_active": "true",
    "holdout_share": "0.1",
    "input_tolerance": "0.05",
    "stamp": "'2026-11-26 12:00:00'",
}
RUN = (
    "INSERT INTO campaign_runs (campaign_id, status, input_rows, audience_size, scored_rows, "
    "model_sha256, output_path, scoring_path, control_size, max_psi, score_shares, as_of, "
    "created_at) VALUES ({campaign_id}, {status}, {input_rows}, {audience_size}, "
    "{scored_rows}, {model_sha256}, {output_path}, {scoring_path}, {control_size}, "
    "{max_psi}, {score_shares}, {as_of}, '2026-11-26 12:00:00')"
)
RUN_OK = {
    "campaign_id": "1",
    "status": "'running'",
    "input_rows": "10",
    "audience_size": "5",
    "scored_rows": "5",
    "model_sha256": "'" + "a" * 64 + "'",
    "output_path": "'out.parquet'",
    "scoring_path": "'python-reads'",
    "control_size": "1",
    "max_psi": "0.02",
    "score_shares": "'[0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1,0.1]'",
    "as_of": "'2026-12-01'",
}


FORBIDDEN = [  # (table, field, value, databases whose CHECK constraints refuse it)
    ("campaigns", "name", "''", "both"),
    ("campaigns", "name", "'" + "n" * 201 + "'", "both"),
    ("campaigns", "model_path", "''", "both"),
    ("campaigns", "features", "'\"recency\"'", "both"),
    ("campaigns", "features", "'[]'", "both"),
    ("campaigns", "features", "'{}'", "both"),
    ("campaigns", "features", "'[1, 2]'", "postgresql"),  # SQLite: no element check
    ("campaigns", "features", "'not json'", "both"),  # PostgreSQL: jsonb itself
    ("campaigns", "is_active", "2", "both"),  # PostgreSQL: boolean itself
    ("campaigns", "is_active", "'yes'", "sqlite"),  # PostgreSQL reads it as a real true
    ("campaign_runs", "status", "'exploded'", "both"),
    ("campaign_runs", "input_rows", "-1", "both"),
    ("campaign_runs", "scored_rows", "-5", "both"),
    ("campaign_runs", "audience_size", "'many'", "both"),  # PostgreSQL: bigint itself
    ("campaign_runs", "model_sha256", "'" + "A" * 64 + "'", "both"),
    ("campaign_runs", "model_sha256", "'abc'", "both"),
    ("campaign_runs", "output_path", "'" + "p" * 1001 + "'", "both"),
    ("campaign_runs", "scoring_path", "'jvm'", "both"),
    ("campaigns", "holdout_share", "0.6", "both"),
    ("campaigns", "holdout_share", "-0.1", "both"),
    ("campaigns", "holdout_share", "'a lot'", "both"),  # PostgreSQL: float itself
    ("campaigns", "holdout_share", "NULL", "both"),
    ("campaigns", "input_tolerance", "1.5", "both"),
    ("campaign_runs", "control_size", "-1", "both"),
    ("campaign_runs", "control_size", "1.5", "sqlite"),  # PostgreSQL rounds into bigint
    ("campaign_runs", "max_psi", "-0.5", "both"),
    ("campaign_runs", "score_shares", "'[0.5, 0.5]'", "both"),
    ("campaign_runs", "score_shares", "'{}'", "both"),
    ("campaign_runs", "as_of", "'not a date'", "both"),  # PostgreSQL: date itself
    ("campaign_runs", "as_of", "'2026-02-30'", "both"),
]


def test_database_refuses_what_the_api_would(client: TestClient, engine: Engine) -> None:
    create(client)
    accepted = []
    for table, field, value, databases in FORBIDDEN:
        if databases not in ("both", engine.dialect.name):
            continue
        template, ok = (CAMPAIGN, CAMPAIGN_OK) if table == "campaigns" else (RUN, RUN_OK)
        valid = (
            {**ok, "name": "'valid'", "name_key": f"'{name_key('valid')}'"}
            if table == "campaigns"
            else ok
        )
        with engine.connect() as connection:
            transaction = connection.begin()
            # The statement itself is right: the valid row goes in ...
            connection.execute(text(template.format(**valid)))
            nested = connection.begin_nested()
            try:  # ... and the one forbidden value does not.
                connection.execute(text(template.format(**{**ok, field: value})))
                accepted.append((table, field, value[:20]))
            except (IntegrityError, DataError, ProgrammingError):  # refused, by CHECK or type
                nested.rollback()
            transaction.rollback()
    assert accepted == []


# -- 10. runs that stop reporting become stale ------------------------------------------------


def _age_run(engine: Engine, run_id: int, age: timedelta) -> None:
    then = (datetime.now(UTC) - age).replace(tzinfo=None).isoformat(sep=" ")
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE campaign_runs SET created_at = :t, started_at = :t WHERE id = :id"),
            {"t": then if engine.dialect.name == "sqlite" else f"{then}+00", "id": run_id},
        )


def test_silent_running_run_becomes_stale_and_a_heartbeat_revives_it(
    client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid = create(client)["id"]
    run = client.post(f"/campaigns/{cid}/runs", json={"status": "running"}).json()
    assert run["stale"] is False and run["heartbeat_at"] is None
    url = f"/campaigns/{cid}/runs/{run['id']}"

    _age_run(engine, run["id"], timedelta(minutes=4))  # default limit: 180 s
    assert client.get(url).json()["stale"] is True
    assert client.get(f"/campaigns/{cid}/runs").json()[0]["stale"] is True

    beat = datetime.now(UTC).isoformat()
    revived = client.patch(url, json={"heartbeat_at": beat})
    assert revived.status_code == 200
    assert revived.json()["stale"] is False
    assert datetime.fromisoformat(revived.json()["heartbeat_at"]) == datetime.fromisoformat(beat)

    old_beat = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert client.patch(url, json={"heartbeat_at": old_beat}).json()["stale"] is True

    monkeypatch.setenv("RUN_STALE_AFTER_SECONDS", "3600")  # the limit is a setting
    reset_caches()
    assert client.get(url).json()["stale"] is False
    monkeypatch.setenv("RUN_STALE_AFTER_SECONDS", "180")
    reset_caches()

    finished = client.patch(url, json={"status": "failed", "error_message": "lost"}).json()
    assert finished["stale"] is False  # only queued or running runs go stale


def test_queued_run_goes_stale_from_its_creation(client: TestClient, engine: Engine) -> None:
    cid = create(client)["id"]
    run = client.post(f"/campaigns/{cid}/runs", json={"status": "queued"}).json()
    _age_run(engine, run["id"], timedelta(hours=1))
    assert client.get(f"/campaigns/{cid}/runs/{run['id']}").json()["stale"] is True


def _hour_ahead() -> str:
    return (datetime.now(UTC) + timedelta(hours=1)).isoformat()


@pytest.mark.parametrize(
    ("sign_of_life", "when"),
    [
        ("started_at", lambda: "9999-12-31T00:00:00Z"),
        ("heartbeat_at", lambda: "9999-12-31T00:00:00Z"),
        ("heartbeat_at", _hour_ahead),  # a job host whose clock runs ahead
    ],
    ids=["started_at 9999", "heartbeat_at 9999", "heartbeat_at an hour ahead"],
)
def test_future_signs_of_life_are_stored_as_now_and_go_stale(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, sign_of_life: str, when
) -> None:
    """The server's clock decides liveness: a future started_at or heartbeat_at is stored
    as the server's current time, so the run still goes stale when the beats stop."""
    monkeypatch.setenv("RUN_STALE_AFTER_SECONDS", "1")
    reset_caches()
    cid = create(client)["id"]
    before = datetime.now(UTC)
    if sign_of_life == "started_at":
        answer = client.post(f"/campaigns/{cid}/runs", json={"started_at": when()})
    else:
        run = client.post(f"/campaigns/{cid}/runs", json={}).json()
        url = f"/campaigns/{cid}/runs/{run['id']}"
        answer = client.patch(url, json={"heartbeat_at": when()})
    assert answer.status_code in (200, 201), answer.text
    run = answer.json()
    stored = datetime.fromisoformat(run[sign_of_life])
    assert before <= stored <= datetime.now(UTC)
    url = f"/campaigns/{cid}/runs/{run['id']}"
    assert datetime.fromisoformat(client.get(url).json()[sign_of_life]) == stored
    time.sleep(1.5)  # no further beats for longer than RUN_STALE_AFTER_SECONDS
    assert client.get(url).json()["stale"] is True
    assert client.get(f"/campaigns/{cid}/runs").json()[0]["stale"] is True


def test_openapi_documents_the_heartbeat_contract(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "RUN_STALE_AFTER_SECONDS" in schemas["RunPublic"]["properties"]["stale"]["description"]
    for schema, field in (("RunCreate", "started_at"), ("RunUpdate", "heartbeat_at")):
        description = schemas[schema]["properties"][field]["description"]
        assert "stored as the server's current time" in description
    assert "heartbeat_at" in schemas["RunUpdate"]["properties"]
    assert "heartbeat_at" not in schemas["RunCreate"]["properties"]
    assert {"heartbeat_at", "stale"} <= set(schemas["RunPublic"]["required"])


# -- 11. duplicate JSON keys, HEAD and OPTIONS -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"name": "a", "name": "b", "model_path": "m", "features": ["x"]}', "name"),
        (b'{"name": "a", "features": ["x"], "model_path": "m", "features": ["y"]}', "features"),
        (b'{"a": {"k": 1, "k": 2}}', "k"),  # nested objects too
    ],
)
def test_duplicate_json_keys_are_422_naming_the_key(
    client: TestClient, body: bytes, key: str
) -> None:
    response = post_raw(client, "/campaigns/", body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["type"] == "json_invalid"
    assert f"duplicate key '{key}'" in detail["ctx"]["error"]
    assert client.get("/campaigns/").json() == []


def test_head_answers_every_get_route_without_a_body(client: TestClient) -> None:
    cid = create(client)["id"]
    run = client.post(f"/campaigns/{cid}/runs", json={}).json()["id"]
    for path in [
        "/health",
        "/campaigns/",
        f"/campaigns/{cid}",
        f"/campaigns/{cid}/runs",
        f"/campaigns/{cid}/runs/{run}",
        "/campaigns/999",
        "/openapi.json",
    ]:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["content-length"] == str(len(get.content)), path
        assert head.headers.get("x-total-count") == get.headers.get("x-total-count")


def test_options_lists_the_methods_of_a_path(client: TestClient) -> None:
    expected = {
        "/campaigns/": "GET, HEAD, POST, OPTIONS",
        "/campaigns/7": "GET, HEAD, PUT, DELETE, OPTIONS",
        "/campaigns/7/runs/3": "GET, HEAD, PATCH, OPTIONS",
        "/audience/preview": "POST, OPTIONS",
    }
    for path, allow in expected.items():
        response = client.options(path)
        assert response.status_code == 204, path
        assert response.headers["allow"] == allow
    assert client.options("/nowhere").status_code == 404
