"""A broker of a test's own (to stop it, or to keep a service's fixed group away from the
session's), of the session's kind: Tansu in memory, or in the Kafka leg (``KAFKA_BOOTSTRAP``
set) an Apache Kafka node on disk under the test's folder (``devstack.kafka``)."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.broker import EmbeddedBroker, free_port
from devstack.kafka import KafkaCluster

ON_KAFKA = bool(os.environ.get("KAFKA_BOOTSTRAP"))

Broker = EmbeddedBroker | KafkaCluster


def private_broker(root: Path, port: int | None = None) -> Broker:
    """A broker not started yet. Made again with the same ``root`` and ``port`` after a
    ``stop()``, it comes back on the same address: Kafka with its data, Tansu empty."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if ON_KAFKA:
        return KafkaCluster(root / "kafka", port=port)
    return EmbeddedBroker(port=port or free_port(), log_path=str(root / "broker.log"))
