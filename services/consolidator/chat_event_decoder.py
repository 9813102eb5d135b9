"""A fast decoder for ``chat.events`` records that falls back to the checked one.

:func:`shared.codec.decode` walks the type hints of every field of every
record, a measurable share of the consolidator's CPU under load (docs/performance.md).
Records written by our own ingest are well formed, so the fast path checks the
exact JSON types of the flat fields with a table built once, and constructs
the dataclasses directly. Anything it does not recognise exactly (a missing or
extra field, a wrong type, a newer schema version, a non-object) goes to the
checked decoder, which either accepts it (e.g. ``content: null``) or raises
:class:`~shared.codec.DecodeError` naming the field, so bad records keep their
precise dead-letter reason.

Either way the event's times are then checked against :data:`EVENT_TIME_MAX_MS`: an
older or other producer's arrival time beyond it would overflow the state's deadline
and fail every batch of its partition, so it is dead-lettered here instead.
"""

from __future__ import annotations

import dataclasses
import typing

import orjson

from shared.codec import DecodeError, from_dict
from shared.events import EVENT_TIME_MAX_MS, SCHEMA_VERSION, ChatContent, ChatEvent

_EVENT_FIELDS = {f.name for f in dataclasses.fields(ChatEvent)}
_CONTENT_FIELDS = frozenset(f.name for f in dataclasses.fields(ChatContent))
_EVENT_HINTS = typing.get_type_hints(ChatEvent)
# name -> the one exact JSON type accepted on the fast path (content handled apart)
_FLAT_TYPES: dict[str, type] = {
    name: _EVENT_HINTS[name] for name in _EVENT_FIELDS if name != "content"
}
_REQUIRED = frozenset({"kind", "shop_id", "conversation_id"})
assert all(t in (str, int) for t in _FLAT_TYPES.values()), _FLAT_TYPES  # _fast relies on it
_CONTENT_HINTS = typing.get_type_hints(ChatContent)
# Content fields that are tuples of strings (a JSON list): on the fast path only when empty,
# as every chat message has them (a card's looked-up items are the mailer's, never ingest's).
_LIST_FIELDS = frozenset(n for n in _CONTENT_FIELDS if _CONTENT_HINTS[n] is not str)
assert all(_CONTENT_HINTS[n] == tuple[str, ...] for n in _LIST_FIELDS), _LIST_FIELDS


def decode_chat_event(data: bytes) -> ChatEvent:
    """Bytes -> ChatEvent; raises DecodeError (with the field) on a bad record."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    event = _fast(raw)
    if event is None:
        event = from_dict(ChatEvent, raw)
    if not 0 <= event.received_at_ms <= EVENT_TIME_MAX_MS:
        raise DecodeError(
            f"received_at_ms: {event.received_at_ms} is not a time in 0..{EVENT_TIME_MAX_MS}"
        )
    if not 0 <= event.arrived_at_ms <= EVENT_TIME_MAX_MS:
        raise DecodeError(
            f"sent_at_ms: {event.sent_at_ms} is not a time in "
            f"0..{EVENT_TIME_MAX_MS} (and there is no received_at_ms)"
        )
    return event


def _fast(raw: object) -> ChatEvent | None:
    """The event when ``raw`` has exactly the expected shape, else None (use the checked path)."""
    if type(raw) is not dict or not _REQUIRED <= raw.keys():
        return None
    content = None
    for name, value in raw.items():
        expected = _FLAT_TYPES.get(name)
        if expected is not None:
            if type(value) is not expected:  # bool is not int here: exact types only
                return None
        elif name == "content":
            if type(value) is not dict or not value.keys() <= _CONTENT_FIELDS:
                return None
            for k, v in value.items():
                if type(v) is not str and not (k in _LIST_FIELDS and v == []):
                    return None
            for k in _LIST_FIELDS & value.keys():
                value[k] = ()  # only an empty list got here
            content = ChatContent(**value)
        else:
            return None  # unknown field: let the checked decoder judge it
    if raw.get("v", SCHEMA_VERSION) > SCHEMA_VERSION:
        return None
    if content is not None:
        raw["content"] = content  # our own freshly parsed dict
    return ChatEvent(**raw)
