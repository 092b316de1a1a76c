"""Property-based fuzzing of the OpenAPI schema with schemathesis, in process (no network)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import app
from api.migrate import upgrade
from tests.api.conftest import reset_caches
from tests.conftest import configure_env

CHECKS = [
    not_a_server_error,  # no 5xx for any input
    status_code_conformance,  # every status code is documented
    content_type_conformance,
    response_schema_conformance,  # bodies match their declared schemas
    negative_data_rejection,  # input the schema forbids is refused
]


@pytest.fixture(scope="module", autouse=True)
def fuzz_env(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[None]:
    """A migrated SQLite database and the trained model, for every generated request."""
    root = tmp_path_factory.mktemp("fuzz")
    monkeypatch = pytest.MonkeyPatch()
    url = f"sqlite:///{root / 'fuzz.db'}"
    configure_env(monkeypatch, root, DATABASE_URL=url, MODEL_DIR=str(trained_model_dir))
    upgrade(url)
    reset_caches()
    yield
    reset_caches()
    monkeypatch.undo()


# The schema is read from the app object itself; importing the app touches no database.
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_schema_and_never_fails(case) -> None:
    case.call_and_validate(checks=CHECKS)
