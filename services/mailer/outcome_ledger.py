"""What an entry of the mailer's idempotency ledger (``mail.outcomes``) means.

Keyed by digest (or notice) id: ``attempting`` is written just before the SMTP
transaction, the final outcome (``sent``/``failed``/``duplicate``) after it. A pending
attempt keeps its time, so a new owner can tell a send another process may still be
finishing from one whose process died (``mailer_attempt_lease_s``). The mechanics
(replay, tail, expiry, tombstones) are :mod:`shared.idempotency_ledger`; why and for how
long: docs/exactly-once.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import orjson
from aiokafka import AIOKafkaProducer

from shared.idempotency_ledger import IdempotencyLedger
from shared.topics import CHAT_EVENTS, MAIL_DIGESTS, MAIL_OUTCOMES, replay_window_ms

log = logging.getLogger(__name__)

ATTEMPTING = "attempting"

# An outcome can be asked for as long as a consolidator replaying chat.events can emit its
# digest again and that digest can then wait on mail.digests.
DEFAULT_RETENTION_MS = replay_window_ms(CHAT_EVENTS, MAIL_DIGESTS)

# A catch-up (one per batch) waits for the fetch already in flight before its own can go:
# a short broker wait keeps that small, at the price of an idle ledger polling often.
FETCH_MAX_WAIT_MS = 10


class Seen(Enum):
    NOTHING = "nothing"
    ATTEMPTED = "attempted"  # a send started; whether the relay took it is unknown
    DONE = "done"  # a final outcome is recorded


@dataclass(frozen=True, slots=True)
class Attempt:
    """An ``attempting`` mark with no final outcome yet, and when it was written (the
    writer's clock, ms; 0 when the record did not say)."""

    at_ms: int


# A ledger entry: DONE, or the newest attempt of a digest not done yet.
Entry = Seen | Attempt


def read_outcome(value: bytes) -> Entry:
    """An outcome record as an entry; one that cannot be read counts as done (resending
    a mail on a record we cannot read would be a guess)."""
    try:
        record = orjson.loads(value)
        status = record.get("status", "")
        at_ms = record.get("at_ms", 0)
    except (orjson.JSONDecodeError, AttributeError):
        log.warning("unreadable outcome record counted as done")
        return Seen.DONE
    if status != ATTEMPTING:
        return Seen.DONE
    return Attempt(at_ms if isinstance(at_ms, int) and at_ms > 0 else 0)


def keep_done(old: Entry | None, new: Entry) -> Entry:
    """A later ``attempting`` never reopens a digest with a final outcome."""
    return Seen.DONE if old is Seen.DONE else new


class OutcomeLedger(IdempotencyLedger[Entry]):
    """Digest and notice ids with a recorded outcome, kept current by a background tail.

    ``guarded``: the topics whose records the outcomes are of (the service passes
    ``mail.digests`` and ``mail.notices``: then only their assigned partitions' outcomes
    are read, see :class:`~shared.idempotency_ledger.IdempotencyLedger`);
    ``retention_ms``: how long after its newest record an id is kept; ``tombstones``: the
    producer that tombstones each forgotten id (None: forget in memory only)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str = MAIL_OUTCOMES.name,
        *,
        poll_ms: int = 1000,
        retention_ms: int = DEFAULT_RETENTION_MS,
        tombstones: AIOKafkaProducer | None = None,
        clock: Callable[[], float] = time.time,
        guarded: Sequence[str] = (),
        read_all: bool = False,
    ) -> None:
        super().__init__(
            bootstrap,
            topic,
            read_outcome,
            merge=keep_done,
            retention_ms=retention_ms,
            tombstones=tombstones,
            poll_ms=poll_ms,
            clock=clock,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            guarded=guarded,
            read_all=read_all,
        )

    def seen(self, item_id: str) -> Seen:
        entry = self.get(item_id)
        if entry is None:
            return Seen.NOTHING
        return Seen.ATTEMPTED if isinstance(entry, Attempt) else entry

    def attempted_at_ms(self, item_id: str) -> int | None:
        """When the pending attempt on ``item_id`` began (ms), or None when there is none."""
        entry = self.get(item_id)
        return entry.at_ms if isinstance(entry, Attempt) else None

    def record_done(self, item_id: str, partition: int | None, at_ms: int | None = None) -> None:
        """Note an outcome this process has just written to ``partition`` (no need to wait
        for the tail)."""
        self.note(item_id, Seen.DONE, partition, at_ms)
