"""Notice emails (activation, withheld content, failed delivery), read back as a client would."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default

import pytest

from mailer.header_encoding import InvalidAddressError
from mailer.notice_email import compose_notice_bytes
from shared.events import MailNotice, NoticeKind

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sent(notice: MailNotice, marketplace: str = "TikTok Shop") -> tuple[bytes, EmailMessage]:
    raw = compose_notice_bytes(
        notice,
        marketplace_name=marketplace,
        from_address="notifications@bridge.example",
        message_id_domain="digest.bridge.example",
        now=NOW,
    )
    msg = BytesParser(policy=default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return raw, msg


def notice(**changes: object) -> MailNotice:
    fields: dict[str, object] = dict(
        notice_id="cw-1",
        kind=NoticeKind.CONTENT_WITHHELD,
        to_address="seller@shop.example",
        subject="Part of your reply was not shown to the customer",
        text="These were not shown:\n\n- report.pdf\n",
        auto_submitted="auto-replied",
        in_reply_to="<CAF=abc.123@mail.gmail.example>",
    )
    fields.update(changes)
    return MailNotice(**fields)  # type: ignore[arg-type]


def test_reply_notice_threads_under_the_sellers_mail_and_is_marked_auto_replied() -> None:
    raw, msg = sent(notice())
    assert msg["In-Reply-To"] == "<CAF=abc.123@mail.gmail.example>"
    assert msg["References"] == "<CAF=abc.123@mail.gmail.example>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["Precedence"] == "auto_reply"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Message-ID"] == "<notice-cw-1@digest.bridge.example>"
    assert str(msg["From"]) == "TikTok Shop <notifications@bridge.example>"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "These were not shown:\n\n- report.pdf\n"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "bad",
    [
        "not an id",
        "<a@b>\r\nBcc: v@x.example",
        "<=?utf-8?b?DQo=?=@x>",
        "<a@b@c>",
        "<" + "a" * 300 + "@b>",
        "",
    ],
)
def test_a_message_id_that_is_not_plain_is_left_out_not_written(bad: str) -> None:
    _, msg = sent(notice(in_reply_to=bad))
    assert msg["In-Reply-To"] is None and msg["References"] is None


def test_html_notice_is_text_and_html_alternatives() -> None:
    _, msg = sent(
        notice(html="<p>Activate</p>", kind=NoticeKind.ACTIVATION, auto_submitted="auto-generated")
    )
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Precedence"] == "bulk" and msg["X-Bridge-Notice"] == "activation"


def test_a_notice_to_a_malformed_address_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidAddressError, match="notice recipient"):
        sent(notice(to_address="seller@shop.example\r\nBcc: v@x.example"))


def test_long_subject_is_cut_at_a_grapheme_and_the_id_hashed_when_unsafe() -> None:
    _, msg = sent(notice(subject="Zoë " * 100, notice_id="id with spaces <x>"))
    assert str(msg["Subject"]).endswith("\u2026") and len(str(msg["Subject"])) <= 150
    assert str(msg["Message-ID"]).startswith("<notice-h")
