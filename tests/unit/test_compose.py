"""Composition of the digest email: subject, header safety, threading and MIME structure.

Every test reads the composed bytes back as a receiving client would
(``email.policy.default``) and checks what it sees; the encoders themselves are tested in
``test_header_encoding.py``.

``tests/golden/digest/message.eml`` holds one whole composed message (headers included)
so a header change shows up in review; rewrite it after an intended change with::

    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_compose.py -q -p no:cacheprovider
"""

from __future__ import annotations

import dataclasses
import email
import os
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.compose import (
    ComposeContext,
    InvalidAddressError,
    compose_digest_bytes,
    digest_subject,
)
from mailer.render import DigestLinks, render_digest
from mailer.threading_headers import (
    MAX_REFERENCES,
    digest_id_from_message_id,
    digest_message_id,
)
from shared.events import ChatContent, Digest, DigestMessage

GOLDEN_MESSAGE = Path(__file__).resolve().parents[1] / "golden" / "digest" / "message.eml"
DOMAIN = "digest.bridge.example"
REPLY_ADDRESS = "c.tok123@chat-seller-us.bridge.example"
LINKS = DigestLinks(
    chat_url="https://seller.example.com/chat/conv-42",
    settings_url="https://seller.example.com/settings",
    marketplace_name="TikTok Shop",
)
CTX = ComposeContext(
    marketplace_name="TikTok Shop",
    from_address=REPLY_ADDRESS,
    to_address="owner@sunnysocks.example",
    message_id_domain=DOMAIN,
    links=LINKS,
    list_unsubscribe_url="https://seller.example.com/settings",
    now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)


def make_digest(
    buyer_name: str = "Alice Buyer",
    digest_id: str = "dg-0002",
    previous: tuple[str, ...] = (),
    conversation_id: str = "conv-42",
) -> Digest:
    return Digest(
        digest_id=digest_id,
        shop_id="shop-7",
        conversation_id=conversation_id,
        buyer_id="buyer-9",
        buyer_name=buyer_name,
        shop_name="Sunny Socks",
        previous_digest_ids=previous,
        messages=(DigestMessage("m1", 1_764_070_000_000, ChatContent(text="Hello")),),
    )


def sent_and_parsed(digest: Digest, ctx: ComposeContext = CTX) -> tuple[bytes, EmailMessage]:
    """Serialise as it goes on the wire, then parse back as a receiving client would."""
    raw = compose_digest_bytes(digest, ctx)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def raw_headers(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_subject_is_exactly_the_marketplace_template() -> None:
    _, msg = sent_and_parsed(make_digest())
    assert msg["Subject"] == "A new message from TikTok Shop customer Alice Buyer"


@pytest.mark.parametrize(
    "name",
    [
        "Zoë 王小明 \U0001f469\u200d\U0001f4bb",
        "王小明 李四 张三 赵六 王五 陈七 孙八 周九",
        "Zoë Åsa Ölander Übermann Ærø Çelik Ñoño",
        "Nguyễn Thị Minh Khai",
    ],
)
def test_non_ascii_subject_is_rfc2047_encoded_and_decodes_back(name: str) -> None:
    raw, msg = sent_and_parsed(make_digest(buyer_name=name))
    headers = raw_headers(raw)
    headers.decode("ascii")  # the header block is pure ASCII on the wire
    assert b"=?utf-8?" in headers
    assert msg["Subject"] == f"A new message from TikTok Shop customer {name}"


@pytest.mark.parametrize(
    "evil",
    [
        "Bob\r\nBcc: victim@example.com",
        "Bob\nBcc: victim@example.com",
        "Bob\rBcc: victim@example.com",
        "Bob\r\n\r\n<html>body</html>",
        "Bob\x00\x0bBcc: victim@example.com",
        "Bob\u2028Bcc: victim@example.com",
        "Bob\x85Bcc: victim@example.com",
    ],
)
def test_buyer_name_cannot_inject_headers(evil: str) -> None:
    raw, msg = sent_and_parsed(make_digest(buyer_name=evil))
    assert msg["Bcc"] is None
    assert msg.is_multipart() and msg.get_content_type() == "multipart/alternative"
    subject = str(msg["Subject"])
    assert "\r" not in subject and "\n" not in subject and "\x00" not in subject
    assert subject.startswith("A new message from TikTok Shop customer Bob")
    for line in raw_headers(raw).split(b"\r\n"):  # every line is a header or a fold
        assert line[:1] in (b" ", b"\t") or b":" in line


def test_marketplace_name_cannot_inject_headers() -> None:
    ctx = dataclasses.replace(CTX, marketplace_name="Shop\r\nX-Evil: 1")
    _, msg = sent_and_parsed(make_digest(), ctx)
    assert msg["X-Evil"] is None
    assert msg["From"].addresses[0].display_name == "Shop X-Evil: 1"


@pytest.mark.parametrize(
    "field", ["from_address", "to_address"], ids=["reply-address", "destination"]
)
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
    ],
)
def test_malformed_addresses_are_refused_with_a_specific_error(field: str, address: str) -> None:
    ctx = dataclasses.replace(CTX, **{field: address})
    with pytest.raises(InvalidAddressError):
        compose_digest_bytes(make_digest(), ctx)


