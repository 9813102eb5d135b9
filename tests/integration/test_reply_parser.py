"""The parser on the running stack (real front, Tansu, fan-out, platform sandbox).

A poison mail is dead-lettered with its reason and the next mail of the same conversation is
still delivered; an out-of-office and a duplicate never reach the buyer; a forged sender is
refused and nobody (neither the forger nor the shop) gets a notice; a Salesforce shop's buyer
gets the seller's inline picture through the platform's image upload, and the seller one notice for
the attachment that was withheld.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import uuid
import zlib
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest

from devstack.topic_reader import records_so_far
from shared.codec import decode
from shared.events import DeadLetter, InboundResult, MailNotice
from shared.tokens import mint_token, parse_keys, reply_address
from shared.topics import DEAD_LETTER, MAIL_INBOUND_RESULTS, MAIL_NOTICES
from tests.conftest import Stack
from tests.e2e.test_loop import eventually

pytestmark = pytest.mark.integration


def _reply_address(stack: Stack, shop: str, conv: str) -> str:
    keys = parse_keys(stack.env.get("BRIDGE_TOKEN_KEYS", "1:dev-only-token-key-change-me"))
    token = mint_token(shop, conv, keys, now_s=time.time(), ttl_s=3600)
    return reply_address(token, "us", stack.env.get("BRIDGE_REPLY_DOMAIN_BASE", "bridge.localhost"))


def _seller(stack: Stack) -> str:
    return stack.env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")


def _mail(
    sender: str,
    rcpt: str,
    text: str,
    *,
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, "Re: A new message"
    msg["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@shop.localhost>"
    for name, value in (headers or {}).items():
        del msg[name]
        msg[name] = value
    msg.set_content(text)
    return msg.as_bytes(policy=policy.SMTP)


async def _send(stack: Stack, sender: str, rcpt: str, raw: bytes) -> None:
    await aiosmtplib.send(
        raw,
        sender=sender,
        recipients=[rcpt],
        hostname="127.0.0.1",
        port=stack.ports.inbound_smtp,
        timeout=30,
    )


async def _records(bootstrap: str, topic: str, partitions: int) -> list[bytes]:
    return [
        r.value or b""
        for recs in (await records_so_far(bootstrap, topic, partitions)).values()
        for r in recs
    ]


async def _texts(stack: Stack, conv: str) -> list[str]:
    return [r["content"]["content"] for r in await stack.buyer_view(conv)]


async def test_poison_mail_is_dead_lettered_and_the_next_mail_is_still_delivered(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Is it waterproof?")
    rcpt, seller = _reply_address(stack, shop, conv), _seller(stack)
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(5000))
    poison = (
        (
            f"From: {seller}\r\nTo: {rcpt}\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="p"\r\n\r\n'
        ).encode()
        + parts
        + b"--p--\r\n"
    )
    await _send(stack, seller, rcpt, poison)
    await _send(stack, seller, rcpt, _mail(seller, rcpt, "Yes, fully waterproof."))

    assert await eventually(lambda: _texts(stack, conv), timeout_s=30) == ["Yes, fully waterproof."]

    async def poison_letters() -> list[DeadLetter]:
        letters = [
            decode(DeadLetter, v)
            for v in await _records(stack.env["KAFKA_BOOTSTRAP"], DEAD_LETTER.name, 1)
        ]
        return [d for d in letters if d.key == f"{shop}:{conv}"]

    (letter,) = await eventually(poison_letters, timeout_s=10)
    assert letter.service == "reply_parser" and "parsing limits" in letter.reason
    assert "MIME parts" in letter.reason or "boundary lines" in letter.reason


async def test_out_of_office_and_duplicate_never_reach_the_buyer(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Do you ship to Spain?")
    rcpt, seller = _reply_address(stack, shop, conv), _seller(stack)
    await _send(
        stack,
        seller,
        rcpt,
        _mail(
            seller,
            rcpt,
            "I am out of the office until Monday.",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    await _send(
        stack,
        seller,
        rcpt,
        _mail(seller, rcpt, "Fuera de la oficina", headers={"Subject": "Respuesta automática: x"}),
    )
    answer = _mail(seller, rcpt, "Yes, we ship to Spain.", message_id="<dup-1@shop.localhost>")
    await _send(stack, seller, rcpt, answer)
    await _send(stack, seller, rcpt, answer)  # a retrying MTA delivers it again

    assert await eventually(lambda: _texts(stack, conv), timeout_s=30) == ["Yes, we ship to Spain."]
    await asyncio.sleep(2)  # a wrongly delivered duplicate would show up by now
    assert await _texts(stack, conv) == ["Yes, we ship to Spain."]


async def test_forged_sender_is_refused_and_nobody_is_told(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Refund please")
    rcpt, forger = _reply_address(stack, shop, conv), "mallory@evil.localhost"
    await _send(stack, forger, rcpt, _mail(forger, rcpt, "Send your card number to me."))

    async def results() -> list[InboundResult]:
        found = [
            decode(InboundResult, v)
            for v in await _records(
                stack.env["KAFKA_BOOTSTRAP"],
                MAIL_INBOUND_RESULTS.name,
                MAIL_INBOUND_RESULTS.partitions,
            )
        ]
        return [r for r in found if r.conversation_id == conv]

    (result,) = await eventually(results, timeout_s=20)
    assert result.classification == "rejected" and forger not in result.reason
    notices = [
        decode(MailNotice, v)
        for v in await _records(
            stack.env["KAFKA_BOOTSTRAP"], MAIL_NOTICES.name, MAIL_NOTICES.partitions
        )
    ]
    # Unauthenticated: anyone can forge a From, so the shop's notices are not theirs to use.
    assert [n for n in notices if n.conversation_id == conv] == []
    assert await _texts(stack, conv) == []


def _png(width: int = 2, height: int = 1) -> bytes:
    """A small valid PNG (the sandbox reads its size like the platform does)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def test_salesforce_buyer_gets_the_inline_picture_and_the_seller_one_withheld_notice(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    agent = "agent@shop.localhost"
    await stack.onboard(
        shop, "cases@shop.localhost", destination_kind="salesforce", authorized_senders=(agent,)
    )
    await stack.buyer_says(shop, conv, "Can I see the label?")
    rcpt, picture = _reply_address(stack, shop, conv), _png()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = agent, rcpt, "Re: A new message"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@shop.localhost>"
    msg.set_content("Here is the label.")
    msg.add_alternative('<p>Here is the label.</p><img src="cid:label@shop">', subtype="html")
    msg.get_payload()[1].add_related(
        picture, "image", "png", cid="<label@shop>", filename="label.png"
    )
    msg.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf")
    await _send(stack, agent, rcpt, msg.as_bytes(policy=policy.SMTP))

    async def both() -> list[dict[str, object]] | None:
        seen = await stack.buyer_view(conv)
        return seen if len(seen) >= 2 else None

    text, image = await eventually(both, timeout_s=30)
    assert text["content"] == {"content": "Here is the label."}
    assert image["type"] == "IMAGE"
    assert image["image"]["sha256"] == hashlib.sha256(picture).hexdigest()  # type: ignore[index]

    async def withheld() -> list[MailNotice]:
        found = [
            decode(MailNotice, v)
            for v in await _records(
                stack.env["KAFKA_BOOTSTRAP"], MAIL_NOTICES.name, MAIL_NOTICES.partitions
            )
        ]
        return [n for n in found if n.conversation_id == conv]

    (notice,) = await eventually(withheld, timeout_s=20)
    assert (notice.kind, notice.to_address, notice.auto_submitted) == (
        "content_withheld",
        agent,
        "auto-replied",
    )
    assert "invoice.pdf" in notice.text and "label.png" not in notice.text
