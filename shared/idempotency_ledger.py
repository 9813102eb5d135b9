"""The idempotency ledger: which effects (a digest sent, a reply part posted) are done.

One compacted topic per ledger, keyed by effect id, rebuilt in memory by replaying it and
kept current by tailing it; each entry is forgotten a retention after its newest record
and then tombstoned, so neither memory nor the topic grows without bound. What an entry
means is the service's (``mailer/outcome_ledger.py``, ``fanout/delivery_log.py``); how the
whole exactly-once scheme fits together: README "Exactly once without transactions" and
docs/exactly-once.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.compacted_topic import CompactedTopicReader
from shared.metrics import LEDGER_EXPIRED, LEDGER_KEYS

log = logging.getLogger(__name__)

E = TypeVar("E")

# Expiry granularity: keys are forgotten in hourly buckets.
BUCKET_MS = 3600 * 1000


class LedgerBook(Generic[E]):
    """The ledger's memory, pure: key -> entry, each kept ``retention_ms`` after its
    newest record. ``merge(old, new)`` decides what a new record of a known key leaves."""

    def __init__(
        self, retention_ms: int, merge: Callable[[E | None, E], E] = lambda old, new: new
    ) -> None:
        self.retention_ms = retention_ms
        self._merge = merge
        self._entries: dict[str, E] = {}
        # key -> the expiry bucket (hour) of its newest record; each bucket lists the keys
        # touched in it (some since moved to a later bucket), so expiry visits only keys
        # that are due, whatever order the partitions were read in.
        self._bucket_of: dict[str, int] = {}
        self._buckets: dict[int, set[str]] = {}

    def get(self, key: str) -> E | None:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def note(self, key: str, entry: E, at_ms: int) -> None:
        """A record of ``key`` at ``at_ms`` (a key never moves back in time)."""
        self._entries[key] = self._merge(self._entries.get(key), entry)
        bucket = max(at_ms // BUCKET_MS, self._bucket_of.get(key, 0))
        self._bucket_of[key] = bucket
        self._buckets.setdefault(bucket, set()).add(key)

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)
        self._bucket_of.pop(key, None)

    def expire(self, now_ms: int) -> list[str]:
        """Forget keys whose newest record is older than the retention; returns them.

        Exact to the bucket: a key is forgotten at most one bucket (an hour) after its
        time, never before it."""
        cutoff = (now_ms - self.retention_ms) // BUCKET_MS
        expired: list[str] = []
        for bucket in [b for b in self._buckets if b < cutoff]:
            for key in self._buckets.pop(bucket):
                if self._bucket_of.get(key) == bucket:
                    self.forget(key)
                    expired.append(key)
        return expired


class IdempotencyLedger(Generic[E]):
    """A :class:`LedgerBook` kept current from ``topic``, with tombstones for what expires.

    ``read_entry`` turns a record's value into an entry (None: ignore the record); a
    tombstone read back forgets the key. ``tombstones``: the producer that writes one for
    each expired key, or None to forget it in memory only. ``clock``: seconds since the
    epoch. Every partition is read: the ledger topics are keyed by effect id, not by
    conversation, so an input partition's entries can be on any ledger partition.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        read_entry: Callable[[bytes], E | None],
        *,
        retention_ms: int,
        merge: Callable[[E | None, E], E] = lambda old, new: new,
        tombstones: AIOKafkaProducer | None = None,
        poll_ms: int = 1000,
        clock: Callable[[], float] = time.time,
        fetch_max_wait_ms: int = 500,
    ) -> None:
        self.topic = topic
        self.book: LedgerBook[E] = LedgerBook(retention_ms, merge)
        self._read_entry = read_entry
        self._tombstones = tombstones
        self._clock = clock
        self._reader = CompactedTopicReader(
            bootstrap,
            self._apply,
            topics=[topic],
            poll_ms=poll_ms,
            client_id=f"ledger-{topic}",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._expire_every_s = max(1.0, poll_ms / 1000)
        self._started = False
        self._expiring: asyncio.Task[None] | None = None
        self._current = asyncio.Event()

    # --- lookups and local writes ------------------------------------------------

    def get(self, key: str) -> E | None:
        return self.book.get(key)

    def __len__(self) -> int:
        return len(self.book)

    def note(self, key: str, entry: E, at_ms: int | None = None) -> None:
        """Note a record this process has just written (no need to wait for the tail)."""
        self.book.note(key, entry, self._now_ms() if at_ms is None else at_ms)

    def forget(self, key: str) -> None:
        """Forget a key this process has just tombstoned itself."""
        self.book.forget(key)

    def expire(self) -> list[str]:
        """Forget keys past the retention (see :meth:`LedgerBook.expire`); returns them."""
        expired = self.book.expire(self._now_ms())
        if expired:
            LEDGER_EXPIRED.labels(self.topic).inc(len(expired))
        LEDGER_KEYS.labels(self.topic).set(len(self.book))
        return expired

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # --- keeping current ------------------------------------------------------------

    def outdated(self) -> None:
        """Someone else may write entries we must see now (a partition moved): hold
        :meth:`current` until the next :meth:`catch_up`."""
        self._current.clear()

    async def current(self) -> None:
        """Return once the ledger holds everything written before the latest catch-up."""
        await self._current.wait()

    async def start(self) -> None:
        """Read every entry recorded so far, then keep tailing in the background."""
        await self.catch_up()

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once every entry written before this call has been applied (the first
        call starts the reader and replays the topic); then expire what is due."""
        if not self._started:
            await self._reader.start()
            self._started = True
            if not self._reader.partitions:
                raise RuntimeError(f"topic {self.topic} has no partitions; run ensure_topics first")
            self._expiring = asyncio.create_task(
                self._expire_periodically(), name=f"ledger-{self.topic}-expiry"
            )
        await self._reader.catch_up(timeout_s)
        self._current.set()
        await self._expire_and_tombstone()

    async def _expire_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._expire_every_s)
            await self._expire_and_tombstone()

    async def _expire_and_tombstone(self) -> None:
        expired = self.expire()
        if expired and self._tombstones is not None:
            await self._write_tombstones(expired)

    async def _write_tombstones(self, keys: list[str]) -> None:
        """Queue one tombstone per key; not awaited one by one (a failure only leaves the
        key on the topic, to be tombstoned again when it is next replayed and expired)."""
        assert self._tombstones is not None
        for key in keys:
            try:
                sent = await self._tombstones.send(self.topic, None, key=key.encode())
            except Exception as exc:  # the broker is away: the next replay retries
                log.warning(
                    "cannot queue ledger tombstones", extra={"topic": self.topic, "error": str(exc)}
                )
                return
            sent.add_done_callback(self._log_tombstone_failure)

    def _log_tombstone_failure(self, sent: asyncio.Future[object]) -> None:
        if not sent.cancelled() and sent.exception() is not None:
            log.warning(
                "ledger tombstone not written",
                extra={"topic": self.topic, "error": str(sent.exception())},
            )

    def _apply(self, rec: ConsumerRecord) -> None:
        if not rec.key:
            return
        key = rec.key.decode("utf-8", "replace")
        if rec.value is None:  # a tombstone: finished, or expired by some replica
            self.book.forget(key)
            return
        entry = self._read_entry(rec.value)
        if entry is None:
            return
        at_ms = rec.timestamp if rec.timestamp and rec.timestamp > 0 else self._now_ms()
        self.book.note(key, entry, at_ms)

    async def stop(self) -> None:
        if self._expiring is not None:
            self._expiring.cancel()
            try:
                await self._expiring
            except (asyncio.CancelledError, Exception):
                pass
        await self._reader.stop()
