"""A digest as the mailer sends it (rendered, DKIM-signed, received by a relay from
``python -m mailer``) scores at most 1.0 with SpamAssassin's local rules.

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
import uuid
from email import policy
from pathlib import Path

import pytest
import pytest_asyncio

from shared.events import ChatContent, ContentKind, Digest, DigestMessage
from tests.dkim_keys import new_rsa_key_file
from tests.mailer_run import sent_by_mailer

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


def _digest(run: str, n: int, contents: tuple[ChatContent, ...]) -> Digest:
    return Digest(
        digest_id=f"dg-sa-{run}-{n}",
        shop_id="shop-7",
        conversation_id=f"conv-{run}-{n}",
        buyer_id="buyer-9",
        buyer_name="Alice Martin",
        shop_name="Sunny Socks",
        previous_digest_ids=(f"dg-sa-{run}-0",),
        destination_email="owner@sunnysocks.example",
        messages=tuple(
            DigestMessage(f"m{i}", 1_764_070_000_000 + i * 60_000, c)
            for i, c in enumerate(contents)
        ),
    )


@pytest_asyncio.fixture(scope="module")
async def sent(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The signed mail the mailer sent for each content set, by its test id."""
    root = tmp_path_factory.mktemp("spam-sent")
    key = new_rsa_key_file(root / "private.pem")
    run = uuid.uuid4().hex[:8]
    digests = {"every-kind": _digest(run, 1, EVERY_KIND), "text-only": _digest(run, 2, TEXT_ONLY)}
    mails = await sent_by_mailer(
        root,
        list(digests.values()),
        {
            "BRIDGE_DKIM_KEY_FILE": str(key),
            "BRIDGE_DKIM_SELECTOR": "bridge2026",
            "BRIDGE_DKIM_DOMAIN": REPLY_DOMAIN,
            # Production-shaped names and links (the local defaults are 127.0.0.1 URLs and
            # .localhost domains, which SpamAssassin rightly scores).
            "BRIDGE_REPLY_DOMAIN_BASE": REPLY_DOMAIN.removeprefix("chat-seller-us."),
            "BRIDGE_MESSAGE_ID_DOMAIN": "digest.bridge.example",
            "BRIDGE_CHAT_DEEP_LINK_BASE": "https://seller.example.com/chat",
            "BRIDGE_SETTINGS_LINK_TEMPLATE": "https://seller.example.com/settings/{shop_id}/notifications",
            "BRIDGE_DIGEST_IMAGE_HOSTS": "cdn.example.com",
        },
    )
    return {name: mails[d.digest_id] for name, d in digests.items()}


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


@pytest.mark.parametrize("name", ["every-kind", "text-only"])
def test_sent_digest_scores_at_most_one_point(
    spamassassin: str, sent: dict[str, bytes], tmp_path: Path, name: str
) -> None:
    message = sent[name]
    assert message.startswith(b"DKIM-Signature: ")
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
