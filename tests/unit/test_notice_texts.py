"""The notice catalogue (shared/notice_texts.py): every kind of notice has its words there,
and the words quote outside values only as one clean line."""

from __future__ import annotations

import pytest

from shared import notice_texts
from shared.events import NoticeKind


@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_notice_kind_has_its_words_in_the_catalogue(kind: NoticeKind) -> None:
    assert callable(getattr(notice_texts, f"{kind.value}_text", None)), kind


def test_quoted_outside_values_cannot_add_lines() -> None:
    words = notice_texts.held_as_automated_text(
        sender='"x\nBcc: y"@evil.example', subject="Hi\r\nReply-To: a@b", reason="r\n\nfake"
    )
    quoted = words.text.split("\n\n")[1].split("\n")
    assert quoted == [
        "Sender: someone at evil.example",
        "Subject: Hi Reply-To: a@b",
        "Reason: r fake",
    ]


def test_long_lists_are_cut_with_a_count() -> None:
    words = notice_texts.links_removed_text(tuple(f"https://x.example/{i}" for i in range(25)))
    assert "- https://x.example/19\n- … and 5 more" in words.text
    assert "x.example/20" not in words.text


def test_activation_email_is_a_card_like_the_digest_with_its_button_and_escaped_names() -> None:
    words = notice_texts.activation_text(
        marketplace_name="TikTok Shop",
        shop_name='Sunny <script>"x"',
        shop_id="1",
        role="cs_agent",
        expires_at_ms=1_764_000_000_000,
        link="https://bridge.example/console/activate?token=a&b",
    )
    page = words.html
    assert page.startswith("<!DOCTYPE html>") and 'name="color-scheme"' in page
    assert "background-color:#f2f3f5" in page and "background-color:#fe2c55" in page  # digest
    assert "prefers-color-scheme: dark" in page
    assert 'href="https://bridge.example/console/activate?token=a&amp;b"' in page
    assert ">Activate your account</a>" in page
    assert "<script>" not in page and "Sunny &lt;script&gt;&quot;x&quot;" in page
    assert "sign in to the notification settings" in words.text
    assert "https://bridge.example/console/activate?token=a&b" in words.text
