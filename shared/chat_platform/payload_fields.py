"""The type and range of every field the bridge takes from a platform payload. Pure.

One home for the rules the webhook adapters (TikTok, generic) apply before a
message becomes an event: a value the rest of the bridge cannot carry (an id
that does not fit a reply address, a time a digest cannot print, an index
beyond 64 bits) is refused here, at the door, with the field's path and a
reason, instead of failing later in the consolidator or mailer where one bad
message would hold up a whole digest. Ranges and why: docs/tiktok-shop-contract.md
s.6.

Each check raises :class:`~shared.chat_platform.base.PayloadError` with ``field``
(the JSON path, e.g. ``body.data.index``), ``reason`` (for the sender) and
``code`` (one of :class:`Violation`, a bounded metric label).
"""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Any

from shared.chat_platform.base import PayloadError
from shared.tokens import ids_fit_reply_token


class Violation(StrEnum):
    """Why a field was refused, in a few words (the metric's ``reason`` label)."""

    NOT_JSON = "not_json"
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    TOO_LONG = "too_long"
    BAD_CHARACTERS = "bad_characters"
    OUT_OF_RANGE = "out_of_range"
    NOT_HTTP_URL = "not_http_url"
    UNKNOWN_VALUE = "unknown_value"


# Ids: the platform's are 18-20 decimal digits; the sandbox, simulations and the generic
# platform use short ASCII names ("sim-1a2b3c4d"). Spelt out as ASCII ranges: str.isdigit()
# and isalnum() accept "²" and other Unicode digits that int() and URLs do not.
ID_MAX_CHARS = 64
_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
# ``index``: a decimal string (contract s.2), kept as a 64-bit sequence number.
INDEX_MAX = 2**64 - 1
_DECIMAL = re.compile(r"[0-9]{1,20}")
# ``create_time`` is Unix seconds (contract s.2/s.4). Nothing in the chat predates 2015;
# a day ahead allows for clock skew. Milliseconds land far beyond that and are refused.
EARLIEST_CREATE_TIME_S = 1_420_070_400  # 2015-01-01T00:00:00Z
MAX_FUTURE_S = 86_400
# Text the platform carries: a buyer's message (Send Message allows 2,000 characters;
# received text is allowed 5x that), names and labels, URLs.
TEXT_MAX_CHARS = 10_000
NAME_MAX_CHARS = 200
LABEL_MAX_CHARS = 500
URL_MAX_CHARS = 2_048
_TYPE_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
# http(s)://, an ASCII host (and port), then anything but spaces, controls and quotes.
_HTTP_URL = re.compile(
    r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?"
    r"(?:[/?#][^\x00-\x20\x7f-\x9f\"'<>\\`]*)?"
)
EVENT_TYPE_MAX = 2**31 - 1


def is_id(value: str) -> bool:
    """1-64 ASCII letters, digits, '-' or '_': the shape of every id the bridge keys by."""
    return _ID.fullmatch(value) is not None


def refuse(field: str, reason: str, code: Violation) -> PayloadError:
    return PayloadError(reason, field=field, code=code)


def _present(obj: dict[str, Any], key: str, where: str, required: bool) -> Any:
    value = obj.get(key)
    if (value is None or value == "") and required:
        raise refuse(f"{where}.{key}", "missing", Violation.MISSING)
    return value


