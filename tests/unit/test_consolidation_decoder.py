"""The consolidator's fast chat.events decoder gives what the checked decoder gives,
and every record the fast path does not recognise gets the checked decoder's verdict."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consolidator.chat_event_decoder import decode_chat_event
from shared.codec import DecodeError, decode, encode
from shared.events import EVENT_TIME_MAX_MS, ChatContent, ChatEvent, ChatEventKind

texts = st.text(max_size=30)
ints = st.integers(min_value=-(2**62), max_value=2**62)
times = st.integers(min_value=0, max_value=EVENT_TIME_MAX_MS)  # what the decoder accepts
contents = st.one_of(
    st.none(),
    st.builds(
        ChatContent, kind=st.sampled_from(["text", "image"]), text=texts, url=texts, title=texts
    ),
)
events = st.builds(
    ChatEvent,
    kind=st.sampled_from(list(ChatEventKind)),
    shop_id=texts,
    conversation_id=texts,
    message_id=texts,
    sent_at_ms=times,
    seq=ints,
    buyer_id=texts,
    buyer_name=texts,
    content=contents,
    received_at_ms=times,
    partition_hint=ints,
)


@given(events)
def test_fast_decoder_returns_the_same_event_as_the_checked_decoder(event: ChatEvent) -> None:
    data = encode(event)
    assert decode_chat_event(data) == decode(ChatEvent, data) == event


def test_a_record_with_only_the_required_fields_decodes_with_defaults() -> None:
    data = orjson.dumps({"kind": "read", "shop_id": "s", "conversation_id": "c"})
    assert decode_chat_event(data) == ChatEvent(kind="read", shop_id="s", conversation_id="c")


def test_unknown_fields_are_ignored_as_the_checked_decoder_does() -> None:
    data = orjson.dumps({"kind": "read", "shop_id": "s", "conversation_id": "c", "extra": 1})
    assert decode_chat_event(data) == ChatEvent(kind="read", shop_id="s", conversation_id="c")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "expected an object"),
        (b'{"kind": "read", "shop_id": "s"}', "conversation_id: missing"),
        (
            b'{"kind": "buyer_message", "shop_id": "s", "conversation_id": "c", "seq": "7"}',
            "seq: expected an integer",
        ),
        (
            b'{"kind": "buyer_message", "shop_id": "s", "conversation_id": "c", "seq": true}',
            "seq: expected an integer",
        ),
        (
            b'{"kind": "buyer_message", "shop_id": "s", "conversation_id": "c", "content": {"text": 5}}',
            "content.text: expected a string",
        ),
        (b'{"kind": "read", "shop_id": "s", "conversation_id": "c", "v": 99}', "newer"),
    ],
)
def test_bad_records_raise_the_checked_decoders_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode_chat_event(payload)
