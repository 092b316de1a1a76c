"""k8s/ manifests validate, and agree with the job's parser, the image and the settings."""

from __future__ import annotations

import copy
import re
import secrets
import shlex
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lib.connect_server import TOKEN_ENV
from lib.predict import build_parser
from lib.settings import PROJECT_ROOT, Settings
from lib.spark import LOG4J2_CONFIG, server_conf
from scripts import predict_today

K8S = PROJECT_ROOT / "k8s"
CRDS = K8S / "crds"  # the operator's CRDs, vendored (see k8s/crds/README.md)
IMAGE = "spark-ml-pipeline:0.1.0"
API, LAB, NOTEBOOK_JOB = "campaign-api", "jupyterlab", "score-campaign-1-notebook"
NOTEBOOK_CRON = "score-campaign-1-notebook-daily"
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


# kind -> (the CRD file's plural, the served version the manifests use)
OPERATOR_KINDS = {
    "SparkApplication": ("sparkapplications", "v1beta2"),
    "ScheduledSparkApplication": ("scheduledsparkapplications", "v1beta2"),
    "SparkConnect": ("sparkconnects", "v1alpha1"),
}


def crd_schema(kind: str) -> dict:
    name, version_name = OPERATOR_KINDS[kind]
    path = CRDS / f"sparkoperator.k8s.io_{name}.yaml"
    assert path.exists(), f"CRD reference missing: {path}"
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == version_name)
    return version["schema"]["openAPIV3Schema"]


def spark_specs() -> list[dict]:
    return [d["spec"] for d in by_kind("SparkApplication")] + [
        d["spec"]["template"] for d in by_kind("ScheduledSparkApplication")
    ]


WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")


def pod_template(doc: dict) -> dict:
    """The pod template of a Deployment, Job or CronJob."""
    spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
    return spec["template"]


def pod_specs() -> list[dict]:
    return [pod_template(d)["spec"] for kind in WORKLOAD_KINDS for d in by_kind(kind)]


def test_every_manifest_has_a_known_kind() -> None:
    kinds = {doc["kind"] for _, doc in manifests()}
    assert kinds == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "Job",
        "CronJob",
        "SparkApplication",
        "ScheduledSparkApplication",
        "SparkConnect",
        "NetworkPolicy",
    }


@pytest.mark.parametrize("kind", sorted(OPERATOR_KINDS))
def test_spark_operator_resources_validate_against_the_crd(kind: str) -> None:
    schema = crd_schema(kind)
    docs = by_kind(kind)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == f"sparkoperator.k8s.io/{OPERATOR_KINDS[kind][1]}"
        jsonschema.validate(doc, schema)


def test_core_resources_validate_against_kubernetes_schemas() -> None:
    for name, doc in manifests():
        if doc["apiVersion"].startswith("sparkoperator"):
            continue
        try:
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
        except kubernetes_validate.ValidationError as err:
            pytest.fail(f"{name}: {err.message}")


def test_a_broken_manifest_is_caught() -> None:
    deployment = by_kind("Deployment")[0]
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.37.0", strict=True)
    app = by_kind("SparkApplication")[0]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**app, "spec": {**app["spec"], "type": "Ruby"}}, crd_schema("SparkApplication")
        )
    connect = by_kind("SparkConnect")[0]
    spec = {k: v for k, v in connect["spec"].items() if k != "sparkVersion"}
    for broken_spec in (spec, {**connect["spec"], "server": {**spec["server"], "cores": 0}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**connect, "spec": broken_spec}, crd_schema("SparkConnect"))


def test_spark_arguments_are_accepted_by_the_jobs_parser() -> None:
    for spec in spark_specs():
        args = build_parser().parse_args(spec["arguments"])
        assert args.campaign_id >= 1


