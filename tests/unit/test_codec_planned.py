"""``codec.decoder(cls)``: the planned decoder gives exactly what ``codec.decode`` gives,
values and error messages alike, on valid events and on every way of breaking one."""

from __future__ import annotations

import copy
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import DecodeError, decode, decoder, encode
from shared.events import ChatContent, ChatEvent, Digest, DigestMessage, MailOutcome

DIGEST = Digest(
    "dg-1", "shop-1", "conv-1", "buyer-1", "Zoë",
    (DigestMessage("m1", 1, ChatContent(text="hi")),
     DigestMessage("m2", 2, ChatContent(kind="product_card", title="Socks", price="$1"), seq=3)),
    previous_digest_ids=("dg-0",), shop_name="Sunny",
)
EVENT = ChatEvent("buyer_message", "shop-1", "conv-1", message_id="m1", sent_at_ms=5,
                  buyer_name="Ana", content=ChatContent(text="hello"))
SAMPLES: list[tuple[type, Any]] = [(Digest, DIGEST), (ChatEvent, EVENT),
                                   (MailOutcome, MailOutcome("dg-1", "s", "c", "sent"))]

# Values that break a field in every way the checks distinguish.
odd_values = st.sampled_from([None, True, False, 0, -1, 1.5, "", "x", [], ["x"], [{}], {},
                              {"kind": 1}, {"v": 99}, [None], [{"message_id": 1}]])


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


def _outcome(cls: type, data: bytes, decode_fn: Any) -> tuple[str, Any]:
    try:
        return "ok", decode_fn(data)
    except DecodeError as exc:
        return "error", str(exc)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SAMPLES), st.data())
def test_planned_decoder_agrees_with_decode_on_broken_records(
        sample: tuple[type, Any], data: st.DataObject) -> None:
    cls, event = sample
    raw = orjson.loads(encode(event))
    broken = copy.deepcopy(raw)
    for _ in range(data.draw(st.integers(0, 3))):
        path = data.draw(st.sampled_from(_paths(broken)))
        if not path:
            broken = copy.deepcopy(data.draw(odd_values))
            break
        parent = broken
        for step in path[:-1]:
            parent = parent[step]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(data.draw(odd_values))
    payload = orjson.dumps(broken)
    assert _outcome(cls, payload, decoder(cls)) == _outcome(cls, payload,
                                                            lambda d: decode(cls, d))


def test_planned_decoder_round_trips_events_and_refuses_non_json() -> None:
    for cls, event in SAMPLES:
        assert decoder(cls)(encode(event)) == event
    for bad in (b"", b"{", b"\xff"):
        assert _outcome(Digest, bad, decoder(Digest)) == _outcome(
            Digest, bad, lambda d: decode(Digest, d))
