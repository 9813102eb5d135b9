"""What the bridge's notices say to sellers and shop users, one function per notice kind
(``shared.events.NoticeKind``): the subject and the bodies. Pure.

Only the words live here. Who gets a notice, when, how often and under which id is decided
where it is sent (ingest's activation, the parser's content policy, the fan-out), and the
mailer writes it as an email (``mailer.notice_email``). Every outside value a notice quotes
(a name, a subject, a reason, an address) goes through :func:`shown_text` or
:func:`shown_sender` here: a notice is signed in the marketplace's name, and no sender may
add lines to it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.text_safety import header_safe, is_plain_address, truncate_graphemes

__all__ = [
    "NOTICE_QUOTE_GRAPHEMES",
    "NoticeText",
    "activation_text",
    "content_withheld_text",
    "delivery_failed_text",
    "fallback_subject",
    "held_as_automated_text",
    "links_removed_text",
    "sender_rejected_text",
    "shown_sender",
    "shown_text",
    "sign_in_text",
    "simulation_text",
]

# How much of an outside value (a subject, a reason) a notice quotes, in graphemes.
NOTICE_QUOTE_GRAPHEMES = 120
_ROLE_NAMES = {
    "main_account": "main account",
    "administrator": "administrator",
    "cs_agent": "customer-service agent",
}


@dataclass(frozen=True, slots=True)
class NoticeText:
    """A notice's words: its subject, plain-text body and (optional) HTML body."""

    subject: str
    text: str
    html: str = ""


def shown_text(value: str) -> str:
    """Outside text as a notice quotes it: one clean line (``header_safe``), cut short."""
    return truncate_graphemes(header_safe(value), NOTICE_QUOTE_GRAPHEMES)


def shown_sender(address: str) -> str:
    """The sender as a notice names it: the address when it is a plain ``local@domain``,
    else only ``someone at <domain>`` (a quoted local part can hold a whole sentence)."""
    address = address.strip()
    if is_plain_address(address):
        return address
    domain = address.rpartition("@")[2] if "@" in address else ""
    domain = domain.strip().rstrip(">")
    if domain and is_plain_address(f"x@{domain}"):
        return f"someone at {domain.lower()}"
    return "(an address that cannot be shown)"


def _listed(items: tuple[str, ...], limit: int) -> str:
    """``items`` as "- item" lines, at most ``limit`` of them and a count of the rest."""
    lines = "\n".join(f"- {item}" for item in items[:limit])
    return lines + (f"\n- … and {len(items) - limit} more" if len(items) > limit else "")


def fallback_subject(marketplace: str) -> str:
    """The subject of a notice whose own subject is blank once cleaned."""
    return f"A notice from {marketplace}"


def activation_text(
    *, marketplace_name: str, shop_name: str, shop_id: str, role: str, expires_at_ms: int, link: str
) -> NoticeText:
    """The activation email of a newly added (or re-invited) shop user.

    The shop's and marketplace's names are shown as one clean line (no controls, no bidi
    overrides) in the subject and both bodies; the mailer encodes the subject itself.
    """
    when = datetime.fromtimestamp(expires_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    marketplace = header_safe(marketplace_name)
    shop = header_safe(shop_name) or f"shop {header_safe(shop_id)}"
    role_name = _ROLE_NAMES.get(role, role)
    text = (
        f"You were added to {shop} on {marketplace} as {role_name}, to receive and answer "
        f"buyer messages by email.\n\nActivate your account and sign in to the notification "
        f"settings (single use, valid for 120 hours, "
        f"until {when}):\n{link}\n\nIf the link expired, open it anyway and ask for a new "
        "one, or ask a shop administrator to resend it.\n"
    )
    body = _card(
        eyebrow=f"{marketplace} \u00b7 {shop}",
        title="Activate your account",
        paragraphs=(
            f"You were added to {shop} on {marketplace} as {role_name}, to receive and "
            "answer buyer messages by email.",
            "Activating signs you in to the notification settings. The link works once, "
            f"for 120 hours (until {when}).",
        ),
        button=("Activate your account", link),
        footer="If the link expired, open it anyway and ask for a new one, or ask a shop "
        "administrator to resend it.",
    )
    return NoticeText(f"Activate your {marketplace} email account for {shop}", text, body)


# The digest's look (mailer/render.py: palette, card, button), inline so every client
# shows it; dark mode where the client honours prefers-color-scheme.
_CARD_STYLE = (
    "<style>:root{color-scheme:light dark;}@media (prefers-color-scheme: dark){"
    "body,.page{background-color:#121317!important}.card{background-color:#1e1f24!important;"
    "color:#e8e9ec!important}.title,.body-text{color:#e8e9ec!important}"
    ".eyebrow,.footer{color:#a4a7ae!important}}</style>"
)
_FONT = "font-family:Arial,Helvetica,sans-serif;"


def _card(
    *,
    eyebrow: str,
    title: str,
    paragraphs: tuple[str, ...],
    button: tuple[str, str],
    footer: str,
) -> str:
    """A notice's HTML body laid out like a digest: a card, a title, a button, a footer."""
    rows = "".join(
        f'<p class="body-text" style="margin:0 0 12px 0;font-size:15px;line-height:22px;'
        f'color:#1f2329;">{html.escape(p)}</p>'
        for p in paragraphs
    )
    label, href = button
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="color-scheme" content="light dark">{_CARD_STYLE}</head>'
        '<body class="page" style="margin:0;padding:0;background-color:#f2f3f5;">'
        '<table role="presentation" class="page" width="100%" cellpadding="0" cellspacing="0"'
        ' style="background-color:#f2f3f5;"><tr><td align="center" style="padding:16px 8px;">'
        '<table role="presentation" class="card" width="100%" cellpadding="0" cellspacing="0"'
        ' style="max-width:600px;background-color:#ffffff;border-radius:8px;color:#1f2329;">'
        f'<tr><td style="padding:24px 24px 8px 24px;{_FONT}">'
        f'<p class="eyebrow" style="margin:0;font-size:13px;line-height:18px;color:#6b7075;">'
        f"{html.escape(eyebrow)}</p>"
        f'<p class="title" style="margin:4px 0 16px 0;font-size:20px;line-height:28px;'
        f'font-weight:bold;color:#1f2329;">{html.escape(title)}</p>{rows}</td></tr>'
        f'<tr><td style="padding:8px 24px 24px 24px;{_FONT}">'
        f'<a href="{html.escape(href)}" target="_blank" style="display:inline-block;'
        "padding:12px 28px;border-radius:6px;background-color:#fe2c55;color:#ffffff;"
        f'font-size:16px;line-height:20px;font-weight:bold;text-decoration:none;{_FONT}">'
        f"{html.escape(label)}</a></td></tr></table>"
        '<table role="presentation" width="100%" cellpadding="0" cellspacing="0"'
        ' style="max-width:600px;"><tr><td class="footer" style="padding:16px 24px;'
        f'font-size:12px;line-height:18px;color:#6b7075;{_FONT}">{html.escape(footer)}'
        "</td></tr></table></td></tr></table></body></html>"
    )