def id_field(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """An id: 1-64 ASCII letters, digits, '-' or '_' (a JSON integer is taken as its digits)."""
    value = _present(obj, key, where, required)
    if value is None or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INDEX_MAX:
        value = str(value)
    if not isinstance(value, str):
        raise refuse(f"{where}.{key}", "expected an id string", Violation.WRONG_TYPE)
    if len(value) > ID_MAX_CHARS:
        raise refuse(f"{where}.{key}", f"longer than {ID_MAX_CHARS} characters", Violation.TOO_LONG)
    if not is_id(value):
        raise refuse(
            f"{where}.{key}", "expected ASCII letters, digits, '-' or '_'", Violation.BAD_CHARACTERS
        )
    return value


def conversation_id_field(obj: dict[str, Any], key: str, where: str, shop_id: str) -> str:
    """A conversation id that, beside ``shop_id``, fits the reply address its digests get."""
    value = id_field(obj, key, where)
    if not ids_fit_reply_token(shop_id, value):
        raise refuse(
            f"{where}.{key}",
            "too long to fit in a reply address beside the shop id "
            "(the platform's ids are up to 20 digits)",
            Violation.TOO_LONG,
        )
    return value


def index_field(obj: dict[str, Any], key: str, where: str) -> int:
    """The platform's per-conversation index: decimal digits up to 2**64-1; 0 when absent."""
    value = _present(obj, key, where, required=False)
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise refuse(
                f"{where}.{key}",
                "expected up to 20 ASCII digits",
                Violation.BAD_CHARACTERS if len(value) <= 20 else Violation.TOO_LONG,
            )
        number = int(value)
    else:
        raise refuse(f"{where}.{key}", "expected a decimal string", Violation.WRONG_TYPE)
    if not 0 <= number <= INDEX_MAX:
        raise refuse(f"{where}.{key}", "outside 0..2**64-1", Violation.OUT_OF_RANGE)
    return number


def unix_seconds_field(
    obj: dict[str, Any], key: str, where: str, *, now_s: float | None = None
) -> int:
    """A message time in Unix seconds, from 2015 to a day ahead of ``now_s``."""
    value = obj.get(key)
    if value is None:
        raise refuse(f"{where}.{key}", "missing", Violation.MISSING)
    if not isinstance(value, int) or isinstance(value, bool):
        raise refuse(
            f"{where}.{key}", "expected a Unix time in seconds (an integer)", Violation.WRONG_TYPE
        )
    latest = (time.time() if now_s is None else now_s) + MAX_FUTURE_S
    if not EARLIEST_CREATE_TIME_S <= value <= latest:
        raise refuse(
            f"{where}.{key}",
            "expected a Unix time in seconds between 2015 and a "
            "day from now (milliseconds are refused)",
            Violation.OUT_OF_RANGE,
        )
    return value


def int_field(obj: dict[str, Any], key: str, where: str, *, maximum: int) -> int | None:
    """A non-negative integer up to ``maximum``, or None when absent."""
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise refuse(f"{where}.{key}", "expected an integer", Violation.WRONG_TYPE)
    if not 0 <= value <= maximum:
        raise refuse(f"{where}.{key}", f"outside 0..{maximum}", Violation.OUT_OF_RANGE)
    return value


def text_field(
    obj: dict[str, Any],
    key: str,
    where: str,
    *,
    max_chars: int = TEXT_MAX_CHARS,
    required: bool = False,
) -> str:
    """Text up to ``max_chars`` characters ("" when absent; a JSON number is taken as text)."""
    value = _present(obj, key, where, required)
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise refuse(f"{where}.{key}", "expected a string", Violation.WRONG_TYPE)
    if len(value) > max_chars:
        raise refuse(f"{where}.{key}", f"longer than {max_chars} characters", Violation.TOO_LONG)
    return value


def url_field(obj: dict[str, Any], key: str, where: str) -> str:
    """An absolute http(s) URL without spaces or quotes ("" when absent)."""
    value = text_field(obj, key, where, max_chars=URL_MAX_CHARS)
    if value and not _HTTP_URL.fullmatch(value):
        raise refuse(f"{where}.{key}", "expected an http(s) URL", Violation.NOT_HTTP_URL)
    return value


def type_name_field(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """A platform type name: 1-64 ASCII letters, digits or '_' (unknown names are kept)."""
    value = text_field(obj, key, where, max_chars=64, required=required)
    if value and not _TYPE_NAME.fullmatch(value):
        raise refuse(
            f"{where}.{key}", "expected ASCII letters, digits or '_'", Violation.BAD_CHARACTERS
        )
    return value


def enum_field(
    obj: dict[str, Any],
    key: str,
    where: str,
    allowed: frozenset[str],
    *,
    default: str | None = None,
    upper: bool = False,
) -> str:
    """One of ``allowed`` (case-folded to upper first when ``upper``)."""
    value = obj.get(key, default)
    if value is None or value == "":
        raise refuse(f"{where}.{key}", "missing", Violation.MISSING)
    if not isinstance(value, str):
        raise refuse(f"{where}.{key}", "expected a string", Violation.WRONG_TYPE)
    folded = value.upper() if upper else value
    if folded not in allowed:
        raise refuse(
            f"{where}.{key}",
            "expected one of " + ", ".join(sorted(allowed)),
            Violation.UNKNOWN_VALUE,
        )
    return folded


def bool_field(obj: dict[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise refuse(f"{where}.{key}", "expected true or false", Violation.WRONG_TYPE)
    return value


def object_field(
    obj: dict[str, Any], key: str, where: str, *, required: bool = True
) -> dict[str, Any]:
    value = obj.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise refuse(
            f"{where}.{key}",
            "expected an object",
            Violation.MISSING if value is None else Violation.WRONG_TYPE,
        )
    return value
