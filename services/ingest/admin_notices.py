"""The activation email as a :class:`MailNotice` for the mailer (its words:
:func:`shared.notice_texts.activation_text`). Pure."""

from __future__ import annotations

from urllib.parse import quote

from shared.events import MailNotice, NoticeKind, ShopUser
from shared.notice_texts import activation_text, sign_in_text


def activation_notice(
    user: ShopUser,
    token: str,
    *,
    link_base: str,
    marketplace_name: str,
    shop_name: str,
    now_ms: int,
) -> MailNotice:
    """One notice per link (the nonce is in the id), so a replay sends it once."""
    words = activation_text(
        marketplace_name=marketplace_name,
        shop_name=shop_name,
        shop_id=user.shop_id,
        role=user.role,
        expires_at_ms=user.activation_expires_at_ms,
        link=f"{link_base}?token={quote(token, safe='')}",
    )
    return MailNotice(
        notice_id=f"activation-{user.activation_nonce}",
        kind=NoticeKind.ACTIVATION,
        to_address=user.email,
        subject=words.subject,
        text=words.text,
        html=words.html,
        shop_id=user.shop_id,
        created_at_ms=now_ms,
    )


def sign_in_notice(
    user: ShopUser,
    token: str,
    *,
    link_base: str,
    marketplace_name: str,
    shop_name: str,
    now_ms: int,
    expires_at_ms: int,
    notice_id: str,
) -> MailNotice:
    """The console sign-in link an activated user asked for."""
    words = sign_in_text(
        marketplace_name=marketplace_name,
        shop_name=shop_name,
        shop_id=user.shop_id,
        expires_at_ms=expires_at_ms,
        link=f"{link_base}?token={quote(token, safe='')}",
    )
    return MailNotice(
        notice_id=notice_id,
        kind=NoticeKind.SIGN_IN,
        to_address=user.email,
        subject=words.subject,
        text=words.text,
        html=words.html,
        shop_id=user.shop_id,
        created_at_ms=now_ms,
    )
