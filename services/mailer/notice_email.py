"""System notices (activation links, withheld content, failed deliveries) as email. Pure."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from shared.events import MailNotice

_CONTROL = dict.fromkeys(range(32), " ")


def notice_message_id(notice_id: str, domain: str) -> str:
    return f"<notice-{notice_id}@{domain}>"


def compose_notice_email(notice: MailNotice, *, marketplace_name: str, from_address: str,
                         message_id_domain: str, now: datetime) -> EmailMessage:
    """A plain notice; marked automatic so auto-responders and helpdesks do not answer it."""
    msg = EmailMessage()
    local, _, domain = from_address.partition("@")
    msg["From"] = Address(marketplace_name.translate(_CONTROL), local, domain)
    msg["To"] = notice.to_address.translate(_CONTROL)
    msg["Subject"] = notice.subject.translate(_CONTROL)[:200]
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = notice_message_id(notice.notice_id, message_id_domain)
    if notice.in_reply_to:
        msg["In-Reply-To"] = notice.in_reply_to.translate(_CONTROL)
        msg["References"] = notice.in_reply_to.translate(_CONTROL)
    msg["Auto-Submitted"] = (notice.auto_submitted if notice.auto_submitted in
                             ("auto-generated", "auto-replied") else "auto-generated")
    msg["X-Auto-Response-Suppress"] = "All"
    msg["Precedence"] = "auto_reply" if notice.auto_submitted == "auto-replied" else "bulk"
    msg["X-Bridge-Notice"] = notice.kind.translate(_CONTROL)
    msg.set_content(notice.text)
    if notice.html:
        msg.add_alternative(notice.html, subtype="html")
    return msg
