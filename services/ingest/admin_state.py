"""What every admin route shares, and the writes they make: one object per ingest process.

The user directory and the simulation traces (replayed from ``admin.users``,
``shop.settings`` and the mail topics by :mod:`ingest.admin_feeds`), the signing keys,
the send window that counts mail against the limits, the Kafka producer, and the
record builders. Routes reach it through the ``admin_state`` dependency of
:mod:`ingest.admin_api`.

Durability without a database: every change is a whole-state record on a compacted
topic (``admin.users`` keyed ``shop:email``, ``shop.settings`` keyed by shop), written
with acks=all, and a request gets 2xx only after Kafka acknowledged it. Every change
is also an :class:`AuditEvent` on ``admin.audit``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from ingest.activation import activation_token
from ingest.admin_directory import AdminDirectory, authorized_senders, main_account, user_key
from ingest.admin_feeds import AdminFeeds, SimulationTraces, simulation_send
from ingest.admin_notices import activation_notice
from ingest.admin_signing import parse_signing_keys
from ingest.ingest_settings import IngestSettings
from ingest.settings_change import initial_settings
from shared.codec import encode
from shared.errors import BridgeError
from shared.events import AuditEvent, ShopSettings, ShopUser
from shared.kafka import start_producer
from shared.logging import now_ms
from shared.notification_window import WindowPolicy
from shared.send_limits import MailSend, SendWindow, limits_from, send_of
from shared.sent_mail_log import SentMailLog, notice_send
from shared.topic_state_store import TopicStateStore
from shared.topics import ADMIN_AUDIT, ADMIN_USERS, MAIL_NOTICES, SHOP_SETTINGS

log = logging.getLogger("ingest.admin")

# The longest a mail-sending request waits for the sent-mail log to catch up before its
# send is decided; past it, on what the log's tail has read (a slow broker must not stall
# the console, and the mailer applies the same limits again before sending).
SENDS_CATCH_UP_S = 2.0

Record = tuple[str, str, bytes | None]  # (topic, key, value); a None value is a tombstone


class Refused(BridgeError):
    """A request refused with an HTTP status and a reason (and optional extra fields)."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


