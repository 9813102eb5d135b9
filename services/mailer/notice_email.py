"""System notices (activation links, withheld content, failed deliveries) as email bytes. Pure.

Written the way digests are (:mod:`mailer.compose`, :mod:`mailer.header_encoding`): the
subject and names are cleaned and encoded by us, addresses are checked and refused when
not plain, the Message-ID a notice answers is written only when it is a plain msg-id,
and bodies are quoted-printable. Nothing here hands a value to the ``email`` package to
parse, so an encoded word in a shop name stays text.
"""

from __future__ import annotations

import re
from datetime import datetime

from shared.events import MailNotice
from shared.notice_texts import fallback_subject
from shared.text_safety import header_safe, strip_bidi_controls

from .compose import date_header, display_name, message_boundary, mime_body, truncate_graphemes
from .header_encoding import address_header, token_header, unstructured_header
from .threading_headers import notice_message_id, outside_message_id

__all__ = ["MAX_SUBJECT_GRAPHEMES", "compose_notice_bytes"]

MAX_SUBJECT_GRAPHEMES = 150
_AUTO_SUBMITTED = ("auto-generated", "auto-replied")
_KIND = re.compile(r"[^A-Za-z0-9_.-]")


def compose_notice_bytes(
    notice: MailNotice,
    *,
    marketplace_name: str,
    from_address: str,
    message_id_domain: str,
    now: datetime,
) -> bytes:
    """A notice email, marked automatic so auto-responders and helpdesks do not answer it.

    Raises :class:`~mailer.header_encoding.InvalidAddressError` when the sender or the
    notice's recipient is not a plain ``local@domain``.
    """
    marketplace = display_name(marketplace_name, "Marketplace")
    subject = truncate_graphemes(header_safe(notice.subject), MAX_SUBJECT_GRAPHEMES)
    auto = notice.auto_submitted if notice.auto_submitted in _AUTO_SUBMITTED else _AUTO_SUBMITTED[0]
    headers = [
        address_header("From", marketplace, from_address, "notice sender"),
        address_header("To", "", notice.to_address, "notice recipient"),
        unstructured_header("Subject", subject or fallback_subject(marketplace)),
        date_header(now),
        token_header("Message-ID", notice_message_id(notice.notice_id, message_id_domain)),
    ]
    parent = outside_message_id(notice.in_reply_to)
    if parent is not None:
        headers.append(token_header("In-Reply-To", parent))
        headers.append(token_header("References", parent))
    headers += [
        f"Auto-Submitted: {auto}\r\n",
        "X-Auto-Response-Suppress: All\r\n",
        "Precedence: auto_reply\r\n" if auto == "auto-replied" else "Precedence: bulk\r\n",
        token_header("X-Bridge-Notice", _KIND.sub("_", notice.kind)[:64] or "notice"),
    ]
    return "".join(headers).encode("ascii") + mime_body(
        strip_bidi_controls(notice.text),
        strip_bidi_controls(notice.html),
        message_boundary("notice", notice.notice_id),
    )
