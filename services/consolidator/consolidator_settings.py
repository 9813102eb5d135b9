"""The consolidator's settings: the debounce's clock, the state store, the faust worker.

What belongs here: knobs only the consolidator reads. The notification windows (the
simulation uses them too) come from ``shared/config.py``. Same ``BRIDGE_`` environment
prefix.
"""

from __future__ import annotations

from typing import Literal

from shared.config import NotificationWindowSettings


class ConsolidatorSettings(NotificationWindowSettings):
    """Knobs only the consolidator reads; one another service reads too belongs in a group
    of ``shared/config.py`` (add the group to the bases here)."""

    consolidator_port: int = 8101
    # How often this worker's clock is fed into its partitions (the debounce's resolution).
    tick_interval_s: float = 0.25
    # A conversation with nothing pending is forgotten this long after its last event
    # (what it keeps: ids already emailed, earlier digests for threading); 0 keeps all
    state_idle_ttl_days: float = 30.0
    # Stored states looked at for expiry per tick interval (all are seen round and round)
    state_sweep_slice: int = 2000

    # State store: memory, or a disk store for production (faust-streaming drives it
    # through rocksdict when python-rocksdb is absent).
    consolidator_store: Literal["memory://", "rocksdb://"] = "memory://"
    # Up to this many records per fetch (one fetch, one batch)
    consolidator_batch_max: int = 2000
    consolidator_data_dir: str = "var/consolidator"
    # Replication factor of the changelog/internal topics (prod: 3)
    consolidator_replication_factor: int = 1
    # Producer linger (seconds): small, batches are awaited as a whole
    consolidator_producer_linger_s: float = 0.002
    # How often bridge_consumer_lag is exported (seconds)
    consolidator_lag_interval_s: float = 5.0
