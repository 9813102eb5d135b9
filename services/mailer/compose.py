"""Compose the MIME message of one digest email (pure; signing and sending live elsewhere).

Every user-supplied value that reaches a header (buyer name, marketplace name) goes
through :func:`header_safe` first: control characters, CR/LF and Unicode line/paragraph
separators are removed, so nothing a buyer types can add or end a header; bidi overrides
are removed so a name cannot visually reorder the subject. Non-ASCII is then encoded
(RFC 2047) by the ``email`` package's policy, never by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import _header_value_parser as header_parser
from email import quoprimime
from email.errors import HeaderParseError
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

import regex

from shared.events import Digest, conversation_key

from .render import DigestLinks, render_digest, safe_http_url
from .threading_headers import digest_message_id, in_reply_to, references, thread_index

__all__ = [
    "ComposeContext",
    "InvalidAddressError",
    "compose_digest_bytes",
    "compose_digest_email",
    "digest_subject",
    "header_safe",
    "truncate_graphemes",
    "MAX_NAME_GRAPHEMES",
]

# Long enough for any real name, short enough that the subject stays readable on a phone.
MAX_NAME_GRAPHEMES = 64
ELLIPSIS = "\u2026"
FALLBACK_BUYER_NAME = "Buyer"

# Cc: controls (incl. CR, LF, TAB); Zl/Zp: U+2028/U+2029, which some parsers treat as line
# breaks; bidi embedding/override/isolate controls, which can disguise a name. ZWJ and
# variation selectors (also "format" characters) are kept: emoji sequences need them.
_UNSAFE_IN_HEADER = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
_GRAPHEME = regex.compile(r"\X")
_HEADER_ID = re.compile(r"[^A-Za-z0-9._+=-]")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM_ADDRESS = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\Z")


class _CachedHeaderRegistry(HeaderRegistry):
    """The stdlib registry builds a new header class with ``type()`` on every lookup
    (~45 per digest, the largest single cost of composing); the classes are identical
    per name, so build each once. Output bytes do not change."""

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        cls = self._classes.get(key)
        if cls is None:
            cls = self._classes[key] = super().__getitem__(name)
        return cls


_POLICY = SMTP.clone(header_factory=_CachedHeaderRegistry())


class InvalidAddressError(ValueError):
    """A reply or destination address is not a single plain ``local@domain``."""


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


def header_safe(value: str) -> str:
    """One line of text that cannot inject or fold a header: controls out, spaces collapsed."""
    return _SPACES.sub(" ", _UNSAFE_IN_HEADER.sub(" ", value)).strip()


def truncate_graphemes(value: str, limit: int = MAX_NAME_GRAPHEMES) -> str:
    """Cut ``value`` to at most ``limit`` grapheme clusters, ending in an ellipsis if cut.

    Grapheme clusters, not code points: a family emoji or a flag is never split in half.
    """
    graphemes = _GRAPHEME.findall(value)
    if len(graphemes) <= limit:
        return value
    return "".join(graphemes[: limit - 1]).rstrip() + ELLIPSIS


def _display_name(value: str, fallback: str) -> str:
    return truncate_graphemes(header_safe(value)) or fallback


def digest_subject(marketplace_name: str, buyer_name: str) -> str:
    """``A new message from {marketplace} customer {buyer}``, with both names made header-safe."""
    return _subject(_display_name(marketplace_name, "Marketplace"), buyer_name)


def _subject(marketplace: str, buyer_name: str) -> str:
    """:func:`digest_subject` given the marketplace's display name (composing has it)."""
    buyer = _display_name(buyer_name, FALLBACK_BUYER_NAME)
    return f"A new message from {marketplace} customer {buyer}"


