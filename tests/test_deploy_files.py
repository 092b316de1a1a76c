"""docker-compose.yml, .env.example and the Dockerfile agree with the code they run."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from lib.connect_server import SERVER_MAIN, SHARED_WORKERS_CONF, TOKEN_ENV
from lib.settings import PROJECT_ROOT, Settings
from lib.spark import LOG4J2_CONFIG, server_conf

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
    jupyter_own = {"JUPYTER_CONFIG_PATH"}  # JupyterLab's, not the project's
    for name in ("api", "jupyter"):
        assert set(services[name]["environment"]) - jupyter_own <= SETTINGS_VARS, name


def test_compose_jupyter_uses_make_labs_settings() -> None:
    """The same jupyter-config/ as `make lab`: repository root, notebooks first, no news."""
    jupyter = _compose()["services"]["jupyter"]
    assert jupyter["environment"]["JUPYTER_CONFIG_PATH"] == "/app/jupyter-config"
    assert "--ServerApp.root_dir=/app" in jupyter["command"]
    dockerfile = (PROJECT_ROOT / "k8s" / "Dockerfile").read_text()
    assert re.search(r"^COPY jupyter-config/ jupyter-config/$", dockerfile, re.M)


def test_no_container_receives_the_whole_env_file() -> None:
    """An env_file would hand every .env variable (the Spark Connect token too) to every
    container; compose reads .env for interpolation without it."""
    for name, service in _compose()["services"].items():
        assert "env_file" not in service, name
        assert "SPARK_CONNECT_TOKEN" not in str(service.get("environment", {})), name


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
    compose_only = {"SPARK_CONNECT_TOKEN"}  # docker-compose's secret, not a setting
    assert names - postgres - compose_only <= SETTINGS_VARS
    assert {"DATABASE_URL", "CONFIG_API_URL", "SPARK_MASTER", "SPARK_CONNECT_TOKEN"} <= names


def test_env_example_holds_no_token() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    assert re.search(r"^SPARK_CONNECT_TOKEN=$", text, re.M)
    assert "secrets.token_urlsafe" in text  # says how to make one


def test_dockerfile_copies_paths_that_exist_and_runs_as_non_root() -> None:
    text = (PROJECT_ROOT / "k8s" / "Dockerfile").read_text()
    for source in re.findall(r"^COPY\s+(?!--from=)(.+?)\s+\S+$", text, re.M):
        for path in source.split():
            assert (PROJECT_ROOT / path).exists(), path
    assert re.search(r"^USER\s+(?!root)\w+", text, re.M)
    assert "openjdk-17" in text


# ---- Spark Connect (the jupyter profile) -----------------------------------------------------
def _interpolate(value: str) -> str:
    """What docker compose makes of a value with no variables set: defaults, `$$` -> `$`."""
    value = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)
    assert not re.search(r"(?<!\$)\$(?!\$)", value.replace("$$", "")), value
    return value.replace("$$", "$")


def _server_command() -> tuple[str, list[str]]:
    """The token wrapper script and the command it execs."""
    command = _compose()["services"]["spark-connect"]["command"]
    assert command[:2] == ["sh", "-c"]
    script, _name, *argv = (_interpolate(part) for part in command[2:])
    return script, argv


def _confs(argv: list[str]) -> dict[str, str]:
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--conf"]
    return dict(pair.split("=", 1) for pair in pairs)


def test_spark_connect_runs_the_server_with_the_projects_confs() -> None:
    _, argv = _server_command()
    assert argv[0] == "spark-submit"
    assert "--class" not in argv  # Spark's server class forces one Python worker pool per session
    assert argv[-1] == "/app/" + str(SERVER_MAIN.relative_to(PROJECT_ROOT))
    assert argv[argv.index("--master") + 1] == "local[*]"
    confs = _confs(argv)
    listen = {k: confs.pop(k) for k in list(confs) if k.startswith("spark.connect.grpc.binding")}
    expected = server_conf(Settings())
    in_image = "/app/" + str(LOG4J2_CONFIG.relative_to(PROJECT_ROOT))
    expected["spark.driver.extraJavaOptions"] = expected["spark.driver.extraJavaOptions"].replace(
        str(LOG4J2_CONFIG), in_image
    )
    expected.update(SHARED_WORKERS_CONF)
    assert confs == expected  # the hardening, set server-side, as for `make up`'s server
    assert listen["spark.connect.grpc.binding.address"] == "127.0.0.1"
    assert int(listen["spark.connect.grpc.binding.port"]) == Settings().spark_connect_port


def test_spark_connect_is_reachable_only_from_jupyter() -> None:
    services = _compose()["services"]
    server = services["spark-connect"]
    # No port published to the host, and no address on the compose network either: it lives
    # in jupyter's network namespace and listens on its loopback.
    assert "ports" not in server and "expose" not in server
    assert server["network_mode"] == "service:jupyter"
    assert server["profiles"] == services["jupyter"]["profiles"]
    for name, service in services.items():
        if name != "spark-connect":
            for port in service.get("ports", []):
                assert not str(port).endswith(":15002"), name
            assert service.get("network_mode") != "service:spark-connect", name


def test_jupyters_spark_remote_points_at_the_server() -> None:
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    _, argv = _server_command()
    port = _confs(argv)["spark.connect.grpc.binding.port"]
    channel = DefaultChannelBuilder(
        _compose()["services"]["jupyter"]["environment"]["SPARK_REMOTE"]
    )
    # `localhost` is the one host pyspark sends a token to without TLS (the server has none):
    # in the shared namespace it is the server's loopback.
    assert channel.host == "localhost" and not channel.use_ssl
    assert channel.endpoint == f"localhost:{port}"


def test_the_token_is_a_secret_from_the_environment_for_server_and_client() -> None:
    compose = _compose()
    assert compose["secrets"]["spark_connect_token"] == {"environment": "SPARK_CONNECT_TOKEN"}
    for name in ("spark-connect", "jupyter"):
        service = compose["services"][name]
        assert service["secrets"] == ["spark_connect_token"], name
        assert TOKEN_ENV not in service["environment"], name  # set from the secret at start
        assert service["command"][:3] == ["sh", "-c", _server_command()[0].replace("$", "$$")]
    for name in ("postgres", "api"):
        assert "secrets" not in compose["services"][name], name


def _run_wrapper(tmp_path: Path, token: str) -> subprocess.CompletedProcess[str]:
    script, _ = _server_command()
    secret = tmp_path / "spark_connect_token"
    secret.write_text(token)
    script = script.replace("/run/secrets/spark_connect_token", str(secret))
    return subprocess.run(
        ["sh", "-c", script, "spark-connect", "sh", "-c", f'echo "${TOKEN_ENV}"'],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_wrapper_hands_the_token_to_the_command(tmp_path: Path) -> None:
    result = _run_wrapper(tmp_path, "s3cr3t-value")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "s3cr3t-value"


def test_the_wrapper_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    # Spark Connect without a token answers anyone: an empty secret must stop the server.
    result = _run_wrapper(tmp_path, "")
    assert result.returncode == 64
    assert "SPARK_CONNECT_TOKEN" in result.stderr and result.stdout == ""


def test_spark_connect_has_a_healthcheck_on_its_port() -> None:
    _, argv = _server_command()
    port = _confs(argv)["spark.connect.grpc.binding.port"]
    check = _compose()["services"]["spark-connect"]["healthcheck"]
    assert f"'127.0.0.1', {port}" in " ".join(check["test"])
    assert check["start_period"]  # the JVM needs a few seconds before the first check counts


def test_server_and_client_share_the_output_filesystem() -> None:
    # The server writes the predictions the notebook's job publishes (write, then rename):
    # both must see the same folders at the same paths.
    services = _compose()["services"]
    server, jupyter = set(services["spark-connect"]["volumes"]), set(services["jupyter"]["volumes"])
    assert {"./data:/app/data", "./models:/app/models", "./output:/app/output"} <= server & jupyter
