"""Compose the MIME message of one digest email as bytes (pure; signing and sending
live elsewhere).

Nothing here hands a value to the ``email`` package to parse: header lines are written
by :mod:`mailer.header_encoding`, which cleans every piece of outside text (buyer and
marketplace names) to one line of display text and writes anything that is not plain
ASCII, or that looks like an encoded word, as encoded words of its own. So no text from
a buyer can add, end or fold a header, whatever decoding a reader applies.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from shared.events import Digest, conversation_key
from shared.text_safety import header_safe
from shared.text_safety import truncate_graphemes as _truncate

from .header_encoding import (
    HeaderValueError,
    InvalidAddressError,
    address_header,
    check_addr_spec,
    token_header,
    unstructured_header,
)
from .quoted_printable import quoted_printable
from .render import DigestLinks, render_digest, safe_http_url
from .threading_headers import digest_message_id, in_reply_to, references, thread_index

__all__ = [
    "ComposeContext",
    "InvalidAddressError",
    "MAX_NAME_GRAPHEMES",
    "compose_digest_bytes",
    "date_header",
    "digest_subject",
    "display_name",
    "message_boundary",
    "mime_body",
    "truncate_graphemes",
]

# Long enough for any real name, short enough that the subject stays readable on a phone.
MAX_NAME_GRAPHEMES = 64
FALLBACK_BUYER_NAME = "Buyer"

_HEADER_ID = re.compile(r"[^A-Za-z0-9._+=-]")


@dataclass(frozen=True, slots=True)
class ComposeContext:
    """Everything about one digest email that does not come from the digest itself."""

    marketplace_name: str
    from_address: str  # the conversation's virtual reply address; also Reply-To
    to_address: str
    message_id_domain: str
    links: DigestLinks
    list_unsubscribe_url: str  # the settings page (not RFC 8058 one-click)
    now: datetime


def truncate_graphemes(value: str, limit: int = MAX_NAME_GRAPHEMES) -> str:
    """:func:`shared.text_safety.truncate_graphemes`, a name's length by default."""
    return _truncate(value, limit)


def display_name(value: str, fallback: str) -> str:
    """A name as shown in a header: one clean line, at most 64 graphemes, never blank."""
    return truncate_graphemes(header_safe(value)) or fallback


def digest_subject(marketplace_name: str, buyer_name: str) -> str:
    """``A new message from {marketplace} customer {buyer}``, with both names made header-safe."""
    return _subject(display_name(marketplace_name, "Marketplace"), buyer_name)


def _subject(marketplace: str, buyer_name: str) -> str:
    """:func:`digest_subject` given the marketplace's display name (composing has it)."""
    buyer = display_name(buyer_name, FALLBACK_BUYER_NAME)
    return f"A new message from {marketplace} customer {buyer}"


def date_header(moment: datetime) -> str:
    """The ``Date`` header line; a naive ``moment`` is taken as UTC (formatted as is, it
    would say "-0000", an unknown zone)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return token_header("Date", format_datetime(aware))


def message_boundary(kind: str, item_id: str) -> str:
    """A boundary derived from the item (not random), so a message is a pure function of
    its inputs: re-sends are byte-identical and goldens stable. It starts with "=_",
    which never occurs in quoted-printable, so it cannot collide with a body."""
    return f"=_{kind}_" + hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:32]


def _text_part(subtype: str, body: str) -> bytes:
    return (
        b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + quoted_printable(body)
    )


def mime_body(text: str, html: str, boundary: str) -> bytes:
    """``MIME-Version``, ``Content-Type`` and the body: text and HTML as
    ``multipart/alternative``, or the text alone when there is no HTML. Bodies are
    quoted-printable UTF-8, so the whole message is 7-bit with short lines."""
    if not html:
        return b"MIME-Version: 1.0\r\n" + _text_part("plain", text)
    delimiter = f"\r\n--{boundary}".encode("ascii")
    return b"".join(
        (
            b"MIME-Version: 1.0\r\n",
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\n".encode("ascii"),
            _text_part("plain", text),
            delimiter,
            b"\r\n",
            _text_part("html", html),
            delimiter,
            b"--\r\n",
        )
    )


def compose_digest_bytes(digest: Digest, ctx: ComposeContext) -> bytes:
    """The digest email as it goes on the wire: headers for threading and loop safety,
    text and HTML bodies. Raises :class:`InvalidAddressError` for a bad address."""
    marketplace = display_name(ctx.marketplace_name, "Marketplace")
    domain = ctx.message_id_domain
    sender = check_addr_spec(ctx.from_address, "reply")
    subject = _subject(marketplace, digest.buyer_name)
    headers = [
        unstructured_header("Subject", subject),
        address_header("From", marketplace, sender, "reply"),
        address_header("Reply-To", marketplace, sender, "reply"),
        address_header("To", "", ctx.to_address, "destination"),
        date_header(ctx.now),
        token_header("Message-ID", digest_message_id(digest.digest_id, domain)),
    ]
    parent = in_reply_to(digest.previous_digest_ids, domain)
    if parent is not None:
        headers.append(token_header("In-Reply-To", parent))
        headers.append(
            token_header("References", " ".join(references(digest.previous_digest_ids, domain)))
        )
    headers += [
        unstructured_header("Thread-Topic", subject),
        token_header(
            "Thread-Index",
            thread_index(
                conversation_key(digest.shop_id, digest.conversation_id), digest.previous_digest_ids
            ),
        ),
        # Mark our own mail so auto-responders stay quiet and helpdesks do not answer it.
        "Auto-Submitted: auto-generated\r\n",
        "X-Auto-Response-Suppress: All\r\n",
    ]
    unsubscribe = safe_http_url(ctx.list_unsubscribe_url)
    if unsubscribe:
        # A link to the settings page; deliberately no List-Unsubscribe-Post (RFC 8058):
        # turning alerts off needs a signed-in shop manager, not an anonymous POST. A URL
        # that is not plain ASCII (or holds "=?") is left out rather than encoded.
        with contextlib.suppress(HeaderValueError):
            headers.append(token_header("List-Unsubscribe", f"<{unsubscribe}>"))
    headers.append(token_header("X-Bridge-Digest-Id", _HEADER_ID.sub("_", digest.digest_id)[:200]))
    rendered = render_digest(digest, ctx.links)
    return "".join(headers).encode("ascii") + mime_body(
        rendered.text, rendered.html, message_boundary("digest", digest.digest_id)
    )