def _aware(moment: datetime) -> datetime:
    # A naive datetime would be formatted as "-0000" (unknown zone); the services use UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _address(display_name: str, addr_spec: str, role: str) -> Address:
    """A validated address; a broken one fails loudly instead of producing a bad header.

    Addresses come from settings and reply tokens, not from buyers, so one that needs
    cleaning is a bug or an attack: it is refused, never repaired.
    """
    if not addr_spec or _UNSAFE_IN_HEADER.search(addr_spec) or addr_spec != addr_spec.strip():
        raise InvalidAddressError(
            f"{role} address {addr_spec!r} is empty or has control characters"
        )
    try:
        if _DOT_ATOM_ADDRESS.match(addr_spec):
            # Plainly valid (the usual case): skip re-parsing it with the header parser
            # (~30 us); the Address and its text are the same as the parsed one's.
            local, _, domain = addr_spec.partition("@")
            return Address(display_name=display_name, username=local, domain=domain)
        return Address(display_name=display_name, addr_spec=addr_spec)
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise InvalidAddressError(
            f"{role} address {addr_spec!r} is not local@domain: {exc}"
        ) from exc


def compose_digest_email(digest: Digest, ctx: ComposeContext) -> EmailMessage:
    """Build the digest email: headers for threading and loop safety, text + HTML bodies."""
    marketplace = _display_name(ctx.marketplace_name, "Marketplace")
    domain = ctx.message_id_domain
    rendered = render_digest(digest, ctx.links)

    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = digest_subject(ctx.marketplace_name, digest.buyer_name)
    msg["From"] = _address(marketplace, ctx.from_address, "reply")
    msg["Reply-To"] = _address(marketplace, ctx.from_address, "reply")
    msg["To"] = _address("", ctx.to_address, "destination")
    msg["Date"] = format_datetime(_aware(ctx.now))
    msg["Message-ID"] = digest_message_id(digest.digest_id, domain)
    parent = in_reply_to(digest.previous_digest_ids, domain)
    if parent is not None:
        msg["In-Reply-To"] = parent
        msg["References"] = " ".join(references(digest.previous_digest_ids, domain))
    msg["Thread-Topic"] = msg["Subject"]
    msg["Thread-Index"] = thread_index(
        conversation_key(digest.shop_id, digest.conversation_id), digest.previous_digest_ids
    )
    # Mark our own mail so auto-responders stay quiet and helpdesks do not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    unsubscribe = safe_http_url(ctx.list_unsubscribe_url)
    if unsubscribe:
        # A link to the settings page; deliberately no List-Unsubscribe-Post (RFC 8058):
        # turning alerts off needs a signed-in shop manager, not an anonymous POST.
        msg["List-Unsubscribe"] = f"<{unsubscribe}>"
    msg["X-Bridge-Digest-Id"] = _HEADER_ID.sub("_", digest.digest_id)[:200]

    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    for part in msg.iter_parts():
        # add_alternative copies MIME-Version into the subpart; it belongs on the top only.
        del part["MIME-Version"]
    # A boundary derived from the digest (not random) makes the whole message a pure
    # function of its inputs: re-sends are byte-identical and goldens are stable. "=_"
    # never occurs in quoted-printable output, so the boundary cannot collide with a body.
    msg.set_boundary("=_digest_" + hashlib.sha256(digest.digest_id.encode()).hexdigest()[:32])
    return msg


# ---------------------------------------------------------------------------------------
# The same message as bytes, fast. Composing through EmailMessage parses every header we
# set and re-folds it on output: ~2 ms per digest, the largest cost in the mailer. Here a
# header that is short plain ASCII (and so comes out of the email package unchanged) is
# written directly; anything else goes through the very policy calls the generator
# makes. tests/unit/test_compose.py checks the two paths give identical bytes.

_MAX_LINE = 78
_PLAIN_DISPLAY_NAME = re.compile(r"^[A-Za-z0-9 ]*$")
_PLAIN_VALUE = re.compile(r"^[\x21-\x7e]+(?: [\x21-\x7e]+)*$")


