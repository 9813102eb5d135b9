"""classify_mail: automated mail never reaches the buyer."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest

from reply_parser.classify import classify_mail


def _mail(headers: dict[str, str], content_type: str = "text/plain") -> EmailMessage:
    lines = [f"{k}: {v}" for k, v in {"From": "seller@shop.example", "Subject": "Re: A new message",
                                        **headers}.items()]
    raw = "\r\n".join(lines + [f"Content-Type: {content_type}", "", "body"]).encode()
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_plain_reply_is_a_reply() -> None:
    assert classify_mail(_mail({})).cls == "reply"


def test_x_auto_response_suppress_alone_is_still_a_reply() -> None:
    assert classify_mail(_mail({"X-Auto-Response-Suppress": "All"})).cls == "reply"


def test_auto_submitted_no_is_a_reply() -> None:
    assert classify_mail(_mail({"Auto-Submitted": "no"})).cls == "reply"


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"},
    {"Auto-Submitted": "auto-generated"},
    {"X-Autoreply": "yes"},
    {"X-Autorespond": "Out of office"},
    {"Precedence": "bulk"},
    {"Precedence": "auto_reply"},
    {"From": "no-reply@helpdesk.example"},
])
def test_automation_headers_and_senders_mean_auto_reply(headers: dict[str, str]) -> None:
    assert classify_mail(_mail(headers)).cls == "auto_reply"


@pytest.mark.parametrize("subject", [
    "Automatic reply: A new message", "Out of Office: A new message", "Réponse automatique : x",
    "Automatische Antwort: x", "Respuesta automática: x", "Risposta automatica: x",
    "自動応答: x", "自动回复: x", "자동 회신: x", "Otomatik yanıt: x", "Re: Out of office",
])
def test_localized_auto_reply_subjects_mean_auto_reply(subject: str) -> None:
    assert classify_mail(_mail({"Subject": subject})).cls == "auto_reply"


def test_dsn_report_is_a_bounce() -> None:
    msg = _mail({}, 'multipart/report; report-type=delivery-status; boundary="b"')
    assert classify_mail(msg).cls == "bounce"


def test_mailer_daemon_is_a_bounce() -> None:
    assert classify_mail(_mail({"From": "MAILER-DAEMON@mx.example"})).cls == "bounce"


def test_x_loop_is_a_loop() -> None:
    assert classify_mail(_mail({"X-Loop": "bridge@chat-seller-us.example"})).cls == "loop"
