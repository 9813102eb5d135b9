"""Which reply parts already reached the chat platform, from the compacted ``chat.deliveries``."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from shared.codec import DecodeError, decode
from shared.compacted import replay_topic
from shared.events import PartDelivery
from shared.topics import CHAT_DELIVERIES


class DeliveryLog:
    """Part keys (``reply_id:index``) that have a final delivery record."""

    def __init__(self) -> None:
        self._done: set[str] = set()

    def __contains__(self, part_key: str) -> bool:
        return part_key in self._done

    def record(self, part_key: str) -> None:
        self._done.add(part_key)

    def _apply(self, rec: ConsumerRecord) -> None:
        try:
            delivery = decode(PartDelivery, rec.value or b"")
        except DecodeError:
            return
        self._done.add(f"{delivery.reply_id}:{delivery.index}")

    async def load(self, bootstrap: str) -> int:
        """Read the whole compacted topic once at start (before consuming replies)."""
        return await replay_topic(bootstrap, CHAT_DELIVERIES.name, self._apply)