def test_very_long_name_is_cut_at_a_grapheme_with_an_ellipsis() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"
    _, msg = sent_and_parsed(make_digest(buyer_name=family * 100))
    shown = str(msg["Subject"]).removeprefix("A new message from TikTok Shop customer ")
    graphemes = regex.findall(r"\X", shown)
    assert len(graphemes) == 64
    assert graphemes[-1] == "\u2026"
    assert set(graphemes[:-1]) == {family}  # no family emoji was split


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_buyer_name_yields_one_line_subject_that_round_trips(name: str) -> None:
    _, msg = sent_and_parsed(make_digest(buyer_name=name))
    subject = str(msg["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert subject == digest_subject("TikTok Shop", name)
    prefix = "A new message from TikTok Shop customer "
    assert len(regex.findall(r"\X", subject)) <= len(prefix) + 64


def test_from_shows_the_marketplace_with_the_reply_address_and_reply_to_matches() -> None:
    _, msg = sent_and_parsed(make_digest())
    sender = msg["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("TikTok Shop", REPLY_ADDRESS)
    assert msg["Reply-To"].addresses[0].addr_spec == REPLY_ADDRESS
    assert msg["To"].addresses[0].addr_spec == "owner@sunnysocks.example"
    assert msg["Date"].datetime == CTX.now


def test_message_id_is_deterministic_from_the_digest_id() -> None:
    raw1, msg = sent_and_parsed(make_digest())
    raw2, _ = sent_and_parsed(make_digest())
    assert msg["Message-ID"] == f"<digest-dg-0002@{DOMAIN}>"
    assert raw1 == raw2  # a re-send is byte-identical (boundary included)


def test_first_digest_has_no_in_reply_to_or_references() -> None:
    _, msg = sent_and_parsed(make_digest(previous=()))
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_later_digest_replies_to_the_latest_and_references_all_in_order() -> None:
    _, msg = sent_and_parsed(make_digest(previous=("dg-a", "dg-b", "dg-c")))
    assert msg["In-Reply-To"] == f"<digest-dg-c@{DOMAIN}>"
    assert str(msg["References"]).split() == [
        f"<digest-dg-a@{DOMAIN}>",
        f"<digest-dg-b@{DOMAIN}>",
        f"<digest-dg-c@{DOMAIN}>",
    ]


def test_references_are_capped_keeping_the_first_and_the_latest() -> None:
    previous = tuple(f"dg-{i:03}" for i in range(60))
    _, msg = sent_and_parsed(make_digest(previous=previous))
    refs = str(msg["References"]).split()
    assert len(refs) == MAX_REFERENCES
    assert refs[0] == f"<digest-dg-000@{DOMAIN}>"
    assert refs[1] == f"<digest-dg-{60 - MAX_REFERENCES + 1:03}@{DOMAIN}>"
    assert refs[-1] == f"<digest-dg-059@{DOMAIN}>"


def test_digest_id_with_unsafe_characters_still_gives_a_valid_deterministic_message_id() -> None:
    weird = "dg <x>\r\n@evil"
    first = digest_message_id(weird, DOMAIN)
    assert first == digest_message_id(weird, DOMAIN)
    assert regex.fullmatch(r"<digest-h[0-9a-f]{32}@digest\.bridge\.example>", first)
    raw, msg = sent_and_parsed(make_digest(digest_id=weird))
    assert b"\r\nMessage-ID: " + first.encode() + b"\r\n" in raw  # one unfolded line
    assert msg["X-Bridge-Digest-Id"] == "dg__x____evil"


@pytest.mark.parametrize("digest_id", ["dg-1\n", "dg-1\r\n"])
def test_digest_id_ending_in_a_line_break_is_hashed_not_written_into_the_header(
    digest_id: str,
) -> None:
    # "$" in the safe-id pattern also matches before a final newline.
    assert regex.fullmatch(
        r"<digest-h[0-9a-f]{32}@digest\.bridge\.example>", digest_message_id(digest_id, DOMAIN)
    )


def test_our_message_ids_are_recognised_when_they_come_back() -> None:
    assert digest_id_from_message_id(f"<digest-dg-7@{DOMAIN.upper()}>", DOMAIN) == "dg-7"
    assert digest_id_from_message_id("<digest-dg-7@other.example>", DOMAIN) is None
    assert digest_id_from_message_id(f"<abc@{DOMAIN}>", DOMAIN) is None


def test_thread_index_shares_the_conversation_header_block_across_digests() -> None:
    import base64

    def index(digest: Digest) -> bytes:
        return base64.b64decode(str(sent_and_parsed(digest)[1]["Thread-Index"]))

    first = index(make_digest(previous=()))
    second = index(make_digest(digest_id="dg-3", previous=("dg-0002",)))
    other = index(make_digest(conversation_id="conv-99"))
    assert len(first) == 22 and len(second) == 27
    assert second[:22] == first
    assert other[:22] != first


def test_loop_safety_and_list_headers() -> None:
    _, msg = sent_and_parsed(make_digest())
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["List-Unsubscribe"] == "<https://seller.example.com/settings>"
    assert msg["List-Unsubscribe-Post"] is None  # deliberately not RFC 8058 one-click
    assert msg["X-Bridge-Digest-Id"] == "dg-0002"
    assert msg["Thread-Topic"] == msg["Subject"]


def test_non_http_unsubscribe_url_is_left_out() -> None:
    ctx = dataclasses.replace(CTX, list_unsubscribe_url="javascript:x")
    _, msg = sent_and_parsed(make_digest(), ctx)
    assert msg["List-Unsubscribe"] is None


def test_body_is_multipart_alternative_text_then_html() -> None:
    _, msg = sent_and_parsed(make_digest())
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert all(p["MIME-Version"] is None for p in parts)
    assert "Reply in chat: https://seller.example.com/chat/conv-42" in parts[0].get_content()
    assert "Reply in chat</a>" in parts[1].get_content()


def test_naive_now_is_taken_as_utc() -> None:
    ctx = dataclasses.replace(CTX, now=datetime(2026, 1, 2, 3, 4, 5))
    _, msg = sent_and_parsed(make_digest(), ctx)
    assert str(msg["Date"]) == "Fri, 02 Jan 2026 03:04:05 +0000"


def test_whole_message_matches_golden() -> None:
    digest = make_digest(buyer_name="Zoë Buyer", previous=("dg-0001",))
    actual = compose_digest_bytes(digest, CTX)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_MESSAGE.write_bytes(actual)
        return
    assert GOLDEN_MESSAGE.exists(), "missing golden; run with UPDATE_GOLDEN=1 and review it"
    assert actual == GOLDEN_MESSAGE.read_bytes(), "message.eml differs; UPDATE_GOLDEN=1 if intended"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=400), buyer=st.text(max_size=40))
def test_bodies_decode_to_exactly_the_rendered_text_and_html(text: str, buyer: str) -> None:
    digest = dataclasses.replace(
        make_digest(buyer_name=buyer),
        messages=(DigestMessage("m1", 1_764_070_000_000, ChatContent(text=text)),),
    )
    raw, msg = sent_and_parsed(digest)
    rendered = render_digest(digest, CTX.links)
    plain, html = (msg.get_body(("plain",)), msg.get_body(("html",)))
    assert plain is not None and html is not None
    # Line ends become CRLF on the wire (and a body ends with one); a client reads "\n".
    assert _lf(plain.get_content()) == _ended(rendered.text)
    assert _lf(html.get_content()) == _ended(rendered.html)
    raw.decode("ascii")  # 7-bit throughout
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _ended(text: str) -> str:
    text = _lf(text)
    return text if text.endswith("\n") else text + "\n"
