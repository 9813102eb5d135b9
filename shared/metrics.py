"""Prometheus metrics shared by every service.

Naming follows Prometheus conventions with the ``bridge_`` prefix; label values
are bounded enums (service, outcome, class), never shop ids or addresses.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

EVENTS_HANDLED = Counter(
    "bridge_events_handled_total",
    "Records or requests a service handled, by outcome.",
    ["service", "outcome"],
)
HANDLE_SECONDS = Histogram(
    "bridge_handle_seconds",
    "Time to handle one record or request.",
    ["service"],
    buckets=LATENCY_BUCKETS,
)
DEAD_LETTERS = Counter(
    "bridge_dead_letters_total",
    "Records sent to the dead-letter topic, by reason class.",
    ["service", "reason"],
)
CONSUMER_LAG = Gauge(
    "bridge_consumer_lag",
    "Records behind the end of the partition.",
    ["group", "topic", "partition"],
)
STATE_RECORDS_READ = Counter(
    "bridge_state_records_read_total",
    "Records a state holder read from its compacted topics (a resumed one: only those "
    "written since its stored positions), by holder.",
    ["holder"],
)
UP = Gauge("bridge_up", "1 while the service is running and connected to Kafka.", ["service"])


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type, for a /metrics endpoint."""
    return generate_latest(), CONTENT_TYPE_LATEST


# Buckets for delays measured in seconds to minutes, such as a digest's release after its
# debounce deadline (``bridge_digest_lag_seconds``, alert: p99 over 60 s). The top buckets
# must lie above the alert's target or the p99 cannot be seen to cross it.
DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

# The idempotency ledgers (shared/idempotency_ledger.py), labelled by their topic.
LEDGER_KEYS = Gauge(
    "bridge_idempotency_ledger_keys",
    "Effect ids an idempotency ledger holds in memory, by ledger partition held.",
    ["ledger", "partition"],
)
LEDGER_EXPIRED = Counter(
    "bridge_idempotency_ledger_expired_total",
    "Effect ids an idempotency ledger forgot after its retention.",
    ["ledger"],
)
