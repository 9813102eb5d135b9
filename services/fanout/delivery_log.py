"""What an entry of the fan-out's idempotency ledger (``chat.deliveries``) means.

Two kinds of record live there: a final record per part (``reply_id:index``: delivered,
already delivered or failed) and an "attempting" marker per reply (``reply_id:attempt``),
written before the first post and tombstoned when the reply is finished. The mechanics
(replay, tail, expiry, tombstones) are :mod:`shared.idempotency_ledger`; the protocol
that reads them: docs/exactly-once.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from fanout.fanout_settings import FanoutSettings
from shared.codec import DecodeError, decode
from shared.events import DeliveryStatus, PartDelivery
from shared.idempotency_ledger import IdempotencyLedger
from shared.topics import CHAT_DELIVERIES, DAY_MS

MARKER_SUFFIX = ":attempt"


def marker_key(reply_id: str) -> str:
    return f"{reply_id}{MARKER_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Marker:
    """A reply's first attempt (ms) and the urls its inline pictures were uploaded to."""

    at_ms: int
    image_urls: dict[str, str] = field(default_factory=dict)


class Delivered:
    """A part with a final record: never posted again."""


DELIVERED = Delivered()
Delivery = Marker | Delivered


def read_delivery(value: bytes) -> Delivery | None:
    try:
        delivery = decode(PartDelivery, value)
    except DecodeError:
        return None
    if delivery.status == DeliveryStatus.ATTEMPTING:
        return Marker(delivery.at_ms, dict(delivery.image_urls))
    return DELIVERED


def keep_first_marker(old: Delivery | None, new: Delivery) -> Delivery:
    """A reply's marker keeps the time of its first attempt."""
    return old if isinstance(old, Marker) and isinstance(new, Marker) else new


class DeliveryLog(IdempotencyLedger[Delivery]):
    """Part keys with a final record, and the marker of each unfinished reply.

    Holds the ledger partitions numbered like the ``chat.replies`` partitions assigned
    (:meth:`hold`), every partition with ``BRIDGE_LEDGER_READ_ALL``. Not current until
    the first :meth:`catch_up`, and again from :meth:`outdated` (an
    assignment changing) to the next catch-up: :meth:`current` waits for that. The consumer
    hands out records of a new assignment while its rebalance listener is still catching
    up; a reply handled meanwhile would miss its marker and post every part again.
    """

    def __init__(self, cfg: FanoutSettings, tombstones: AIOKafkaProducer | None = None) -> None:
        super().__init__(
            cfg.kafka_bootstrap,
            CHAT_DELIVERIES.name,
            read_delivery,
            merge=keep_first_marker,
            retention_ms=int(cfg.fanout_delivery_retention_days * DAY_MS),
            tombstones=tombstones if cfg.fanout_delivery_tombstones else None,
            guarded=[cfg.fanout_replies_topic],
            read_all=cfg.ledger_read_all,
        )

    def __contains__(self, part_key: object) -> bool:
        return isinstance(part_key, str) and self.get(part_key) is DELIVERED

    def record(self, part_key: str, partition: int | None) -> None:
        self.note(part_key, DELIVERED, partition)

    def marker(self, reply_id: str) -> int | None:
        """When the reply was first attempted (ms), if it was and is not finished."""
        found = self.get(marker_key(reply_id))
        return found.at_ms if isinstance(found, Marker) else None

    def marker_images(self, reply_id: str) -> dict[str, str]:
        """Urls the reply's inline pictures were uploaded to before its marker was written."""
        found = self.get(marker_key(reply_id))
        return dict(found.image_urls) if isinstance(found, Marker) else {}

    def set_marker(
        self,
        reply_id: str,
        partition: int | None,
        at_ms: int,
        image_urls: dict[str, str] | None = None,
    ) -> None:
        self.note(marker_key(reply_id), Marker(at_ms, dict(image_urls or {})), partition)

    def clear_marker(self, reply_id: str) -> None:
        self.forget(marker_key(reply_id))
