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


def test_the_connect_servers_ports_refuse_an_unauthenticated_peer(spark, spark_connect) -> None:
    pid = spark_connect.running_pid()
    assert pid is not None
    # The Connect port itself speaks gRPC and takes the token (tests/e2e/test_spark_connect.py).
    ports = listening_ports(pid) - {spark_connect.port}
    assert len(ports) >= 2
    for port in sorted(ports):
        assert REFUSED_BY_AUTH in probe(spark, port), f"port {port} answered"


def test_authentication_is_for_local_masters_only() -> None:
    # A cluster's secret is its deployment's to hand out: never invented here.
    assert LOCAL_AUTH_CONF["spark.authenticate"] == "true"
    assert all(is_local_master(m) for m in ("local", "local[2]", "local[*]", "local[2, 3]"))
    assert not any(is_local_master(m) for m in (None, "spark://127.0.0.1:7077", "yarn", "k8s://x"))
