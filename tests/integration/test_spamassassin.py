"""A rendered, DKIM-signed digest scores at most 1.0 with SpamAssassin's local rules.

Needs Debian's ``spamassassin`` package (``apt-get install -y spamassassin``) and the
``openssl`` CLI (for the test DKIM key). Runs ``spamassassin -L -t`` (local tests only, no
network) with Bayes off, so the score depends only on the message and the shipped rules.
Network rules (DNSBLs, DKIM key lookup, URIBL) are out of reach offline; they depend on
the sending infrastructure more than on the message.
"""

from __future__ import annotations

import email
import re
import shutil
import subprocess
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest

from mailer.compose import ComposeContext, compose_digest_bytes
from mailer.dkim_signing import DkimSigner
from mailer.render import DigestLinks
from shared.events import ChatContent, ContentKind, Digest, DigestMessage

pytestmark = pytest.mark.integration

MAX_SCORE = 1.0
REPLY_DOMAIN = "chat-seller-us.bridge.example"
_SCORE = re.compile(r"\bscore=(-?\d+(?:\.\d+)?)")

EVERY_KIND = (
    ChatContent(text="Hello! Do you ship to Canada? And how long does it take?\nThanks \U0001f60a"),
    ChatContent(kind=ContentKind.EMOJI, text="\U0001f44d"),
    ChatContent(
        kind=ContentKind.IMAGE,
        url="https://cdn.example.com/chat/img/photo-of-the-socks.jpg",
        thumbnail_url="https://cdn.example.com/chat/img/photo-of-the-socks-thumb.jpg",
    ),
    ChatContent(
        kind=ContentKind.PRODUCT_CARD,
        title="Merino wool socks, 3-pack",
        price="$12.99",
        url="https://shop.example.com/product/merino-socks",
        thumbnail_url="https://cdn.example.com/product/merino-socks.jpg",
    ),
    ChatContent(kind=ContentKind.ORDER_CARD, order_id="576460752303423103", status="Shipped"),
    ChatContent(
        kind=ContentKind.VIDEO,
        url="https://cdn.example.com/chat/video/unboxing.mp4",
        thumbnail_url="https://cdn.example.com/chat/video/unboxing-poster.jpg",
    ),
    ChatContent(kind=ContentKind.STICKER, url="https://cdn.example.com/stickers/wave.png"),
    ChatContent(kind=ContentKind.NOTICE, text="The buyer has confirmed receipt of the order"),
    ChatContent(kind="poll", platform_type="POLL"),
)
TEXT_ONLY = (ChatContent(text="Hi, is the blue one still available in size M?"),)


@pytest.fixture(scope="module")
def spamassassin() -> str:
    binary = shutil.which("spamassassin")
    if binary is None:
        pytest.fail("spamassassin not found: install Debian's spamassassin package")
    return binary


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> DkimSigner:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to generate the test DKIM key"
    key = tmp_path_factory.mktemp("dkim") / "private.pem"
    subprocess.run([openssl, "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    return DkimSigner("bridge2026", REPLY_DOMAIN, key.read_bytes())


def signed_digest(contents: tuple[ChatContent, ...], signer: DkimSigner) -> bytes:
    digest = Digest(
        digest_id="dg-sa-0001",
        shop_id="shop-7",
        conversation_id="conv-42",
        buyer_id="buyer-9",
        buyer_name="Alice Martin",
        shop_name="Sunny Socks",
        previous_digest_ids=("dg-sa-0000",),
        messages=tuple(
            DigestMessage(f"m{i}", 1_764_070_000_000 + i * 60_000, c)
            for i, c in enumerate(contents)
        ),
    )
    ctx = ComposeContext(
        marketplace_name="TikTok Shop",
        from_address=f"c.k1.aGVsbG8.x9@{REPLY_DOMAIN}",
        to_address="owner@sunnysocks.example",
        message_id_domain="digest.bridge.example",
        links=DigestLinks(
            chat_url="https://seller.example.com/chat/conv-42",
            settings_url="https://seller.example.com/settings/notifications",
            marketplace_name="TikTok Shop",
        ),
        list_unsubscribe_url="https://seller.example.com/settings/notifications",
        now=datetime.now(UTC),  # SpamAssassin penalises dates far in the past or future
    )
    return signer.sign(compose_digest_bytes(digest, ctx))


def spam_score(binary: str, message: bytes, workdir: Path) -> tuple[float, str]:
    """Run ``spamassassin -L -t`` and return the score and the X-Spam-Status header."""
    prefs = workdir / "user_prefs"
    prefs.write_text("use_bayes 0\nbayes_auto_learn 0\n")
    result = subprocess.run(
        [binary, "-L", "-t", "-p", str(prefs)],
        input=message,
        capture_output=True,
        check=True,
        timeout=120,
        env={"HOME": str(workdir), "PATH": "/usr/bin:/bin"},  # keep ~/.spamassassin in tmp
    )
    checked = email.message_from_bytes(result.stdout, policy=policy.default)
    status = " ".join(str(checked["X-Spam-Status"] or "").split())
    found = _SCORE.search(status)
    assert found, f"no score in X-Spam-Status: {status!r}\n{result.stderr.decode()[-2000:]}"
    return float(found.group(1)), status


@pytest.mark.parametrize("contents", [EVERY_KIND, TEXT_ONLY], ids=["every-kind", "text-only"])
def test_signed_digest_scores_at_most_one_point(
    spamassassin: str, signer: DkimSigner, tmp_path: Path, contents: tuple[ChatContent, ...]
) -> None:
    message = signed_digest(contents, signer)
    score, status = spam_score(spamassassin, message, tmp_path)
    print(f"SpamAssassin: {status}")  # shown with -s; the figure is reported in reviews
    assert score <= MAX_SCORE, status


def test_score_parser_reads_a_real_spam_status(spamassassin: str, tmp_path: Path) -> None:
    # A deliberately spammy message must score high, or the threshold above proves nothing.
    spam = (
        b"From: winner@lottery.example\r\nTo: you@example.com\r\nSubject: FREE MONEY!!! "
        b"Claim your $1,000,000 prize NOW\r\n\r\n"
        b"Congratulations!!! You have WON $1,000,000 USD. Send your bank account details "
        b"and a processing fee of $99 via Western Union to claim your lottery winnings. "
        b"100% FREE, no risk, act now, limited time offer, click here!!!\r\n"
    )
    score, status = spam_score(spamassassin, spam, tmp_path)
    print(f"SpamAssassin (spam control): {status}")
    assert score > MAX_SCORE, status