def _fold(name: str, value: str | Address) -> str:
    if isinstance(value, Address):
        plain = bool(_PLAIN_DISPLAY_NAME.match(value.display_name)) and not (
            value.display_name.startswith(" ") or value.display_name.endswith(" ")
            or "  " in value.display_name)
        text = str(value)
    else:
        plain, text = True, value
    if (plain and "=?" not in text and len(name) + 2 + len(text) <= _MAX_LINE
            and _PLAIN_VALUE.match(text)):
        return f"{name}: {text}\r\n"
    if (isinstance(value, Address) and plain and value.display_name
            and len(value.addr_spec) + 3 > _MAX_LINE and _PLAIN_VALUE.match(text)):
        # A reply address with its token is longer than a line: "<addr>" cannot fit on a
        # continuation line either, and the policy then leaves the header on one line.
        return f"{name}: {text}\r\n"
    folded: str = _POLICY.fold(name, _POLICY.header_factory(name, value))
    return folded


def _fold_subject_and_topic(subject: str) -> tuple[str, str]:
    """The ``Subject`` and ``Thread-Topic`` header lines (the same value)."""
    if "=?" in subject or _SURROGATE.search(subject):
        # compose_digest_email copies the Subject header's decoded value; rare, so the
        # policy does both.
        return _fold("Subject", subject), _fold("Thread-Topic", str(
            _POLICY.header_factory("Subject", subject)))
    return _fold_unstructured("Subject", subject), _fold_unstructured("Thread-Topic", subject)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _fold_unstructured(name: str, value: str) -> str:
    """``_POLICY.fold(name, _POLICY.header_factory(name, value))`` for a header-safe value
    (single spaces, no controls) without "=?": the email package's own folding loop
    (``_refold_parse_tree``) for a label, one space and the value's words and spaces,
    with its RFC 2047 step (``_fold_as_ew``) called as is. Parsing the value into
    tokens first was most of the cost (~50 us per header for a non-ASCII name)."""
    if not value:
        return f"{name}:\r\n"
    lines = [f"{name}: "]
    if value.isascii():
        if len(value) <= _MAX_LINE - len(lines[-1]):
            return f"{name}: {value}\r\n"
        if len(value) + 1 <= _MAX_LINE:  # fits on a line of its own
            return f"{name}:\r\n {value}\r\n"
    last_ew: int | None = None
    for token in _WORDS_AND_SPACES.findall(value):
        if not token.isascii():
            last_ew = _fold_as_ew(token, lines, _MAX_LINE, last_ew, True, "utf-8")
            continue
        if len(token) <= _MAX_LINE - len(lines[-1]):
            lines[-1] += token
            continue
        if len(token) + 1 <= _MAX_LINE:
            newline = _steal_trailing_wsp(lines)
            if newline or token == " ":
                lines.append(newline + token)
                last_ew = None
                continue
        # A word longer than a line: the policy wraps it as encoded words.
        last_ew = _fold_as_ew(token, lines, _MAX_LINE, last_ew, True, "us-ascii")
    return "\r\n".join(lines) + "\r\n"


_WORDS_AND_SPACES = re.compile(r" |[^ ]+")
_fold_as_ew = header_parser._fold_as_ew


def _steal_trailing_wsp(lines: list[str]) -> str:
    """``_header_value_parser._steal_trailing_WSP_if_exists`` (the value has no tabs)."""
    if lines and lines[-1] and lines[-1][-1] == " ":
        lines[-1] = lines[-1][:-1]
        return " "
    return ""


# quoprimime.body_encode escapes with str.translate over a 256-entry list (~0.1 ms for a
# digest's HTML, half of what composing costs); a body has only a handful of distinct
# bytes that need escaping, so escaping each with bytes.replace gives the same text
# ~10x faster. The line wrapping below is body_encode's, unchanged, on bytes: the body
# goes from UTF-8 to the CRLF-ended message bytes without a round trip through str.
_QP_SAFE = bytes(c for c in range(256)
                 if quoprimime._QUOPRI_BODY_ENCODE_MAP[c] == chr(c))
_QP_ESCAPE = [f"={c:02X}".encode("ascii") for c in range(256)]
_EQUALS = ord("=")
_WSP = b" \t"


def _qp_escape(body: bytes) -> bytes:
    unsafe = set(body.translate(None, _QP_SAFE))
    if _EQUALS in unsafe:  # "=" first: the others' escapes contain "="
        body = body.replace(b"=", b"=3D")
        unsafe.discard(_EQUALS)
    for byte in unsafe:
        body = body.replace(bytes((byte,)), _QP_ESCAPE[byte])
    return body


