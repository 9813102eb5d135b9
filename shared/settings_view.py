"""Every shop's settings, materialized in memory from the compacted ``shop.settings`` topic.

Each service process reads all partitions (no consumer group, like a global
table), so a change published by the admin API is effective everywhere within
seconds. A shop without a record was never onboarded: :func:`default_settings`
(nothing emailed, nobody may answer by email) until a manager turns alerts on.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.codec import DecodeError, decode
from shared.config import BridgeSettings
from shared.events import ShopSettings
from shared.kafka import topic_partitions
from shared.topics import SHOP_SETTINGS

log = logging.getLogger(__name__)


class ShopSettingsView:
    def __init__(self, settings: BridgeSettings) -> None:
        self._settings = settings
        self._shops: dict[str, ShopSettings] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

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
            log.warning("bad shop settings record ignored", extra={"shop_id": shop_id,
                                                                   "reason": str(exc)})

    async def start(self, wait_s: float = 30.0) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap, enable_auto_commit=False,
            auto_offset_reset="earliest", group_id=None, client_id="settings-view",
        )
        await self._consumer.start()
        tps = (await topic_partitions(self._settings.kafka_bootstrap, SHOP_SETTINGS.name)
               or [TopicPartition(SHOP_SETTINGS.name, 0)])
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        ends = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(ends))
        try:
            await asyncio.wait_for(self.ready.wait(), wait_s)
        except TimeoutError:
            log.warning("shop settings not fully loaded; continuing with what is known")

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        assert self._consumer is not None
        pending = {tp for tp, end in ends.items() if end > 0}
        if not pending:
            self.ready.set()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            for tp, records in batches.items():
                for rec in records:
                    self.apply(rec.key, rec.value)
                if tp in pending and records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
            if not pending and not self.ready.is_set():
                self.ready.set()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._consumer:
            await self._consumer.stop()


def default_settings(shop_id: str) -> ShopSettings:
    """Settings of a shop nobody onboarded: alerts off, no destination inbox, no authorized
    sender. Mail goes to a shop only after one of its managers opted in; a default inbox
    would also make any mail from that address an accepted reply for every such shop."""
    return ShopSettings(shop_id=shop_id, alerts_enabled=False, destination_email="",
                        authorized_senders=())