def test_spark_applications_run_the_job_file_from_the_image() -> None:
    dockerfile = (K8S / "Dockerfile").read_text()
    assert re.search(r"^WORKDIR /app$", dockerfile, re.M)
    for spec in spark_specs():
        assert spec["type"] == "Python" and spec["image"] == IMAGE
        path = spec["mainApplicationFile"].removeprefix("local:///app/")
        assert (PROJECT_ROOT / path).is_file(), path
        assert re.search(rf"^COPY {path.split('/')[0]}/ ", dockerfile, re.M)
        assert spec["sparkConf"]["spark.sql.restrictedMode.enabled"] == "true"
        assert spec["sparkConf"]["spark.sql.runSQLOnFiles"] == "false"
        for role in ("driver", "executor"):
            assert spec[role]["cores"] >= 1 and spec[role]["memory"]


def test_every_container_uses_the_one_image() -> None:
    for spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["image"] == IMAGE
    for doc in by_kind("SparkConnect"):
        assert doc["spec"]["image"] == IMAGE
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["api"]["image"] == IMAGE
    assert compose["services"]["spark-connect"]["image"] == IMAGE


def test_configuration_names_are_settings_and_secrets_stay_out() -> None:
    configmaps = {d["metadata"]["name"]: d for d in by_kind("ConfigMap")}
    for doc in configmaps.values():
        assert set(doc["data"]) <= SETTINGS_VARS
        assert "DATABASE_URL" not in doc["data"]
    text = "\n".join(p.read_text() for p in K8S.glob("*.yaml")).lower()
    assert "password" not in text and "postgresql://" not in text
    for spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configmaps
            for env in container.get("env", []):
                assert env["name"] in SETTINGS_VARS | JUPYTER_OWN
    for spec in spark_specs():
        for role in ("driver", "executor"):
            for source in spec[role].get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps


JUPYTER_OWN = {"JUPYTER_CONFIG_PATH", "JUPYTER_TOKEN"}  # JupyterLab's variables, not settings


def test_jupyterlab_uses_make_labs_settings_and_a_secret_token_and_is_not_exposed() -> None:
    lab = workload(LAB)["spec"]["template"]["spec"]
    (container,) = lab["containers"]
    assert container["command"] == ["jupyter", "lab"]
    assert "--ServerApp.root_dir=/app" in container["args"]
    env = {e["name"]: e for e in container["env"]}
    assert env["JUPYTER_CONFIG_PATH"]["value"] == "/app/jupyter-config"
    assert (PROJECT_ROOT / "jupyter-config" / "jupyter_lab_config.json").is_file()
    assert env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "jupyterlab-token"
    assert lab["securityContext"]["runAsNonRoot"] is True
    (service,) = [d for d in by_kind("Service") if d["metadata"]["name"] == LAB]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert service["spec"]["selector"] == workload(LAB)["spec"]["selector"]["matchLabels"]


