"""The log of mail we were asked to send, tailed into a :class:`~shared.send_limits.SendWindow`.

Every partition of each source topic is read (no consumer group, like a global
table) from the longest limit's window before now (``offsets_for_times``; a broker
that answers with an earlier offset only makes the first read longer, each record
is counted by its own time), then tailed. So every ingest replica counts what ALL
replicas published, and a restarted process counts what was sent before it started
(the mailer reads it once, at start, then counts what it admits itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from shared.codec import DecodeError, decoder
from shared.compacted_topic import CompactedTopicReader
from shared.events import MailNotice
from shared.logging import now_ms
from shared.send_limits import MailSend, SendWindow, send_of

log = logging.getLogger(__name__)
PRUNE_EVERY_MS = 30_000

# Turns one record's value into the send it stands for (None: not a send).
SendReader = Callable[[bytes], MailSend | None]
_notice = decoder(MailNotice)


def notice_send(value: bytes) -> MailSend | None:
    """A ``mail.notices`` record as a send (undecodable: not counted; the mailer
    dead-letters it)."""
    try:
        return send_of(_notice(value))
    except DecodeError:
        return None


class SentMailLog:
    """Reads ``sources`` (topic -> reader) into ``window``; :attr:`ready` once caught up.
    With ``follow`` False it stops there (and closes its consumer)."""

    def __init__(
        self,
        bootstrap: str,
        window: SendWindow,
        sources: Mapping[str, SendReader],
        *,
        clock: Callable[[], int] = now_ms,
        client_id: str = "sent-mail-log",
        follow: bool = True,
    ) -> None:
        self.window = window
        self._follow = follow
        self._bootstrap = bootstrap
        self._sources = dict(sources)
        self._clock = clock
        self._client_id = client_id
        self._reader: CompactedTopicReader | None = None
        self._next_prune_ms = 0
        self.ready = asyncio.Event()

    async def start(self, wait_s: float = 30.0) -> None:
        if not self.window.limits:
            self.ready.set()
            return
        # From the longest limit's window before now: a broker that answers with an
        # earlier offset only makes the first read longer (each send counts by its time).
        since = max(0, self._clock() - self.window.horizon_ms)
        self._reader = CompactedTopicReader(
            self._bootstrap,
            self._observe,
            topics=list(self._sources),
            since_ms=since,
            follow=self._follow,
            client_id=self._client_id,
        )
        self.ready = self._reader.ready
        await self._reader.start(wait_s)

    async def catch_up(self, timeout_s: float) -> None:
        """Read what was published up to now (at most ``timeout_s``; past it, or with the
        broker away, the window stays as the tail has it, and that is logged)."""
        if self._reader is None or not self._follow:
            return
        try:
            await self._reader.catch_up(timeout_s)
        except (TimeoutError, KafkaError) as exc:
            log.warning(
                "sent-mail log not caught up; deciding on what it has read",
                extra={"client_id": self._client_id, "error": exc.__class__.__name__},
            )

    def _observe(self, rec: ConsumerRecord) -> None:
        send = self._sources[rec.topic](rec.value) if rec.value else None
        if send is not None:
            self.window.observe(send)
        now = self._clock()
        if now >= self._next_prune_ms:
            self.window.prune(now)
            self._next_prune_ms = now + PRUNE_EVERY_MS

    async def stop(self) -> None:
        if self._reader is not None:
            await self._reader.stop()
