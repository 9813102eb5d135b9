"""Consolidator-specific metrics (the shared ones live in shared.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import DELAY_BUCKETS

PENDING = Gauge(
    "bridge_pending_conversations", "Conversations holding unread buyer messages in this process."
)
DIGESTS_EMITTED = Counter("bridge_digests_emitted_total", "Digest events produced to mail.digests.")
NOT_EMAILED = Counter(
    "bridge_buyer_messages_not_emailed_total",
    "Buyer messages not emailed: the shop turned alerts off (alerts_off) or "
    "was never onboarded (not_onboarded).",
    ["reason"],
)
NOT_EMAILED_ALERTS_OFF = NOT_EMAILED.labels("alerts_off")
NOT_EMAILED_NOT_ONBOARDED = NOT_EMAILED.labels("not_onboarded")
BATCH_RECORDS = Histogram(
    "bridge_consolidator_batch_records",
    "chat.events records handled per consolidator batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
)
INDEX_REBUILD_SECONDS = Histogram(
    "bridge_consolidator_index_rebuild_seconds",
    "Time to rebuild the deadline index from the state store.",
    buckets=(0.01, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DIGEST_LAG_SECONDS = Histogram(
    "bridge_digest_lag_seconds",
    "Digest on mail.digests (acked) minus its debounce deadline, in seconds.",
    buckets=DELAY_BUCKETS,
)
STATE_CATCH_UP_RECORDS = Counter(
    "bridge_consolidator_state_catch_up_records_total",
    "Changelog records re-read into the store after a rebalance (up to this worker's fence).",
)
SKIPPED_RECORDS_READ = Counter(
    "bridge_consolidator_skipped_records_read_total",
    "chat.events records the stream skipped, read directly by the consolidator.",
)
STATES_EXPIRED = Counter(
    "bridge_consolidator_states_expired_total",
    "Idle conversation states (nothing pending) forgotten after BRIDGE_STATE_IDLE_TTL_DAYS.",
)
