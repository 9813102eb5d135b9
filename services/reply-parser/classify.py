"""Classify an inbound mail before extraction: a seller's reply, or automated mail to drop.

Automated mail is the main source of harm in email gateways (design.md): out-of-office answers
and helpdesk auto-replies posted into a conversation, and loops between auto-responders. The
checks below are header-first (RFC 3834 and the de-facto headers), then the sender, then a
localized subject. ``X-Auto-Response-Suppress`` on an inbound mail is a request *to us* not to
auto-answer; it does not make the mail itself automated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

REPLY = "reply"
AUTO_REPLY = "auto_reply"
BOUNCE = "bounce"
LOOP = "loop"
REJECTED = "rejected"


@dataclass(frozen=True)
class Classification:
    """The class of an inbound mail and a short reason a human can act on."""

    cls: str
    reason: str


# Our own outbound mail carries this header; seeing it inbound means a loop.
OWN_LOOP_HEADER = "X-Loop"
_BOUNCE_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_NO_REPLY_SENDERS = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply-[\w.-]+|bounces?|"
    r"auto[-_.]?(?:reply|responder|confirm)|autoresponder)(?:[+-][^@]*)?@",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:"
    r"auto(?:matic)?[ -]?(?:reply|response|answer)|out of (?:the )?office|ooo\b|away from (?:the )?office|"
    r"on vacation|vacation reply|i am (?:currently )?out of|"
    r"respuesta automática|respuesta automatica|fuera de la oficina|ausente|"
    r"resposta automática|resposta automatica|fora do escritório|ausência|"
    r"réponse automatique|reponse automatique|absence du bureau|absent du bureau|"
    r"automatische antwort|abwesenheitsnotiz|abwesend|"
    r"risposta automatica|fuori ufficio|fuori sede|"
    r"automatisch antwoord|afwezig|niet op kantoor|"
    r"automatyczna odpowiedź|automatyczna odpowiedz|poza biurem|nieobecność|"
    r"otomatik yanıt|otomatik cevap|ofis dışında|"
    r"balasan otomatis|tidak di kantor|di luar kantor|"
    r"balasan automatik|jawapan automatik|di luar pejabat|"
    r"ตอบกลับอัตโนมัติ|การตอบกลับอัตโนมัติ|ไม่อยู่ที่สำนักงาน|"
    r"trả lời tự động|vắng mặt|"
    r"awtomatikong tugon|awtomatikong sagot|wala sa opisina|"
    r"自動応答|自動返信|不在|"
    r"자동 회신|자동 응답|부재중|"
    r"自动回复|自動回覆|自動回復|自动答复|不在办公室|"
    r"رد تلقائي|الرد التلقائي|خارج المكتب|"
    r"автоматический ответ|автоответ|нет на месте"
    r")",
    re.I,
)
_DELIVERY_FAILURE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery status notification|"
    r"(?:mail )?delivery (?:has )?failed|returned mail|failure notice|"
    r"mail delivery (?:failed|failure|subsystem)|non[- ]?delivery)",
    re.I,
)


def classify_mail(msg: Message, own_loop_value: str | None = None) -> Classification:
    """Classify *msg* as reply, auto_reply, bounce or loop. Never raises.

    *own_loop_value* is the ``X-Loop`` value our mailer stamps on outbound mail; when given,
    only that value counts as a loop, otherwise any ``X-Loop`` does.
    """
    try:
        return _classify(msg, own_loop_value)
    except Exception:  # noqa: BLE001 - a malformed header must not crash the parser loop
        return Classification(REJECTED, "unreadable headers")


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return str(value).strip() if value is not None else ""


def _classify(msg: Message, own_loop_value: str | None) -> Classification:
    content_type = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "") if content_type == "multipart/report" else ""
    if content_type == "multipart/report" and str(report_type).lower() in (
        "delivery-status", "disposition-notification", ""
    ):
        return Classification(BOUNCE, f"multipart/report; report-type={report_type or '?'}")

    sender = ""
    for _name, address in getaddresses([_header(msg, "From"), _header(msg, "Sender")]):
        if address:
            sender = address
            break
    return_path = _header(msg, "Return-Path")
    if return_path in ("<>", "") and _BOUNCE_SENDERS.match(sender):
        return Classification(BOUNCE, f"sender {sender}")
    if _BOUNCE_SENDERS.match(sender):
        return Classification(BOUNCE, f"sender {sender}")

    loop = _header(msg, OWN_LOOP_HEADER)
    if loop and (own_loop_value is None or loop.lower() == own_loop_value.lower()):
        return Classification(LOOP, f"X-Loop: {loop}")
    if _header(msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return Classification(LOOP, "X-MS-Exchange-Inbox-Rules-Loop present")

    auto_submitted = _header(msg, "Auto-Submitted").lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return Classification(AUTO_REPLY, f"Auto-Submitted: {auto_submitted}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply"):
        value = _header(msg, name)
        if value and value.lower() not in ("no", "false", "0"):
            return Classification(AUTO_REPLY, f"{name}: {value}")
    precedence = _header(msg, "Precedence").lower()
    if precedence in ("bulk", "junk", "auto_reply", "list"):
        return Classification(AUTO_REPLY, f"Precedence: {precedence}")
    if _header(msg, "X-Autogenerated").lower() == "reply" or _header(msg, "X-Failed-Recipients"):
        return Classification(
            BOUNCE if _header(msg, "X-Failed-Recipients") else AUTO_REPLY,
            "X-Failed-Recipients present" if _header(msg, "X-Failed-Recipients")
            else "X-Autogenerated: Reply",
        )

    subject = _header(msg, "Subject")[:300]
    if _DELIVERY_FAILURE_SUBJECT.match(subject):
        return Classification(BOUNCE, f"delivery failure subject: {subject[:80]}")
    if _AUTO_SUBJECT.match(_strip_reply_prefix(subject)):
        return Classification(AUTO_REPLY, f"auto-reply subject: {subject[:80]}")
    if _NO_REPLY_SENDERS.match(sender):
        return Classification(AUTO_REPLY, f"no-reply sender {sender}")
    return Classification(REPLY, "no automation markers")


def _strip_reply_prefix(subject: str) -> str:
    # "Re: Automatic reply: …" is still an auto-reply; "[Ticket #1] Out of office" too.
    return re.sub(r"^(?:\s*(?:re|aw|sv|antw|rif|r|res|odp|ynt)\s*:\s*|\s*\[[^\]]{0,60}\]\s*)*",
                  "", subject, flags=re.I)
