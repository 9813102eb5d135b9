"""The activation email as a :class:`MailNotice` for the mailer. Pure."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from urllib.parse import quote

from shared.events import MailNotice, NoticeKind, ShopUser
from shared.text_safety import header_safe

_ROLE_NAMES = {"main_account": "main account", "administrator": "administrator",
               "cs_agent": "customer-service agent"}


def activation_notice(user: ShopUser, token: str, *, link_base: str, marketplace_name: str,
                      shop_name: str, now_ms: int) -> MailNotice:
    """One notice per link (the nonce is in the id), so a replay sends it once.

    The shop's and marketplace's names are shown as one clean line (no controls, no bidi
    overrides) in the subject and both bodies; the mailer encodes the subject itself.
    """
    link = f"{link_base}?token={quote(token, safe='')}"
    expires = datetime.fromtimestamp(user.activation_expires_at_ms / 1000, UTC)
    when = expires.strftime("%Y-%m-%d %H:%M UTC")
    marketplace = header_safe(marketplace_name)
    shop = header_safe(shop_name) or f"shop {header_safe(user.shop_id)}"
    role = _ROLE_NAMES.get(user.role, user.role)
    text = (f"You were added to {shop} on {marketplace} as {role}, to receive and answer "
            f"buyer messages by email.\n\nActivate your account (single use, valid for 120 hours, "
            f"until {when}):\n{link}\n\nIf the link expired, open it anyway and ask for a new "
            "one, or ask a shop administrator to resend it.\n")
    body = (f"<p>You were added to {html.escape(shop)} on {html.escape(marketplace)} as "
            f"{html.escape(role)}, to receive and answer buyer messages by email.</p>"
            f'<p><a href="{html.escape(link)}">Activate your account</a> (single use, valid for '
            f"120 hours, until {when}).</p>")
    return MailNotice(notice_id=f"activation-{user.activation_nonce}", kind=NoticeKind.ACTIVATION,
                      to_address=user.email,
                      subject=f"Activate your {marketplace} email account for {shop}",
                      text=text, html=body, shop_id=user.shop_id, created_at_ms=now_ms)
