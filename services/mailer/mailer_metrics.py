"""Mailer-specific metrics."""

from prometheus_client import Counter, Histogram

from mailer.smtp_pool import AMBIGUOUS_REASONS
from shared.metrics import LATENCY_BUCKETS

DIGESTS_SENT = Counter(
    "bridge_digests_sent_total", "Digest emails by final SMTP outcome.", ["outcome"]
)
SEND_RETRIES = Counter("bridge_smtp_retries_total", "SMTP sends retried after a temporary failure.")
SEND_SECONDS = Histogram(
    "bridge_smtp_send_seconds", "One SMTP transaction to the relay.", buckets=LATENCY_BUCKETS
)
AMBIGUOUS_SENDS = Counter(
    "bridge_mailer_ambiguous_sends_total",
    "SMTP sends whose reply to the end of DATA never came (the relay may have the mail): "
    "each is retried, so each may be a duplicate. reason: timeout or disconnected.",
    ["reason"],
)
for _reason in AMBIGUOUS_REASONS:  # at 0 from the start, so the first one is an increase
    AMBIGUOUS_SENDS.labels(_reason)
OUTCOME_RECORD_SECONDS = Histogram(
    "bridge_mailer_outcome_record_seconds",
    "From the relay's 250 to the broker's ack of the sent outcome: the window in which a "
    "killed mailer resends a mail the relay already has.",
    buckets=LATENCY_BUCKETS,
)
RESENDS_UNKNOWN = Counter(
    "bridge_digest_resends_unknown_total",
    "Digests sent again because an earlier attempt (by a process that died) left no outcome.",
)
ATTEMPT_WAITS = Counter(
    "bridge_mailer_attempt_waits_total",
    "Digests found with another process's recent attempt and no outcome, by how the wait "
    "ended: settled (its outcome came; nothing sent) or lease_expired (sent again).",
    ["outcome"],
)
HELPER_RESTARTS = Counter(
    "bridge_mailer_helper_restarts_total",
    "Helper processes (compose, DKIM signing) restarted after dying.",
    ["helper"],
)
MESSAGES_UNSHOWN = Counter(
    "bridge_digest_messages_unshown_total",
    "Messages shown in their digest as a placeholder because they could not be rendered.",
)
NOTICES_DROPPED = Counter(
    "bridge_notices_dropped_total",
    "Notices not sent: over a send limit (reason names the limit) or without a recipient.",
    ["reason"],
)
CARD_LOOKUPS = Counter(
    "bridge_mailer_card_lookups_total",
    "Card ids a digest wanted details for, by card (product, order) and outcome: hit (from "
    "the cache), miss (looked up, found), not_found, error, timeout (past the digest's "
    "budget), skipped (the shop's lookups are paused after a failure or a 429). Every "
    "outcome but hit and miss shows the card from its id.",
    ["card", "outcome"],
)
for _card in ("product", "order"):  # at 0 from the start, so the dashboard has a series
    for _outcome in ("hit", "miss", "not_found", "error", "timeout", "skipped"):
        CARD_LOOKUPS.labels(_card, _outcome)
CARD_LOOKUP_SECONDS = Histogram(
    "bridge_mailer_card_lookup_seconds",
    "Time a digest waited for its card lookups (at most BRIDGE_CARD_LOOKUP_BUDGET_S).",
    buckets=LATENCY_BUCKETS,
)
