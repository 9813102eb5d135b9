"""The state bench's pure parts (bench/bench_state.py): the records it writes decode as
the holders read them, and an extrapolated size is scaled linearly and marked as such."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import bench_state  # noqa: E402

from fanout.delivery_log import DELIVERED, read_delivery  # noqa: E402
from mailer.outcome_ledger import Seen, read_outcome  # noqa: E402
from shared.codec import decode  # noqa: E402
from shared.events import ShopSettings, ShopUser  # noqa: E402

NOW_MS = 1_764_633_600_000


def test_written_records_are_what_each_holder_reads() -> None:
    key, value = bench_state.settings_record(7, NOW_MS)
    assert decode(ShopSettings, value).shop_id == key.decode()
    users = bench_state.user_records(7, 3, NOW_MS)
    assert len({k for k, _ in users}) == 3
    for key, value in users:
        user = decode(ShopUser, value)
        assert key.decode() == f"{user.shop_id}:{user.email}"
    assert read_outcome(bench_state.outcome_record(5, NOW_MS)[1]) is Seen.DONE
    assert read_delivery(bench_state.delivery_record(5, NOW_MS)[1]) is DELIVERED
    assert bench_state.delivery_record(4, NOW_MS)[0] != bench_state.delivery_record(5, NOW_MS)[0]


def test_extrapolated_row_scales_linearly_and_says_so() -> None:
    measured = {
        "holder": "fanout-log",
        "size": 1000,
        "unit": "key",
        "entries": 1000,
        "replay_s": 2.0,
        "ready_bytes": 4000.0,
        "kept_bytes": 3000.0,
        "measured": True,
    }
    row = bench_state.extrapolate(measured, 10_000)
    assert row["measured"] is False and measured["measured"] is True
    assert (row["size"], row["entries"], row["replay_s"]) == (10_000, 10_000, 20.0)
    assert (row["ready_bytes"], row["kept_bytes"]) == (40_000.0, 30_000.0)


def test_sizes_parse_from_a_comma_list() -> None:
    assert bench_state.parse_sizes("10000,1e6") == [10_000, 1_000_000]
    assert bench_state.parse_sizes("") == []


def test_a_replicas_share_is_reported_per_key_it_holds() -> None:
    share = {"holder": "mailer-ledger-2of8", "size": 1000, "entries": 250}
    whole = {"holder": "mailer-ledger", "size": 1000, "entries": 1000}
    assert bench_state.per_unit(share) == 250 and bench_state.per_unit(whole) == 1000
