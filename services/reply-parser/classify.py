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
    r"no[-_.]?respon[ds]e?|mailer|daemon|"
    r"auto[-_.]?(?:reply|responder|confirm)|autoresponder)(?:[+-][^@]*)?@",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:"
    r"auto(?:matic)?[ -]?(?:reply|response|answer|antwort)|autoreply|autoresponse|auto:|"
    r"out of (?:the )?office|ooo\b|away from (?:the )?office|"
    r"on (?:vacation|holiday|leave)|vacation reply|holiday (?:notice|reply)|"
    r"i am (?:currently )?out of|"
    r"respuesta automática|respuesta automatica|fuera de la oficina|ausente|"
    r"resposta automática|resposta automatica|fora do escritório|ausência|ausente|"
    r"réponse automatique|reponse automatique|absence du bureau|absent du bureau|hors du bureau|"
    r"automatische antwort|abwesenheitsnotiz|abwesend|abwesenheit|nicht im büro|"
    r"risposta automatica|fuori ufficio|fuori sede|"
    r"automatisch antwoord|afwezig|niet op kantoor|afwezigheidsmelding|"
    r"automatyczna odpowiedź|automatyczna odpowiedz|odpowiedź automatyczna|poza biurem|nieobecność|"
    r"otomatik yanıt|otomatik cevap|otomatik yanit|ofis dışında|ofis disinda|"
    r"balasan otomatis|tidak di kantor|di luar kantor|"
    r"balasan automatik|jawapan automatik|di luar pejabat|"
    r"ตอบกลับอัตโนมัติ|การตอบกลับอัตโนมัติ|ไม่อยู่ที่สำนักงาน|"
    r"trả lời tự động|thư trả lời tự động|vắng mặt|"
    r"awtomatikong tugon|awtomatikong sagot|wala sa opisina|"
    r"自動応答|自動返信|不在|"
    r"자동 회신|자동 응답|자동회신|자동응답|부재중|부재 중|"
    r"自动回复|自動回覆|自動回復|自动答复|自動答覆|不在办公室|休假|"
    r"رد تلقائي|الرد التلقائي|رد آلي|خارج المكتب|"
    r"автоматический ответ|автоответ|нет на месте"
    r")",
    re.I,
)
# Unambiguous phrases that mark automation anywhere in a subject (helpdesks prefix or suffix
# them around the original subject: "[Request received] Re: …", "Re: … - Ticket Received").
_AUTO_SUBJECT_ANYWHERE = re.compile(
    r"(?:automatic reply|auto-?reply|autoreply|out of (?:the )?office|"
    r"\[?request received\]?|ticket (?:received|created|opened)|"
    r"(?:case|ticket|request)\s*(?:#|no\.?|number)?\s*[\w-]{1,20}\s*(?:has been|was) "
    r"(?:created|received|opened|logged)|"
    r"we(?:'ve| have)? received your (?:request|message|email|e-mail|inquiry|enquiry)|"
    r"thank(?:s| you) for (?:contacting|reaching out|"
    r"your (?:email|e-mail|message|request|inquiry|enquiry))|"
    r"auto(?:matic)?[- ]?acknowledge?ment|"
    r"respuesta automática|resposta automática|réponse automatique|automatische antwort|"
    r"risposta automatica|automatisch antwoord|automatyczna odpowiedź|otomatik yanıt|"
    r"balasan otomatis|balasan automatik|ตอบกลับอัตโนมัติ|trả lời tự động|awtomatikong tugon|"
    r"自動応答|自動返信|자동 회신|자동 응답|自动回复|自動回覆|رد تلقائي)",
    re.I,
)
# Helpdesk acknowledgements and autoresponder bodies: phrases a person writing to a buyer
# does not open with. Checked on the extracted text's opening only (see classify_body).
_AUTO_BODY = re.compile(
    r"(?:this is an? (?:automated|automatic|auto-generated|automatically generated) "
    r"(?:response|reply|message|e-?mail|notification|acknowledge?ment)|"
    r"(?:your|a) (?:support )?(?:case|ticket|request)"
    r"\s*(?:#|no\.?|number|id)?\s*:?\s*\(?#?[\w-]{1,20}\)?\s*"
    r"(?:has been|was|is) (?:created|received|opened|logged)|"
    # "We've received your message and will get back to you within 24 hours": an
    # acknowledgement says it received something AND promises a later answer.
    r"received your (?:request|message|e-?mail|inquiry|enquiry|ticket)\b[^\n]{0,80}?"
    r"(?:will (?:get back|respond|reply|be in touch|contact you|answer)|"
    r"within \d+ (?:business |working )?(?:hours?|days?))|"
    r"(?:please )?do not reply (?:directly )?to this (?:e-?mail|message)|"
    r"i (?:am|'m) (?:currently )?(?:out of (?:the )?office|away|on (?:vacation|holiday|leave))|"
    r"estoy fuera de la oficina|je suis absent|ich bin (?:bis|derzeit|zurzeit|vom)[^.\n]{0,40}"
    r"(?:abwesend|nicht im büro|im urlaub)|sono fuori ufficio|estou fora do escritório)",
    re.I,
)
_DELIVERY_FAILURE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery status notification|"
    r"(?:mail )?delivery (?:has )?failed|returned mail|failure notice|"
    r"mail delivery (?:failed|failure|subsystem)|non[- ]?delivery|"
    r"message (?:not delivered|delivery failure)|delivery failure|unzustellbar|"
    r"non recapitabile|non remis|no se puede entregar|não entregue)",
    re.I,
)
# Exchange stamps this on mail its own agents generated (rules, OOF, journaling); a person's
# reply never carries it.
_EXCHANGE_GENERATED = "X-MS-Exchange-Generated-Message-Source"
_AUTO_VALUE_FALSE = ("no", "false", "0", "off", "none")