class AdminState:
    """The admin API's shared state and writes; ``start``/``stop`` in the router's lifespan.

    ``get_producer`` shares the app's producer (else :meth:`start` starts one); ``clock``
    (ms) is injectable for tests.
    """

    def __init__(
        self,
        settings: IngestSettings,
        get_producer: Callable[[], AIOKafkaProducer] | None = None,
        *,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.cfg = settings
        self.clock = clock
        self.keys = parse_signing_keys(settings.admin_token_keys.get_secret_value())
        self.window_policy = WindowPolicy.from_settings(settings)
        self.operator_token = settings.admin_operator_token.get_secret_value()
        self.directory = AdminDirectory(TopicStateStore(settings.ingest_directory_path))
        self.traces = SimulationTraces()
        self._feeds = AdminFeeds(settings, self.directory, self.traces)
        # What every replica sent lately (mail.notices, simulations on admin.audit): the
        # rate limits count it, so they hold however many ingest replicas answer.
        self.sends = SendWindow(limits_from(settings))
        self._sent_log = SentMailLog(
            settings.kafka_bootstrap,
            self.sends,
            {MAIL_NOTICES.name: notice_send, ADMIN_AUDIT.name: simulation_send},
            clock=clock,
            client_id="ingest-sent-mail",
        )
        self._get_producer = get_producer
        self._own_producer: AIOKafkaProducer | None = None
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._get_producer is None:
            self._own_producer = await start_producer(self.cfg)
        self._http = httpx.AsyncClient(timeout=5.0)
        await self._feeds.start()
        await self._sent_log.start()

    async def stop(self) -> None:
        await self._sent_log.stop()
        await self._feeds.stop()
        self.directory.close()
        if self._http is not None:
            await self._http.aclose()
        if self._own_producer is not None:
            await self._own_producer.stop()

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "AdminState.start() runs in the router's lifespan"
        return self._http

    def producer(self) -> AIOKafkaProducer:
        if self._get_producer is not None:
            return self._get_producer()
        assert self._own_producer is not None, "AdminState.start() runs first"
        return self._own_producer

    # --- reading the directory ------------------------------------------------

    def require_shop(self, shop_id: str) -> list[ShopUser]:
        users = self.directory.users_of(shop_id)
        if main_account(users) is None:
            raise Refused(404, f"shop {shop_id} is not onboarded")
        return users

    def current_settings(self, shop_id: str) -> ShopSettings:
        found = self.directory.settings(shop_id)
        if found is not None:
            return found
        main = main_account(self.directory.users_of(shop_id))
        return initial_settings(
            shop_id, main.email if main else "", shop_name="", region="us", now_ms=0, actor=""
        )

    def with_senders(self, shop_id: str, users: list[ShopUser], actor: str) -> ShopSettings:
        return replace(
            self.current_settings(shop_id),
            authorized_senders=authorized_senders(users),
            updated_at_ms=self.clock(),
            updated_by=actor,
        )

    # --- writing --------------------------------------------------------------

    async def write(self, *records: Record) -> None:
        """Write records in order, each acknowledged by Kafka before the next."""
        try:
            for topic, key, value in records:
                await self.producer().send_and_wait(topic, value, key=key.encode())
        except KafkaError as exc:
            log.warning(
                "kafka unavailable; admin change refused", extra={"error": exc.__class__.__name__}
            )
            raise Refused(
                503, "the event store is unavailable; retry later", retry_after_s=5
            ) from None

    async def write_counted(self, send_id: str, *records: Record) -> None:
        """:meth:`write` for records holding a counted send: uncounted if not written."""
        try:
            await self.write(*records)
        except Refused:
            self.sends.forget(send_id)
            raise

    async def count_send(self, send: MailSend) -> None:
        """Refuse a send over a limit, else count it now. Decided on what every replica
        has published so far (the sent-mail log is caught up first, so requests that
        alternate between replicas count each other's sends); a concurrent request on this
        replica sees it before the write returns (nothing awaited between the check and
        the count)."""
        await self._sent_log.catch_up(SENDS_CATCH_UP_S)
        over = self.sends.admit(send)
        if over is not None:
            log.warning(
                "mail refused: over a send limit",
                extra={"shop_id": send.shop_id, "kind": send.kind, "limit": over.label},
            )
            raise Refused(
                429,
                over.reason,
                code="rate_limited",
                limit=over.as_dict(),
                retry_after_s=over.retry_after_s,
            )

    def audit(
        self,
        actor: str,
        shop_id: str,
        action: str,
        target: str,
        before: object | None,
        after: object | None,
    ) -> Record:
        event = AuditEvent(
            audit_id=uuid.uuid4().hex,
            shop_id=shop_id,
            actor=actor,
            action=action,
            target=target,
            before=_json(before),
            after=_json(after),
            at_ms=self.clock(),
        )
        return ADMIN_AUDIT.name, shop_id, encode(event)

    async def notice_record(self, user: ShopUser, shop_name: str) -> tuple[Record, str]:
        """The activation notice's record and id, counted against the send limits (429
        when over one); write it with :meth:`write_counted`."""
        notice = activation_notice(
            user,
            activation_token(user, self.keys),
            link_base=self.cfg.activation_link_base,
            marketplace_name=self.cfg.marketplace_name,
            shop_name=shop_name,
            now_ms=self.clock(),
        )
        await self.count_send(send_of(notice))
        return (MAIL_NOTICES.name, user.shop_id, encode(notice)), notice.notice_id


def user_record(user: ShopUser) -> Record:
    return ADMIN_USERS.name, user_key(user.shop_id, user.email), encode(user)


def settings_record(s: ShopSettings) -> Record:
    return SHOP_SETTINGS.name, s.shop_id, encode(s)


def _json(value: object | None) -> str:
    return "null" if value is None else orjson.dumps(value).decode()
