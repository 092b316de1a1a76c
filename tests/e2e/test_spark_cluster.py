"""The same job on a real Spark standalone cluster (master + worker on loopback), submitted
with spark-submit: the classic transport end to end."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from lib import predict, schema
from lib.settings import PROJECT_ROOT
from tests.helpers import run_cmd
from tests.project import Project
from tests.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.spark]


def _spark_class() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _wait_for(check, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up in {timeout}s")
        time.sleep(0.5)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A master and one worker (2 cores) from pyspark's own spark-class, stopped by pid."""
    logs = tmp_path_factory.mktemp("cluster")
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_WORKER_DIR": str(logs / "work"),
        "SPARK_LOG_DIR": str(logs),
    }
    port, ui, worker_ui = free_port(), free_port(), free_port()
    processes: list[subprocess.Popen] = []
    try:
        with open(logs / "master.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(_spark_class()),
                        "org.apache.spark.deploy.master.Master",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--webui-port",
                        str(ui),
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        _wait_for(lambda: _listening(port), "Spark master")
        url = f"spark://127.0.0.1:{port}"
        with open(logs / "worker.log", "wb") as log:
            processes.append(
                subprocess.Popen(
                    [
                        str(_spark_class()),
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "2",
                        "--memory",
                        "2g",
                        "--webui-port",
                        str(worker_ui),
                        url,
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )

        def worker_alive() -> bool:
            try:
                state = httpx.get(f"http://127.0.0.1:{ui}/json/", timeout=2).json()
            except (httpx.TransportError, ValueError):
                return False
            return any(w.get("state") == "ALIVE" for w in state.get("workers", []))

        _wait_for(worker_alive, "Spark worker")
        yield url
    finally:
        for process in reversed(processes):  # only the processes this fixture started
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_job_on_the_cluster_equals_the_local_run(
    standalone_cluster: str, project: Project, spark, tmp_path: Path
) -> None:
    campaign_id = project.create_campaign("cluster", "country IN ('US', 'GB') AND age >= 30")
    cluster_out = tmp_path / "cluster.parquet"
    # As on a real cluster: spark-submit with the job file (docs/scoring-job.md's command); the
    # master comes from spark-submit, which lib.spark must keep.
    out = run_cmd(
        [
            _spark_class().with_name("spark-submit"),
            "--master",
            standalone_cluster,
            "--driver-memory",
            "1g",
            PROJECT_ROOT / "lib" / "predict.py",
            "--campaign-id",
            str(campaign_id),
            "--output",
            str(cluster_out),
        ],
        {**project.env, "SPARK_LOCAL_IP": "127.0.0.1"},
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "✅ JOB COMPLETED SUCCESSFULLY" in out.stdout
    assert "Scoring path: python-reads" in out.stdout  # the executors read the input

    local_out = tmp_path / "local.parquet"
    predict.run_job(
        campaign_id,
        config_api_url=project.url,
        input_path=str(project.users),
        output_path=str(local_out),
        spark=spark,
        model_dir=project.models,
        echo=lambda line: None,
    )
    columns = [schema.USER_ID, schema.SCORE, schema.DECILE, "model_sha256"]
    on_cluster = pd.read_parquet(cluster_out)[columns].sort_values(schema.USER_ID)
    local = pd.read_parquet(local_out)[columns].sort_values(schema.USER_ID)
    assert len(on_cluster) > 0
    pd.testing.assert_frame_equal(on_cluster.reset_index(drop=True), local.reset_index(drop=True))
