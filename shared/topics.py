"""Kafka topics: names, partitions, compaction and size limits, declared once.

The broker runner, the services and the Strimzi ``KafkaTopic`` manifests all
derive from :data:`ALL_TOPICS` (a test checks the manifests agree).

Keys: everything about a conversation is keyed ``shop_id:conversation_id`` so
one conversation stays ordered on one partition through every topic; the same
partition count on the conversation topics keeps them co-partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000

# Raw inbound mail travels whole (up to 50 MB) on mail.inbound: one topic with
# raised limits is simpler to run than a claim-check store, and the SMTP front
# can answer 250 after a single acknowledged write. mail.inbound.retry holds the
# same records while they wait; every other topic keeps Kafka's 1 MB default.
MAX_INBOUND_MAIL_BYTES = 50 * 1024 * 1024
INBOUND_RECORD_LIMIT = MAX_INBOUND_MAIL_BYTES + 2 * 1024 * 1024  # room for headers/batch overhead
DEFAULT_RECORD_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int = 7 * DAY_MS
    max_message_bytes: int = DEFAULT_RECORD_LIMIT
    segment_ms: int | None = None  # roll segments sooner so a busy compacted topic compacts

    def config(self) -> dict[str, str]:
        """Topic-level configs as Kafka expects them (also used for Strimzi)."""
        cfg = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "max.message.bytes": str(self.max_message_bytes),
        }
        if not self.compacted:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.segment_ms is not None:
            cfg["segment.ms"] = str(self.segment_ms)
        return cfg


# Kafka's default log.roll.ms: a record lives until its segment is closed and then older
# than retention.ms, so up to retention.ms + a segment.
KAFKA_DEFAULT_SEGMENT_MS = 7 * DAY_MS


def replay_window_ms(*sources: TopicSpec) -> int:
    """How long after an effect a replay can still ask for it again: the longest life of a
    record on each topic that can (re-)emit the request, one after the other."""
    return sum(
        spec.retention_ms + (spec.segment_ms or KAFKA_DEFAULT_SEGMENT_MS) for spec in sources
    )


CONVERSATION_PARTITIONS = 8

CHAT_EVENTS = TopicSpec("chat.events", CONVERSATION_PARTITIONS)
SHOP_SETTINGS = TopicSpec("shop.settings", 4, compacted=True)
MAIL_DIGESTS = TopicSpec("mail.digests", CONVERSATION_PARTITIONS)
MAIL_OUTCOMES = TopicSpec("mail.outcomes", CONVERSATION_PARTITIONS, compacted=True)
MAIL_NOTICES = TopicSpec("mail.notices", 4)
MAIL_INBOUND = TopicSpec(
    "mail.inbound",
    CONVERSATION_PARTITIONS,
    retention_ms=3 * DAY_MS,
    max_message_bytes=INBOUND_RECORD_LIMIT,
)
# Inbound mail whose sender authentication met DNS trouble, waiting to be checked again (the
# raw mail and its envelope, plus the attempt and when it is due): only these wait, the
# parser's main partitions never do.
MAIL_INBOUND_RETRY = TopicSpec(
    "mail.inbound.retry",
    CONVERSATION_PARTITIONS,
    retention_ms=3 * DAY_MS,
    max_message_bytes=INBOUND_RECORD_LIMIT,
)
MAIL_INBOUND_RESULTS = TopicSpec("mail.inbound.results", CONVERSATION_PARTITIONS)
# The parser's "about to parse partition P offsets O..E" markers: one key per partition,
# one write per fetched batch; hourly segments keep what a restart reads back small.
MAIL_INBOUND_ATTEMPTS = TopicSpec(
    "mail.inbound.attempts", 1, compacted=True, segment_ms=3600 * 1000
)
CHAT_REPLIES = TopicSpec("chat.replies", CONVERSATION_PARTITIONS)
CHAT_DELIVERIES = TopicSpec("chat.deliveries", CONVERSATION_PARTITIONS, compacted=True)
# Dead letters keep a reason and where the record is (topic, partition, offset, key), not its
# content; 30 days is long enough to act on an alert and short enough not to become an archive.
DEAD_LETTER = TopicSpec(
    "bridge.deadletter", 1, retention_ms=30 * DAY_MS, max_message_bytes=DEFAULT_RECORD_LIMIT
)
ADMIN_AUDIT = TopicSpec("admin.audit", 1, retention_ms=365 * DAY_MS)
# Shop users and roles, keyed shop_id:email: the admin API's durable state, no database.
ADMIN_USERS = TopicSpec("admin.users", 4, compacted=True)

ALL_TOPICS: tuple[TopicSpec, ...] = (
    CHAT_EVENTS,
    SHOP_SETTINGS,
    MAIL_DIGESTS,
    MAIL_OUTCOMES,
    MAIL_NOTICES,
    MAIL_INBOUND,
    MAIL_INBOUND_RETRY,
    MAIL_INBOUND_RESULTS,
    MAIL_INBOUND_ATTEMPTS,
    CHAT_REPLIES,
    CHAT_DELIVERIES,
    DEAD_LETTER,
    ADMIN_AUDIT,
    ADMIN_USERS,
)
