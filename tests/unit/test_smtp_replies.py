"""The reply front's SMTP replies: one catalogue, each reply's codes consistent."""

from __future__ import annotations

import pytest

from reply_parser import smtp_replies
from reply_parser.smtp_replies import QUEUED, SESSION_CUT, UNKNOWN_RECIPIENT, SmtpReply

CATALOGUE = {
    name: value for name, value in vars(smtp_replies).items() if isinstance(value, SmtpReply)
}


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_every_enhanced_code_is_in_the_class_of_its_basic_code(name: str) -> None:
    reply = CATALOGUE[name]
    klass, subject, detail = reply.status.split(".")
    assert klass == str(reply.code)[0] and klass in "245", (name, reply)
    assert subject.isdigit() and detail.isdigit(), (name, reply)


def test_replies_read_as_the_front_sends_them() -> None:
    assert UNKNOWN_RECIPIENT.format(address="r@x", reason="expired") == "550 5.1.1 <r@x>: expired"
    assert QUEUED.format(mail_id="ab12") == "250 2.0.0 Queued as ab12"
    assert SESSION_CUT.line(reason="slow") == b"421 4.4.2 Closing connection: slow\r\n"


def test_a_reason_with_braces_is_text_not_a_template() -> None:
    assert UNKNOWN_RECIPIENT.format(address="{x}", reason="{reason}") == "550 5.1.1 <{x}>: {reason}"
