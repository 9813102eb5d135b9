"""The orjson codec: events round-trip; bad payloads fail with the field that is wrong."""

from __future__ import annotations

import pytest

from shared.codec import DecodeError, decode, encode
from shared.events import ChatContent, ChatEvent, Digest, DigestMessage, ShopSettings


def test_nested_event_round_trips_exactly() -> None:
    digest = Digest(
        digest_id="d1", shop_id="s", conversation_id="c", buyer_id="b", buyer_name="Ana 🙂",
        messages=(DigestMessage("m1", 1000, ChatContent(kind="text", text="hi\nthere"), seq=4),
                  DigestMessage("m2", 2000, ChatContent(kind="image", url="https://x/y.png"))),
        previous_digest_ids=("d0",),
    )
    assert decode(Digest, encode(digest)) == digest


def test_optional_fields_take_their_defaults() -> None:
    assert decode(ShopSettings, b'{"shop_id":"s"}') == ShopSettings(shop_id="s")


_EV = b'{"kind":"buyer_message","shop_id":"s","conversation_id":"c"'


@pytest.mark.parametrize(("payload", "field"), [
    (b'{"kind":"buyer_message","shop_id":"s"}', "conversation_id: missing"),
    (b'{"kind":"buyer_message","shop_id":"s","conversation_id":3}',
     "conversation_id: expected a string"),
    (_EV + b',"sent_at_ms":"x"}', "sent_at_ms"),
    (_EV + b',"content":{"text":5}}', "content.text"),
    (b'[1,2]', "expected an object"),
    (b'not json', "not JSON"),
])
def test_bad_payload_names_the_offending_field(payload: bytes, field: str) -> None:
    with pytest.raises(DecodeError, match=field.replace("[", r"\[")):
        decode(ChatEvent, payload)


def test_record_from_a_newer_schema_is_refused_rather_than_misread() -> None:
    with pytest.raises(DecodeError, match="newer"):
        decode(ShopSettings, b'{"shop_id":"s","v":99}')


def test_booleans_are_not_accepted_as_integers() -> None:
    with pytest.raises(DecodeError, match="sent_at_ms"):
        decode(ChatEvent, b'{"kind":"k","shop_id":"s","conversation_id":"c","sent_at_ms":true}')
