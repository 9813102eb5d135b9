"""The ingest process's view of the admin topics and of simulated conversations.

No consumer group (every replica reads everything, like a global table):
``admin.users`` and ``shop.settings`` are read at start from where the directory's
store was read up to (the beginning for an empty store), the API answering only once
they are loaded, then tailed; the four topics a
simulation's status is derived from are read from their end, and only records
of simulated conversations (a cheap byte check before decoding) are kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

import orjson
from aiokafka import ConsumerRecord

from ingest.admin_directory import AdminDirectory
from ingest.ingest_settings import IngestSettings
from ingest.simulation import SIMULATION_PREFIX, SimulationTrace
from shared.codec import DecodeError, decode
from shared.compacted_topic import CompactedTopicReader
from shared.events import (
    AuditEvent,
    ChatEvent,
    ChatEventKind,
    InboundResult,
    MailOutcome,
    NoticeKind,
    PartDelivery,
)
from shared.metrics import STATE_RECORDS_READ
from shared.send_limits import MailSend
from shared.topics import (
    ADMIN_USERS,
    CHAT_DELIVERIES,
    CHAT_EVENTS,
    MAIL_INBOUND_RESULTS,
    MAIL_OUTCOMES,
    SHOP_SETTINGS,
)

log = logging.getLogger("ingest.admin")
_SIM_MARK = f'"conversation_id":"{SIMULATION_PREFIX}'.encode()
STATE_TOPICS = (ADMIN_USERS.name, SHOP_SETTINGS.name)
SIMULATION_TOPICS = (
    CHAT_EVENTS.name,
    MAIL_OUTCOMES.name,
    MAIL_INBOUND_RESULTS.name,
    CHAT_DELIVERIES.name,
)


def simulation_send(value: bytes) -> MailSend | None:
    """An ``admin.audit`` record of a started simulation as the digest it sends, for the
    send limits (any other record: None)."""
    if b'"run_simulation"' not in value:
        return None
    try:
        event = decode(AuditEvent, value)
        after = orjson.loads(event.after) if event.action == "run_simulation" else None
    except (DecodeError, orjson.JSONDecodeError):
        return None
    if not isinstance(after, dict):
        return None
    return MailSend(
        send_id=f"simulation-{event.target}",
        kind=NoticeKind.SIMULATION,
        shop_id=event.shop_id,
        recipient=str(after.get("destination_email", "")),
        at_ms=event.at_ms,
    )


class SimulationTraces:
    """Traces of recent simulated conversations, bounded (oldest dropped first)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._traces: OrderedDict[str, SimulationTrace] = OrderedDict()
        self._capacity = capacity

    def get(self, conversation_id: str) -> SimulationTrace | None:
        return self._traces.get(conversation_id)

    def trace(self, shop_id: str, conversation_id: str) -> SimulationTrace:
        found = self._traces.get(conversation_id)
        if found is None:
            found = self._traces[conversation_id] = SimulationTrace(shop_id=shop_id)
            if len(self._traces) > self._capacity:
                self._traces.popitem(last=False)
        return found

    def apply(self, rec: ConsumerRecord) -> None:
        value = rec.value or b""
        if _SIM_MARK not in value:
            return
        try:
            if rec.topic == CHAT_EVENTS.name:
                ev = decode(ChatEvent, value)
                if ev.kind == ChatEventKind.BUYER_MESSAGE:
                    trace = self.trace(ev.shop_id, ev.conversation_id)
                    trace.buyer_message = trace.buyer_message or ev
            elif rec.topic == MAIL_OUTCOMES.name:
                out = decode(MailOutcome, value)
                self.trace(out.shop_id, out.conversation_id).outcomes.append(out)
            elif rec.topic == MAIL_INBOUND_RESULTS.name:
                res = decode(InboundResult, value)
                self.trace(res.shop_id, res.conversation_id).inbound.append(res)
            elif rec.topic == CHAT_DELIVERIES.name:
                part = decode(PartDelivery, value)
                self.trace(part.shop_id, part.conversation_id).deliveries[
                    (part.reply_id, part.index)
                ] = part
        except DecodeError as exc:
            log.warning(
                "undecodable record on a simulation topic ignored",
                extra={"topic": rec.topic, "reason": str(exc)},
            )


class AdminFeeds:
    """The admin state topics replayed and tailed into ``directory``; the simulation
    topics tailed from their end into ``traces``."""

    def __init__(
        self, settings: IngestSettings, directory: AdminDirectory, traces: SimulationTraces
    ) -> None:
        self.directory = directory
        self.traces = traces
        bootstrap = settings.kafka_bootstrap
        self._state = CompactedTopicReader(
            bootstrap,
            self._apply_state,
            topics=STATE_TOPICS,
            client_id="ingest-admin",
            checkpoint=directory.store,
        )
        self._read = STATE_RECORDS_READ.labels("admin-directory")
        self._simulations = CompactedTopicReader(
            bootstrap,
            traces.apply,
            topics=SIMULATION_TOPICS,
            from_end=True,
            client_id="ingest-simulations",
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once the admin state on the topics at start has been applied."""
        return self._state.ready

    @property
    def records_read(self) -> int:
        """Records of the admin state topics read by this process."""
        return self._state.records

    def _apply_state(self, rec: ConsumerRecord) -> None:
        self._read.inc()
        if rec.topic == ADMIN_USERS.name:
            self.directory.apply_user_record(rec.key, rec.value)
        else:
            self.directory.apply_settings_record(rec.key, rec.value)

    async def start(self, wait_s: float = 30.0) -> None:
        await self._simulations.start()
        await self._state.start(wait_s)
        log.info(
            "admin directory read",
            extra={
                "resumed": self._state.resumed,
                "records_read": self._state.records,
                "ready": self._state.ready.is_set(),
                "store": str(self.directory.store.path),
            },
        )

    async def stop(self) -> None:
        await self._state.stop()
        await self._simulations.stop()
