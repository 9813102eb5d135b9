"""shared/aiokafka_adapter.py reads aiokafka internals: this fails, naming what moved,
when an aiokafka upgrade changes them (pyproject.toml pins the range)."""

from __future__ import annotations

from importlib.metadata import version

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.cluster import ClusterMetadata

from shared.aiokafka_adapter import kafka_healthy


def test_the_pinned_aiokafka_is_the_one_installed() -> None:
    major, minor = (int(x) for x in version("aiokafka").split(".")[:2])
    assert (0, 11) <= (major, minor) < (0, 15)


async def test_a_client_never_started_is_not_ready_and_has_the_fields_the_probe_reads() -> None:
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
    try:
        for client in (producer, consumer):
            assert hasattr(client, "_closed")
            inner = getattr(client, "client", None) or getattr(client, "_client", None)
            assert inner is not None and callable(inner.force_metadata_update)
            assert kafka_healthy(client) is False
    finally:
        await producer.stop()
        await consumer.stop()


def test_cluster_metadata_keeps_the_refresh_stamps_the_probe_compares() -> None:
    cluster = ClusterMetadata()
    assert isinstance(cluster._last_successful_refresh_ms, int | float)
    assert isinstance(cluster._last_refresh_ms, int | float)
