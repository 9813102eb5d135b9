"""aiokafka clients configured once: producers, consumers, topic creation, dead letters, lag."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import (
    AIOKafkaClient,
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnsupportedVersionError, for_code
from aiokafka.partitioner import murmur2
from aiokafka.protocol.transaction import InitProducerIdRequest

from shared.backoff import GaveUp, RetryPolicy, retry
from shared.codec import encode
from shared.config import BridgeSettings
from shared.errors import BridgeError
from shared.events import DeadLetter
from shared.logging import now_ms
from shared.metrics import CONSUMER_LAG, DEAD_LETTERS
from shared.topics import ALL_TOPICS, DEAD_LETTER, DEFAULT_RECORD_LIMIT, TopicSpec

log = logging.getLogger(__name__)


def make_producer(
    settings: BridgeSettings,
    *,
    idempotent: bool | None = None,
    max_request_size: int = DEFAULT_RECORD_LIMIT,
    linger_ms: int = 2,
) -> AIOKafkaProducer:
    """An acks=all producer, idempotent when ``idempotent`` says so.

    ``idempotent=None`` takes ``BRIDGE_KAFKA_IDEMPOTENCE`` as set, with ``auto`` read as
    off: :func:`start_producer` is the one that resolves ``auto`` against the broker.
    """
    if idempotent is None:
        idempotent = settings.kafka_idempotence is True
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=linger_ms,
        max_request_size=max_request_size,
        request_timeout_ms=settings.kafka_request_timeout_ms,
        client_id="bridge",
    )


async def start_producer(
    settings: BridgeSettings, *, max_request_size: int = DEFAULT_RECORD_LIMIT, linger_ms: int = 2
) -> AIOKafkaProducer:
    """:func:`make_producer` with idempotence as :func:`producer_idempotence` decides, started."""
    producer = make_producer(
        settings,
        idempotent=await producer_idempotence(settings),
        max_request_size=max_request_size,
        linger_ms=linger_ms,
    )
    await producer.start()
    return producer


_IDEMPOTENCE_BY_BOOTSTRAP: dict[str, bool] = {}


async def producer_idempotence(settings: BridgeSettings) -> bool:
    """Whether this deployment's producers are idempotent: ``BRIDGE_KAFKA_IDEMPOTENCE``
    true/false as set; ``auto`` asks the broker once per process (then remembered)."""
    if settings.kafka_idempotence != "auto":
        return bool(settings.kafka_idempotence)
    bootstrap = settings.kafka_bootstrap
    if bootstrap not in _IDEMPOTENCE_BY_BOOTSTRAP:
        allowed = await broker_allows_idempotence(
            bootstrap, timeout_s=max(30.0, settings.kafka_request_timeout_ms / 1000)
        )
        _IDEMPOTENCE_BY_BOOTSTRAP[bootstrap] = allowed
        log.info(
            "kafka idempotent producers "
            + (
                "on"
                if allowed
                else "off: the broker refuses InitProducerId (effect-level idempotency only)"
            )
        )
    return _IDEMPOTENCE_BY_BOOTSTRAP[bootstrap]


class _NotAnsweredYet(BridgeError):
    """The broker answered InitProducerId with a retriable error (still starting); the
    reason is the error's name."""


async def broker_allows_idempotence(bootstrap: str, *, timeout_s: float = 30.0) -> bool:
    """Does the cluster hand out producer ids? One InitProducerId request without a
    transactional id, as an idempotent producer's first step would send.

    Apache Kafka answers with an id (after COORDINATOR_LOAD_IN_PROGRESS and the like while it
    starts, which are retried until ``timeout_s``). A definite refusal means no: the API not
    offered, UNKNOWN_SERVER_ERROR (Tansu), CLUSTER_AUTHORIZATION_FAILED (an ACL without
    IdempotentWrite). A broker that cannot be reached raises, as a producer's start would.
    """
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(min(timeout_s, 30.0) * 1000)
    )
    await client.bootstrap()

    async def ask(_attempt: int) -> bool:
        try:
            answer = await client.send(
                client.get_random_node(),
                InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60_000),
            )
        except UnsupportedVersionError:
            return False
        if answer.error_code == 0:
            return True
        error = for_code(answer.error_code)
        if not error.retriable:
            return False
        raise _NotAnsweredYet(error.__name__)

    try:
        return await retry(ask, RetryPolicy(0.2, 0.2, window_s=timeout_s), on=_NotAnsweredYet)
    except GaveUp as gave_up:
        raise KafkaError(
            f"InitProducerId still answered {gave_up.error.reason} after "
            f"{timeout_s:g} s; cannot tell whether {bootstrap} allows "
            "idempotent producers (set BRIDGE_KAFKA_IDEMPOTENCE)"
        ) from None
    finally:
        await client.close()


