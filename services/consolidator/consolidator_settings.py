"""The consolidator's own settings: the shared :class:`~shared.config.Settings` plus the
debounce's timing, the state store and the faust worker's knobs.

What belongs here: knobs only the consolidator reads. A knob another service reads
too (the notification windows the simulation also uses, Kafka, ports the devstack
needs) stays in ``shared/config.py``. Same ``BRIDGE_`` environment prefix.
"""

from __future__ import annotations

from typing import Literal

from shared.config import Settings


class ConsolidatorSettings(Settings):
    # A conversation never waits longer than this from its first pending message.
    max_wait_s: float = 3600.0
    # How often this worker's clock is fed into its partitions (the debounce's resolution).
    tick_interval_s: float = 0.25
    # Bounds on a shop's own window override (seconds)
    window_override_min_s: float = 60.0
    window_override_max_s: float = 3600.0
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
