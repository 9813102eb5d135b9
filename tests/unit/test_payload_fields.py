"""The ranges the webhook adapters take, as properties: whatever a check accepts, the rest
of the bridge can carry (JSON on Kafka, a reply address, a printed time)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.chat_platform import payload_fields as fields
from shared.chat_platform.base import PayloadError
from shared.tokens import mint_token, parse_keys

ANY_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=30),
        st.sampled_from(["²", "٣", "9" * 30, "https://x.y/z"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)


def accepted(check: Any, value: Any, **kw: Any) -> Any:
    try:
        return check({"f": value}, "f", "body", **kw)
    except PayloadError as exc:
        assert exc.field == "body.f" and exc.reason and exc.code in set(fields.Violation)
        return None


@given(ANY_JSON)
def test_an_accepted_id_is_ascii_and_bounded(value: Any) -> None:
    got = accepted(fields.id_field, value)
    if got:
        assert got.isascii() and 1 <= len(got) <= fields.ID_MAX_CHARS
        assert all(c.isalnum() or c in "-_" for c in got)


@given(ANY_JSON)
def test_an_accepted_index_fits_the_64_bit_sequence_on_the_wire(value: Any) -> None:
    got = accepted(fields.index_field, value)
    if got is not None:
        assert orjson.loads(orjson.dumps(got)) == got


@pytest.mark.parametrize("value", ["²", "٣", "１２", "9" * 21, str(2**64), "-1", "1.0", " 1"])
def test_index_that_is_not_up_to_20_ascii_digits_within_64_bits_is_refused(value: str) -> None:
    assert accepted(fields.index_field, value) is None


@given(st.one_of(st.integers(), ANY_JSON))
def test_an_accepted_create_time_prints_and_is_within_a_day_from_now(value: Any) -> None:
    got = accepted(fields.unix_seconds_field, value)
    if got is not None:
        assert got <= time.time() + fields.MAX_FUTURE_S + 1
        datetime.fromtimestamp(got, tz=UTC).strftime("%d %b %Y")


def test_create_time_in_milliseconds_is_refused_as_out_of_range() -> None:
    with pytest.raises(PayloadError) as refused:
        fields.unix_seconds_field({"t": int(time.time() * 1000)}, "t", "body")
    assert refused.value.code == fields.Violation.OUT_OF_RANGE


@given(shop=st.from_regex(r"[0-9]{1,20}", fullmatch=True), conv=ANY_JSON)
def test_an_accepted_conversation_id_gets_a_reply_address(shop: str, conv: Any) -> None:
    try:
        got = fields.conversation_id_field({"c": conv}, "c", "body", shop)
    except PayloadError:
        return
    mint_token(shop, got, parse_keys("1:k"), now_s=0, ttl_s=0)


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "//x.y/z",
        "https://",
        "https://x y",
        "https://é.example/",
        "data:text/html,1",
        "ftp://x.y/",
    ],
)
def test_url_that_is_not_plain_http_is_refused(url: str) -> None:
    assert accepted(fields.url_field, url) is None


@given(ANY_JSON)
def test_an_accepted_text_is_a_bounded_string(value: Any) -> None:
    got = accepted(fields.text_field, value, max_chars=10)
    if got is not None:
        assert isinstance(got, str) and len(got) <= 10
