"""Every shop's settings, materialized in memory from the compacted ``shop.settings`` topic.

Each service process reads all partitions (no consumer group, like a global
table), so a change published by the admin API is effective everywhere within
seconds. A shop without a record was never onboarded: :func:`default_settings`
(nothing emailed, nobody may answer by email) until a manager turns alerts on.

Sized for a million shops: each record is checked once as it is read (a bad one is
logged and skipped, the shop keeps its last good settings) and kept packed
(:func:`shared.codec.pack`: values only, deflated) under its key's bytes; lookups unpack
it, and the most recently used shops stay unpacked in a small LRU cache.
"""

from __future__ import annotations

import asyncio
import logging

from cachetools import LRUCache

from shared.codec import DecodeError, decode, pack, unpack
from shared.compacted_topic import CompactedTopicReader
from shared.config import BridgeSettings
from shared.events import ShopSettings
from shared.topics import SHOP_SETTINGS

log = logging.getLogger(__name__)

# Unpacked shops kept at hand: the shops with conversations in flight are looked up
# again and again; a few thousand objects of ~1 KB bound the cache, not the shop count.
UNPACKED_CACHE_SIZE = 4096


class ShopSettingsView:
    def __init__(self, settings: BridgeSettings, cache_size: int = UNPACKED_CACHE_SIZE) -> None:
        self._settings = settings
        self._packed: dict[bytes, bytes] = {}  # shop id (the record key) -> packed settings
        self._unpacked: LRUCache[bytes, ShopSettings] = LRUCache(maxsize=cache_size)
        self._reader = CompactedTopicReader(
            settings.kafka_bootstrap,
            lambda rec: self.apply(rec.key, rec.value),
            topics=[SHOP_SETTINGS.name],
            client_id="settings-view",
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once every record on the topic at start has been applied."""
        return self._reader.ready

    def __len__(self) -> int:
        return len(self._packed)

    def get(self, shop_id: str) -> ShopSettings:
        found = self.find(shop_id)
        return found if found is not None else default_settings(shop_id)

    def find(self, shop_id: str) -> ShopSettings | None:
        """The shop's settings, None when it was never onboarded (no record)."""
        key = shop_id.encode()
        found = self._unpacked.get(key)
        if found is None:
            packed = self._packed.get(key)
            if packed is None:
                return None
            # Packed from a record checked at replay: unpacking cannot fail short of a bug.
            found = self._unpacked[key] = unpack(ShopSettings, packed)
        return found

    def known(self, shop_id: str) -> bool:
        return shop_id.encode() in self._packed

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record (a tombstone deletes); bad records are logged, not fatal."""
        if key is None:
            return
        self._unpacked.pop(key, None)
        if value is None:
            self._packed.pop(key, None)
            return
        try:
            self._packed[key] = pack(decode(ShopSettings, value))
        except DecodeError as exc:
            log.warning(
                "bad shop settings record ignored",
                extra={"shop_id": key.decode(errors="replace"), "reason": str(exc)},
            )

    async def start(self, wait_s: float = 30.0) -> None:
        await self._reader.start(wait_s)

    async def stop(self) -> None:
        await self._reader.stop()


def default_settings(shop_id: str) -> ShopSettings:
    """Settings of a shop nobody onboarded: alerts off, no destination inbox, no authorized
    sender. Mail goes to a shop only after one of its managers opted in; a default inbox
    would also make any mail from that address an accepted reply for every such shop."""
    return ShopSettings(
        shop_id=shop_id, alerts_enabled=False, destination_email="", authorized_senders=()
    )
