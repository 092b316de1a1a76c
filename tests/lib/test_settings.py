from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lib.settings import PROJECT_ROOT, Settings, get_settings


def test_defaults_live_under_the_project_root(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATA_DIR", "MODEL_DIR", "OUTPUT_DIR", "DATABASE_URL", "SPARK_MASTER"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.users_path == PROJECT_ROOT / "data" / "sample_users.parquet"
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.spark_master is None
    assert settings.prediction_path(3).name == "predictions_campaign_3.parquet"


def test_environment_variables_override_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://u@h/db")
    monkeypatch.setenv("CONFIG_API_URL", "http://127.0.0.1:9999")
    get_settings.cache_clear()
    try:
        settings = get_settings()
        assert settings.users_path == tmp_path / "sample_users.parquet"
        assert settings.effective_database_url == "postgresql+psycopg2://u@h/db"
        assert settings.config_api_url == "http://127.0.0.1:9999"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        (None, None, "http://127.0.0.1:8000"),  # `make api`'s defaults
        (None, "8123", "http://127.0.0.1:8123"),
        ("0.0.0.0", "8123", "http://127.0.0.1:8123"),  # every interface: dial loopback
        ("::", "8000", "http://[::1]:8000"),
        ("::1", "8001", "http://[::1]:8001"),
        ("[::1]", "8002", "http://[::1]:8002"),  # as written in a URL
        ("api.internal", "80", "http://api.internal:80"),
    ],
)
def test_api_host_and_port_give_every_client_the_api_url(
    monkeypatch: pytest.MonkeyPatch, host: str | None, port: str | None, url: str
) -> None:
    monkeypatch.delenv("CONFIG_API_URL", raising=False)
    for name, value in (("API_HOST", host), ("API_PORT", port)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert Settings().config_api_url == url


def test_config_api_url_wins_over_api_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_PORT", "8123")
    monkeypatch.setenv("CONFIG_API_URL", "http://campaigns.example:9000")
    assert Settings().config_api_url == "http://campaigns.example:9000"


def test_services_serve_on_api_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from lib.services import ApiService

    monkeypatch.delenv("CONFIG_API_URL", raising=False)
    service = ApiService(Settings(api_host="127.0.0.1", api_port=8124))
    assert service.url == Settings(api_port=8124).config_api_url == "http://127.0.0.1:8124"


def test_importing_lib_starts_no_spark_and_loads_no_catboost() -> None:
    code = (
        "import sys, lib, lib.settings, lib.schema, lib.registry, lib.training, lib.data;"
        "heavy = [m for m in ('pyspark', 'catboost', 'sklearn') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_registry_the_api_imports_loads_no_numpy_pandas_or_catboost() -> None:
    code = (
        "import sys, lib.registry, lib.contract, lib.api_client;"
        "print([m for m in ('numpy', 'pandas', 'catboost', 'pyspark') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_spark_master_defaults_to_local_but_respects_spark_submit() -> None:
    from lib.spark import resolve_master

    assert resolve_master(None, Settings()) == "local[*]"
    assert resolve_master("local[2]", Settings(spark_master="spark://h:7077")) == "local[2]"
    assert resolve_master(None, Settings(spark_master="spark://h:7077")) == "spark://h:7077"
    assert resolve_master(None, Settings(pyspark_gateway_port=4040)) is None


def test_sessions_only_read_the_class_cache_archive(tmp_path: Path) -> None:
    from lib.spark import class_cache_archive, class_cache_options

    settings = Settings(cache_dir=tmp_path)
    assert class_cache_options(settings) == ""  # nothing recorded: a session records nothing
    assert list(tmp_path.iterdir()) == []
    archive = class_cache_archive(settings)
    archive.write_bytes(b"archive")
    assert class_cache_options(settings).startswith(f"-XX:SharedArchiveFile={archive} ")
    assert class_cache_options(Settings(cache_dir=tmp_path, spark_class_cache=False)) == ""


# A JVM that records a (small) archive the way the real recorder's does: the options the
# recorder is given, then exit. The real recorder (a Spark session and one Arrow job) is what
# `make setup` runs; the test after this one checks what it left.
_TINY_RECORDER = """
import os, shutil, subprocess, sys
home = os.environ.get("JAVA_HOME")
java = os.path.join(home, "bin", "java") if home else shutil.which("java")
sys.exit(subprocess.run([java, *sys.argv[1].split(), "-version"], capture_output=True).returncode)
"""


@pytest.mark.spark
def test_recording_the_class_cache_publishes_one_archive_after_its_jvm_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib import spark as spark_module
    from lib.spark import class_cache_archive, record_class_cache

    monkeypatch.setattr(spark_module, "_RECORDER", _TINY_RECORDER)
    settings = Settings(cache_dir=tmp_path)
    (tmp_path / f".{class_cache_archive(settings).name}.424242.tmp").write_bytes(b"x")  # debris
    archive = record_class_cache(settings)
    assert archive == class_cache_archive(settings) and archive.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [archive.name]  # no temporary files left
    monkeypatch.setattr(spark_module, "_RECORDER", "raise SystemExit(9)")
    assert record_class_cache(settings) == archive  # recorded once: never re-run


@pytest.mark.spark
def test_a_failed_recording_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lib import spark as spark_module
    from lib.spark import record_class_cache

    monkeypatch.setattr(spark_module, "_RECORDER", "raise SystemExit(9)")
    assert record_class_cache(Settings(cache_dir=tmp_path)) is None
    assert list(tmp_path.iterdir()) == []


def test_make_setup_recorded_a_complete_class_cache() -> None:
    """What the real recorder left in the user's cache (`make setup` runs before `make test`):
    one complete archive, no temporary files, and no JVM still writing one."""
    import psutil

    from lib.spark import class_cache_archive

    settings = Settings(cache_dir=Settings.model_fields["cache_dir"].default)
    archive = class_cache_archive(settings)
    if not archive.is_file():
        if get_settings().ci:
            pytest.fail(f"CI ran `make setup`, but it recorded no class-data archive: {archive}")
        pytest.skip(f"no class-data archive at {archive}: `make setup` records it")
    assert archive.stat().st_size > 1_000_000
    assert not list(archive.parent.glob(f".{archive.name}.*.tmp"))
    writers = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if any(f".{archive.name}." in part for part in (p.info["cmdline"] or []))
    ]
    assert writers == []
