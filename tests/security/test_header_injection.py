"""Security finding 1: no outside text can ever become a header (or a second body).

A buyer nickname ``=?utf-8?b?DQpSZXBseS1UbzogYUBldmlsLnRlc3QNCg0KUEhJU0g=?=`` decodes to
CR LF, ``Reply-To: a@evil.test``, a blank line and ``PHISH``. The composer used to hand the
subject to the ``email`` package's header factory, which decoded it, so the digest went out
(signed with our DKIM key) with the attacker's Reply-To and a body starting with their text.
The same held for a shop name in activation notices. Also here (finding 9): bidi controls
in names, and remote images that are tracking pixels.

Every check parses the bytes as sent, with ``BytesParser(policy=email.policy.default)``.
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
import uuid
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from urllib.parse import unquote

import dkim
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser as HTMLParser

from ingest.admin_notices import activation_notice
from ingest.ingest_settings import IngestSettings
from mailer.compose import (
    ComposeContext,
    compose_digest_bytes,
    digest_subject,
    display_name,
    truncate_graphemes,
)
from mailer.dkim_signing import load_dkim_signer
from mailer.notice_email import MAX_SUBJECT_GRAPHEMES, compose_notice_bytes
from mailer.render import DigestLinks, render_digest
from shared.events import (
    ChatContent,
    ContentKind,
    Digest,
    DigestMessage,
    MailNotice,
    NoticeKind,
    ShopUser,
)
from shared.text_safety import header_safe, strip_bidi_controls
from tests.conftest import WINDOW_S, Stack
from tests.dkim_keys import dkim_dns, new_rsa_key_file
from tests.polling import eventually

EVIL_NICKNAME = "=?utf-8?b?DQpSZXBseS1UbzogYUBldmlsLnRlc3QNCg0KUEhJU0g=?="
REPLY_ADDRESS = "c.tok123@chat-seller-us.bridge.example"
LINKS = DigestLinks(
    chat_url="https://seller.example.com/chat/conv-42",
    settings_url="https://seller.example.com/settings",
    marketplace_name="TikTok Shop",
    image_hosts=frozenset({"p16-oec.ibyteimg.example"}),
)
CTX = ComposeContext(
    marketplace_name="TikTok Shop",
    from_address=REPLY_ADDRESS,
    to_address="owner@sunnysocks.example",
    message_id_domain="digest.bridge.example",
    links=LINKS,
    list_unsubscribe_url="https://seller.example.com/settings",
    now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
)
DIGEST_HEADERS = {
    "Subject",
    "From",
    "Reply-To",
    "To",
    "Date",
    "Message-ID",
    "Thread-Topic",
    "Thread-Index",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "List-Unsubscribe",
    "X-Bridge-Digest-Id",
    "MIME-Version",
    "Content-Type",
}
THREADING = {"In-Reply-To", "References"}
NOTICE_HEADERS = {
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "Precedence",
    "X-Bridge-Notice",
    "MIME-Version",
    "Content-Type",
}
_BIDI = set("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def digest_of(
    buyer_name: str, *texts: str, shop_name: str = "Sunny Socks", previous: tuple[str, ...] = ()
) -> Digest:
    return Digest(
        digest_id="dg-0002",
        shop_id="shop-7",
        conversation_id="conv-42",
        buyer_id="buyer-9",
        buyer_name=buyer_name,
        shop_name=shop_name,
        previous_digest_ids=previous,
        messages=tuple(
            DigestMessage(f"m{i}", 1_764_070_000_000 + i, ChatContent(text=t))
            for i, t in enumerate(texts or ("Hello",))
        ),
    )


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def assert_safe_wire_form(raw: bytes, expected: set[str]) -> EmailMessage:
    """The message as sent: 7-bit, CRLF only, short lines; exactly the expected headers,
    each once; no decoded header value holds a control, a line/paragraph separator or
    a bidi control."""
    raw.decode("ascii")
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b"")
    head, _, _ = raw.partition(b"\r\n\r\n")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998
    for line in head.split(b"\r\n"):
        assert len(line) <= 78, line  # every header is folded (the test addresses are short)
    msg = parse(raw)
    names = Counter(msg.keys())
    assert set(names) == expected, set(names) ^ expected
    assert all(count == 1 for count in names.values()), names
    assert not msg.defects, msg.defects
    for name in names:
        value = str(msg[name])
        bad = [c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI]
        assert not bad, (name, value)
    return msg


def body_text(msg: EmailMessage, subtype: str) -> str:
    part = msg.get_body((subtype,))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# --- the reported nickname ------------------------------------------------------------


def test_encoded_word_nickname_cannot_add_a_header() -> None:
    digest = digest_of(EVIL_NICKNAME)
    raw = compose_digest_bytes(digest, CTX)
    msg = assert_safe_wire_form(raw, DIGEST_HEADERS)
    assert msg.get_all("Reply-To") is not None and len(msg.get_all("Reply-To")) == 1
    assert msg["Reply-To"].addresses[0].addr_spec == REPLY_ADDRESS
    assert [a.addr_spec for a in msg["From"].addresses] == [REPLY_ADDRESS]
    assert [a.addr_spec for a in msg["To"].addresses] == ["owner@sunnysocks.example"]
    assert b"evil.test" not in raw.partition(b"\r\n\r\n")[0]
    # The subject shows the nickname as the literal text the buyer typed.
    assert str(msg["Subject"]) == f"A new message from TikTok Shop customer {EVIL_NICKNAME}"
    # The body is ours: the two alternatives, decoding to exactly what we rendered.
    rendered = render_digest(digest, LINKS)
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert body_text(msg, "plain") == rendered.text
    assert body_text(msg, "html").rstrip("\n") == rendered.html.rstrip("\n")
    assert not body_text(msg, "plain").startswith("PHISH")


def test_encoded_word_marketplace_name_stays_text_in_from_and_subject() -> None:
    ctx = dataclasses.replace(CTX, marketplace_name=EVIL_NICKNAME)
    msg = assert_safe_wire_form(compose_digest_bytes(digest_of("Ana"), ctx), DIGEST_HEADERS)
    assert EVIL_NICKNAME in str(msg["Subject"])
    assert "".join(msg["From"].addresses[0].display_name.split()) == EVIL_NICKNAME


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_rsa_key_file(tmp_path_factory.mktemp("dkim") / "private.pem")


def test_signed_digest_for_the_nickname_verifies_and_signs_our_one_reply_to(dkim_key: Path) -> None:
    selector, domain = "sec2026", "chat-seller-us.bridge.example"
    signed = load_dkim_signer(selector, domain, dkim_key).sign(
        compose_digest_bytes(digest_of(EVIL_NICKNAME), CTX)
    )
    assert dkim.verify(signed, dnsfunc=dkim_dns(dkim_key, selector, domain))
    msg = parse(signed)
    assert len(msg.get_all("Reply-To") or []) == 1
    assert msg["Reply-To"].addresses[0].addr_spec == REPLY_ADDRESS
    # A Reply-To added after signing breaks the signature (it is signed, incl. absence).
    forged = signed.replace(b"\r\nTo: ", b"\r\nReply-To: a@evil.test\r\nTo: ", 1)
    assert not dkim.verify(forged, dnsfunc=dkim_dns(dkim_key, selector, domain))


# --- the whole composer, any input --------------------------------------------------------

_EVIL_WORDS = [
    EVIL_NICKNAME,
    "=?utf-8?q?=0D=0ABcc:_v@x.example?=",
    "=?utf-8?b?AA==?=",
    "=?utf-8?b?4oCo?=",
    "=?utf-8?b?4oCu?=",
    "=?iso-8859-1?q?=0A?=",
    "=?",
    "?=",
    "\r\n",
    "\r\n\r\n",
    "\n",
    "\x00",
    "\x0b",
    "\x85",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u200f",
    "Zoë",
    "王小明",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466",
    "\U0001f1eb\U0001f1f7",
    "e" + "\u0301" * 50,
    "a" * 100,
    "Bcc: v@x.example",
    "<a@b.c>",
    '"',
    "\\",
    " ",
    "\t",
]
outside_text = st.one_of(
    st.text(max_size=120),
    st.lists(st.sampled_from(_EVIL_WORDS) | st.text(max_size=6), max_size=10).map("".join),
)


@settings(max_examples=250, deadline=None)
@given(
    buyer=outside_text,
    marketplace=outside_text,
    shop=outside_text,
    texts=st.lists(outside_text, min_size=1, max_size=3),
    previous=st.lists(st.text(max_size=20), max_size=3).map(tuple),
)
@example(
    buyer=EVIL_NICKNAME,
    marketplace=EVIL_NICKNAME,
    shop=EVIL_NICKNAME,
    texts=[EVIL_NICKNAME, "\r\n--=_digest_x\r\nContent-Type: text/html\r\n\r\n<b>x"],
    previous=("dg-1",),
)
def test_any_outside_text_leaves_the_digest_headers_and_bodies_ours(
    buyer: str, marketplace: str, shop: str, texts: list[str], previous: tuple[str, ...]
) -> None:
    digest = digest_of(buyer, *texts, shop_name=shop, previous=previous)
    ctx = dataclasses.replace(CTX, marketplace_name=marketplace)
    raw = compose_digest_bytes(digest, ctx)
    expected = DIGEST_HEADERS | (THREADING if any(previous) else set())
    msg = assert_safe_wire_form(raw, expected)
    assert str(msg["Subject"]) == digest_subject(marketplace, buyer)
    assert str(msg["Thread-Topic"]) == str(msg["Subject"])
    assert msg["Reply-To"].addresses[0].addr_spec == REPLY_ADDRESS
    rendered = render_digest(digest, ctx.links)
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert body_text(msg, "plain") == rendered.text


_addresses = st.sampled_from(["seller@shop.example", "a.b+c@x-y.example"])


@settings(max_examples=250, deadline=None)
@given(
    kind=st.sampled_from([*NoticeKind, "weird kind\r\nX: 1"]),
    subject=outside_text,
    text=outside_text,
    html=outside_text,
    marketplace=outside_text,
    to=_addresses,
    in_reply_to=st.one_of(
        st.text(max_size=40),
        st.sampled_from(
            [
                "<abc@mail.example>",
                "<a@b>\r\nBcc: v@x.example",
                "<=?utf-8?b?DQo=?=@x>",
                " <ok.id@gmail.example> ",
            ]
        ),
    ),
)
@example(
    kind=NoticeKind.ACTIVATION,
    subject=f"Activate your account for {EVIL_NICKNAME}",
    text=EVIL_NICKNAME,
    html=EVIL_NICKNAME,
    marketplace=EVIL_NICKNAME,
    to="seller@shop.example",
    in_reply_to=EVIL_NICKNAME,
)
def test_any_outside_text_leaves_every_notice_kind_headers_ours(
    kind: str, subject: str, text: str, html: str, marketplace: str, to: str, in_reply_to: str
) -> None:
    notice = MailNotice(
        notice_id="n-1",
        kind=kind,
        to_address=to,
        subject=subject,
        text=text,
        html=html,
        shop_id="shop-7",
        in_reply_to=in_reply_to,
    )
    raw = compose_notice_bytes(
        notice,
        marketplace_name=marketplace,
        from_address="notifications@bridge.example",
        message_id_domain="digest.bridge.example",
        now=CTX.now,
    )
    threaded = in_reply_to.strip() in ("<abc@mail.example>", "<ok.id@gmail.example>")
    expected = (
        NOTICE_HEADERS
        | (THREADING if threaded else set())
        | (set() if strip_bidi_controls(html) else {"Content-Transfer-Encoding"})
    )
    msg = assert_safe_wire_form(raw, expected)
    assert [a.addr_spec for a in msg["To"].addresses] == [to]
    shown = truncate_graphemes(header_safe(subject), MAX_SUBJECT_GRAPHEMES)
    assert str(msg["Subject"]) == (
        shown or f"A notice from {display_name(marketplace, 'Marketplace')}"
    )


@settings(max_examples=150, deadline=None)
@given(shop=outside_text, marketplace=outside_text)
@example(shop=EVIL_NICKNAME, marketplace="TikTok Shop")
@example(shop="Sunny\u202eskcoS", marketplace="Tik\u2066Tok")
def test_activation_notice_with_any_shop_name_has_only_our_headers(
    shop: str, marketplace: str
) -> None:
    user = ShopUser(
        shop_id="shop-7",
        email="new.user@shop.example",
        role="administrator",
        activation_nonce="n0nce",
        activation_expires_at_ms=1_800_000_000_000,
    )
    notice = activation_notice(
        user,
        "tok.en",
        link_base="https://admin.example/activate",
        marketplace_name=marketplace,
        shop_name=shop,
        now_ms=0,
    )
    raw = compose_notice_bytes(
        notice,
        marketplace_name=marketplace,
        from_address="notifications@bridge.example",
        message_id_domain="digest.bridge.example",
        now=CTX.now,
    )
    msg = assert_safe_wire_form(raw, NOTICE_HEADERS)
    shown_shop = header_safe(shop) or "shop shop-7"
    assert not _BIDI & set(notice.subject)
    assert str(msg["Subject"]) == truncate_graphemes(
        header_safe(notice.subject), MAX_SUBJECT_GRAPHEMES
    )
    for body in (body_text(msg, "plain"), body_text(msg, "html")):
        assert not _BIDI & set(body)
    assert shown_shop in body_text(msg, "plain")
    assert msg["X-Bridge-Notice"] == "activation"


# --- finding 9: remote images -------------------------------------------------------------


def _img_sources(msg: EmailMessage) -> list[str]:
    return [str(img.attributes.get("src")) for img in HTMLParser(body_text(msg, "html")).css("img")]


def test_remote_image_off_the_platform_hosts_is_not_an_img_in_the_sent_digest() -> None:
    pixel = ChatContent(kind=ContentKind.IMAGE, url="https://tracker.example.net/px.gif")
    digest = dataclasses.replace(
        digest_of("Ana"), messages=(DigestMessage("m1", 1_764_070_000_000, pixel),)
    )
    msg = parse(compose_digest_bytes(digest, CTX))
    assert _img_sources(msg) == []
    assert "tracker.example.net" not in body_text(msg, "html")
    assert "View picture in chat" in body_text(msg, "html")


def test_image_on_the_platform_host_keeps_its_img_in_the_sent_digest() -> None:
    picture = ChatContent(kind=ContentKind.IMAGE, url="https://p16-oec.ibyteimg.example/a.jpg")
    digest = dataclasses.replace(
        digest_of("Ana"), messages=(DigestMessage("m1", 1_764_070_000_000, picture),)
    )
    assert _img_sources(parse(compose_digest_bytes(digest, CTX))) == [
        "https://p16-oec.ibyteimg.example/a.jpg"
    ]


@pytest.mark.parametrize(
    "content",
    [
        ChatContent(kind=ContentKind.VIDEO, url="https://p16-oec.ibyteimg.example@evil.example/v"),
        ChatContent(kind=ContentKind.VIDEO, url="https://evil.example/watch"),
        ChatContent(kind=ContentKind.PRODUCT_CARD, title="Socks", url="https://evil.example/p/1"),
        ChatContent(kind=ContentKind.IMAGE, url="https://evil.example%2f.ibyteimg.example/x.png"),
    ],
    ids=["video-userinfo", "video-foreign", "product-foreign", "image-escaped-host"],
)
def test_video_and_product_links_off_the_platform_hosts_lead_to_the_chat(
    content: ChatContent,
) -> None:
    """A buyer (or an adapter) chooses these URLs: the digest links only to the platform's
    own hosts, and sends the reader to the conversation otherwise."""
    digest = dataclasses.replace(
        digest_of("Ana"), messages=(DigestMessage("m1", 1_764_070_000_000, content),)
    )
    msg = parse(compose_digest_bytes(digest, CTX))
    for subtype in ("html", "plain"):
        assert "evil.example" not in body_text(msg, subtype)
    assert _img_sources(msg) == []


# --- on the running stack ------------------------------------------------------------------


def _header_names(raw: bytes) -> list[str]:
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    return [line.partition(":")[0] for line in head.split("\r\n") if line[:1] not in (" ", "\t")]


@pytest.mark.integration
async def test_nickname_through_the_running_stack_reaches_the_sink_without_its_reply_to(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Is it in stock?", buyer_name=EVIL_NICKNAME)
    (mail,) = await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 30)
    stored = next(
        m for m in stack.platforms.sink.mails if m.message["Message-ID"] == mail["Message-ID"]
    )
    names = Counter(_header_names(stored.raw))
    assert names["Reply-To"] == 1 and names["From"] == 1 and names["To"] == 1
    assert names["Subject"] == 1
    assert b"evil.test" not in stored.raw
    assert "PHISH" not in stored.raw.decode("ascii")  # still encoded in the subject
    assert EVIL_NICKNAME in str(mail["Subject"])
    assert mail["Reply-To"].addresses[0].domain.startswith("chat-seller-")
    assert "Is it in stock?" in body_text(mail, "plain")
    # The test stack sends unsigned mail (no BRIDGE_DKIM_KEY_FILE); a signed digest for
    # this nickname is verified in test_signed_digest_for_the_nickname_verifies_...
    assert "DKIM-Signature" not in names


@pytest.mark.integration
async def test_activation_mails_for_a_hostile_shop_name_on_the_running_stack_add_no_header(
    stack: Stack,
) -> None:
    ingest = f"http://127.0.0.1:{stack.ports.ingest}"
    token = (
        stack.env.get("BRIDGE_ADMIN_OPERATOR_TOKEN")
        or IngestSettings().admin_operator_token.get_secret_value()
    )
    shop = str(7_200_000_000_000_000_000 + uuid.uuid4().int % 10**18)
    main = f"main-{shop}@shop.test"
    hostile = f"Socks {EVIL_NICKNAME} \u202egpj.exe"
    resp = await stack.http.post(
        f"{ingest}/admin/shops",
        headers={"Authorization": f"Bearer {token}"},
        json={"shop_id": shop, "main_account_email": main, "shop_name": hostile},
    )
    assert resp.status_code == 201, resp.text

    def activation_for(address: str) -> list[bytes]:
        return [
            m.raw
            for m in stack.platforms.sink.mails
            if address in m.rcpt_tos and m.message["X-Bridge-Notice"] == "activation"
        ]

    (raw,) = await eventually(lambda: activation_for(main), timeout_s=30)
    msg = assert_safe_wire_form(raw, NOTICE_HEADERS)
    assert b"evil.test" not in raw and "PHISH" not in raw.decode("ascii")
    assert EVIL_NICKNAME in str(msg["Subject"]) and "\u202e" not in str(msg["Subject"])
    # Activate the main account and add a user: the second activation mail names the shop
    # from its stored settings, by the other code path.
    link = re.search(r"\?token=(\S+)", body_text(msg, "plain"))
    assert link is not None
    activated = await stack.http.post(
        f"{ingest}/admin/activate", json={"token": unquote(link.group(1))}
    )
    assert activated.status_code == 200, activated.text
    api_token = activated.json()["api_token"]
    agent = f"agent-{uuid.uuid4().hex[:6]}@shop.test"
    added = await stack.http.post(
        f"{ingest}/admin/shops/{shop}/users",
        headers={"Authorization": f"Bearer {api_token}"},
        json={"email": agent, "role": "cs_agent"},
    )
    assert added.status_code == 201, added.text
    (second,) = await eventually(lambda: activation_for(agent), timeout_s=30)
    second_msg = assert_safe_wire_form(second, NOTICE_HEADERS)
    assert EVIL_NICKNAME in str(second_msg["Subject"])
    assert b"evil.test" not in second
