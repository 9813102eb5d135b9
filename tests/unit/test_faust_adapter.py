"""The faust-streaming and aiokafka internals that consolidator/faust_adapter.py relies on
are still there, with the signatures it calls them with.

faust-streaming is pinned (pyproject.toml); this fails, naming what moved, before a
worker would fail at run time on an upgrade that changed them.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version
from types import SimpleNamespace

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.sensors.monitor import Monitor
from faust.stores.memory import Store as MemoryStore
from faust.tables.base import Collection
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as aiokafka_driver

from consolidator.faust_adapter import BatchingApp, BatchingConsumer, BatchingTransport


def _params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_faust_streaming_is_within_the_pinned_range() -> None:
    major, minor, *_ = (int(part) for part in version("faust-streaming").split(".")[:3])
    assert (major, minor) == (0, 15), "faust_adapter.py is checked against 0.15.x only"


def test_the_consumer_methods_the_batching_consumer_calls_keep_their_signatures() -> None:
    base = aiokafka_driver.Consumer
    assert issubclass(BatchingConsumer, base)
    assert _params(base.getmany) == ["self", "timeout"]
    assert _params(base._wait_next_records) == ["self", "timeout"]
    assert inspect.iscoroutinefunction(base._wait_next_records)
    assert _params(base._to_message) == ["self", "tp", "record"]
    assert _params(base._commit) == ["self", "offsets"]
    assert _params(base.perform_seek) == ["self"]
    assert _params(base.wait_empty) == ["self"]
    assert _params(base.highwater) == ["self", "tp"]


def test_the_consumer_attributes_the_batching_consumer_reads_are_still_set() -> None:
    init = inspect.getsource(faust_consumer.Consumer.__init__)
    for attribute in ("self._committed_offset", "self._buffered_partitions", "self.scheduler"):
        assert attribute in init, f"faust's Consumer no longer sets {attribute}"
    assert faust_consumer.Consumer.flow_active is True  # a class default, toggled on rebalance
    assert hasattr(faust_consumer.Consumer, "should_stop")
    assert _params(faust.App.crash) == ["self", "reason"]
    assert isinstance(faust.App.consumer_generation_id, int)  # bumped on each rebalance
    for name in ("track_tp_end_offset", "on_tp_commit"):
        assert hasattr(Monitor, name), f"faust's monitor lost {name}"


def test_the_batching_app_builds_its_transport_through_the_hook_faust_calls() -> None:
    assert _params(faust.App._new_transport) == ["self"]
    assert "self._new_transport()" in inspect.getsource(faust.App)
    assert BatchingTransport.Consumer is BatchingConsumer
    assert issubclass(BatchingApp, faust.App)


def test_the_producer_still_wraps_an_aiokafka_producer_made_by_ensure_producer() -> None:
    source = inspect.getsource(aiokafka_driver.Producer._ensure_producer)
    assert _params(aiokafka_driver.Producer._ensure_producer) == ["self"]
    assert "AIOKafkaProducer" in inspect.getsource(aiokafka_driver) and "return" in source
    assert hasattr(AIOKafkaProducer, "create_batch") and hasattr(AIOKafkaProducer, "send_batch")


def test_tables_still_take_their_serializers_from_attributes() -> None:
    source = inspect.getsource(Collection)
    assert "key_serializer=self.key_serializer" in source
    assert "value_serializer=self.value_serializer" in source


def test_recovery_still_applies_changelog_records_through_the_tables_method() -> None:
    # keep_changelog_off replaces that method on the table instance.
    assert _params(Collection.apply_changelog_batch) == ["self", "batch"]
    assert "table.apply_changelog_batch(" in inspect.getsource(Recovery)
    assert "event.message.partition" in inspect.getsource(MemoryStore)


@pytest.mark.parametrize(
    "name", ["_db_for_partition", "_visible_items", "persisted_offset", "set_persisted_offset"]
)
def test_the_disk_store_methods_the_adapter_calls_exist(name: str) -> None:
    rocksdb = pytest.importorskip("faust.stores.rocksdb")
    assert callable(getattr(rocksdb.Store, name, None)), f"faust's rocksdb Store lost {name}"
    assert "self._key_index" in inspect.getsource(rocksdb.Store)
    assert hasattr(rocksdb.Store, "offset_key")


def test_the_memory_store_keeps_a_key_partition_map() -> None:
    store = MemoryStore(
        "memory://", app=None, table=SimpleNamespace(name="t"), key_type=bytes, value_type=bytes
    )
    assert isinstance(store.data, dict)
    assert isinstance(store._key_partition, dict)