def sign_in_text(
    *, marketplace_name: str, shop_name: str, shop_id: str, expires_at_ms: int, link: str
) -> NoticeText:
    """The console sign-in link an activated shop user asked for."""
    when = datetime.fromtimestamp(expires_at_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    marketplace = header_safe(marketplace_name)
    shop = header_safe(shop_name) or f"shop {header_safe(shop_id)}"
    text = (
        f"Sign in to the {marketplace} email notification settings of {shop}:\n{link}\n\n"
        f"The link works until {when}. If you did not ask for it, ignore this email: "
        "nobody can sign in without opening it.\n"
    )
    body = _card(
        eyebrow=f"{marketplace} \u00b7 {shop}",
        title="Sign in",
        paragraphs=(
            f"Sign in to the email notification settings of {shop}. The link works until {when}.",
        ),
        button=("Sign in", link),
        footer="If you did not ask for this email, ignore it: nobody can sign in without "
        "opening the link.",
    )
    return NoticeText(f"Sign in to your {marketplace} email notifications for {shop}", text, body)


def content_withheld_text(withheld: tuple[str, ...]) -> NoticeText:
    """What of a delivered reply the buyer did not receive (links have their own notice)."""
    return NoticeText(
        "Part of your reply was not shown to the customer",
        "Your reply was delivered to the customer in chat, but chat shows only text, "
        "emoji and (where your destination allows) pictures placed in the message. "
        "These were not shown:\n\n"
        f"{_listed(withheld, 50)}\n\n"
        "To share a file or video, use the chat tool.",
    )


def sender_rejected_text(*, sender: str, reason: str) -> NoticeText:
    """A reply refused (and not delivered), told to the shop's own inbox."""
    return NoticeText(
        "A reply to a customer was refused",
        f"An email reply to a customer conversation was refused and not delivered.\n\n"
        f"Sender: {shown_sender(sender) if sender else '(none)'}\n"
        f"Reason: {shown_text(reason)}\n\n"
        "Only users registered and activated for the shop may answer by email. If this "
        "was one of your team, add their address as a user of the shop.",
    )


def links_removed_text(links: tuple[str, ...]) -> NoticeText:
    """Links of a delivered reply shown as their text only (at most daily, per conversation)."""
    return NoticeText(
        "Links are not shown to the customer",
        "Your reply was delivered to the customer in chat, but chat does not show links: "
        "the customer sees the link text only, without the address. Removed:\n\n"
        f"{_listed(links, 20)}\n\n"
        "You get this notice at most once a day per conversation.",
    )


def held_as_automated_text(*, sender: str, subject: str, reason: str) -> NoticeText:
    """A mail held back as automated on its wording alone, told to the shop's own inbox."""
    return NoticeText(
        "A reply was not delivered: it reads as an automatic message",
        "An email to a customer conversation was not delivered to the customer because "
        "its wording reads as an automatic acknowledgement or out-of-office message.\n\n"
        f"Sender: {shown_sender(sender) if sender else '(none)'}\n"
        f"Subject: {shown_text(subject) or '(none)'}\n"
        f"Reason: {shown_text(reason)}\n\n"
        "If a person wrote it, please answer the customer in the chat tool, or reply "
        "again without the automatic-sounding opening.",
    )


def delivery_failed_text(
    *,
    marketplace_name: str,
    conversation_id: str,
    part_number: int,
    parts: int,
    reason: str,
    chat_link: str,
) -> NoticeText:
    """A reply part the chat platform refused: the seller answers in the chat tool."""
    return NoticeText(
        f"Your reply was not delivered to the {marketplace_name} chat",
        f"Your reply could not be delivered to the buyer's chat "
        f"(conversation {conversation_id}).\n\n"
        f"Part {part_number} of {parts} was refused: {reason}\n"
        f"Parts before it were delivered; it and the parts after it were not.\n\n"
        f"Please answer in the chat tool: {chat_link}\n",
    )


def simulation_text(marketplace_name: str) -> str:
    """The simulated buyer message a "simulate a conversation" check sends (the seller
    receives it in a digest like any buyer message)."""
    return (
        f"This is a simulated buyer message from {marketplace_name} to test your "
        "email set-up. Reply to this email; your answer should appear in the chat."
    )
