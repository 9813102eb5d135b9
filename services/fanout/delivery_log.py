"""Which reply parts already reached the chat platform, from the compacted ``chat.deliveries``.

Two kinds of record live there: a final record per part (``reply_id:index``:
delivered, already delivered or failed) and an "attempting" marker per reply
(``reply_id:attempt``), written before the first post and tombstoned when the
reply is finished.
"""

from __future__ import annotations

import asyncio

from aiokafka import ConsumerRecord

from shared.codec import DecodeError, decode
from shared.compacted import replay_topic
from shared.events import DeliveryStatus, PartDelivery
from shared.topics import CHAT_DELIVERIES

MARKER_SUFFIX = ":attempt"


def marker_key(reply_id: str) -> str:
    return f"{reply_id}{MARKER_SUFFIX}"


class DeliveryLog:
    """Part keys with a final record, and the time each unfinished reply was first attempted.

    Not current until :meth:`load` has read the whole topic, and again from :meth:`outdated`
    (an assignment changing) to the next load: :meth:`current` waits for that. The consumer
    fetches, and hands out, records of a new assignment while its rebalance listener is
    still loading; a reply handled meanwhile would miss its marker and post every part again.
    """

    def __init__(self) -> None:
        self._done: set[str] = set()
        self._markers: dict[str, int] = {}
        self._images: dict[str, dict[str, str]] = {}  # reply id -> part index -> uploaded url
        self._loaded = asyncio.Event()

    def outdated(self) -> None:
        """Another instance may write to the topic now: hold lookups until the next load."""
        self._loaded.clear()

    async def current(self) -> None:
        """Return once the log holds everything the topic held at the latest load."""
        await self._loaded.wait()

    def __contains__(self, part_key: str) -> bool:
        return part_key in self._done

    def record(self, part_key: str) -> None:
        self._done.add(part_key)

    def marker(self, reply_id: str) -> int | None:
        """When the reply was first attempted (ms), if it was and is not finished."""
        return self._markers.get(reply_id)

    def marker_images(self, reply_id: str) -> dict[str, str]:
        """Urls the reply's inline pictures were uploaded to before its marker was written."""
        return self._images.get(reply_id, {})

    def set_marker(self, reply_id: str, at_ms: int,
                   image_urls: dict[str, str] | None = None) -> None:
        self._markers[reply_id] = at_ms
        if image_urls:
            self._images[reply_id] = dict(image_urls)

    def clear_marker(self, reply_id: str) -> None:
        self._markers.pop(reply_id, None)
        self._images.pop(reply_id, None)

    def apply(self, rec: ConsumerRecord) -> None:
        key = (rec.key or b"").decode("utf-8", "replace")
        if rec.value is None:  # tombstone of a finished reply's marker
            if key.endswith(MARKER_SUFFIX):
                self.clear_marker(key[: -len(MARKER_SUFFIX)])
            return
        try:
            delivery = decode(PartDelivery, rec.value)
        except DecodeError:
            return
        if delivery.status == DeliveryStatus.ATTEMPTING:
            if delivery.reply_id not in self._markers:
                self.set_marker(delivery.reply_id, delivery.at_ms, delivery.image_urls)
        else:
            self._done.add(f"{delivery.reply_id}:{delivery.index}")

    async def load(self, bootstrap: str) -> int:
        """Read the whole compacted topic (at start and on every partition assignment)."""
        self._loaded.clear()
        count = await replay_topic(bootstrap, CHAT_DELIVERIES.name, self.apply)
        self._loaded.set()
        return count
