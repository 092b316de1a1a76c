"""Campaign names a marketer can tell apart: nothing invisible, unique as people read them."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from alembic import command
from alembic.util import CommandError
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.migrate import alembic_config, current_revision, upgrade
from api.models import name_key
from tests.api.conftest import SEED_BODY
from tests.helpers import create_postgres_database

INVISIBLE = {
    "escape": "Sale\x1b[2J✅ JOB COMPLETED SUCCESSFULLY",
    "newline": "Sale\n✅ forged line",
    "carriage return": "Sale\rX",
    "tab": "Sale\tX",
    "delete": "Sale\x7f",
    "C1 control": "Sa\x85le",
    "line separator": "Sale\u2028X",
    "paragraph separator": "Sale\u2029X",
    "byte order mark": "\ufeffSale",
    "zero-width space": "Sa\u200ble",
    "bidi override": "Sale\u202eelaS",
    # Characters that render as nothing (Default_Ignorable), blanks, private use, unassigned.
    "combining grapheme joiner": "Dup\u034f",
    "variation selector 17": "Dup\U000e0100",
    "Khmer vowel inherent": "Dup\u17b4",
    "Mongolian selector": "Dup\u180b",
    "Hangul filler": "Dup\u3164",
    "only a Hangul filler": "\u3164",
    "braille blank": "Dup\u2800",
    "private use": "Dup\ue000",
    "unassigned": "Dup\u0378",
    "only an emoji presentation selector": "\ufe0f",
}


def create(client: TestClient, name: str):
    return client.post("/campaigns/", json={**SEED_BODY, "name": name})


@pytest.mark.parametrize("name", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_names_with_control_or_invisible_characters_are_422(client: TestClient, name: str) -> None:
    response = create(client, name)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "name"]
    assert detail["type"] == "text_invisible"
    # The character is named as a visible escape (or the name shows nothing at all).
    assert "\\" in detail["msg"] or "visible character" in detail["msg"]
    ok = create(client, "Sale").json()
    renamed = client.put(f"/campaigns/{ok['id']}", json={"name": name})
    assert renamed.status_code == 422
    assert client.get(f"/campaigns/{ok['id']}").json()["name"] == "Sale"


SAME_NAME = {
    "lower case": "dup sale",
    "upper case": "DUP SALE",
    "full-width letters": "Ｄｕｐ Sale",
    "two spaces": "Dup  Sale",
    "no-break space": "Dup\u00a0Sale",
    "emoji presentation selector": "Dup Sale\ufe0f",  # allowed in names, ignored in keys
}


@pytest.mark.parametrize("other", SAME_NAME.values(), ids=SAME_NAME.keys())
def test_names_differing_in_case_width_or_spacing_are_the_same_name(
    client: TestClient, other: str
) -> None:
    first = create(client, "Dup Sale")
    assert first.status_code == 201
    clash = create(client, other)
    assert clash.status_code == 409, clash.text
    assert "'Dup Sale' already exists" in clash.json()["detail"]
    assert "ignoring case" in clash.json()["detail"]
    second = create(client, "Another").json()
    renamed = client.put(f"/campaigns/{second['id']}", json={"name": other})
    assert renamed.status_code == 409
    assert [c["name"] for c in client.get("/campaigns/").json()] == ["Dup Sale", "Another"]


def test_nfc_and_nfd_forms_of_a_name_are_the_same_name(client: TestClient) -> None:
    nfc = unicodedata.normalize("NFC", "Café Week")
    nfd = unicodedata.normalize("NFD", "Café Week")
    assert nfc != nfd
    assert create(client, nfc).status_code == 201
    assert create(client, nfd).status_code == 409


def test_a_campaign_may_change_the_case_of_its_own_name(client: TestClient) -> None:
    campaign = create(client, "Spring Sale").json()
    renamed = client.put(f"/campaigns/{campaign['id']}", json={"name": "SPRING SALE"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "SPRING SALE"


def test_emoji_with_presentation_selectors_are_allowed(client: TestClient) -> None:
    created = create(client, "Valentine \u2764\ufe0f Sale")
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Valentine \u2764\ufe0f Sale"


def test_name_key_folds_what_readers_cannot_tell_apart() -> None:
    assert name_key("Dup") == name_key("DUP") == name_key("ｄｕｐ") == name_key(" dup ")
    assert name_key("Straße") == name_key("STRASSE")
    assert name_key("a  b") == name_key("a b")
    assert name_key("Dup") != name_key("Dupe")
    assert len(name_key("ﷺ" * 200)) == 64  # NFKC grows it 18-fold; the key stays small


# -- migration 0003 -------------------------------------------------------------------------


def _insert_at_0002(url: str, names: list[str]) -> None:
    command.upgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    with engine.begin() as connection:
        for name in names:
            connection.execute(
                text(
                    "INSERT INTO campaigns (name, model_path, features, is_active, created_at, "
                    "updated_at) VALUES (:name, 'm.pkl', '[\"recency\"]', true, "
                    "'2026-11-26 12:00:00', '2026-11-26 12:00:00')"
                ),
                {"name": name},
            )
    engine.dispose()


def _check_clashes_refuse_the_upgrade(url: str) -> None:
    _insert_at_0002(url, ["Dup", "fine", "DUP", "dup"])
    with pytest.raises(CommandError) as refused:
        upgrade(url)
    message = str(refused.value)
    assert "\n" not in message
    assert "id 1 'Dup' and id 3 'DUP' and id 4 'dup'" in message
    assert "migration 0003 changed nothing" in message
    engine = create_engine(url)
    try:
        assert current_revision(engine) == "0002"
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM campaigns WHERE id IN (3, 4)"))
        upgrade(url)
        with engine.connect() as connection:
            keys = connection.execute(text("SELECT name, name_key FROM campaigns ORDER BY id"))
            assert keys.all() == [("Dup", name_key("Dup")), ("fine", name_key("fine"))]
    finally:
        engine.dispose()


def test_sqlite_upgrade_to_0003_reports_clashing_names_in_one_line(tmp_path: Path) -> None:
    _check_clashes_refuse_the_upgrade(f"sqlite:///{tmp_path / 'names.db'}")


@pytest.mark.postgres
def test_postgres_upgrade_to_0003_reports_clashing_names_in_one_line(
    postgres_server_url: str,
) -> None:
    url, drop = create_postgres_database(postgres_server_url)
    try:
        _check_clashes_refuse_the_upgrade(url)
    finally:
        drop()
