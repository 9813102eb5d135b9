"""orjson on the wire: encode any event, decode bytes back into its typed dataclass.

Decoding checks types field by field (an enum-typed field must hold one of the enum's
values, and comes back as the member) and raises :class:`DecodeError` with the field
path, so a consumer can dead-letter a bad record with a precise reason.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import zlib
from collections.abc import Callable
from enum import Enum
from functools import cache
from typing import Any, TypeVar

import orjson

from shared.errors import BridgeError
from shared.events import SCHEMA_VERSION

T = TypeVar("T")

_OPTS = orjson.OPT_NON_STR_KEYS


class DecodeError(BridgeError, ValueError):
    """A payload is not valid JSON or does not match the event's declared shape."""


def encode(event: Any) -> bytes:
    """Serialise an event (a dataclass from :mod:`shared.events`) to JSON bytes."""
    return orjson.dumps(event, option=_OPTS)


def decode(cls: type[T], data: bytes | str) -> T:
    """Parse JSON bytes into ``cls``; raises :class:`DecodeError` with the offending field."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    return from_dict(cls, raw)


def from_dict(cls: type[T], raw: Any, path: str = "") -> T:
    """Build a dataclass from already-parsed JSON, checking every field's type."""
    build = _object_coercer(typing.cast(type, cls))
    return typing.cast(T, build(raw, path))


def pack(event: Any) -> bytes:
    """A compact form of a valid event for holding many in memory: its field values in
    declared order (no field names), JSON, raw-deflated (text repeated within the record,
    such as a shop's domain in each of its addresses, is stored once). Read back with
    :func:`unpack`; not a wire format (it changes with the dataclass's field order)."""
    names = _field_names(typing.cast(type, type(event)))
    return zlib.compress(orjson.dumps([getattr(event, n) for n in names], option=_OPTS), 1, -15)


def unpack(cls: type[T], data: bytes) -> T:
    """The event :func:`pack` made, checked again like :func:`decode` (enums back as
    members); raises :class:`DecodeError` when ``data`` is not a packed ``cls``."""
    try:
        values = orjson.loads(zlib.decompress(data, -15))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise DecodeError(f"not a packed {cls.__name__}: {exc}") from None
    names = _field_names(typing.cast(type, cls))
    if not isinstance(values, list) or len(values) != len(names):
        raise DecodeError(f"not a packed {cls.__name__}: expected {len(names)} values")
    return from_dict(cls, dict(zip(names, values, strict=True)))


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        out.append((f.name, hints[f.name], required))
    return tuple(out)


def decoder(cls: type[T]) -> Callable[[bytes | str], T]:
    """``decode`` bound to ``cls``, for a consumer's hot path (one lookup less per call).

    Each field's check is planned once per class (:func:`_object_coercer`) instead of
    dispatching on the type hints per value.
    """
    build = _object_coercer(typing.cast(type, cls))

    def decode_planned(data: bytes | str) -> T:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"not JSON: {exc}") from None
        return typing.cast(T, build(raw, ""))

    return decode_planned


_Coercer = Callable[[Any, str], Any]


@cache
def _object_coercer(cls: type) -> _Coercer:
    """Builds ``cls`` from parsed JSON, each field's check planned by :func:`_coercer`."""
    plan = tuple((name, _coercer(hint), required) for name, hint, required in _fields(cls))

    def build(raw: Any, path: str) -> Any:
        if not isinstance(raw, dict):
            raise DecodeError(
                f"{path or cls.__name__}: expected an object, got {type(raw).__name__}"
            )
        version = raw.get("v", SCHEMA_VERSION)
        if isinstance(version, int) and version > SCHEMA_VERSION:
            where = path or cls.__name__
            raise DecodeError(f"{where}: schema version {version} is newer than {SCHEMA_VERSION}")
        kwargs: dict[str, Any] = {}
        for name, coerce, required in plan:
            if name not in raw:
                if required:
                    raise DecodeError(f"{path}{name}: missing")
                continue
            kwargs[name] = coerce(raw[name], path + name)
        return cls(**kwargs)

    return build


@cache
def _coercer(hint: Any) -> _Coercer:
    """The check (and conversion) of a value against one type hint, decided once."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        optional = type(None) in args
        choices = tuple(_coercer(arg) for arg in args if arg is not type(None))
        # A union of Literals (and None) takes its string values as they are, without
        # trying each choice in turn (a failed choice costs an exception).
        literals = [arg for arg in args if arg is not type(None)]
        all_literal = all(typing.get_origin(arg) is typing.Literal for arg in literals)
        literal_values = frozenset(
            v for arg in literals if all_literal for v in typing.get_args(arg) if isinstance(v, str)
        )

        def union(value: Any, path: str) -> Any:
            if value is None and optional:
                return None
            if type(value) is str and value in literal_values:
                return value
            errors = []
            for choice in choices:
                try:
                    return choice(value, path)
                except DecodeError as exc:
                    errors.append(str(exc))
            raise DecodeError("; ".join(errors))

        return union
    if origin is tuple:
        item = _coercer(typing.get_args(hint)[0])

        def sequence(value: Any, path: str) -> Any:
            if not isinstance(value, list):
                raise DecodeError(f"{path}: expected a list")
            try:
                return tuple([item(v, path) for v in value])
            except DecodeError:  # again, naming the item that is wrong
                return tuple(item(v, f"{path}[{i}]") for i, v in enumerate(value))

        return sequence
    if origin is dict:

        def mapping(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise DecodeError(f"{path}: expected an object")
            return {str(k): str(v) for k, v in value.items()}

        return mapping
    if origin is typing.Literal:
        allowed = typing.get_args(hint)

        def literal(value: Any, path: str) -> Any:
            if isinstance(value, bool) or value not in allowed:
                raise DecodeError(f"{path}: expected one of {', '.join(map(repr, allowed))}")
            return value

        return literal
    if isinstance(hint, type) and issubclass(hint, Enum):
        return _enum_coercer(hint)
    if dataclasses.is_dataclass(hint):
        nested = _object_coercer(hint)  # type: ignore[arg-type]
        return lambda value, path: nested(value, path + ".")
    if hint is bool:

        def boolean(value: Any, path: str) -> Any:
            if not isinstance(value, bool):
                raise DecodeError(f"{path}: expected a boolean")
            return value

        return boolean
    if hint is int:

        def integer(value: Any, path: str) -> Any:
            if not isinstance(value, int) or isinstance(value, bool):
                raise DecodeError(f"{path}: expected an integer")
            return value

        return integer
    if hint is str:

        def string(value: Any, path: str) -> Any:
            if not isinstance(value, str):
                raise DecodeError(f"{path}: expected a string")
            return value

        return string
    return lambda value, path: value


def _enum_coercer(enum: type[Enum]) -> _Coercer:
    members = {m.value: m for m in enum}
    expected = ", ".join(map(repr, members))

    def member(value: Any, path: str) -> Any:
        found = (
            members.get(value)
            if isinstance(value, str | int) and not isinstance(value, bool)
            else None
        )
        if found is None:
            raise DecodeError(f"{path}: expected one of {expected}")
        return found

    return member
