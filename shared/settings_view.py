"""Every shop's settings, materialized in memory from the compacted ``shop.settings`` topic.

Each service process reads all partitions (no consumer group, like a global
table), so a change published by the admin API is effective everywhere within
seconds. A shop without a record was never onboarded: :func:`default_settings`
(nothing emailed, nobody may answer by email) until a manager turns alerts on.
"""

from __future__ import annotations

import asyncio
import logging

from shared.codec import DecodeError, decode
from shared.compacted_topic import CompactedTopicReader
from shared.config import BridgeSettings
from shared.events import ShopSettings
from shared.topics import SHOP_SETTINGS

log = logging.getLogger(__name__)


class ShopSettingsView:
    def __init__(self, settings: BridgeSettings) -> None:
        self._settings = settings
        self._shops: dict[str, ShopSettings] = {}
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

    def get(self, shop_id: str) -> ShopSettings:
        found = self._shops.get(shop_id)
        return found if found is not None else default_settings(shop_id)

    def find(self, shop_id: str) -> ShopSettings | None:
        """The shop's settings, None when it was never onboarded (no record)."""
        return self._shops.get(shop_id)

    def known(self, shop_id: str) -> bool:
        return shop_id in self._shops

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one record (a tombstone deletes); bad records are logged, not fatal."""
        if key is None:
            return
        shop_id = key.decode()
        if value is None:
            self._shops.pop(shop_id, None)
            return
        try:
            self._shops[shop_id] = decode(ShopSettings, value)
        except DecodeError as exc:
            log.warning(
                "bad shop settings record ignored", extra={"shop_id": shop_id, "reason": str(exc)}
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
