"""Shared fixtures: isolated settings and caches, a small trained model, the one
SparkSession, PostgreSQL databases. Helpers that are not fixtures live in tests/helpers.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from xdist.scheduler import LoadScopeScheduling

from lib.data import write_users
from lib.settings import PROJECT_ROOT, Settings, get_settings
from tests.helpers import (
    configure_env,
    create_postgres_database,
    project_env,
    python_module,
    temporary_postgres_database,
)
from tests.project import Project
from tests.servers import uvicorn_server

__all__ = ["NOTEBOOKS", "configure_env", "create_postgres_database"]  # imported by test files

# Spark and Jupyter kernels started by the tests use this interpreter and loopback only.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
# The suite's JVMs live minutes at most and work on tiny data: C2's compiling costs them more
# CPU than it gives back (the Spark tests here: 298 -> 207 CPU-seconds with C1 alone, on two
# saturated cores). Every JVM spark-submit starts (the session, the Spark Connect server,
# kernels', the CLI's) adds SPARK_SUBMIT_OPTS to its options, silently (JAVA_TOOL_OPTIONS
# would print a line the quiet-output tests refuse). Learners' JVMs keep the JDK's default.
os.environ.setdefault("SPARK_SUBMIT_OPTS", "-XX:TieredStopAtLevel=1")

NOTEBOOKS = PROJECT_ROOT / "notebooks"

# Markers come from what a test uses, so `-m "not spark and not e2e ..."` (make test-fast)
# really leaves out every test that starts Spark, a server, a kernel or needs PostgreSQL.
FIXTURE_MARKERS = {
    "spark": "spark",
    "spark_connect": "spark",
    "connect_session": "spark",
    "project": "e2e",  # the session's uvicorn
    "postgres_server_url": "postgres",
    "postgres_database": "postgres",
    "empty_postgres_database": "postgres",
    "migrated_postgres_database": "postgres",
}
FOLDER_MARKERS = {"e2e": "e2e", "notebooks": "notebooks", "browser": "browser"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder (tests/e2e, tests/notebooks, tests/browser) and fixtures."""
    for item in items:
        folder = item.path.parent.name
        needed = {FOLDER_MARKERS[folder]} if folder in FOLDER_MARKERS else set()
        names = set(getattr(item, "fixturenames", ()))
        needed |= {marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in names}
        for marker in sorted(needed):
            if not item.get_closest_marker(marker):
                item.add_marker(marker)


# `make test` runs two pytest-xdist workers on the two cores. Every test that uses the
# suite's own JVMs (the classic SparkSession, the Spark Connect server) goes to the same
# worker, so the suite still starts each of them once; the other worker runs the rest,
# module by module. xdist's own `--dist loadgroup` cannot do this with pytest 9 (it renames
# nodeids through `Item._nodeid`, which pytest 9 no longer reads), so the workers list the
# JVM tests in a file the controller's scheduler reads once every worker has collected.
JVM_FIXTURES = {"spark", "spark_connect", "connect_session", "connect_env"}