def test_api_deployment_migrates_first_and_is_ready_on_health() -> None:
    deployment = workload(API)["spec"]["template"]["spec"]
    assert deployment["initContainers"][0]["command"] == ["python", "-m", "api.migrate"]
    api = deployment["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["securityContext"]["runAsNonRoot"] is True
    assert {"secretRef": {"name": "campaign-db"}} in api["envFrom"]
    (service,) = [d for d in by_kind("Service") if d["metadata"]["name"] != LAB]
    assert service["spec"]["selector"] == workload(API)["spec"]["selector"]["matchLabels"]


def test_volumes_claim_the_projects_pvc() -> None:
    pvc = by_kind("PersistentVolumeClaim")[0]["metadata"]["name"]
    claims = [
        v["persistentVolumeClaim"]["claimName"] for spec in pod_specs() for v in spec["volumes"]
    ]
    claims += [
        v["persistentVolumeClaim"]["claimName"] for spec in spark_specs() for v in spec["volumes"]
    ]
    for role in ("server", "executor"):  # SparkConnect: both read users and write predictions
        template = spark_connect()["spec"][role]["template"]["spec"]
        claims += [v["persistentVolumeClaim"]["claimName"] for v in template["volumes"]]
        container = template["containers"][0]
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"], role
    assert claims and set(claims) == {pvc}


def test_papermill_job_runs_the_projects_runner_with_arguments_it_accepts() -> None:
    from lib import runner

    job = by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["python", "-m", "lib.runner"]
    parser_args = runner.build_parser().parse_args(job["args"])  # exits 2 on a bad flag
    assert parser_args.campaign_id == 1
    assert parser_args.config_api_url == "http://campaign-api:8000"
    assert runner.NOTEBOOK.is_file()


# ---- daily dated runs (scheduled-spark-application.yaml, papermill-cronjob.yaml) -------------
def scheduled_spark_app() -> dict:
    (doc,) = by_kind("ScheduledSparkApplication")
    return doc


def notebook_cron_job() -> dict:
    (doc,) = by_kind("CronJob")
    return doc


def test_scheduled_spark_run_passes_todays_date_the_job_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = scheduled_spark_app()["spec"]["template"]
    assert spec["mainApplicationFile"] == "local:///app/scripts/predict_today.py"
    day = date(2026, 12, 7)
    args = build_parser().parse_args(predict_today.arguments(spec["arguments"], day))
    assert (args.campaign_id, args.as_of) == (1, day)
    # What the driver runs: lib.predict's main with today's UTC date.
    seen: list[list[str]] = []
    monkeypatch.setattr(predict_today.predict, "main", lambda argv: seen.append(argv) or 0)
    before = datetime.now(UTC).date()
    assert predict_today.main(spec["arguments"]) == 0
    assert build_parser().parse_args(seen[0]).as_of in {before, datetime.now(UTC).date()}


def test_the_daily_spark_wrapper_refuses_another_date() -> None:
    with pytest.raises(SystemExit) as exit_info:
        predict_today.arguments(["--campaign-id", "1", "--as-of", "2026-12-01"], date.today())
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):  # a bad flag fails as lib.predict's parser fails it
        predict_today.arguments(["--campaign-id", "0"], date.today())


def test_the_daily_spark_wrapper_runs_as_a_file(tmp_path: Path) -> None:
    """spark-submit runs it as a file: it finds `lib` and stops at a bad argument, Spark-free."""
    script = PROJECT_ROOT / "scripts" / "predict_today.py"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(script), "--campaign-id", "1", "--as-of", "2026-12-01"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "leave out --as-of" in result.stderr


