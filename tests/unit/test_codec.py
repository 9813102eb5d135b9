"""The orjson codec: events round-trip; bad payloads fail with the field that is wrong."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.codec import DecodeError, decode, decoder, encode
from shared.events import (
    ChatContent,
    ChatEvent,
    Digest,
    DigestMessage,
    InboundResult,
    ReplyClass,
    ShopSettings,
)


def test_nested_event_round_trips_exactly() -> None:
    digest = Digest(
        digest_id="d1",
        shop_id="s",
        conversation_id="c",
        buyer_id="b",
        buyer_name="Ana 🙂",
        messages=(
            DigestMessage("m1", 1000, ChatContent(kind="text", text="hi\nthere"), seq=4),
            DigestMessage("m2", 2000, ChatContent(kind="image", url="https://x/y.png")),
        ),
        previous_digest_ids=("d0",),
    )
    assert decode(Digest, encode(digest)) == digest


def test_optional_fields_take_their_defaults() -> None:
    assert decode(ShopSettings, b'{"shop_id":"s"}') == ShopSettings(shop_id="s")


_EV = b'{"kind":"buyer_message","shop_id":"s","conversation_id":"c"'


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b'{"kind":"buyer_message","shop_id":"s"}', "conversation_id: missing"),
        (
            b'{"kind":"buyer_message","shop_id":"s","conversation_id":3}',
            "conversation_id: expected a string",
        ),
        (_EV + b',"sent_at_ms":"x"}', "sent_at_ms"),
        (_EV + b',"content":{"text":5}}', "content.text"),
        (b"[1,2]", "expected an object"),
        (b"not json", "not JSON"),
    ],
)
def test_bad_payload_names_the_offending_field(payload: bytes, field: str) -> None:
    with pytest.raises(DecodeError, match=field.replace("[", r"\[")):
        decode(ChatEvent, payload)


def test_record_from_a_newer_schema_is_refused_rather_than_misread() -> None:
    with pytest.raises(DecodeError, match="newer"):
        decode(ShopSettings, b'{"shop_id":"s","v":99}')


def test_booleans_are_not_accepted_as_integers() -> None:
    with pytest.raises(DecodeError, match="sent_at_ms"):
        decode(ChatEvent, b'{"kind":"k","shop_id":"s","conversation_id":"c","sent_at_ms":true}')


_RESULT = b'{"mail_id":"m","shop_id":"s","conversation_id":"c","reason":"r","classification":'


@pytest.mark.parametrize("cls", list(ReplyClass))
def test_an_enum_field_decodes_to_its_member(cls: ReplyClass) -> None:
    result = InboundResult("m", "s", "c", cls, "r")
    for read in (decode(InboundResult, encode(result)), decoder(InboundResult)(encode(result))):
        assert read == result
        assert type(read.classification) is ReplyClass


@pytest.mark.parametrize(
    "value", [b'"maybe"', b'"REPLY"', b"3", b"true", b"null", b'["reply"]', b'{"x":1}']
)
def test_a_value_outside_the_enum_is_a_decode_error_naming_the_field(value: bytes) -> None:
    for read in (lambda data: decode(InboundResult, data), decoder(InboundResult)):
        with pytest.raises(
            DecodeError, match="classification: expected one of 'reply', 'auto_reply'"
        ):
            read(_RESULT + value + b"}")


@given(st.text(max_size=20))
def test_only_the_enums_values_decode(value: str) -> None:
    data = _RESULT + encode(value) + b"}"
    if value in {c.value for c in ReplyClass}:
        assert decode(InboundResult, data).classification is ReplyClass(value)
    else:
        with pytest.raises(DecodeError, match="classification"):
            decode(InboundResult, data)