def _jvm_tests_file(controller_pid: int) -> Path:
    return Path(tempfile.gettempdir()) / f"spark-ml-pipeline-jvm-tests-{controller_pid}.txt"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist controller) Tell each worker where to list the tests that use the JVMs."""
    node.workerinput["jvm_tests_file"] = str(_jvm_tests_file(os.getpid()))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """(xdist worker) List the collected tests that use the suite's JVMs, atomically: every
    worker writes the same list."""
    target = getattr(session.config, "workerinput", {}).get("jvm_tests_file")
    if not target:
        return
    jvm = [item.nodeid for item in session.items if set(item.fixturenames) & JVM_FIXTURES]
    partial = Path(f"{target}.{os.getpid()}.tmp")
    partial.write_text("\n".join(jvm))
    os.replace(partial, target)


class OneWorkerForTheJvms(LoadScopeScheduling):
    """xdist's scope scheduler, with the listed JVM tests as one unit of work and every other
    test in its module's unit (module fixtures are set up on one worker only)."""

    def __init__(self, config: pytest.Config, log: Any = None, *, listing: Path) -> None:
        super().__init__(config, log)
        self.listing = listing
        self.jvm_tests: set[str] | None = None

    def _split_scope(self, nodeid: str) -> str:
        if self.jvm_tests is None:  # first called once every worker has collected
            self.jvm_tests = set(self.listing.read_text().splitlines())
            self.listing.unlink()
        return "JVM tests" if nodeid in self.jvm_tests else nodeid.split("::", 1)[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> OneWorkerForTheJvms:
    """(xdist controller) The scheduler above, reading what the workers listed."""
    return OneWorkerForTheJvms(config, log, listing=_jvm_tests_file(os.getpid()))


def pytest_unconfigure(config: pytest.Config) -> None:
    """(xdist controller) Nothing left in /tmp when a run ends before scheduling."""
    if not hasattr(config, "workerinput"):
        _jvm_tests_file(os.getpid()).unlink(missing_ok=True)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """CACHE_DIR (Spark's class-data archive, Spark Connect's state) in a session folder,
    never the user's home: nothing the tests do writes there.

    The class-data archive `make setup` recorded is linked in (sessions only read it), so the
    suite's classic JVMs start as a learner's do: about 8 s sooner each on the reference
    machine. Set in ``os.environ``, so Spark, kernels, uvicorn and CLI subprocesses inherit it.
    """
    path = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("CACHE_DIR")
    # By name, without asking pyspark and `java -version` for the archive's key at every start.
    for recorded in get_settings().cache_dir.glob("spark-driver-*.jsa"):
        (path / recorded.name).symlink_to(recorded)
    os.environ["CACHE_DIR"] = str(path)
    get_settings.cache_clear()
    yield path
    if previous is None:
        os.environ.pop("CACHE_DIR", None)
    else:
        os.environ["CACHE_DIR"] = previous
    get_settings.cache_clear()


@pytest.fixture
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose data, model and output directories live in a fresh temporary folder."""
    yield configure_env(monkeypatch, tmp_path)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding a small registered model (.cbm and .pkl), trained once."""
    from lib.data import generate_users
    from lib.training import save_model, train_model

    directory = tmp_path_factory.mktemp("models")
    result = train_model(generate_users(4_000, seed=7, labelled=True), iterations=60)
    save_model(result, directory)
    return directory


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The suite's one local SparkSession (two cores, UI off, restricted SQL)."""
    from lib.spark import build_spark

    warehouse = tmp_path_factory.mktemp("spark-warehouse")  # Ibis creates temporary tables
    session = build_spark(
        "spark-ml-pipeline-tests",
        "local[2]",
        extra_conf={"spark.sql.warehouse.dir": str(warehouse)},
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The PostgreSQL server for tests; skipped locally without it, a failure in CI."""
    settings = get_settings()
    url = settings.test_database_url
    if not url:
        if settings.ci:
            pytest.fail("CI is set but TEST_DATABASE_URL is not: PostgreSQL tests must run")
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests run in CI)")
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 5})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # any connection failure: say which, fail in CI
        if settings.ci:
            pytest.fail(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {err}")
        pytest.skip(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {err}")
    return url


@pytest.fixture(scope="session")
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """One migrated PostgreSQL database for the session (tables emptied between tests)."""
    with temporary_postgres_database(postgres_server_url, migrated=True) as url:
        yield url


@pytest.fixture
def empty_postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A new database without tables for one test, dropped afterwards."""
    with temporary_postgres_database(postgres_server_url) as url:
        yield url


@pytest.fixture
def migrated_postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A new database at the newest migration for one test, dropped afterwards."""
    with temporary_postgres_database(postgres_server_url, migrated=True) as url:
        yield url


@pytest.fixture(scope="session")
def spark_connect(tmp_path_factory: pytest.TempPathFactory, isolated_cache_dir: Path):
    """The suite's one Spark Connect server (lib.connect_server), on a free loopback port.

    Its token and state live in the session's cache folder; it is stopped by pid at the end.
    """
    from lib.api_server import free_port
    from lib.connect_server import ConnectServer

    settings = Settings(
        cache_dir=isolated_cache_dir,
        output_dir=tmp_path_factory.mktemp("spark-connect"),
        spark_master="local[2]",
    )
    server = ConnectServer(free_port(), settings=settings)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def connect_session(spark_connect):
    """A client session on the suite's Spark Connect server (token in the URL)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from lib.connect_server import connect_url

    url = f"{connect_url(spark_connect.port)}/;token={spark_connect.token()}"
    session = ConnectSession.builder.remote(url).create()  # never a cached other session
    yield session
    session.stop()


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory, trained_model_dir: Path) -> Iterator[Project]:
    """1,000 users, the trained model and a SQLite config DB behind one uvicorn per session."""
    root = tmp_path_factory.mktemp("project")
    write_users(root / "data" / "sample_users.parquet", 1_000, seed=42)
    shutil.copytree(trained_model_dir, root / "models")
    (root / "output").mkdir()
    with uvicorn_server(project_env(root), root / "api.log") as url:
        yield Project(root, url)


@dataclass(frozen=True)
class ScoredRun:
    """One `make score` run (``python -m lib.runner``) and what it left."""

    campaign_id: int
    process: subprocess.CompletedProcess[str]
    report: Path  # the marketer's HTML report; the executed notebook sits beside it

    @property
    def notebook(self) -> Path:
        return self.report.with_suffix(".ipynb")


@pytest.fixture(scope="session")
def scored_run(project: Project, connect_env: dict[str, str]) -> ScoredRun:
    """`make score` over the suite's Spark Connect server, as a learner runs it after `make
    up`: run once for the tests that read its terminal, its notebook and its report."""
    campaign_id = project.create_campaign("make score", "country IN ('US', 'GB') AND age > 25")
    process = python_module(
        "lib.runner", "--campaign-id", str(campaign_id), env={**project.env, **connect_env}
    )
    assert process.returncode == 0, process.stderr[-3000:]
    found = re.search(r"^📄 Run report: (.+)$", process.stdout, re.M)
    assert found, process.stdout[-2000:]
    return ScoredRun(campaign_id, process, Path(found.group(1).strip()))


@pytest.fixture(scope="session")
def connect_env(spark_connect) -> dict[str, str]:
    """pyspark's variables that point a subprocess (a kernel, the CLI) at the suite's Spark
    Connect server: the papermill and runner tests then use a warm JVM instead of a new one."""
    return spark_connect.client_env()
