"""Fan-out metrics."""

from prometheus_client import Counter

PARTS_DELIVERED = Counter(
    "bridge_reply_parts_total", "Reply parts by delivery outcome.", ["outcome"]
)
PLATFORM_RETRIES = Counter(
    "bridge_platform_retries_total", "Chat-platform calls retried after a temporary failure."
)
DUPLICATE_CHECKS = Counter(
    "bridge_reply_part_checks_total",
    "Checks of the platform for an already-posted part, by result.",
    ["result"],
)