def classify_body(text: str) -> Classification | None:
    """An auto-reply verdict when the newly written text reads as an autoresponder's, else None.

    Only the opening 600 characters are examined: an acknowledgement states itself first.
    """
    match = _AUTO_BODY.search(text[:600])
    if match is None:
        return None
    return Classification(AUTO_REPLY, f"automated body text: {match.group(0)[:60]}")


def classify_mail(msg: Message, own_loop_value: str | None = None, *,
                  envelope_sender: str | None = None) -> Classification:
    """Classify *msg* as reply, auto_reply, bounce or loop. Never raises.

    *own_loop_value* is the ``X-Loop`` value our mailer stamps on outbound mail; when given,
    only that value counts as a loop, otherwise any ``X-Loop`` does. *envelope_sender* is the
    SMTP ``MAIL FROM`` when known: an empty one (the null reverse-path) is what DSNs and
    RFC 3834 auto-responders use, never a person's reply.
    """
    try:
        return _classify(msg, own_loop_value, envelope_sender)
    except Exception:  # noqa: BLE001 - a malformed header must not crash the parser loop
        return Classification(REJECTED, "unreadable headers")


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return str(value).strip() if value is not None else ""


def _token(value: str) -> str:
    """The first token of a header value, without RFC 5322 comments or parameters."""
    value = re.sub(r"\([^)]*\)", " ", value)
    return value.split(";")[0].strip().strip('"').lower()


