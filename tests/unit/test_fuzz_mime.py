"""Malformed MIME through decide(): never a crash, bounded time, a reason for every refusal.

decide() either returns a decision or raises MailTooComplex (which the parser dead-letters
with its reason); any other exception is a bug.
"""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reply_parser.inbound_pipeline import InboundDecision, OwnIdentity, PipelineConfig, decide
from reply_parser.mime_limits import MailTooComplex
from reply_parser.split import utf16_len
from shared.codec import encode
from shared.events import InboundEnvelope, ShopSettings

SELLER = "seller@shop.example"
OWN = OwnIdentity("digest.bridge.example", "bridge.example")
ENV = InboundEnvelope(
    mail_id="m",
    shop_id="7",
    conversation_id="5",
    mail_from=SELLER,
    rcpt_to="t@chat-seller-us.bridge.example",
    received_at_ms=0,
    peer="",
)
SHOP = ShopSettings(shop_id="7", destination_email=SELLER, destination_kind="salesforce")
BUDGET_S = 5.0


def _run(raw: bytes) -> InboundDecision | None:
    started = time.perf_counter()
    try:
        decision = decide(raw, ENV, SHOP, OWN, config=PipelineConfig())
    except MailTooComplex as exc:
        assert str(exc)
        return None
    finally:
        assert time.perf_counter() - started < BUDGET_S
    assert decision.reason
    if decision.reply is not None:
        assert decision.reply.parts
        for part in decision.reply.parts:
            assert part.text or part.image_b64
            assert utf16_len(part.text) <= 2000
        assert len(encode(decision.reply)) <= 1024 * 1024
    return decision


CHARSETS = st.sampled_from(
    [
        "utf-8",
        "us-ascii",
        "iso-8859-1",
        "x-unknown",
        "utf-7",
        "gb2312",
        "shift_jis",
        "",
        '"',
        "utf-16",
        "\u00e9t\u00e9",
        "cp1252;;",
    ]
)
ENCODINGS = st.sampled_from(
    ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus", ""]
)
CTYPES = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "image/png",
        "application/pdf",
        "message/rfc822",
        "multipart/alternative",
        "multipart/mixed",
        "multipart/related",
        "text/",
        "/",
        "multipart/report",
    ]
)
JUNK = st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "replace"))


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    lines = [
        b"From: "
        + draw(
            st.sampled_from(
                [SELLER.encode(), b"", b"<<>>", b"=?utf-8?b?###?=", b"a@b@c", b'"unterminated <x@y']
            )
        )
    ]
    for _ in range(draw(st.integers(0, 5))):
        name = draw(
            st.sampled_from(
                [
                    b"Subject",
                    b"Message-ID",
                    b"Auto-Submitted",
                    b"Precedence",
                    b"Content-Transfer-Encoding",
                    b"X-Loop",
                    b"Return-Path",
                    b"Authentication-Results",
                    b"Content-ID",
                    b"Received",
                ]
            )
        )
        lines.append(name + b": " + draw(JUNK).replace(b"\r", b"").replace(b"\n", b"\n "))
    return b"\r\n".join(lines)


@st.composite
def entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    ctype = draw(CTYPES)
    boundary = draw(st.sampled_from(["b", "", "b b", '"', "x" * 80, "=_?"]))
    head = (
        f'Content-Type: {ctype}; charset={draw(CHARSETS)}; boundary="{boundary}"\r\n'
        f"Content-Transfer-Encoding: {draw(ENCODINGS)}\r\n"
    ).encode("utf-8", "replace")
    if ctype.startswith("multipart/") and depth < 6:
        children = [draw(entity(depth + 1)) for _ in range(draw(st.integers(0, 3)))]
        close = draw(st.booleans())
        body = b"".join(f"--{boundary}\r\n".encode() + c + b"\r\n" for c in children)
        if close:
            body += f"--{boundary}--\r\n".encode()
    else:
        body = draw(JUNK)
        if draw(st.booleans()):
            body = base64.b64encode(body)[: draw(st.integers(0, 400))]
        if draw(st.booleans()):
            body = b"<html><body><p>" + body + b'<img src="cid:' + draw(JUNK)[:20] + b'">'
    return head + b"\r\n" + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), entity())
def test_generated_malformed_mime_never_crashes(head: bytes, body: bytes) -> None:
    _run(head + b"\r\n" + body)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    _run(raw)


def test_ten_megabyte_single_line_is_handled_in_bounded_time() -> None:
    raw = (
        f"From: {SELLER}\r\nSubject: Re: x\r\nContent-Type: text/plain\r\n\r\n"
    ).encode() + b"word " * (2 * 1024 * 1024)
    decision = _run(raw)
    assert decision is not None and decision.classification == "rejected"
    assert "too long" in decision.reason


def test_huge_base64_attachment_is_withheld_not_fatal() -> None:
    blob = base64.encodebytes(b"\x00\xff" * (6 * 1024 * 1024))
    raw = (
        (
            f"From: {SELLER}\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
            "Content-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
            "Content-Type: application/octet-stream; name=big.bin\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + blob
        + b"\r\n--b--\r\n"
    )
    decision = _run(raw)
    assert decision is not None and decision.reply is not None
    assert decision.reply.parts[0].text == "See attached."
    assert any("big.bin" in w for w in decision.withheld)


def test_thousands_of_parts_are_refused_before_parsing() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(5000))
    raw = (
        (f'From: {SELLER}\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n').encode()
        + parts
        + b"--b--\r\n"
    )
    assert _run(raw) is None


def test_deep_nesting_is_refused() -> None:
    raw = f"From: {SELLER}\r\n".encode()
    for level in range(200):
        raw += f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n--n{level}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\nhi\r\n"
    assert _run(raw) is None


_HEAD = f"From: {SELLER}\r\nSubject: Re: x\r\nContent-Type: %s\r\n\r\n"


@pytest.mark.parametrize(
    "name, raw",
    [
        ("html on one 10 MB line", (_HEAD % "text/html").encode() + b"<p>word " * 1_200_000),
        ("200k nested divs", (_HEAD % "text/html").encode() + b"<div>" * 200_000 + b"hi"),
        (
            "9 MB data: URI",
            (_HEAD % "text/html").encode() + b'<p>hi</p><img src="data:image/png;'
            b"base64," + b"A" * 9_000_000 + b'">',
        ),
        ("3M short lines", (_HEAD % "text/plain").encode() + b"a\r\n" * 3_000_000),
        (
            "200k attribution-like lines",
            (_HEAD % "text/plain").encode() + b"On Mon, Jan 1, 2024 at 10:00 someone\r\n" * 200_000,
        ),
        (
            "500k header fields",
            f"From: {SELLER}\r\n".encode() + b"X-A: b\r\n" * 500_000 + b"\r\nhi",
        ),
    ],
)
def test_hostile_sizes_stay_within_the_time_budget(name: str, raw: bytes) -> None:
    _run(raw)
