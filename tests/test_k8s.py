"""k8s/ manifests validate, and agree with the job's parser, the image and the settings."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from lib.predict import build_parser
from lib.settings import PROJECT_ROOT, Settings

K8S = PROJECT_ROOT / "k8s"
CRDS = K8S / "crds"  # the operator's CRDs, vendored (see k8s/crds/README.md)
IMAGE = "spark-ml-pipeline:0.1.0"
SETTINGS_VARS = {name.upper() for name in Settings.model_fields}


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def crd_schema(kind: str) -> dict:
    name = {
        "SparkApplication": "sparkapplications",
        "ScheduledSparkApplication": "scheduledsparkapplications",
    }[kind]
    path = CRDS / f"sparkoperator.k8s.io_{name}.yaml"
    assert path.exists(), f"CRD reference missing: {path}"
    crd = yaml.safe_load(path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")
    return version["schema"]["openAPIV3Schema"]


def spark_specs() -> list[dict]:
    return [d["spec"] for d in by_kind("SparkApplication")] + [
        d["spec"]["template"] for d in by_kind("ScheduledSparkApplication")
    ]


def pod_specs() -> list[dict]:
    specs = [d["spec"]["template"]["spec"] for d in by_kind("Deployment") + by_kind("Job")]
    return specs


def test_every_manifest_has_a_known_kind() -> None:
    kinds = {doc["kind"] for _, doc in manifests()}
    assert kinds == {
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "Job",
        "SparkApplication",
        "ScheduledSparkApplication",
    }


@pytest.mark.parametrize("kind", ["SparkApplication", "ScheduledSparkApplication"])
def test_spark_operator_resources_validate_against_the_crd(kind: str) -> None:
    schema = crd_schema(kind)
    docs = by_kind(kind)
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == "sparkoperator.k8s.io/v1beta2"
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
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["api"]["image"] == IMAGE


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
                assert env["name"] in SETTINGS_VARS
    for spec in spark_specs():
        for role in ("driver", "executor"):
            for source in spec[role].get("envFrom", []):
                assert source["configMapRef"]["name"] in configmaps


def test_api_deployment_migrates_first_and_is_ready_on_health() -> None:
    deployment = by_kind("Deployment")[0]["spec"]["template"]["spec"]
    assert deployment["initContainers"][0]["command"] == ["python", "-m", "api.migrate"]
    api = deployment["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health"
    assert deployment["securityContext"]["runAsNonRoot"] is True
    assert {"secretRef": {"name": "campaign-db"}} in api["envFrom"]
    service = by_kind("Service")[0]
    assert (
        service["spec"]["selector"] == by_kind("Deployment")[0]["spec"]["selector"]["matchLabels"]
    )


def test_volumes_claim_the_projects_pvc() -> None:
    pvc = by_kind("PersistentVolumeClaim")[0]["metadata"]["name"]
    claims = [
        v["persistentVolumeClaim"]["claimName"] for spec in pod_specs() for v in spec["volumes"]
    ]
    claims += [
        v["persistentVolumeClaim"]["claimName"] for spec in spark_specs() for v in spec["volumes"]
    ]
    assert claims and set(claims) == {pvc}


def test_papermill_job_runs_the_projects_runner_with_arguments_it_accepts() -> None:
    from lib import runner

    job = by_kind("Job")[0]["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["python", "-m", "lib.runner"]
    parser_args = runner.build_parser().parse_args(job["args"])  # exits 2 on a bad flag
    assert parser_args.campaign_id == 1
    assert parser_args.config_api_url == "http://campaign-api:8000"
    assert runner.NOTEBOOK.is_file()


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


def test_readme_documents_deployment() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    for text in (
        "kubectl apply -f k8s/",
        "kubectl create secret generic campaign-db",
        "k8s/dataproc/submit.sh",
    ):
        assert text in readme, text


def test_vendored_crds_are_the_spark_operators() -> None:
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition"
        assert crd["spec"]["group"] == "sparkoperator.k8s.io"
    assert isinstance(CRDS, Path) and len(list(CRDS.glob("*.yaml"))) == 2