def test_papermill_cron_job_runs_the_runner_with_todays_date(tmp_path: Path) -> None:
    from lib import runner

    # The shell the command needs is in the image: a Debian-based python image has sh and date.
    dockerfile = (K8S / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M)[-1].startswith("python:3.11-slim-")
    (container,) = pod_template(notebook_cron_job())["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    (script,) = container["args"]
    assert script.startswith("exec python -m lib.runner ")  # the runner gets the signals
    # Run the script with a real shell and date, a stand-in `python` that prints its arguments.
    stub = tmp_path / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    stub.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
    before = datetime.now(UTC).date()
    shell = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
    assert shell.returncode == 0, shell.stderr
    argv = shell.stdout.splitlines()
    assert argv[:2] == ["-m", "lib.runner"]
    args = runner.build_parser().parse_args(argv[2:])  # exits 2 on a bad flag
    assert (args.campaign_id, args.config_api_url) == (1, "http://campaign-api:8000")
    assert args.as_of in {before, datetime.now(UTC).date()} and args.backfill is None


def test_scheduled_runs_never_overlap_and_keep_one_date() -> None:
    app, cron = scheduled_spark_app()["spec"], notebook_cron_job()["spec"]
    for spec in (app, cron):
        assert spec["concurrencyPolicy"] == "Forbid"
        assert spec["timeZone"] == "UTC"  # the schedule's day is the date the runs compute
    # The driver runs once: no restart on a later day computes another date.
    assert app["template"]["restartPolicy"]["type"] == "Never"
    # Every pod of the notebook run (a retried one too) starts on the day it was scheduled.
    minute, hour, *every_day = cron["schedule"].split()
    assert every_day == ["*", "*", "*"]
    latest = int(hour) * 3600 + int(minute) * 60 + cron["startingDeadlineSeconds"]
    latest += cron["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert latest < 24 * 3600
    assert cron["successfulJobsHistoryLimit"] >= 1 and cron["failedJobsHistoryLimit"] >= 1


def test_papermill_cron_job_is_the_papermill_job_on_a_schedule() -> None:
    job, cron = workload(NOTEBOOK_JOB), notebook_cron_job()
    assert pod_template(cron)["metadata"] == job["spec"]["template"]["metadata"]
    cron_pod, job_pod = pod_template(cron)["spec"], job["spec"]["template"]["spec"]
    assert {k: v for k, v in cron_pod.items() if k != "containers"} == {
        k: v for k, v in job_pod.items() if k != "containers"
    }
    ((cron_container,), (job_container,)) = cron_pod["containers"], job_pod["containers"]
    same = {"command", "args"}
    assert {k: v for k, v in cron_container.items() if k not in same} == {
        k: v for k, v in job_container.items() if k not in same
    }
    assert cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] == job["spec"]["backoffLimit"]


def test_dataproc_submission_passes_arguments_the_job_accepts() -> None:
    script = K8S / "dataproc" / "submit.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "gcloud dataproc batches submit pyspark" in text
    job_args = text.split(" -- ", 1)[1].replace("\\\n", " ")
    values = {
        "$CAMPAIGN_ID": "3",
        "$CONFIG_API_URL": "http://api:8000",
        "$INPUT": "gs://b/u",
        "$OUTPUT": "bigquery:proj.ds.predictions",
    }
    for name, value in values.items():
        job_args = job_args.replace(f'"{name}"', value)
    args = build_parser().parse_args(shlex.split(job_args))
    assert (args.campaign_id, args.output) == (3, "bigquery:proj.ds.predictions")


def test_deploy_page_documents_deployment() -> None:
    deploy = (PROJECT_ROOT / "docs" / "deploy.md").read_text()
    for text in (
        "kubectl apply -f k8s/",
        "kubectl create secret generic campaign-db",
        "k8s/dataproc/submit.sh",
        "k8s/papermill-cronjob.yaml",
        "--backfill",
    ):
        assert text in deploy, text


def test_vendored_crds_are_the_spark_operators() -> None:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "sparkoperator.k8s.io"
    kinds = {yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in CRDS.glob("*.yaml")}
    assert kinds == set(OPERATOR_KINDS)
    assert isinstance(CRDS, Path) and len(list(CRDS.glob("*.yaml"))) == 3
    assert "Apache-2.0" in (CRDS / "README.md").read_text()


# ---- Spark Connect (k8s/spark-connect.yaml) --------------------------------------------------
# Labels and names the spark-operator gives what a SparkConnect creates (its
# internal/controller/sparkconnect: GetServerSelectorLabels, GetServerServiceName, executor conf).
CONNECT_NAME_LABEL = "sparkoperator.k8s.io/connect-name"
CONNECT_PORT = 15002
DRIVER_PORTS = {7078, 7079}  # spark.driver.port, spark.driver.blockManager.port


def spark_connect() -> dict:
    (doc,) = by_kind("SparkConnect")
    return doc


def server_pod_labels(connect: dict) -> dict[str, str]:
    template = connect["spec"]["server"]["template"]["metadata"]["labels"]
    return {**template, CONNECT_NAME_LABEL: connect["metadata"]["name"]}


def executor_pod_labels(connect: dict) -> dict[str, str]:
    template = connect["spec"]["executor"]["template"]["metadata"]["labels"]
    return {
        **template,
        **connect["metadata"]["labels"],
        CONNECT_NAME_LABEL: connect["metadata"]["name"],
        "spark-role": "executor",
    }


def selects(selector: dict, labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is modelled here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def ingress_allowed(policy: dict, pod_labels: dict[str, str], port: int) -> bool:
    """Does ``policy`` let a pod of this namespace with ``pod_labels`` in on ``port``?"""
    for rule in policy["spec"].get("ingress", []):
        ports = {p["port"] for p in rule.get("ports", [])} or {port}
        peers = rule.get("from", [])
        for peer in peers:
            assert set(peer) == {"podSelector"}, "only same-namespace pod peers are modelled"
        if port in ports and (
            not peers or any(selects(p["podSelector"], pod_labels) for p in peers)
        ):
            return True
    return False


def workload(name: str) -> dict:
    """The Deployment, Job or CronJob called ``name``."""
    (doc,) = [d for kind in WORKLOAD_KINDS for d in by_kind(kind) if d["metadata"]["name"] == name]
    return doc


def pod_labels(name: str) -> dict[str, str]:
    return pod_template(workload(name))["metadata"]["labels"]


def test_spark_connect_server_has_the_projects_hardening_server_side() -> None:
    # The same confs as lib.spark.server_conf, minus what the operator and the manifest set
    # for the pod (driver memory is server.memory; host and bind address are the pod's).
    expected = server_conf(Settings())
    for key in ("spark.driver.memory", "spark.driver.host", "spark.driver.bindAddress"):
        expected.pop(key)
    in_image = "/app/" + str(LOG4J2_CONFIG.relative_to(PROJECT_ROOT))
    expected["spark.driver.extraJavaOptions"] = expected["spark.driver.extraJavaOptions"].replace(
        str(LOG4J2_CONFIG), in_image
    )
    connect = spark_connect()
    assert connect["spec"]["sparkConf"] == expected
    assert connect["spec"]["server"]["memory"] == Settings().spark_driver_memory
    assert connect["spec"]["server"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def test_spark_connect_server_finds_spark_in_the_projects_image() -> None:
    dockerfile = (K8S / "Dockerfile").read_text()
    python = re.search(r"^FROM python:(\d+\.\d+)", dockerfile, re.M)
    assert python
    (server,) = spark_connect()["spec"]["server"]["template"]["spec"]["containers"]
    assert server["name"] == "spark-kubernetes-driver"  # the container the operator fills in
    env = {e["name"]: e for e in server["env"]}
    assert env["SPARK_HOME"]["value"] == (
        f"/usr/local/lib/python{python.group(1)}/site-packages/pyspark"
    )


def test_spark_connect_token_comes_from_a_secret() -> None:
    (server,) = spark_connect()["spec"]["server"]["template"]["spec"]["containers"]
    (token,) = [e for e in server["env"] if e["name"] == TOKEN_ENV]
    assert set(token) == {"name", "valueFrom"}
    assert token["valueFrom"]["secretKeyRef"] == {"name": "spark-connect-token", "key": "token"}
    readme = (K8S / "spark-connect.yaml").read_text()
    assert "kubectl create secret generic spark-connect-token" in readme
    assert not by_kind("Secret")  # created by the user, never committed


def test_spark_connect_is_not_exposed_outside_the_cluster() -> None:
    service = spark_connect()["spec"]["server"].get("service")
    assert service is None or service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_network_policy_guards_exactly_the_connect_server() -> None:
    (policy,) = by_kind("NetworkPolicy")
    connect = spark_connect()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    selector = policy["spec"]["podSelector"]
    assert selects(selector, server_pod_labels(connect))
    # Not the executors (they need their own traffic), not the project's other pods.
    assert not selects(selector, executor_pod_labels(connect))
    for name in (API, LAB, NOTEBOOK_JOB, NOTEBOOK_CRON):
        assert not selects(selector, pod_labels(name)), name


def test_only_the_projects_clients_reach_the_connect_port() -> None:
    (policy,) = by_kind("NetworkPolicy")
    connect = spark_connect()
    assert ingress_allowed(policy, pod_labels(NOTEBOOK_JOB), CONNECT_PORT)  # the papermill Job
    assert ingress_allowed(policy, pod_labels(NOTEBOOK_CRON), CONNECT_PORT)  # ... and CronJob
    assert ingress_allowed(policy, pod_labels(LAB), CONNECT_PORT)  # JupyterLab's kernels
    assert not ingress_allowed(policy, pod_labels(API), CONNECT_PORT)  # the API
    assert not ingress_allowed(policy, {"app": "anything-else"}, CONNECT_PORT)
    assert not ingress_allowed(policy, executor_pod_labels(connect), CONNECT_PORT)
    for port in DRIVER_PORTS:  # executors report back to the server's driver, nobody else
        assert ingress_allowed(policy, executor_pod_labels(connect), port)
        assert not ingress_allowed(policy, pod_labels(NOTEBOOK_JOB), port)
    assert not ingress_allowed(policy, pod_labels(NOTEBOOK_JOB), 4040)  # the Spark UI stays closed


def test_a_too_wide_network_policy_is_caught() -> None:
    (policy,) = by_kind("NetworkPolicy")
    anyone = {**policy, "spec": {**policy["spec"], "ingress": [{"ports": [{"port": 15002}]}]}}
    assert ingress_allowed(anyone, {"app": "anything-else"}, CONNECT_PORT)


def _commented_connect_env(manifest: str = "papermill-job.yaml") -> list[dict]:
    """A manifest's commented-out Spark Connect variables, uncommented."""
    lines = (K8S / manifest).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if "# - name: SPARK_REMOTE" in line)
    block = []
    for line in lines[start:]:
        if not line.strip().startswith("#"):
            break
        block.append(line.replace("# ", "", 1))
    return yaml.safe_load("\n".join(block))


@pytest.mark.parametrize(
    ("manifest", "name"),
    [
        ("papermill-job.yaml", NOTEBOOK_JOB),
        ("papermill-cronjob.yaml", NOTEBOOK_CRON),
        ("jupyterlab.yaml", LAB),
    ],
)
def test_notebook_workloads_can_point_at_the_connect_server(manifest: str, name: str) -> None:
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    connect = spark_connect()
    env = {e["name"]: e for e in _commented_connect_env(manifest)}
    assert set(env) == {"SPARK_REMOTE", TOKEN_ENV}
    assert set(env) <= SETTINGS_VARS | {TOKEN_ENV}  # pyspark reads the token itself
    channel = DefaultChannelBuilder(env["SPARK_REMOTE"]["value"])
    assert channel.host == f"{connect['metadata']['name']}-server"  # the operator's Service
    assert channel.endpoint.endswith(f":{CONNECT_PORT}")
    # With a token pyspark insists on TLS off localhost: the URL must say so, not fail later.
    assert channel.use_ssl
    (server,) = connect["spec"]["server"]["template"]["spec"]["containers"]
    (server_token,) = [e for e in server["env"] if e["name"] == TOKEN_ENV]
    assert env[TOKEN_ENV]["valueFrom"] == server_token["valueFrom"]
    # Uncommented, the container still validates.
    doc = copy.deepcopy(workload(name))
    pod_template(doc)["spec"]["containers"][0]["env"] += list(env.values())
    kubernetes_validate.validate(doc, "1.37.0", strict=True)


# ---- no token literal in what is committed ---------------------------------------------------
# A run of URL-safe characters this long, with letters and digits, is a key, not a word.
TOKEN_LIKE = re.compile(
    r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}"
)


def deploy_files() -> list[Path]:
    files = [PROJECT_ROOT / "docker-compose.yml", PROJECT_ROOT / ".env.example"]
    files += [p for p in K8S.rglob("*") if p.is_file() and CRDS not in p.parents]
    return files


def test_the_token_detector_finds_real_tokens() -> None:
    for token in (secrets.token_urlsafe(32), secrets.token_hex(32)):
        assert TOKEN_LIKE.search(f"SPARK_CONNECT_TOKEN={token}"), token
    assert not TOKEN_LIKE.search("x-kubernetes-preserve-unknown-fields spark.sql.runSQLOnFiles")


def test_no_token_literal_in_the_deploy_files() -> None:
    for path in deploy_files():
        text = path.read_text(errors="replace")
        assert not TOKEN_LIKE.search(text), path
        assert not re.search(r";token=[^\s\"'$]", text), path  # no token in a Connect URL
        for match in re.finditer(
            rf"^[ \t]*(?:{TOKEN_ENV}|SPARK_CONNECT_TOKEN)[ \t]*[=:][ \t]*(\S*)", text, re.M
        ):
            # Empty, or an expansion of something else (a mounted secret), never a value.
            value = match.group(1).lstrip('"')
            assert value == "" or value.startswith("$"), (path, match.group(0))
