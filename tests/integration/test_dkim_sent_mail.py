"""DKIM on the mail the mailer actually sends: ``python -m mailer`` with a key file, a real
broker, and a relay that keeps the bytes it received; verified by dkimpy against the
key's public half served by a fake DNS.

The signer's equivalence with dkimpy on generated messages: tests/unit/test_dkim.py.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import dkim
import pytest
import pytest_asyncio

from shared.events import ChatContent, Digest, DigestMessage
from tests.dkim_keys import dkim_dns, new_rsa_key_file
from tests.mailer_run import sent_by_mailer

pytestmark = pytest.mark.integration

SELECTOR, DOMAIN = "bridge2026", "chat-seller-us.bridge.example"


@dataclass(frozen=True)
class SentMail:
    first: bytes  # a conversation's first digest: no In-Reply-To
    threaded: bytes  # a later one, threaded under the first
    dns: Callable[..., bytes | None]


def _digest(run: str, n: int, previous: tuple[str, ...]) -> Digest:
    return Digest(
        digest_id=f"dg-{run}-{n}",
        shop_id="shop-7",
        conversation_id=f"conv-{run}",
        buyer_id="buyer-9",
        buyer_name="Zoë Buyer",
        shop_name="Sunny Socks",
        previous_digest_ids=previous,
        destination_email="owner@sunnysocks.example",
        messages=(
            DigestMessage(
                f"m-{run}-{n}", 1_764_070_000_000 + n, ChatContent(text=f"Is it wool? Order {n} 🧦")
            ),
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def sent(tmp_path_factory: pytest.TempPathFactory) -> SentMail:
    root = tmp_path_factory.mktemp("dkim-sent")
    key = new_rsa_key_file(root / "private.pem")
    run = uuid.uuid4().hex[:8]
    first = _digest(run, 1, ())
    threaded = _digest(run, 2, (first.digest_id,))
    mails = await sent_by_mailer(
        root,
        [first, threaded],
        {
            "BRIDGE_DKIM_KEY_FILE": str(key),
            "BRIDGE_DKIM_SELECTOR": SELECTOR,
            "BRIDGE_DKIM_DOMAIN": DOMAIN,
        },
    )
    return SentMail(
        mails[first.digest_id], mails[threaded.digest_id], dkim_dns(key, SELECTOR, DOMAIN)
    )


def test_sent_digests_verify_against_the_published_key(sent: SentMail) -> None:
    for raw in (sent.first, sent.threaded):
        assert raw.startswith(b"DKIM-Signature: ")
        assert dkim.verify(raw, dnsfunc=sent.dns)


def test_signature_is_relaxed_sha256_over_the_required_headers(sent: SentMail) -> None:
    header = sent.threaded.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header).split("\r\n")[0]
    tags = {k.strip(): v.strip() for k, v in (t.split("=", 1) for t in unfolded[16:].split(";"))}
    assert tags["a"] == "rsa-sha256" and tags["c"] == "relaxed/relaxed"
    assert (tags["d"], tags["s"]) == (DOMAIN, SELECTOR)
    signed_headers = [h.strip() for h in tags["h"].split(":")]
    assert signed_headers == [name for name in [
        "from", "to", "subject", "date", "message-id", "reply-to",
        "in-reply-to", "references", "mime-version", "content-type",
    ] for _ in (1, 2)]  # fmt: skip


@pytest.mark.parametrize(
    "added",
    [
        b"From: TikTok Shop <support@evil.example>",
        b"Reply-To: <a@evil.example>",
        b"Subject: Urgent: verify your account",
    ],
)
def test_a_second_instance_added_above_a_signed_header_breaks_the_signature(
    sent: SentMail, added: bytes
) -> None:
    raw = sent.threaded
    assert not dkim.verify(added + b"\r\n" + raw, dnsfunc=sent.dns)
    assert not dkim.verify(
        raw.replace(b"\r\n\r\n", b"\r\n" + added + b"\r\n\r\n", 1), dnsfunc=sent.dns
    )


def test_changing_the_subject_after_signing_breaks_the_signature(sent: SentMail) -> None:
    tampered = sent.threaded.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1)
    assert tampered != sent.threaded
    assert not dkim.verify(tampered, dnsfunc=sent.dns)


def test_changing_the_body_after_signing_breaks_the_signature(sent: SentMail) -> None:
    head, body = sent.threaded.split(b"\r\n\r\n", 1)
    tampered = head + b"\r\n\r\n" + body.replace(b"wool", b"silk", 1)
    assert tampered != sent.threaded
    assert not dkim.verify(tampered, dnsfunc=sent.dns)


def test_adding_in_reply_to_to_a_first_digest_breaks_the_signature(sent: SentMail) -> None:
    assert b"\r\nIn-Reply-To:" not in sent.first
    head, body = sent.first.split(b"\r\n\r\n", 1)
    forged = head + b"\r\nIn-Reply-To: <forged@evil.example>\r\n\r\n" + body
    assert not dkim.verify(forged, dnsfunc=sent.dns)


def test_relaxed_canonicalisation_survives_refolding_by_a_relay(sent: SentMail) -> None:
    refolded = sent.threaded.replace(b"\r\nTo: ", b"\r\nTo:\r\n\t ", 1)
    assert refolded != sent.threaded
    assert dkim.verify(refolded, dnsfunc=sent.dns)
