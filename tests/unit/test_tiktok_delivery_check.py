"""The already-posted check that stands in for TikTok's missing idempotency key."""

from __future__ import annotations

from shared.chat_platform.base import PlatformMessage
from shared.chat_platform.delivery_check import leading_parts_already_posted
from shared.chat_platform.rate_limit import TokenBucket
from shared.chat_platform.tiktok_messages import outgoing_image, outgoing_text
from shared.events import ChatContent


def sent(text: str, role: str = "SHOP", msg_type: str = "TEXT", raw: str = "") -> PlatformMessage:
    return PlatformMessage(
        "m",
        "c",
        role,
        "shop",
        "",
        0,
        "",
        True,
        ChatContent(),
        raw_type=msg_type,
        raw_content=raw or f'{{"content": "{text}"}}',
    )


def test_parts_found_in_order_are_counted_as_a_prefix() -> None:
    parts = [outgoing_text(t) for t in ("one", "two", "three")]
    msgs = [sent("earlier by hand"), sent("one"), sent("two")]
    assert leading_parts_already_posted(parts, msgs) == 2


def test_a_missing_part_stops_the_count_even_if_a_later_one_matches() -> None:
    parts = [outgoing_text(t) for t in ("one", "two")]
    assert leading_parts_already_posted(parts, [sent("two")]) == 0


def test_buyer_messages_with_the_same_text_do_not_count() -> None:
    assert leading_parts_already_posted([outgoing_text("ok")], [sent("ok", role="BUYER")]) == 0


def test_two_identical_parts_need_two_identical_messages() -> None:
    parts = [outgoing_text("same"), outgoing_text("same")]
    assert leading_parts_already_posted(parts, [sent("same")]) == 1
    assert leading_parts_already_posted(parts, [sent("same"), sent("same")]) == 2


def test_image_matches_by_url_even_when_the_platform_fills_in_its_size() -> None:
    part = outgoing_image("https://img/1.png")
    stored = sent("", msg_type="IMAGE", raw='{"url":"https://img/1.png","width":640,"height":9}')
    assert leading_parts_already_posted([part], [stored]) == 1


def test_token_bucket_paces_to_the_rate_after_the_burst() -> None:
    now = [0.0]
    bucket = TokenBucket(50, 10, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(20)]
    assert waits[:10] == [0.0] * 10
    assert abs(waits[19] - 10 / 50) < 1e-9  # the 20th call waits 10 tokens' worth
    now[0] = 10.0
    assert bucket.reserve() == 0.0
