"""The playground's timeline lines (devstack/timeline.py): each topic's record is placed in its
conversation whatever the topic is keyed by; ticks and unreadable records are left out,
never an error."""

from __future__ import annotations

import pytest

from devstack.playground import SAMPLES, buyer_content
from devstack.timeline import describe
from shared.codec import encode
from shared.events import (
    ChatContent,
    ChatEvent,
    ChatEventKind,
    DeadLetter,
    InboundEnvelope,
    InboundResult,
    MailOutcome,
    PartDelivery,
    ReplyClass,
)


def test_a_buyer_message_is_a_line_of_its_conversation() -> None:
    event = ChatEvent(
        ChatEventKind.BUYER_MESSAGE, "s1", "c1", buyer_name="Ana", content=ChatContent(text="Hi")
    )
    assert describe("chat.events", b"s1:c1", encode(event), []) == (
        "s1:c1",
        "buyer Ana wrote text: Hi",
        "",
    )


def test_records_keyed_by_digest_or_part_are_placed_by_their_payload() -> None:
    outcome = MailOutcome("dg-1", "s1", "c1", "sent", smtp_code=250)
    assert describe("mail.outcomes", b"dg-1", encode(outcome), []) == (
        "s1:c1",
        "digest dg-1 sent 250",
        "",
    )
    delivery = PartDelivery("r-1", "s1", "c1", 1, "delivered")
    assert describe("chat.deliveries", b"r-1:1", encode(delivery), [])[:2] == (  # type: ignore[index]
        "s1:c1",
        "reply r-1 part 2 delivered",
    )


def test_inbound_mail_and_its_verdict_carry_the_mail_id() -> None:
    env = InboundEnvelope("m-9", "s1", "c1", "seller@shop.test", "t@x", 0)
    line = describe("mail.inbound", b"s1:c1", b"raw mail", [("envelope", encode(env))])
    assert line is not None and line[0] == "s1:c1" and line[2] == "m-9"
    result = InboundResult("m-9", "s1", "c1", ReplyClass.AUTO_REPLY, "Auto-Submitted header")
    line = describe("mail.inbound.results", b"s1:c1", encode(result), [])
    assert line == ("s1:c1", "mail m-9: auto_reply: Auto-Submitted header", "m-9")


def test_a_dead_letter_is_placed_by_the_key_it_names() -> None:
    letter = DeadLetter("mailer", "mail.digests", "not JSON", key="s1:c1")
    line = describe("bridge.deadletter", b"s1:c1", encode(letter), [])
    assert line == ("s1:c1", "dead letter from mailer (mail.digests): not JSON", "")
    elsewhere = DeadLetter("mailer", "mail.notices", "bad", key="notice-1")
    assert describe("bridge.deadletter", b"notice-1", encode(elsewhere), []) is None


@pytest.mark.parametrize(
    ("topic", "value"),
    [
        ("chat.events", encode(ChatEvent(ChatEventKind.TICK, "", ""))),
        ("chat.events", b"{not json"),
        ("mail.digests", b'{"digest_id": 7}'),
        ("mail.inbound", b"raw"),  # no envelope header
        ("some.other.topic", b"{}"),
    ],
)
def test_ticks_and_unreadable_records_are_left_out(topic: str, value: bytes) -> None:
    assert describe(topic, None, value, []) is None


def test_each_buyer_kind_is_a_platform_message_with_local_pictures() -> None:
    for kind in ("text", "emoji", "picture", "product", "order", "video"):
        msg_type, content, label = buyer_content(kind, "hello", "http://127.0.0.1:8080/")  # type: ignore[arg-type]
        assert msg_type and content and label
        for key in ("url", "image_url", "cover"):
            if key in content:
                assert content[key].startswith("http://127.0.0.1:8080/samples/")
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in SAMPLES.values())
