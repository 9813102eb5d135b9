"""Consolidator-specific metrics (the shared ones live in shared.metrics)."""

from prometheus_client import Counter, Gauge

PENDING = Gauge("bridge_pending_conversations",
                "Conversations holding unread buyer messages in this process.")
DIGESTS_EMITTED = Counter("bridge_digests_emitted_total", "Digest events produced to mail.digests.")
DROPPED_ALERTS_OFF = Counter("bridge_pending_dropped_alerts_off_total",
                             "Buyer messages not emailed because the shop turned alerts off.")
