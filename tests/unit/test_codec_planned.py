"""The codec's planned checks give exactly what a plain, per-value reading of the type
hints gives (the specification below, the decoder as it was before it was planned):
values and error messages alike, on valid events and on every way of breaking one."""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import DecodeError, decode, decoder, encode
from shared.events import SCHEMA_VERSION, ChatContent, ChatEvent, Digest, DigestMessage, MailOutcome


def reference_decode(cls: type, data: bytes) -> Any:
    """The specification: every type hint read afresh for every value."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    return _ref_object(cls, raw, "")


def _ref_object(cls: type, raw: Any, path: str) -> Any:
    if not isinstance(raw, dict):
        raise DecodeError(f"{path or cls.__name__}: expected an object, got {type(raw).__name__}")
    version = raw.get("v", SCHEMA_VERSION)
    if isinstance(version, int) and version > SCHEMA_VERSION:
        where = path or cls.__name__
        raise DecodeError(f"{where}: schema version {version} is newer than {SCHEMA_VERSION}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{path}{f.name}: missing")
            continue
        kwargs[f.name] = _ref_value(hints[f.name], raw[f.name], f"{path}{f.name}")
    return cls(**kwargs)


def _ref_value(hint: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _ref_value(arg, value, path)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError("; ".join(errors))
    if origin is tuple:
        if not isinstance(value, list):
            raise DecodeError(f"{path}: expected a list")
        item = typing.get_args(hint)[0]
        return tuple(_ref_value(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise DecodeError(f"{path}: expected an object")
        return {str(k): str(v) for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return _ref_object(hint, value, f"{path}.")  # type: ignore[arg-type]
    for kind, name in ((bool, "a boolean"), (int, "an integer"), (str, "a string")):
        if hint is kind:
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise DecodeError(f"{path}: expected {name}")
            return value
    return value


DIGEST = Digest(
    "dg-1",
    "shop-1",
    "conv-1",
    "buyer-1",
    "Zoë",
    (
        DigestMessage("m1", 1, ChatContent(text="hi")),
        DigestMessage("m2", 2, ChatContent(kind="product_card", title="Socks", price="$1"), seq=3),
    ),
    previous_digest_ids=("dg-0",),
    shop_name="Sunny",
)
EVENT = ChatEvent(
    "buyer_message",
    "shop-1",
    "conv-1",
    message_id="m1",
    sent_at_ms=5,
    buyer_name="Ana",
    content=ChatContent(text="hello"),
)
SAMPLES: list[tuple[type, Any]] = [
    (Digest, DIGEST),
    (ChatEvent, EVENT),
    (MailOutcome, MailOutcome("dg-1", "s", "c", "sent")),
]

# Values that break a field in every way the checks distinguish.
odd_values = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1.5,
        "",
        "x",
        [],
        ["x"],
        [{}],
        {},
        {"kind": 1},
        {"v": 99},
        [None],
        [{"message_id": 1}],
    ]
)


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
def test_planned_checks_agree_with_the_specification_on_broken_records(
    sample: tuple[type, Any], data: st.DataObject
) -> None:
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
    expected = _outcome(cls, payload, lambda d: reference_decode(cls, d))
    assert _outcome(cls, payload, decoder(cls)) == expected
    assert _outcome(cls, payload, lambda d: decode(cls, d)) == expected


def test_planned_decoder_round_trips_events_and_refuses_non_json() -> None:
    for cls, event in SAMPLES:
        assert decoder(cls)(encode(event)) == event
    for bad in (b"", b"{", b"\xff"):
        assert _outcome(Digest, bad, decoder(Digest)) == _outcome(
            Digest, bad, lambda d: reference_decode(Digest, d)
        )