def make_consumer(
    settings: BridgeSettings,
    *topics: str,
    group_id: str,
    max_partition_fetch_bytes: int = DEFAULT_RECORD_LIMIT,
    max_poll_records: int = 500,
    rebalance_timeout_ms: int | None = None,
) -> AIOKafkaConsumer:
    """Manual-commit consumer: offsets commit only after the downstream write.

    ``rebalance_timeout_ms``: how long the group waits for this member to rejoin a
    rebalance, its revoke callback included; past it the member is dropped and its
    partitions handed out while it still works on them. aiokafka's default is the session
    timeout (seconds), so a consumer whose revoke callback waits for work in flight must
    set it above that wait."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka_session_timeout_ms,
        heartbeat_interval_ms=max(500, settings.kafka_session_timeout_ms // 3),
        rebalance_timeout_ms=rebalance_timeout_ms,
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        fetch_max_bytes=max(52428800, max_partition_fetch_bytes),
        max_poll_records=max_poll_records,
        isolation_level="read_committed",
        client_id=group_id,
    )


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec] = ALL_TOPICS, replication_factor: int | None = None
) -> None:
    """Create missing topics with their partitions and configs (idempotent).

    ``replication_factor`` defaults to the live brokers, at most 3: 1 on a single node,
    3 on a cluster (whose ``min.insync.replicas=2`` then holds for every topic).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="bridge-admin")
    await admin.start()
    try:
        if replication_factor is None:
            cluster = await admin.describe_cluster()
            replication_factor = max(1, min(3, len(cluster["brokers"])))
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.config())
            for s in specs
            if s.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    if missing:
        await _wait_for_leaders(bootstrap, [t.name for t in missing])


async def _wait_for_leaders(bootstrap: str, topics: list[str], timeout_s: float = 30.0) -> None:
    """Until every partition of ``topics`` answers at its leader: Apache Kafka answers
    CreateTopics, and then names the leaders in metadata, before the leader broker has taken
    the partitions on (a first write meanwhile fails with NOT_LEADER_OR_FOLLOWER). A
    ListOffsets per partition, which only the leader answers, is the read-only proof."""
    tps = await topic_partitions(bootstrap, *topics)
    if not tps:
        return
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        client_id="bridge-admin",
        request_timeout_ms=2000,
    )
    await consumer.start()

    async def leaders_answer(_attempt: int) -> None:
        await consumer.end_offsets(tps)

    try:
        await retry(leaders_answer, RetryPolicy(0.2, 0.2, window_s=timeout_s), on=KafkaError)
    except GaveUp:
        pass  # a slow election is the first write's to wait for, not a failure
    finally:
        await consumer.stop()


def default_partition(key: bytes, partitions: int) -> int:
    """The partition the producers' default partitioner gives a record keyed ``key``
    (murmur2, as Kafka's Java client): for tools and tests that must know where a keyed
    record lands without producing it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


async def topic_partitions(bootstrap: str, *topics: str) -> list[TopicPartition]:
    """Every partition of ``topics`` as the cluster has them now (none for a missing topic).

    Asked of the cluster, not read from a consumer's metadata: a consumer without a
    subscription holds no topic metadata on Apache Kafka. (Tansu answers every metadata
    request with every topic, which hid this.)
    """
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="bridge-metadata")
    await client.bootstrap()
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await client.close()
    return [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(cluster.partitions_for_topic(topic) or ())
    ]


class DeadLetterWriter:
    """Writes a :class:`DeadLetter` with the reason and where the record is, not what it
    says; never raises into the caller's loop."""

    def __init__(self, producer: AIOKafkaProducer, service: str) -> None:
        self._producer = producer
        self._service = service

    async def write(
        self,
        *,
        source_topic: str,
        reason: str,
        reason_class: str,
        key: str = "",
        partition: int = -1,
        offset: int = -1,
        payload: bytes | str = b"",
        extra: dict[str, str] | None = None,
    ) -> None:
        size = len(payload.encode() if isinstance(payload, str) else payload)
        letter = DeadLetter(
            service=self._service,
            source_topic=source_topic,
            reason=reason,
            key=key,
            partition=partition,
            offset=offset,
            payload_bytes=size,
            at_ms=now_ms(),
            extra=extra or {},
        )
        DEAD_LETTERS.labels(self._service, reason_class).inc()
        log.warning(
            "dead-lettered",
            extra={"source_topic": source_topic, "reason": reason, "key": key, "offset": offset},
        )
        await self._producer.send_and_wait(
            DEAD_LETTER.name, encode(letter), key=key.encode() or None
        )


async def report_lag(consumer: AIOKafkaConsumer, group: str, interval_s: float = 5.0) -> None:
    """Export consumer lag per partition until cancelled."""
    while True:
        try:
            assigned = consumer.assignment()
            if assigned:
                ends = await consumer.end_offsets(list(assigned))
                for tp in assigned:
                    position = await consumer.position(tp)
                    CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(
                        max(0, ends.get(tp, position) - position)
                    )
        except Exception:  # lag is best-effort telemetry; never kill the service for it
            log.debug("lag report failed", exc_info=True)
        await asyncio.sleep(interval_s)


async def consume_keyed_batches(
    consumer: AIOKafkaConsumer,
    handle: Callable[[ConsumerRecord], Awaitable[None]],
    *,
    max_records: int = 200,
) -> None:
    """Consume forever: records of one key in order, different keys concurrently;
    offsets commit only after every record of the batch was handled."""
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        if not batches:
            continue
        by_key: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
        for records in batches.values():
            for rec in records:
                by_key[rec.key or b""].append(rec)

        async def in_order(records: list[ConsumerRecord]) -> None:
            for rec in records:
                await handle(rec)

        await asyncio.gather(*(in_order(recs) for recs in by_key.values()))
        await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