def _qp_body_encode(body: bytes, maxlinelen: int = _MAX_LINE) -> bytes:
    """``quoprimime.body_encode(body.decode("latin-1"), maxlinelen)`` as ASCII bytes
    with CRLF line ends (body_encode's "\\n" eol)."""
    if not body:
        return b""
    text = _qp_escape(body)
    maxlinelen1 = maxlinelen - 1
    out: list[bytes] = []
    append = out.append
    for line in text.splitlines():
        start = 0
        laststart = len(line) - 1 - maxlinelen
        while start <= laststart:
            stop = start + maxlinelen1
            if line[stop - 2] == _EQUALS:  # never split an escape
                append(line[start:stop - 1])
                start = stop - 2
            elif line[stop - 1] == _EQUALS:
                append(line[start:stop])
                start = stop - 1
            else:
                append(line[start:stop] + b"=")
                start = stop
        if line and line[-1] in _WSP:  # trailing whitespace must be protected
            room = start - laststart
            if room >= 3:
                q = _QP_ESCAPE[line[-1]]
            elif room == 2:
                q = line[-1:] + b"=\r\n"
            else:
                q = b"=\r\n" + _QP_ESCAPE[line[-1]]
            append(line[start:-1] + q)
        else:
            append(line[start:])
    if text[-1] in b"\r\n":
        append(b"")
    return b"\r\n".join(out)


def _qp_part(subtype: str, body: str) -> bytes:
    # What contentmanager.set_text_content does for cte="quoted-printable". It splits
    # the body at any line end and joins the lines with "\n" plus a final "\n";
    # _qp_body_encode splits at any line end itself, so all that split and join changes
    # here is a missing final line end.
    data = body.encode("utf-8")
    if not data.endswith((b"\n", b"\r")):
        data += b"\n"
    return (b'Content-Type: text/' + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
            + _qp_body_encode(data, _MAX_LINE))


def compose_digest_bytes(digest: Digest, ctx: ComposeContext) -> bytes:
    """``bytes(compose_digest_email(digest, ctx))``, about five times faster."""
    marketplace = _display_name(ctx.marketplace_name, "Marketplace")
    domain = ctx.message_id_domain
    rendered = render_digest(digest, ctx.links)
    subject = _subject(marketplace, digest.buyer_name)
    sender = _address(marketplace, ctx.from_address, "reply")
    subject_line, topic_line = _fold_subject_and_topic(subject)
    # In compose_digest_email's order; Subject and Thread-Topic come folded already.
    headers: list[tuple[str, str | Address] | str] = [
        subject_line,
        ("From", sender),
        ("Reply-To", sender),
        ("To", _address("", ctx.to_address, "destination")),
        ("Date", format_datetime(_aware(ctx.now))),
        ("Message-ID", digest_message_id(digest.digest_id, domain)),
    ]
    parent = in_reply_to(digest.previous_digest_ids, domain)
    if parent is not None:
        headers.append(("In-Reply-To", parent))
        headers.append(("References", " ".join(references(digest.previous_digest_ids, domain))))
    headers += [
        topic_line,
        ("Thread-Index", thread_index(conversation_key(digest.shop_id, digest.conversation_id),
                                      digest.previous_digest_ids)),
        ("Auto-Submitted", "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
    ]
    unsubscribe = safe_http_url(ctx.list_unsubscribe_url)
    if unsubscribe:
        headers.append(("List-Unsubscribe", f"<{unsubscribe}>"))
    headers.append(("X-Bridge-Digest-Id", _HEADER_ID.sub("_", digest.digest_id)[:200]))
    boundary = "=_digest_" + hashlib.sha256(digest.digest_id.encode()).hexdigest()[:32]
    head = "".join(h if isinstance(h, str) else _fold(*h) for h in headers) + (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\n")
    delimiter = f"\r\n--{boundary}".encode("ascii")
    return b"".join((head.encode("ascii"), _qp_part("plain", rendered.text),
                     delimiter, b"\r\n", _qp_part("html", rendered.html),
                     delimiter, b"--\r\n"))
