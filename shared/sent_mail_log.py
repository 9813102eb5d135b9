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

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.codec import DecodeError, decoder
from shared.events import MailNotice
from shared.logging import now_ms
from shared.send_limits import MailSend, SendWindow, send_of

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 30.0

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

    def __init__(self, bootstrap: str, window: SendWindow, sources: Mapping[str, SendReader], *,
                 clock: Callable[[], int] = now_ms, client_id: str = "sent-mail-log",
                 follow: bool = True) -> None:
        self.window = window
        self._follow = follow
        self._bootstrap = bootstrap
        self._sources = dict(sources)
        self._clock = clock
        self._client_id = client_id
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, wait_s: float = 30.0) -> None:
        if not self.window.limits:
            self.ready.set()
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    client_id=self._client_id)
        await consumer.start()
        self._consumer = consumer
        try:
            pending, ends = await self._seek_window_start(consumer)
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.create_task(self._run(pending, ends))
        try:
            await asyncio.wait_for(self.ready.wait(), wait_s)
        except TimeoutError:
            log.warning("sent-mail log not caught up within %ss; counting what is read", wait_s)

    async def _seek_window_start(self, consumer: AIOKafkaConsumer
                                 ) -> tuple[set[TopicPartition], dict[TopicPartition, int]]:
        """Position every partition at the window's start; (partitions to read, their ends)."""
        await consumer._client.force_metadata_update()  # topics may be brand new
        tps = [TopicPartition(t, p) for t in self._sources
               for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return set(), {}
        consumer.assign(tps)
        since = max(0, self._clock() - self.window.horizon_ms)
        found = await consumer.offsets_for_times({tp: since for tp in tps})
        for tp in tps:
            at = found.get(tp)
            if at is None:
                await consumer.seek_to_end(tp)
            else:
                consumer.seek(tp, at.offset)
        ends = await consumer.end_offsets(tps)
        return {tp for tp in tps if ends[tp] > await consumer.position(tp)}, ends

    async def _run(self, pending: set[TopicPartition], ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        if not pending:
            self.ready.set()
            if not self._follow:
                await self._close()
                return
        loop = asyncio.get_running_loop()
        next_prune = loop.time() + PRUNE_EVERY_S
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            except Exception:  # keep tailing through broker hiccups; aiokafka reconnects
                log.warning("sent-mail log fetch failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            for tp, records in batches.items():
                read = self._sources[tp.topic]
                for rec in records:
                    send = read(rec.value) if rec.value else None
                    if send is not None:
                        self.window.observe(send)
                if tp in pending and records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if not pending and not self.ready.is_set():
                self.ready.set()
                if not self._follow:
                    await self._close()
                    return
            if loop.time() >= next_prune:
                self.window.prune(self._clock())
                next_prune = loop.time() + PRUNE_EVERY_S

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
