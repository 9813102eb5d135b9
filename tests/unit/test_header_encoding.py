"""The header and body encoders the composers write with, read back by the ``email`` package.

Headers are parsed with ``email.policy.default`` (what a Python client sees); display
names are also decoded with ``email.header.decode_header``, the strict RFC 2047 decoder:
CPython's address parser keeps the folding space between two encoded words of a display
name (RFC 2047 6.2 says to drop it), so it would show a long encoded name with extra
spaces that other clients do not.
"""

from __future__ import annotations

import base64
import email
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest
import regex
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.header_encoding import (
    MAX_ENCODED_WORD,
    MAX_HEADER_LINE,
    HeaderValueError,
    InvalidAddressError,
    address_header,
    check_addr_spec,
    token_header,
    unstructured_header,
)
from mailer.quoted_printable import MAX_QP_LINE, quoted_printable
from shared.text_safety import BIDI_CONTROLS, header_safe

ENCODED_WORD = re.compile(r"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")
CRLF_PAYLOAD = "=?utf-8?b?DQpSZXBseS1UbzogYUBldmlsLnRlc3QNCg0KUEhJU0g=?="
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")

# Outside text as an attacker or a real buyer writes it.
hostile_text = st.one_of(
    st.text(max_size=160),
    st.lists(
        st.sampled_from(
            [
                CRLF_PAYLOAD,
                "=?utf-8?q?a=0D=0AX-Evil:_1?=",
                "=?",
                "?=",
                "=?utf-8?b?AA==?=",
                "=?iso-8859-1?q?=E9?=",
                "\r\n",
                "\n\n",
                "\x00",
                "\u2028",
                "\u2029",
                "\u202e",
                "\u2066",
                "\x85",
                "Zoë",
                "王小明",
                "👨\u200d👩\u200d👧\u200d👦",
                "🇫🇷",
                "e\u0301" * 30,
                "a" * 90,
                "b" * 77,
                "O'Brien,",
                '"quoted"',
                "(x)",
                "<a@b.c>",
                "\\",
                " ",
                "  ",
                "\t",
            ]
        ),
        max_size=12,
    ).map("".join),
)