def _classify(msg: Message, own_loop_value: str | None,
              envelope_sender: str | None) -> Classification:
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        report_type = str(msg.get_param("report-type") or "").lower()
        if report_type == "disposition-notification":
            return Classification(AUTO_REPLY, "read receipt (multipart/report; "
                                              "report-type=disposition-notification)")
        return Classification(BOUNCE, f"multipart/report; report-type={report_type or '?'}")
    if content_type == "message/delivery-status":
        return Classification(BOUNCE, "message/delivery-status body")

    sender = ""
    for _name, address in getaddresses([_header(msg, "From"), _header(msg, "Sender")]):
        if address:
            sender = address
            break
    if _BOUNCE_SENDERS.match(sender):
        return Classification(BOUNCE, f"sender {sender}")
    return_path = _header(msg, "Return-Path")
    if envelope_sender is not None and envelope_sender.strip("<> ") == "":
        return Classification(BOUNCE if _looks_like_dsn(msg) else AUTO_REPLY,
                              "null return path (MAIL FROM:<>)")
    if return_path.replace(" ", "") == "<>":
        return Classification(BOUNCE if _looks_like_dsn(msg) else AUTO_REPLY,
                              "null return path (Return-Path: <>)")
    if _BOUNCE_SENDERS.match(return_path.strip("<> ")):
        return Classification(BOUNCE, f"return path {return_path}")

    # Exchange stamps this on mail an inbox rule produced (out-of-office, rule replies).
    if _header(msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return Classification(AUTO_REPLY, "X-MS-Exchange-Inbox-Rules-Loop present "
                                          "(sent by an Exchange inbox rule)")

    auto_submitted = _header(msg, "Auto-Submitted")
    # Some gateways add comments ("no (forwarded)") or odd casing: only the keyword counts.
    if auto_submitted and _token(auto_submitted) not in ("no", ""):
        return Classification(AUTO_REPLY, f"Auto-Submitted: {auto_submitted[:60]}")
    generated = _header(msg, _EXCHANGE_GENERATED)
    if generated:
        return Classification(AUTO_REPLY, f"{_EXCHANGE_GENERATED}: {generated[:60]}")
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Auto-Reply",
                 "X-Autoresponse", "X-Auto-Response", "X-Vacation"):
        value = _header(msg, name)
        if value and _token(value) not in _AUTO_VALUE_FALSE:
            return Classification(AUTO_REPLY, f"{name}: {value[:60]}")
    for name in ("Precedence", "X-Precedence"):
        precedence = _token(_header(msg, name))
        if precedence in ("bulk", "junk", "auto_reply", "auto-reply", "list"):
            return Classification(AUTO_REPLY, f"{name}: {precedence}")
    if _header(msg, "X-Failed-Recipients"):
        return Classification(BOUNCE, "X-Failed-Recipients present")
    # After the automation headers: an auto-responder that also sets X-Loop is an auto-reply;
    # X-Loop alone means a system is echoing mail back (our own is caught before this).
    loop = _header(msg, OWN_LOOP_HEADER)
    if loop and (own_loop_value is None or loop.lower() == own_loop_value.lower()):
        return Classification(LOOP, f"X-Loop: {loop[:80]}")
    if _token(_header(msg, "X-Autogenerated")) == "reply":
        return Classification(AUTO_REPLY, "X-Autogenerated: Reply")
    if "autoresponder" in _header(msg, "X-POST-MessageClass").lower():
        return Classification(AUTO_REPLY, "X-POST-MessageClass: Autoresponder")
    if _header(msg, "List-Id"):
        return Classification(AUTO_REPLY, "mailing-list mail (List-Id)")
    if _header(msg, "List-Unsubscribe") and (_header(msg, "List-Unsubscribe-Post")
                                             or _header(msg, "Feedback-ID")):
        return Classification(AUTO_REPLY, "bulk mail (List-Unsubscribe)")

    subject = _header(msg, "Subject")[:300]
    if _DELIVERY_FAILURE_SUBJECT.match(subject):
        return Classification(BOUNCE, f"delivery failure subject: {subject[:80]}")
    if _AUTO_SUBJECT.match(_strip_reply_prefix(subject)):
        return Classification(AUTO_REPLY, f"auto-reply subject: {subject[:80]}")
    found = _AUTO_SUBJECT_ANYWHERE.search(subject)
    if found:
        return Classification(AUTO_REPLY, f"auto-reply subject: {found.group(0)[:60]}")
    if _NO_REPLY_SENDERS.match(sender):
        return Classification(AUTO_REPLY, f"no-reply sender {sender}")
    return Classification(REPLY, "no automation markers")


def _looks_like_dsn(msg: Message) -> bool:
    if msg.get_content_type() in ("multipart/report", "message/delivery-status"):
        return True
    return bool(_header(msg, "X-Failed-Recipients")) or bool(
        _DELIVERY_FAILURE_SUBJECT.match(_header(msg, "Subject")[:300]))


def _strip_reply_prefix(subject: str) -> str:
    # "Re: Automatic reply: …" is still an auto-reply; "[Ticket #1] Out of office" too.
    return re.sub(r"^(?:\s*(?:re|aw|sv|antw|rif|r|res|odp|ynt)\s*:\s*|\s*\[[^\]]{0,60}\]\s*)*",
                  "", subject, flags=re.I)
