"""Every port a project JVM opens refuses a peer that cannot prove Spark's per-start secret.

The report: the Spark Connect server (and a classic session's driver) also listened on the
driver RPC and block manager ports with ``spark.authenticate`` off, so another local user,
without the Connect token, had the BlockManagerMaster answer through a plain RPC client.

The probe is such a client: Spark's own transport client without a secret (built in the
suite's classic JVM through py4j), sending one RPC to each listening port. An authenticating
port answers from its authentication layer ("Expected SaslMessage, received something else")
before any service reads the message; an open one lets the service read it (the RPC endpoint
fails to deserialize it, the block manager never answers).
"""

from __future__ import annotations

from typing import Any

import psutil
import pytest

from lib.spark import LOCAL_AUTH_CONF, is_local_master

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

REFUSED_BY_AUTH = "Expected SaslMessage, received something else"


def listening_ports(pid: int) -> set[int]:
    return {
        c.laddr.port
        for c in psutil.Process(pid).net_connections("tcp")
        if c.status == psutil.CONN_LISTEN
    }


def probe(spark: Any, port: int) -> str:
    """What an unauthenticated Spark RPC client gets from ``127.0.0.1:port``."""
    jvm = spark.sparkContext._jvm
    net = jvm.org.apache.spark.network
    no_secret = net.util.TransportConf("rpc", net.util.MapConfigProvider(jvm.java.util.HashMap()))
    context = net.TransportContext(no_secret, net.server.NoOpRpcHandler())
    factory = context.createClientFactory()
    try:
        client = factory.createClient("127.0.0.1", port)
        message = jvm.java.nio.ByteBuffer.wrap(bytearray(b"\x00\x01\x02\x03" * 4))
        client.sendRpcSync(message, 10_000)
    except Exception as err:  # py4j wraps the JVM's exception: its text says who refused
        return str(err)
    finally:
        factory.close()
        context.close()
    return "answered"


def test_a_classic_sessions_ports_refuse_an_unauthenticated_peer(spark) -> None:
    assert spark.conf.get("spark.authenticate") == "true"
    gateway = spark.sparkContext._gateway
    ports = listening_ports(gateway.proc.pid) - {gateway.gateway_parameters.port}  # py4j: token
    assert int(spark.conf.get("spark.driver.port")) in ports
    assert len(ports) >= 2  # the driver's RPC and the block manager at least
    for port in sorted(ports):
        assert REFUSED_BY_AUTH in probe(spark, port), f"port {port} answered"


def _is_driver(process: psutil.Process) -> bool:
    try:
        return "connect_driver.py" in " ".join(process.cmdline())
    except psutil.Error:  # a Python worker that exited meanwhile (a zombie until reaped)
        return False


def _driver_gateway_port(server_pid: int) -> int:
    """The py4j port the server's JVM opened for its Python driver (lib/connect_driver.py)."""
    drivers = [child for child in psutil.Process(server_pid).children() if _is_driver(child)]
    assert len(drivers) == 1
    return int(drivers[0].environ()["PYSPARK_GATEWAY_PORT"])


def test_the_connect_servers_ports_refuse_an_unauthenticated_peer(spark, spark_connect) -> None:
    pid = spark_connect.running_pid()
    assert pid is not None
    # The Connect port itself speaks gRPC and takes the token (tests/e2e/test_spark_connect.py);
    # the driver's py4j port takes its own secret (the next test).
    ports = listening_ports(pid) - {spark_connect.port, _driver_gateway_port(pid)}
    assert len(ports) >= 2
    for port in sorted(ports):
        assert REFUSED_BY_AUTH in probe(spark, port), f"port {port} answered"


@pytest.mark.parametrize("token", [None, "wrong-secret"])
def test_the_connect_servers_py4j_port_refuses_a_client_without_its_secret(
    spark_connect, token: str | None
) -> None:
    from py4j.java_gateway import GatewayParameters, JavaGateway
    from py4j.protocol import Py4JError

    pid = spark_connect.running_pid()
    assert pid is not None
    port = _driver_gateway_port(pid)
    assert port in listening_ports(pid)
    gateway = JavaGateway(gateway_parameters=GatewayParameters(port=port, auth_token=token))
    try:
        with pytest.raises(Py4JError):
            gateway.jvm.java.lang.System.getProperty("user.name")
    finally:
        gateway.close()


def test_the_py4j_probe_gets_an_answer_with_the_secret(spark_connect) -> None:
    # The control of the test above: the same client, with the driver's secret, is answered.
    from py4j.java_gateway import GatewayParameters, JavaGateway

    pid = spark_connect.running_pid()
    assert pid is not None
    driver = next(c for c in psutil.Process(pid).children() if _is_driver(c))
    env = driver.environ()
    parameters = GatewayParameters(
        port=int(env["PYSPARK_GATEWAY_PORT"]), auth_token=env["PYSPARK_GATEWAY_SECRET"]
    )
    gateway = JavaGateway(gateway_parameters=parameters)
    try:
        assert gateway.jvm.java.lang.System.getProperty("user.name")
    finally:
        gateway.close()


def test_authentication_is_for_local_masters_only() -> None:
    # A cluster's secret is its deployment's to hand out: never invented here.
    assert LOCAL_AUTH_CONF["spark.authenticate"] == "true"
    assert all(is_local_master(m) for m in ("local", "local[2]", "local[*]", "local[2, 3]"))
    assert not any(is_local_master(m) for m in (None, "spark://127.0.0.1:7077", "yarn", "k8s://x"))
