"""Replies to a digest as mail clients and helpdesks write them, for the local playground and
the mail sink. Pure: a digest (parsed) and the seller's text in, a reply ``EmailMessage`` out.

Each style copies the SHAPE its client gives a reply (the reply parser's fixtures in
``tests/fixtures/replies/`` hold real ones): Gmail's "On ... wrote:" attribution over a
``gmail_quote``; Outlook's ``From:/Sent:/To:/Subject:`` block under a rule; Zendesk's
notification with "##- Please type your reply above this line -##" and the ticket history,
newest comment first; Salesforce Email-to-Case's ``ref:`` thread id and "Original Message"
block. :func:`out_of_office_reply` is the automatic answer a mailbox sends while its owner is
away, with the headers such answers carry, which the bridge must never pass to a buyer.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from enum import StrEnum


class ReplyStyle(StrEnum):
    GMAIL = "gmail"
    OUTLOOK = "outlook"
    ZENDESK = "zendesk"
    SALESFORCE = "salesforce"

    @property
    def label(self) -> str:
        return {"gmail": "Gmail", "outlook": "Outlook", "zendesk": "Zendesk"}.get(
            self.value, "Salesforce"
        )


def _original_text(original: EmailMessage) -> str:
    body = original.get_body(("plain",))
    return body.get_content() if body is not None else ""


def _original_html(original: EmailMessage) -> str:
    body = original.get_body(("html",))
    if body is not None:
        return str(body.get_content())
    return f"<pre>{html.escape(_original_text(original))}</pre>"


def _html_lines(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _reply_headers(
    original: EmailMessage, from_address: str, subject_prefix: str, domain: str
) -> EmailMessage:
    """From, To (the digest's reply address), Subject, Message-ID and the threading headers
    every client sets."""
    reply = EmailMessage()
    reply["From"] = from_address
    reply["To"] = str(original.get("Reply-To") or original.get("From"))
    reply["Subject"] = subject_prefix + str(original.get("Subject", ""))
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = make_msgid(domain=domain)
    if original.get("Message-ID"):
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    return reply


def _domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "seller.localhost"


def gmail_style_reply(original: EmailMessage, text: str, from_address: str) -> EmailMessage:
    """A reply as Gmail writes it: new text, then the original under a gmail_quote."""
    reply = _reply_headers(original, from_address, "Re: ", _domain_of(from_address))
    quoted = "\n".join("> " + line for line in _original_text(original).splitlines())
    when = str(original.get("Date", ""))
    reply.set_content(f"{text}\n\nOn {when} {original.get('From')} wrote:\n{quoted}\n")
    reply.add_alternative(
        f'<div dir="ltr">{_html_lines(text)}</div><br>'
        f'<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On {html.escape(when)} '
        f"{html.escape(str(original.get('From')))} wrote:<br></div>"
        f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid;'
        f'padding-left:1ex">{_original_html(original)}</blockquote></div>',
        subtype="html",
    )
    return reply


def _outlook_sent(original: EmailMessage) -> str:
    """Outlook's ``Sent:`` line: ``Wednesday, April 3, 2024 4:19 PM``."""
    when = original.get("Date")
    moment = when.datetime if when is not None and when.datetime else datetime.now(UTC)
    return f"{moment:%A, %B} {moment.day}, {moment:%Y} {moment:%I:%M %p}".replace(" 0", " ")


def outlook_style_reply(original: EmailMessage, text: str, from_address: str) -> EmailMessage:
    """A reply as Outlook writes it: new text, a rule, the From/Sent/To/Subject block, then
    the original unquoted."""
    reply = _reply_headers(original, from_address, "RE: ", _domain_of(from_address))
    reply["Thread-Topic"] = str(original.get("Subject", ""))
    reply["X-Mailer"] = "Microsoft Outlook 16.0"
    block = (
        f"From: {original.get('From')}\nSent: {_outlook_sent(original)}\n"
        f"To: {original.get('To')}\nSubject: {original.get('Subject', '')}"
    )
    reply.set_content(
        f"{text}\n\n________________________________\n{block}\n\n{_original_text(original)}\n"
    )
    block_html = "<br>".join(
        f"<b>{html.escape(k)}:</b> {html.escape(v)}"
        for k, v in (line.split(": ", 1) for line in block.split("\n"))
    )
    reply.add_alternative(
        "<html><head><style>p.MsoNormal{margin:0}</style></head><body>"
        f'<div class="WordSection1"><p class="MsoNormal">{_html_lines(text)}</p>'
        '<p class="MsoNormal">&nbsp;</p><div id="divRplyFwdMsg"><div style="border:none;'
        'border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in">'
        f'<p class="MsoNormal">{block_html}</p></div></div>'
        f"{_original_html(original)}</div></body></html>",
        subtype="html",
    )
    return reply


def _ticket_number(original: EmailMessage) -> int:
    digest = hashlib.sha256(str(original.get("Message-ID", "")).encode()).digest()
    return 1000 + int.from_bytes(digest[:2], "big") % 9000


def zendesk_style_reply(original: EmailMessage, text: str, from_address: str) -> EmailMessage:
    """The mail Zendesk sends when an agent comments on the ticket the digest opened: the
    "reply above this line" marker, the ticket's comments newest first (the agent's, then the
    buyer's message from the digest) and Zendesk's footer."""
    name, address = parseaddr(from_address)
    agent = name or address.partition("@")[0]
    account = _domain_of(from_address).partition(".")[0].capitalize()
    reply = _reply_headers(original, from_address, f"[{account}] Re: ", "zendesk.localhost")
    reply["X-Mailer"] = "Zendesk Mailer"
    reply["X-Zendesk-From-Account-Id"] = hashlib.sha256(account.encode()).hexdigest()[:7]
    reply["Reply-To"] = from_address
    ticket = _ticket_number(original)
    now = datetime.now(UTC)
    when = f"{now:%b} {now.day}, {now:%Y}, {now:%H:%M} UTC"
    buyer = str(original.get("Subject", "")).rpartition(" customer ")[2] or "Customer"
    rule = "-" * 46
    reply.set_content(
        "##- Please type your reply above this line -##\n\n"
        f"Your request ({ticket}) has been updated. To add additional comments, reply to "
        f"this email.\n{rule}\n\n{agent} ({account})\n\n{when}\n\n{text}\n\n{rule}\n\n"
        f"{buyer}\n\n{when}\n\n{_original_text(original)}\n\n"
        f"--------------------------------\nThis email is a service from {account}.\n\n"
        f"[{hashlib.sha256(str(ticket).encode()).hexdigest()[:6].upper()}-W31V]\n"
    )
    return reply


def salesforce_style_reply(original: EmailMessage, text: str, from_address: str) -> EmailMessage:
    """A reply from a Salesforce case (Email-to-Case): new text, the case's ``ref:`` thread
    id, then the "Original Message" block."""
    reply = _reply_headers(original, from_address, "RE: ", "salesforce.localhost")
    org = hashlib.sha256(_domain_of(from_address).encode()).hexdigest()[:8].upper()
    reply["X-SFDC-LK"] = f"00D5g{org}"
    reply["X-SFDC-User"] = f"0055g{org}"
    case = hashlib.sha256(str(original.get("Message-ID", "")).encode()).hexdigest()[:8]
    sent = original.get("Date")
    moment = sent.datetime if sent is not None and sent.datetime else datetime.now(UTC)
    reply.set_content(
        f"{text}\n\nref:_00D5g{org[:4]}._5005g{case}:ref\n\n"
        "--------------- Original Message ---------------\n"
        f"From: TikTok Shop [{parseaddr(str(original.get('Reply-To', '')))[1]}]\n"
        f"Sent: {moment.month}/{moment.day}/{moment:%Y} {moment:%I:%M %p}\n"
        f"To: {original.get('To')}\nSubject: {original.get('Subject', '')}\n\n"
        f"{_original_text(original)}\n"
    )
    return reply


BUILDERS: dict[ReplyStyle, Callable[[EmailMessage, str, str], EmailMessage]] = {
    ReplyStyle.GMAIL: gmail_style_reply,
    ReplyStyle.OUTLOOK: outlook_style_reply,
    ReplyStyle.ZENDESK: zendesk_style_reply,
    ReplyStyle.SALESFORCE: salesforce_style_reply,
}


def build_reply(
    style: ReplyStyle, original: EmailMessage, text: str, from_address: str
) -> EmailMessage:
    """The reply ``style``'s client would send to ``original`` with ``text`` on top."""
    return BUILDERS[style](original, text, from_address)


def out_of_office_reply(original: EmailMessage, from_address: str) -> EmailMessage:
    """The automatic answer of a mailbox whose owner is away (RFC 3834 and the headers
    Exchange and other responders add), sent to the digest's reply address."""
    reply = _reply_headers(original, from_address, "Automatic reply: ", _domain_of(from_address))
    reply["Auto-Submitted"] = "auto-replied"
    reply["X-Autoreply"] = "yes"
    reply["X-Auto-Response-Suppress"] = "All"
    reply["Precedence"] = "auto_reply"
    reply.set_content(
        "Hello,\n\nI am out of the office until Monday and have limited access to email. "
        "Your message will be answered when I am back.\n\nBest regards\n"
    )
    return reply
