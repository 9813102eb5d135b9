"""What keeps one mail from taking the parser down with it, again and again.

A mail can cost more than the process survives in ways no check inside the parse can stop
(a quadratic loop inside the standard library, an allocation the pod's memory limit
answers with SIGKILL). Two parts, both outside the parse:

- :class:`AttemptLog`: before parsing a batch the parser durably notes "attempting
  partition P offsets O..E" on ``mail.inbound.attempts``. Offsets commit after a batch, so
  a process that died restarts at or before those records; finding them marked, the next
  process parses them one at a time under a marker each, counts the deaths per record, and
  at ``parser_max_attempts`` dead-letters the mail instead of parsing it (no crash loop,
  the partition moves on).
- :class:`ParseWatchdog`: a thread that ends the process (exit code 70) when one parse runs
  past ``stuck_after_s`` or grows the process past ``max_rss_bytes``; the orchestrator
  restarts it and the attempt log does the rest.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.codec import DecodeError, decode, encode
from shared.compacted_topic import replay_topic
from shared.events import ParseAttempt
from shared.logging import now_ms
from shared.topics import MAIL_INBOUND_ATTEMPTS

log = logging.getLogger("reply_parser.guard")

EXIT_PARSE_BREACH = 70  # EX_SOFTWARE: the process ended itself because of one mail


class AttemptLog:
    """The last attempted records per partition of one group's input topic, kept on Kafka.

    Normally one marker covers a whole fetched batch (``offset`` to ``last_offset``), so
    the cost is one small write per batch. A restart that finds a batch marker does not
    know which of its records killed the process: it parses those records one at a time,
    each under its own marker, and the next death names the mail exactly.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        group: str,
        topic: str,
        found: dict[int, tuple[int, int, int]] | None = None,
    ) -> None:
        self._producer = producer
        self._group = group
        self._topic = topic
        # partition -> (first, last, attempts) as left by earlier processes (read by
        # :meth:`load`); an entry goes once this process has moved past it.
        self._found: dict[int, tuple[int, int, int]] = dict(found or {})
        # Partitions whose markers were read since they were (re)assigned to this process.
        self._covered: set[int] = set()

    def forget(self, partitions: set[int]) -> None:
        """These partitions were assigned or revoked: read their markers again before use."""
        self._covered -= partitions

    async def ensure_loaded(self, bootstrap: str, partitions: set[int]) -> None:
        """Read the markers before the first record of a newly assigned partition is parsed.

        Checked per batch rather than in the rebalance listener: the consumer may hand out
        a new partition's first records while the listener is still running.
        """
        if not partitions <= self._covered:
            await self.load(bootstrap)
            self._covered |= partitions

    async def load(self, bootstrap: str) -> None:
        """Read every marker left for this group and topic."""
        found: dict[int, tuple[int, int, int]] = {}

        def apply(rec: ConsumerRecord) -> None:
            try:
                mark = decode(ParseAttempt, rec.value or b"")
            except DecodeError:
                return
            if mark.group == self._group and mark.topic == self._topic:
                found[mark.partition] = (
                    mark.offset,
                    max(mark.offset, mark.last_offset),
                    mark.attempts,
                )

        await replay_topic(bootstrap, MAIL_INBOUND_ATTEMPTS.name, apply)
        self._found = found
        log.info(
            "parse attempts loaded",
            extra={
                "topic": self._topic,
                "unfinished": {
                    str(p): f"offsets {a}-{b}, {n} attempt(s)" for p, (a, b, n) in found.items()
                },
            },
        )

    def suspect(self, partition: int, first_offset: int, last_offset: int) -> bool:
        """Whether records first..last overlap what an earlier process died parsing (then
        they are parsed one at a time, see :meth:`deaths_before`)."""
        found = self._found.get(partition)
        if found is None or first_offset > found[1]:
            self._found.pop(partition, None)
            return False
        return last_offset >= found[0]

    def deaths_before(self, partition: int, offset: int) -> int | None:
        """How many processes died parsing exactly this record (one-at-a-time mode).

        None for a record before the ones last attempted on its partition: it was parsed
        to the end before (records of a partition are parsed in order), so it is replayed
        without a marker. 0 inside a batch marker: that batch's deaths name no one record.
        """
        found = self._found.get(partition)
        if found is None or offset > found[1]:
            self._found.pop(partition, None)
            return 0
        first, last, attempts = found
        if offset < first:
            return None
        return attempts if first == last else 0

    async def mark(
        self, partition: int, offset: int, attempts: int, last_offset: int | None = None
    ) -> None:
        """Durably note that the parse of records offset..last_offset starts now."""
        key = f"{self._group}:{self._topic}:{partition}".encode()
        mark = ParseAttempt(
            group=self._group,
            topic=self._topic,
            partition=partition,
            offset=offset,
            last_offset=offset if last_offset is None else last_offset,
            attempts=attempts,
            at_ms=now_ms(),
        )
        await self._producer.send_and_wait(MAIL_INBOUND_ATTEMPTS.name, encode(mark), key=key)


def _rss_bytes() -> int:
    """Resident set size of this process (0 where /proc is not available)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ParseWatchdog:
    """Ends the process when the parse under way is stuck or too big to survive.

    *max_rss_bytes* of 0 leaves memory to the orchestrator's limit (whose kill the attempt
    log handles the same way).
    """

    def __init__(
        self, stuck_after_s: float, max_rss_bytes: int = 0, interval_s: float = 0.05
    ) -> None:
        self._stuck_after = stuck_after_s
        self._max_rss = max_rss_bytes
        self._interval = interval_s
        # Parses under way (the main and the retry consumer may each run one).
        self._current: dict[object, tuple[str, float]] = {}
        self._thread = threading.Thread(target=self._watch, name="parse-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @contextmanager
    def parsing(self, what: str) -> Iterator[None]:
        """Watch the parse of *what* (e.g. ``mail.inbound/3@1200``) while the block runs."""
        token = object()
        self._current[token] = (what, time.monotonic())
        try:
            yield
        finally:
            del self._current[token]

    def breach(self) -> str | None:
        """Why the parse under way must end the process, or None."""
        current = list(self._current.values())
        if not current:
            return None
        now = time.monotonic()
        for what, started in current:
            if now - started > self._stuck_after:
                return f"parse of {what} still running after {self._stuck_after:.0f}s"
        if self._max_rss:
            rss = _rss_bytes()
            if rss > self._max_rss:
                names = ", ".join(what for what, _ in current)
                return (
                    f"process grew to {rss // 2**20} MB parsing {names} "
                    f"(limit {self._max_rss // 2**20} MB)"
                )
        return None

    def _watch(self) -> None:
        while True:
            time.sleep(self._interval)
            reason = self.breach()
            if reason is not None:
                log.critical(
                    "ending the process: the mail being parsed cannot be survived; "
                    "it is dead-lettered after the restarts parser_max_attempts allows",
                    extra={"reason": reason},
                )
                logging.shutdown()
                os._exit(EXIT_PARSE_BREACH)
