"""What a ``chat.deliveries`` record means to the fan-out's idempotency ledger: final
records make a part delivered, a marker keeps its first attempt and picture urls, and the
marker's tombstone (a finished reply) forgets it."""

from __future__ import annotations

from types import SimpleNamespace

from fanout.delivery_log import DeliveryLog, marker_key
from fanout.fanout_settings import FanoutSettings
from shared.codec import encode
from shared.events import DeliveryStatus, PartDelivery

NOW_MS = 1_764_070_000_000


def record(key: str, delivery: PartDelivery | None) -> SimpleNamespace:
    return SimpleNamespace(
        key=key.encode(),
        partition=0,
        timestamp=NOW_MS,
        value=None if delivery is None else encode(delivery),
    )


def delivery(
    status: str, index: int = 0, at_ms: int = NOW_MS, image_urls: dict[str, str] | None = None
) -> PartDelivery:
    return PartDelivery(
        reply_id="r1",
        shop_id="s",
        conversation_id="c",
        index=index,
        status=status,
        at_ms=at_ms,
        image_urls=image_urls or {},
    )


def log() -> DeliveryLog:
    held = DeliveryLog(FanoutSettings(kafka_bootstrap="127.0.0.1:1"))
    held.books.hold(0)  # what assigning chat.replies partition 0 does
    return held


def test_every_final_status_makes_the_part_delivered() -> None:
    book = log()
    for index, status in enumerate(
        (DeliveryStatus.DELIVERED, DeliveryStatus.ALREADY_DELIVERED, DeliveryStatus.FAILED)
    ):
        book._apply(record(f"r1:{index}", delivery(status, index)))
    assert all(f"r1:{n}" in book for n in range(3)) and "r1:3" not in book


def test_a_marker_keeps_its_first_attempt_and_the_urls_it_carried() -> None:
    book = log()
    book._apply(
        record(
            marker_key("r1"),
            delivery(DeliveryStatus.ATTEMPTING, -1, NOW_MS - 50, {"1": "https://img/x.png"}),
        )
    )
    book._apply(record(marker_key("r1"), delivery(DeliveryStatus.ATTEMPTING, -1, NOW_MS)))
    assert book.marker("r1") == NOW_MS - 50
    assert book.marker_images("r1") == {"1": "https://img/x.png"}
    assert "r1:-1" not in book and marker_key("r1") not in book


def test_the_tombstone_of_a_finished_reply_forgets_its_marker_not_its_parts() -> None:
    book = log()
    book._apply(record(marker_key("r1"), delivery(DeliveryStatus.ATTEMPTING, -1)))
    book._apply(record("r1:0", delivery(DeliveryStatus.DELIVERED)))
    book._apply(record(marker_key("r1"), None))
    assert book.marker("r1") is None and book.marker_images("r1") == {}
    assert "r1:0" in book


def test_a_record_that_does_not_decode_is_ignored() -> None:
    book = log()
    book._apply(SimpleNamespace(key=b"r1:0", partition=0, value=b"{}", timestamp=NOW_MS))
    assert "r1:0" not in book and len(book) == 0


def test_the_retention_and_tombstones_come_from_the_settings() -> None:
    short = DeliveryLog(
        FanoutSettings(
            kafka_bootstrap="127.0.0.1:1",
            fanout_delivery_retention_days=1,
            fanout_delivery_tombstones=False,
        ),
        tombstones=object(),
    )  # type: ignore[arg-type]
    assert short.books.retention_ms == 24 * 3600 * 1000
    assert short._tombstones is None
