"""The idempotency ledger: which effects (a digest sent, a reply part posted) are done.

One compacted topic per ledger, keyed by effect id, rebuilt in memory by replaying it and
kept current by tailing it; each entry is forgotten a retention after its newest record
and then tombstoned, so neither memory nor the topic grows without bound. A record lies
on the ledger partition numbered like the input partition of the record it guards
(:func:`ledger_partition`), so a replica reads only the ledger partitions of the input
partitions it is assigned (:meth:`IdempotencyLedger.hold`). What an entry
means is the service's (``mailer/outcome_ledger.py``, ``fanout/delivery_log.py``); how the
whole exactly-once scheme fits together: README "Exactly once without transactions" and
docs/exactly-once.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Generic, TypeVar

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.compacted_topic import CompactedTopicReader
from shared.kafka import topic_partitions
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


class LedgerBooks(Generic[E]):
    """A :class:`LedgerBook` per ledger partition held, pure. A partition's book goes
    with it (:meth:`drop`), and an expired key's partition is known for its tombstone
    without being stored per key."""

    def __init__(
        self, retention_ms: int, merge: Callable[[E | None, E], E] = lambda old, new: new
    ) -> None:
        self._retention_ms = retention_ms
        self._merge = merge
        self._books: dict[int, LedgerBook[E]] = {}

    @property
    def retention_ms(self) -> int:
        return self._retention_ms

    @property
    def held(self) -> set[int]:
        return set(self._books)

    def hold(self, partition: int) -> None:
        """Start an empty book for ``partition`` (kept if it has one)."""
        self._books.setdefault(partition, LedgerBook(self._retention_ms, self._merge))

    def drop(self, partition: int) -> None:
        self._books.pop(partition, None)

    def book(self, partition: int | None) -> LedgerBook[E] | None:
        return self._books.get(partition) if partition is not None else None

    def get(self, key: str) -> E | None:
        # A key is on one partition, except records from before per-partition placement
        # (read-all mode): its entries are then merged as if read one after the other.
        found: E | None = None
        for book in self._books.values():
            entry = book.get(key)
            if entry is not None:
                found = entry if found is None else self._merge(found, entry)
        return found

    def __len__(self) -> int:
        return sum(len(book) for book in self._books.values())

    def sizes(self) -> dict[int, int]:
        """Keys held, by partition."""
        return {p: len(book) for p, book in self._books.items()}

    def note(self, key: str, entry: E, partition: int | None, at_ms: int) -> None:
        """A record of ``key`` on ``partition``; ignored when that partition is not held
        (no longer ours: its next owner reads the record from the topic)."""
        book = self.book(partition)
        if book is not None:
            book.note(key, entry, at_ms)

    def forget(self, key: str) -> None:
        for book in self._books.values():
            book.forget(key)

    def expire(self, now_ms: int) -> dict[int, list[str]]:
        """Forget keys past the retention (see :meth:`LedgerBook.expire`); returns them by
        partition."""
        return {p: keys for p, book in self._books.items() if (keys := book.expire(now_ms))}


def ledger_partition(guarded_partition: int, ledger_partitions: int) -> int:
    """The ledger partition of an effect guarded by a record on ``guarded_partition``.

    The same number: the owner of an input partition then finds every effect of its
    records on one ledger partition, whatever partitioner placed the input. The modulo
    only matters when the ledger has fewer partitions than an input topic (a deployment
    error :meth:`IdempotencyLedger.start` warns about, and reads the whole ledger for)."""
    return guarded_partition % ledger_partitions


def reads_per_partition(
    ledger_partitions: int, guarded_partitions: Iterable[int], read_all: bool
) -> bool:
    """Whether a replica may read only the ledger partitions of its input partitions:
    not when told to read all (records from before per-partition placement lie on the
    partition of their key), nor when an input topic has more partitions than the ledger
    (raising the ledger's count later would move where :func:`ledger_partition` puts
    records; reading all holds under any placement)."""
    counts = list(guarded_partitions)
    return bool(counts) and not read_all and all(n <= ledger_partitions for n in counts)


class IdempotencyLedger(Generic[E]):
    """A :class:`LedgerBook` per ledger partition held, kept current from ``topic``, with
    tombstones for what expires (written to the partition the key was read from).

    ``guarded``: the input topics whose records the entries guard. With any, and unless
    ``read_all``, the ledger holds only the partitions :meth:`hold` is given (those of the
    input partitions assigned); without, or when the partition counts do not allow it
    (:func:`reads_per_partition`), every partition, as a ledger read whole.
    ``read_entry`` turns a record's value into an entry (None: ignore the record); a
    tombstone read back forgets the key. ``tombstones``: the producer that writes one for
    each expired key, or None to forget it in memory only. ``clock``: seconds since the
    epoch.
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
        guarded: Sequence[str] = (),
        read_all: bool = False,
    ) -> None:
        self.topic = topic
        self._bootstrap = bootstrap
        self._guarded = tuple(guarded)
        self._read_all = read_all
        self.books: LedgerBooks[E] = LedgerBooks(retention_ms, merge)
        self._read_entry = read_entry
        self._tombstones = tombstones
        self._clock = clock
        self._reader = CompactedTopicReader(
            bootstrap,
            self._apply,
            poll_ms=poll_ms,
            client_id=f"ledger-{topic}",
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._expire_every_s = max(1.0, poll_ms / 1000)
        self._started = False
        self._unread = False  # partitions newly held and not yet read to their end
        self._starting = asyncio.Lock()
        self._expiring: asyncio.Task[None] | None = None
        self._current = asyncio.Event()
        self.partitions = 0  # of the ledger topic, known from the start
        self.per_partition = False  # decided at the start

    # --- lookups and local writes ------------------------------------------------

    def get(self, key: str) -> E | None:
        return self.books.get(key)

    def __len__(self) -> int:
        return len(self.books)

    @property
    def held(self) -> set[int]:
        """The ledger partitions whose entries are in memory."""
        return self.books.held

    def partition_for(self, guarded_partition: int) -> int | None:
        """Where to write the record of an effect guarded by ``guarded_partition``
        (:func:`ledger_partition`); None before :meth:`start` (the producer's default)."""
        if not self.partitions:
            return None
        return ledger_partition(guarded_partition, self.partitions)

    def note(self, key: str, entry: E, partition: int | None, at_ms: int | None = None) -> None:
        """Note a record this process has just written to ``partition`` (no need to wait
        for the tail), if that partition is held (see :meth:`LedgerBooks.note`)."""
        self.books.note(key, entry, partition, self._now_ms() if at_ms is None else at_ms)

    def forget(self, key: str) -> None:
        """Forget a key this process has just tombstoned itself."""
        self.books.forget(key)

    def expire(self) -> dict[int, list[str]]:
        """Forget keys past the retention (see :meth:`LedgerBook.expire`); returns them by
        partition."""
        expired = self.books.expire(self._now_ms())
        if expired:
            LEDGER_EXPIRED.labels(self.topic).inc(sum(map(len, expired.values())))
        for partition, size in self.books.sizes().items():
            LEDGER_KEYS.labels(self.topic, str(partition)).set(size)
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
        """Learn the partition counts and decide what to read; a ledger read whole is then
        replayed, one read per partition holds nothing until :meth:`hold`. Then keep
        tailing what is held in the background."""
        await self.catch_up()

    async def _start(self) -> None:
        found = await topic_partitions(self._bootstrap, self.topic, *self._guarded)
        counts = {t: sum(1 for tp in found if tp.topic == t) for t in {self.topic, *self._guarded}}
        self.partitions = counts[self.topic]
        if not self.partitions:
            raise RuntimeError(f"topic {self.topic} has no partitions; run ensure_topics first")
        input_counts = [counts[t] for t in self._guarded]
        self.per_partition = reads_per_partition(self.partitions, input_counts, self._read_all)
        if self._guarded and not self._read_all and not self.per_partition:
            log.warning(
                "the ledger has fewer partitions than an input topic: every replica reads "
                "all of it",
                extra={"topic": self.topic, "partitions": counts},
            )
        await self._reader.start()
        self._started = True
        self._expiring = asyncio.create_task(
            self._expire_periodically(), name=f"ledger-{self.topic}-expiry"
        )

    async def hold(self, guarded_partitions: Iterable[int], timeout_s: float = 30.0) -> None:
        """Hold the ledger partitions of these input partitions (those assigned to this
        process, across every input topic) and no others: newly held ones are read from
        their start, dropped ones forgotten; then :meth:`catch_up`. Reading all, only the
        catch-up."""
        await self._ensure_started()
        if self.per_partition:
            wanted = {ledger_partition(p, self.partitions) for p in guarded_partitions}
            gone = self.books.held - wanted
            await self._reader.revoke([TopicPartition(self.topic, p) for p in gone])
            for p in gone:
                self.books.drop(p)
                with contextlib.suppress(KeyError):
                    LEDGER_KEYS.remove(self.topic, str(p))
            await self._assign(wanted - self.books.held)
        await self.catch_up(timeout_s)

    async def _ensure_started(self) -> None:
        async with self._starting:
            if not self._started:
                await self._start()
            if not self.per_partition:  # read whole (again, if the first try failed)
                await self._assign(range(self.partitions))

    async def _assign(self, partitions: Iterable[int]) -> None:
        new = sorted(set(partitions) - self.books.held)
        for p in new:
            self.books.hold(p)
        self._unread = self._unread or bool(new)
        try:
            await self._reader.assign([TopicPartition(self.topic, p) for p in new])
        except BaseException:  # not read: the next hold tries them again
            for p in new:
                self.books.drop(p)
            raise

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once every entry written before this call to a held partition has been
        applied (the first call starts the ledger); then expire what is due. A partition
        newly held is read to its end however long that takes (a replay, as at a start);
        only a catch-up of partitions already read is bounded by ``timeout_s``."""
        await self._ensure_started()
        await self._reader.catch_up(None if self._unread else timeout_s)
        self._unread = False
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

    async def _write_tombstones(self, expired: dict[int, list[str]]) -> None:
        """Queue one tombstone per key, on the partition it was read from; not awaited
        one by one (a failure only leaves the key on the topic, to be tombstoned again
        when it is next replayed and expired)."""
        assert self._tombstones is not None
        for partition, keys in expired.items():
            for key in keys:
                try:
                    sent = await self._tombstones.send(
                        self.topic, None, key=key.encode(), partition=partition
                    )
                except Exception as exc:  # the broker is away: the next replay retries
                    log.warning(
                        "cannot queue ledger tombstones",
                        extra={"topic": self.topic, "error": str(exc)},
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
        book = self.books.book(rec.partition)
        if not rec.key or book is None:  # no book: a partition just dropped
            return
        key = rec.key.decode("utf-8", "replace")
        if rec.value is None:  # a tombstone: finished, or expired by some replica
            book.forget(key)
            return
        entry = self._read_entry(rec.value)
        if entry is None:
            return
        at_ms = rec.timestamp if rec.timestamp and rec.timestamp > 0 else self._now_ms()
        book.note(key, entry, at_ms)

    async def stop(self) -> None:
        if self._expiring is not None:
            self._expiring.cancel()
            try:
                await self._expiring
            except (asyncio.CancelledError, Exception):
                pass
        await self._reader.stop()
