"""docker-compose.yml, .env.example and the Dockerfile agree with the code they run."""

from __future__ import annotations

import re

import yaml

from lib.settings import PROJECT_ROOT, Settings

SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


def _compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def test_postgres_has_a_healthcheck() -> None:
    postgres = _compose()["services"]["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_api_waits_for_a_healthy_database_and_migrates_before_serving() -> None:
    api = _compose()["services"]["api"]
    assert api["depends_on"]["postgres"]["condition"] == "service_healthy"
    command = " ".join(api["command"])
    assert command.index("python -m api.migrate") < command.index("uvicorn api.main:app")
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert api["environment"]["DATABASE_URL"].startswith("postgresql+psycopg2://")
    assert "@postgres:5432/" in api["environment"]["DATABASE_URL"]


def test_compose_sets_only_variables_the_settings_read() -> None:
    services = _compose()["services"]
    for name in ("api", "jupyter"):
        assert set(services[name]["environment"]) <= SETTINGS_VARS, name


def test_optional_jupyter_service_is_behind_a_profile() -> None:
    jupyter = _compose()["services"]["jupyter"]
    assert jupyter["profiles"] == ["jupyter"]
    assert "jupyter" in jupyter["command"] and "lab" in jupyter["command"]


def test_compose_builds_from_the_project_dockerfile() -> None:
    build = _compose()["services"]["api"]["build"]
    assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file()


def test_env_example_names_known_variables() -> None:
    names = set(re.findall(r"^#?\s*([A-Z_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.M))
    postgres = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}
    assert names - postgres <= SETTINGS_VARS
    assert {"DATABASE_URL", "CONFIG_API_URL", "SPARK_MASTER"} <= names


def test_dockerfile_copies_paths_that_exist_and_runs_as_non_root() -> None:
    text = (PROJECT_ROOT / "k8s" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(.+?)\s+\S+$", text, re.M):
        for path in source.split():
            assert (PROJECT_ROOT / path).exists(), path
    assert re.search(r"^USER\s+(?!root)\w+", text, re.M)
    assert "openjdk-17" in text
