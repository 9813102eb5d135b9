"""bench/inspect_reply.py without shop settings still refuses mail that no shop could accept."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from inspect_reply import inspect  # noqa: E402

from reply_parser.reply_parser_settings import ReplyParserSettings  # noqa: E402


def _raw(from_header: str | None) -> bytes:
    head = f"From: {from_header}\n" if from_header is not None else ""
    return (
        head + "To: c-1@chat-seller-us.example\nSubject: Re: A new message\n"
        "Message-ID: <i1@mail.example>\n\nYes, it ships today.\n"
    ).encode()


@pytest.mark.parametrize(
    ("from_header", "cls", "reason"),
    [
        (None, "rejected", "no From header"),
        ("Best Jackets Support", "rejected", "no readable address"),
        ("<<>>@@ ;;", "rejected", "no readable address"),
    ],
)
def test_mail_without_a_usable_from_is_refused(
    from_header: str | None, cls: str, reason: str
) -> None:
    verdict = inspect(_raw(from_header))
    assert verdict["class"] == cls and reason in str(verdict["reason"])
    assert verdict["text"] == "" and verdict["parts"] == []


def test_mail_from_one_of_our_reply_domains_is_a_loop() -> None:
    domain = f"chat-seller-gb.{ReplyParserSettings().reply_domain_base}"
    verdict = inspect(_raw(f"TikTok Shop <c-9KZ3Q@{domain}>"))
    assert verdict["class"] == "loop" and verdict["text"] == ""


def test_an_ordinary_reply_is_still_delivered_without_shop_settings() -> None:
    verdict = inspect(_raw("Jane <jane@shop.example>"))
    assert verdict["class"] == "reply" and verdict["text"] == "Yes, it ships today."