def parsed(header_lines: str) -> EmailMessage:
    msg = email.message_from_bytes(header_lines.encode("ascii") + b"\r\n", policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_well_formed(lines: str, *, unbreakable: str = "") -> None:
    """7-bit, CRLF line ends, every line <= 78 (or holding only an unbreakable address),
    encoded words <= 75, and the value starts on the first line."""
    assert lines.isascii() and lines.endswith("\r\n")
    first, second, *_ = lines.split("\r\n")
    assert first.partition(":")[2].strip() or not second.strip(), "value starts on line 1"
    for line in lines[:-2].split("\r\n"):
        assert "\r" not in line and "\n" not in line
        alone = line.partition(":")[2] if not line.startswith(" ") else line
        assert len(line) <= MAX_HEADER_LINE or alone.strip() in (unbreakable, f"<{unbreakable}>")
    for word in ENCODED_WORD.finditer(lines):
        assert len(word.group()) <= MAX_ENCODED_WORD


def encoded_pieces(lines: str) -> list[bytes]:
    return [base64.b64decode(m.group(1)) for m in ENCODED_WORD.finditer(lines)]


@settings(max_examples=500, deadline=None)
@given(hostile_text)
@example(CRLF_PAYLOAD)
@example("👨\u200d👩\u200d👧\u200d👦" * 12)
@example("e" + "\u0301" * 40)  # one grapheme bigger than an encoded word
def test_unstructured_header_decodes_to_exactly_the_cleaned_text(text: str) -> None:
    lines = unstructured_header("Subject", text)
    assert_well_formed(lines)
    msg = parsed(lines)
    assert list(msg.keys()) == ["Subject"]
    assert str(msg["Subject"]) == header_safe(text)
    # "=?" only ever appears as the start of one of our own encoded words.
    assert "=?" not in ENCODED_WORD.sub("", lines)


@settings(max_examples=300, deadline=None)
@given(hostile_text)
@example("👨\u200d👩\u200d👧\u200d👦" * 12)
def test_encoded_words_hold_whole_utf8_sequences_and_graphemes_where_they_fit(text: str) -> None:
    shown = header_safe(text)
    pieces = encoded_pieces(unstructured_header("Subject", text))
    decoded = [piece.decode("utf-8") for piece in pieces]  # never a split sequence
    boundaries = set()
    for cluster in regex.finditer(r"\X", shown):
        boundaries.add(cluster.end())
        if len(cluster.group().encode()) > 45:  # too big for one word: split at code points
            boundaries.update(range(cluster.start(), cluster.end()))
    position = 0
    for piece in decoded:  # each piece ends at a grapheme boundary of the text
        position = shown.index(piece, position) + len(piece)
        assert position in boundaries


@settings(max_examples=300, deadline=None)
@given(
    hostile_text,
    st.sampled_from(
        [
            "c.tok123@chat-seller-us.bridge.example",
            "x" * 64 + "@chat-seller-gb.bridge.example",
            "owner@sunnysocks.example",
        ]
    ),
)
@example("=?utf-8?b?YQ==?=", "a@b.example")
@example('O\'Brien, "Jr." (x) <a@b.c> \\', "a@b.example")
def test_address_header_keeps_the_address_and_decodes_the_name_exactly(
    name: str, addr: str
) -> None:
    lines = address_header("From", name, addr, "reply")
    assert_well_formed(lines, unbreakable=addr)
    msg = parsed(lines)
    assert list(msg.keys()) == ["From"]
    (address,) = msg["From"].addresses
    assert address.addr_spec == addr
    shown = header_safe(name)
    # Strict RFC 2047 decoding of the phrase gives the name back exactly (quotes aside).
    phrase = " ".join(lines[len("From:") :].split()).rpartition(" <")[0] if shown else ""
    decoded = str(make_header(decode_header(phrase)))
    if phrase.startswith('"'):  # our quoted string
        decoded = re.sub(r"\\(.)", r"\1", decoded[1:-1])
    assert decoded == shown
    assert "".join(address.display_name.split()) == "".join(shown.split())


@pytest.mark.parametrize(
    "address",
    [
        "a@b.example\r\nBcc: v@x.example",
        "a@b.example\n",
        "",
        "no-at-sign",
        "a@b@c.example",
        "x@y.example, z@w.example",
        "Name <x@y.example>",
        " a@b.example",
        "a@b.example ",
        "é@b.example",
        "a@bé.example",
        '"a b"@c.example',
        "a@-b.example",
        "a..b@c.example",
        "=?utf-8?b?YQ==?=@b.example",
        "a@" + "b" * 260 + ".example",
    ],
)
def test_addresses_that_are_not_plain_are_refused_not_repaired(address: str) -> None:
    with pytest.raises(InvalidAddressError, match="reply address"):
        check_addr_spec(address, "reply")
    with pytest.raises(InvalidAddressError):
        address_header("To", "", address, "reply")


@pytest.mark.parametrize(
    "value", ["caf\u00e9", "a\r\nb", "x =?utf-8?b?YQ==?=", "", "a  b", "tab\there"]
)
def test_token_header_refuses_anything_but_plain_ascii(value: str) -> None:
    with pytest.raises(HeaderValueError):
        token_header("X-Test", value)


def test_token_header_folds_long_references_at_spaces() -> None:
    ids = " ".join(f"<digest-dg-{i:04d}@digest.bridge.example>" for i in range(20))
    lines = token_header("References", ids)
    assert_well_formed(lines)
    assert str(parsed(lines)["References"]).split() == ids.split()


# --- quoted-printable bodies -----------------------------------------------------------

_QP_PIECES = st.sampled_from(
    [
        "\r\n",
        "\r",
        "\n",
        "\n\n",
        " ",
        "\t",
        "  ",
        ".",
        "From ",
        "=",
        "=3D",
        "é",
        "🧦",
        "👨‍👩‍👧",
        "\u00a0",
        "a" * 70,
        "b" * 76,
        "<p>",
        "\u2028",
        "\x00",
        "\x0b",
        "\x0c",
        "\x1c",
        "\x85",
        "=\n",
        " \n",
    ]
)
_QP_BODIES = st.text(max_size=400) | st.lists(_QP_PIECES | st.text(max_size=8), max_size=60).map(
    "".join
)


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=600, deadline=None)
@given(_QP_BODIES, st.sampled_from(["plain", "html"]))
def test_quoted_printable_body_decodes_back_to_exactly_the_text(body: str, subtype: str) -> None:
    encoded = quoted_printable(body)
    raw = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + encoded
    part = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(part, EmailMessage)
    expected = _lf(body)
    expected += "" if expected.endswith("\n") else "\n"
    assert _lf(part.get_content()) == expected
    encoded.decode("ascii")
    assert encoded.endswith(b"\r\n")
    for line in encoded[:-2].split(b"\r\n"):
        assert len(line) <= MAX_QP_LINE
        assert b"\r" not in line and b"\n" not in line
        assert not line.endswith((b" ", b"\t"))  # trailing whitespace is always escaped
    assert b"=_" not in encoded  # so a "=_..." boundary can never occur in a body


def test_quoted_printable_escapes_equals_and_non_ascii_and_breaks_long_lines_softly() -> None:
    assert quoted_printable("a=b é\n") == b"a=3Db =C3=A9\r\n"
    assert quoted_printable("trailing \n") == b"trailing=20\r\n"
    assert quoted_printable("") == b"\r\n"
    long = quoted_printable("x" * 200)
    assert [len(line) for line in long.split(b"\r\n")] == [76, 76, 50, 0]
    # an escape is never split by a soft break
    assert all(
        not re.search(rb"=[0-9A-F]?=\r\n", quoted_printable(("a" * n) + "é" * 40))
        for n in range(70, 78)
    )
