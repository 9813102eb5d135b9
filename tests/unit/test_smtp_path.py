"""smtp_path quotes envelope addresses exactly as aiosmtplib's mail()/rcpt() would."""

from __future__ import annotations

import pytest
from aiosmtplib.email import quote_address
from hypothesis import given
from hypothesis import strategies as st

from mailer.smtp_pool import smtp_path

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
atom = st.text(alphabet=ATEXT, min_size=1, max_size=12)
label = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True)
plain_addresses = st.builds(
    lambda local, domain: ".".join(local) + "@" + ".".join(domain),
    st.lists(atom, min_size=1, max_size=3),
    st.lists(label, min_size=1, max_size=4),
)


@given(plain_addresses)
def test_plain_addresses_quote_as_aiosmtplib(address: str) -> None:
    assert smtp_path(address) == quote_address(address).encode("ascii")


@given(st.text(max_size=40))
def test_any_string_quotes_as_aiosmtplib_or_is_refused_as_aiosmtplib_refuses(text: str) -> None:
    try:
        expected = quote_address(text).encode("ascii")
    except (ValueError, UnicodeEncodeError) as exc:
        with pytest.raises(type(exc)):
            smtp_path(text)
        return
    assert smtp_path(text) == expected


@pytest.mark.parametrize(
    "address",
    [
        "Shop Owner <owner@shop.example>",
        "owner@[192.0.2.1]",
        '"john doe"@shop.example',
    ],
)
def test_other_address_forms_quote_as_aiosmtplib(address: str) -> None:
    assert smtp_path(address) == quote_address(address).encode("ascii")


def test_a_line_break_in_an_address_never_reaches_the_command_line() -> None:
    path = smtp_path("a@b.example\r\nRCPT TO:<x@y>")
    assert b"\r" not in path and b"\n" not in path


def test_an_address_with_a_space_is_refused() -> None:
    with pytest.raises(ValueError):
        smtp_path("a b@shop.example")


def test_the_null_reverse_path() -> None:
    assert smtp_path("") == b"<>" == quote_address("").encode("ascii")
