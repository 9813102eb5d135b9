"""The aiokafka internals the services rely on, in one place (pinned in pyproject.toml,
checked by tests/unit/test_aiokafka_adapter.py): aiokafka has no public readiness signal.

The consolidator's faust and aiokafka internals are in its own adapter
(services/consolidator/faust_adapter.py).
"""

from __future__ import annotations

import logging
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

log = logging.getLogger(__name__)

KAFKA_PROBE_AGE_S = 10.0


def kafka_healthy(
    client: AIOKafkaProducer | AIOKafkaConsumer, *, probe_age_s: float = KAFKA_PROBE_AGE_S
) -> bool:
    """Readiness of a started producer or consumer: did its last exchange with the cluster work?

    aiokafka keeps no "connected" flag (an idle producer holds no connection at all), so
    this reads the client's cluster-metadata refresh stamps: healthy while the latest
    metadata refresh succeeded. When the last success is older than ``probe_age_s``, a
    background refresh is requested, so a broker that died while the client was idle is
    noticed by the next probe, and one that came back is noticed without waiting for
    traffic. Cheap (one Metadata request per ``probe_age_s`` at most); never raises.
    """
    if getattr(client, "_closed", None) is not False:  # never started, or stopped
        return False
    inner = getattr(client, "client", None) or getattr(client, "_client", None)
    cluster = getattr(inner, "cluster", None)
    if inner is None or cluster is None:
        return False
    try:
        last_ok = float(cluster._last_successful_refresh_ms)
        last_try = float(cluster._last_refresh_ms)
        if time.time() * 1000 - last_ok > probe_age_s * 1000:
            inner.force_metadata_update()  # answered in the background; see next probe
        return last_ok > 0 and last_ok >= last_try
    except Exception:  # a private aiokafka detail changed: say unhealthy, never crash /healthz
        log.debug("kafka health probe failed", exc_info=True)
        return False
