"""Render a :class:`~shared.events.Digest` as the HTML and plain-text bodies of one email.

Pure: no I/O, no clock. The same digest and links always render to the same bytes, which
is what makes golden-file tests and idempotent re-sends possible.

Safety rules that hold for every message kind:

* every piece of user-supplied text is HTML-escaped (buyer name, shop name, message text,
  product titles, prices, order ids, statuses, platform type names);
* only ``http``/``https`` URLs are ever written into ``href``/``src``; anything else
  (``javascript:``, ``data:``, relative, malformed) is dropped and the message falls back
  to a "open the chat to view" line, so a bad URL never loses the message itself;
* a picture is shown as ``<img>`` only when its URL is on one of the chat platform's own
  image hosts (:attr:`DigestLinks.image_hosts`, ``BRIDGE_DIGEST_IMAGE_HOSTS``); any other
  image URL could be a tracking pixel for whoever controls it, so it becomes a "View
  picture in chat" link to the conversation instead (never a link to that URL); a video or
  product link off those hosts leads to the conversation too, never to a host the buyer or
  an adapter chose;
* buyer, shop and marketplace names are one clean line (:func:`shared.text_safety.header_safe`:
  no controls, no bidi overrides that could disguise them);
* an unknown content kind renders as a fallback line, never an exception;
* a message that cannot be rendered at all (a time no calendar holds, a value from an older
  or other producer that no branch expects) is shown as a short placeholder, logged with
  its id and counted, and the rest of the digest is sent (:func:`_show`, the one place a
  message's own data is rendered).

The HTML is a ~600px table layout that goes fluid below 600px (``max-width``), with
``color-scheme`` metadata and ``prefers-color-scheme`` rules for dark mode. CSS is inlined
with ``css-inline``; the media-query rules are kept in a ``<style>`` block and marked
``!important`` so they still win over the inlined light-mode styles.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeAlias
from urllib.parse import urlsplit

import css_inline

from mailer.mailer_metrics import MESSAGES_UNSHOWN
from shared.events import ChatContent, ContentKind, Digest, DigestMessage
from shared.region_time import UTC_ZONE, digest_time_zone, format_local_time
from shared.text_safety import header_safe, keep_tabs_and_lines

__all__ = [
    "DigestLinks",
    "RenderedDigest",
    "render_digest",
    "render_digest_reference",
    "safe_http_url",
    "describe_content",
    "parse_image_hosts",
]

log = logging.getLogger("mailer.render")

# Shown where the buyer's name is missing; a subject or greeting with a blank name reads broken.
FALLBACK_BUYER_NAME = "Buyer"
# Shown in place of a message that cannot be rendered (see _show).
UNSHOWN_MESSAGE = "[a message that could not be shown]"
PREHEADER_MAX_CHARS = 110

_LINE_BREAKS = re.compile(r"\r\n|\r|\n|\u2028|\u2029")
# Whitespace and controls are never legitimate inside a URL we emit; their presence
# usually means an injection attempt (e.g. breaking out of an attribute in a lax client).
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\x9f\"'<>\\`]")
# The usual link: http(s)://, an ASCII host name (and port), then a path, query, fragment
# or nothing. urlsplit gives such a URL an http(s) scheme and a non-empty host name, so
# safe_http_url may accept it without parsing (tests/unit/test_render.py checks both
# agree). The scheme is spelt out: with IGNORECASE, "ſ" would match "s" and "K" "k".
_PLAIN_HTTP_URL = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[A-Za-z0-9.-]+(?::[0-9]*)?(?:[/?#]|\Z)")


@dataclass(frozen=True, slots=True)
class DigestLinks:
    """Links and names the digest needs that are not part of the chat data."""

    chat_url: str  # deep link to this conversation in the chat tool ("Reply in chat")
    settings_url: str  # the shop's notification settings (also the List-Unsubscribe target)
    marketplace_name: str
    # Hosts whose images are shown inline (see parse_image_hosts); none by default.
    image_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """The two alternative bodies of a digest email."""

    html: str
    text: str


def safe_http_url(url: str) -> str:
    """Return ``url`` if it is an absolute http(s) URL safe to put in an attribute, else ``""``."""
    candidate = url.strip()
    if not candidate or _URL_FORBIDDEN.search(candidate):
        return ""
    if _PLAIN_HTTP_URL.match(candidate):
        return candidate  # what the check below accepts, without parsing
    try:
        parts = urlsplit(candidate)
    except ValueError:  # e.g. a malformed IPv6 netloc
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return candidate


def parse_image_hosts(setting: str) -> frozenset[str]:
    """The image host allow-list from its setting: comma-separated host names, matched
    exactly (case-insensitively); an entry starting with "." matches any subdomain of it
    (``.ibyteimg.com``: the platform's CDN hosts are many)."""
    return frozenset(h.strip().lower() for h in setting.split(",") if h.strip())


_LDH_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")


def _image_host_allowed(url: str, hosts: frozenset[str]) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    if not host or not _LDH_HOST.fullmatch(host):  # "%2f", userinfo tricks: not a plain host
        return False
    return host in hosts or any(h.startswith(".") and host.endswith(h) for h in hosts)


def clean_text(value: str) -> str:
    """Drop control characters (keeping tabs and line breaks) and surrounding whitespace."""
    return keep_tabs_and_lines(value).strip()


def _kind_of(content: ChatContent) -> ContentKind | None:
    try:
        return ContentKind(content.kind)
    except ValueError:
        return None


def _unsupported_label(content: ChatContent) -> str:
    name = clean_text(content.platform_type) or clean_text(content.kind) or "unknown"
    return f"[Unsupported message type: {name} \u2014 open the chat to view]"


def _product_title(content: ChatContent) -> str:
    """The product's name, or its id when the name is not known (lookup failed or slow)."""
    product_id = clean_text(content.product_id) or (
        clean_text(content.text) if not content.title.strip() else ""
    )
    return clean_text(content.title) or (f"Product {product_id}" if product_id else "Product")


def _order_label(content: ChatContent) -> str:
    return f"Order {clean_text(content.order_id) or 'unknown'}"


def _card_details(content: ChatContent) -> list[str]:
    """The lines under a card's title, for both bodies: what the payload carried and what
    the order lookup added."""
    kind = _kind_of(content)
    lines: list[str] = []
    if kind is ContentKind.RETURN_REFUND_CARD and content.sku_id.strip():
        lines.append(f"Item (SKU): {clean_text(content.sku_id)}")
    if kind is ContentKind.LOGISTICS_CARD and content.package_id.strip():
        lines.append(f"Package: {clean_text(content.package_id)}")
    if content.status.strip():
        lines.append(f"Status: {clean_text(content.status)}")
    names = [clean_text(name) for name in content.item_names if name.strip()]
    if names:
        lines.append(("Items: " if len(names) > 1 else "Item: ") + ", ".join(names))
    return lines


# The heading each card kind carries, so a refund request never reads like an order question.
CARD_HEADINGS: dict[ContentKind, str] = {
    ContentKind.ORDER_CARD: "Order",
    ContentKind.RETURN_REFUND_CARD: "Return/refund request",
    ContentKind.LOGISTICS_CARD: "Logistics",
    ContentKind.COUPON_CARD: "Coupon",
}


def _emoticon_text(content: ChatContent) -> str:
    """An emoticon as text: its emoji, or its name when no emoji is known."""
    return clean_text(content.text) or clean_text(content.title) or "Emoticon"


def describe_content(content: ChatContent) -> str:
    """A one-line plain-text description of a message (text part, previews, logs)."""
    kind = _kind_of(content)
    text = clean_text(content.text)
    if kind in (ContentKind.TEXT, ContentKind.EMOJI):
        return text
    if kind is ContentKind.EMOTICON:
        return _emoticon_text(content)
    if kind is ContentKind.IMAGE:
        return "[Picture]"
    if kind is ContentKind.STICKER:
        return f"[Sticker: {text}]" if text else "[Sticker]"
    if kind is ContentKind.VIDEO:
        return "[Video]"
    if kind is ContentKind.PRODUCT_CARD:
        price = clean_text(content.price)
        return f"[Product: {_product_title(content)}" + (f" \u2014 {price}]" if price else "]")
    if kind is ContentKind.ORDER_CARD:
        status = clean_text(content.status)
        return f"[{_order_label(content)}" + (f" \u2014 {status}]" if status else "]")
    if kind is ContentKind.RETURN_REFUND_CARD:
        return f"[Return/refund request: {_order_label(content)}]"
    if kind is ContentKind.LOGISTICS_CARD:
        return f"[Logistics: {_order_label(content)}]"
    if kind is ContentKind.COUPON_CARD:
        title = clean_text(content.title)
        coupon = clean_text(content.coupon_id)
        if title:
            return f"[Coupon: {title}" + (f" ({coupon})]" if coupon else "]")
        return f"[Coupon {coupon}]" if coupon else "[Coupon]"
    if kind is ContentKind.NOTICE:
        return f"[Notice: {text}]" if text else "[Notice]"
    return _unsupported_label(content)


def format_message_time(sent_at_ms: int, time_zone: str = UTC_ZONE) -> str:
    """Message time in the digest's zone, the zone named (shared/region_time.py)."""
    return format_local_time(sent_at_ms, time_zone)


def _ordered(messages: tuple[DigestMessage, ...]) -> list[DigestMessage]:
    # The platform's own time orders a conversation, then its sequence number, then the id
    # (see ChatEvent). getattr: ``seq`` is newer than some producers of DigestMessage.
    return sorted(messages, key=lambda m: (m.sent_at_ms, getattr(m, "seq", 0), m.message_id))


def buyer_display_name(digest: Digest) -> str:
    """The buyer's name as shown to the seller: one clean line, never blank."""
    return header_safe(digest.buyer_name) or FALLBACK_BUYER_NAME


@dataclass(frozen=True, slots=True)
class _Images:
    """Which picture URLs may be shown inline, and where the others send the reader."""

    hosts: frozenset[str]
    chat_url: str  # "" when the chat link is not safe

    def src(self, url: str) -> str:
        """``url`` when it is safe and on an allowed host, else ``""``."""
        safe = safe_http_url(url)
        return safe if safe and _image_host_allowed(safe, self.hosts) else ""

    def link(self, url: str) -> str:
        """Where a video or product link may send the reader: ``url`` on the platform's own
        hosts, else the conversation in the chat (never a host a buyer or adapter chose)."""
        return self.src(url) or (self.chat_url if safe_http_url(url) else "")


@dataclass(frozen=True, slots=True)
class _Shown:
    """One message as both bodies show it."""

    row: _Markup  # its HTML table row
    lines: list[str]  # its text-part lines, after the "<buyer> (<time>):" line
    when: str  # format_message_time, "" when unknown
    preview: str  # describe_content, for the inbox preview


@dataclass(frozen=True, slots=True)
class _Facts:
    """What both bodies show, cleaned and checked once per digest (not once per body)."""

    buyer: str
    marketplace: str
    shop: str
    chat_url: str
    settings_url: str
    shown: list[_Shown]  # in conversation order


def _facts(digest: Digest, links: DigestLinks) -> _Facts:
    buyer = buyer_display_name(digest)
    chat_url = safe_http_url(links.chat_url)
    images = _Images(links.image_hosts, chat_url)
    # getattr: ``time_zone`` is newer than some producers of Digest.
    zone = digest_time_zone(digest.region, getattr(digest, "time_zone", ""))
    return _Facts(
        buyer=buyer,
        marketplace=header_safe(links.marketplace_name),
        shop=header_safe(digest.shop_name),
        chat_url=chat_url,
        settings_url=safe_http_url(links.settings_url),
        shown=[
            _show(message, buyer, digest.digest_id, images, zone)
            for message in _ordered(digest.messages)
        ],
    )


def _show(
    message: DigestMessage, buyer: str, digest_id: str, images: _Images, zone: str = UTC_ZONE
) -> _Shown:
    """A message rendered for both bodies, or the placeholder when it cannot be.

    Fail-soft here, in the one place a message's own data is rendered: a message that
    passed an older producer's checks (or none) must cost only itself, never the digest
    of the buyer's other messages (a dead letter would lose them all).
    """
    try:
        when = format_message_time(message.sent_at_ms, zone)
        return _Shown(
            _html_message(message, buyer, when, images),
            _text_content(message.content, images),
            when,
            " ".join(describe_content(message.content).split()),
        )
    except Exception as exc:  # noqa: BLE001 - any failure of one message costs only it
        MESSAGES_UNSHOWN.inc()
        log.warning(
            "a message could not be shown; its digest carries a placeholder",
            extra={
                "message_id": message.message_id,
                "digest_id": digest_id,
                "error": f"{type(exc).__name__}: {exc}"[:300],
            },
        )
        placeholder = DigestMessage(
            message.message_id, 0, ChatContent(kind=ContentKind.NOTICE, text=UNSHOWN_MESSAGE)
        )
        return _Shown(
            _html_message(placeholder, buyer, "", images), [UNSHOWN_MESSAGE], "", UNSHOWN_MESSAGE
        )


# ---------------------------------------------------------------------------------------
# HTML


_CSS = """
body { margin: 0; padding: 0; width: 100%; background-color: #f2f3f5;
  -webkit-text-size-adjust: 100%; -ms-text-size-adjust: 100%; }
table { border-collapse: collapse; }
img { border: 0; outline: none; text-decoration: none; -ms-interpolation-mode: bicubic; }
.page { background-color: #f2f3f5; }
.container { width: 100%; max-width: 600px; }
.card { background-color: #ffffff; color: #1f2329; border-radius: 8px; }
.header { padding: 24px 24px 8px 24px; font-family: Arial, Helvetica, sans-serif; }
.eyebrow { font-size: 13px; line-height: 18px; color: #6b7075; margin: 0; }
.title { font-size: 20px; line-height: 28px; font-weight: bold; color: #1f2329; margin: 4px 0 0 0; }
.message { padding: 12px 24px; border-top: 1px solid #e5e6eb;
  font-family: Arial, Helvetica, sans-serif; }
.meta { font-size: 12px; line-height: 16px; color: #6b7075; margin: 0 0 4px 0; }
.body-text { font-size: 15px; line-height: 22px; color: #1f2329; margin: 0;
  word-break: break-word; overflow-wrap: anywhere; }
.emoji { font-size: 28px; line-height: 36px; }
.notice { font-style: italic; color: #6b7075; }
.fallback { color: #6b7075; }
.thumb { display: block; max-width: 100%; height: auto; border-radius: 6px; }
.product { border: 1px solid #e5e6eb; border-radius: 6px; }
.product-cell { padding: 8px; font-family: Arial, Helvetica, sans-serif; vertical-align: top; }
.product-name { font-size: 15px; line-height: 20px; font-weight: bold; color: #1f2329; margin: 0;
  word-break: break-word; overflow-wrap: anywhere; }
.price { font-size: 14px; line-height: 20px; color: #fe2c55; margin: 4px 0 0 0; }
.small-button { display: inline-block; padding: 8px 16px; border-radius: 4px;
  background-color: #1f2329; color: #ffffff; font-size: 14px; line-height: 18px;
  text-decoration: none; font-family: Arial, Helvetica, sans-serif; }
.cta { padding: 20px 24px 24px 24px; border-top: 1px solid #e5e6eb; }
.button { display: inline-block; padding: 12px 28px; border-radius: 6px;
  background-color: #fe2c55; color: #ffffff; font-size: 16px; line-height: 20px;
  font-weight: bold; text-decoration: none; font-family: Arial, Helvetica, sans-serif; }
.footer { padding: 16px 24px; font-family: Arial, Helvetica, sans-serif; font-size: 12px;
  line-height: 18px; color: #6b7075; }
.footer-link { color: #6b7075; text-decoration: underline; }
.preheader { display: none; max-height: 0; overflow: hidden; mso-hide: all; opacity: 0;
  font-size: 1px; line-height: 1px; }
"""

# Kept in <style> after inlining: media queries cannot be inlined, and !important lets
# them override the inlined light-mode declarations in clients that honour them
# (Apple Mail, iOS, Outlook for Mac, Thunderbird). Clients without them (Gmail) apply
# their own automatic dark palette to the light design, which it is built to survive.
_AT_RULES_CSS = """
:root { color-scheme: light dark; supported-color-schemes: light dark; }
@media (prefers-color-scheme: dark) {
  body, .page { background-color: #121317 !important; }
  .card { background-color: #1e1f24 !important; color: #e8e9ec !important; }
  .title, .body-text, .product-name { color: #e8e9ec !important; }
  .eyebrow, .meta, .notice, .fallback, .footer, .footer-link { color: #a4a7ae !important; }
  .message, .cta { border-top-color: #34363d !important; }
  .product { border-color: #34363d !important; }
  .small-button { background-color: #e8e9ec !important; color: #121317 !important; }
}
@media screen and (max-width: 600px) {
  .header, .message, .cta, .footer {
    padding-left: 16px !important; padding-right: 16px !important; }
  .button { display: block !important; text-align: center !important; }
}
"""

_INLINER = css_inline.CSSInliner(
    keep_style_tags=False,
    keep_at_rules=True,  # media queries stay in a <style>; plain rules move inline
    load_remote_stylesheets=False,  # rendering never touches the network
)


# Outlook for Windows (Word engine) ignores max-width: a fixed 600px "ghost table" seen
# only by it keeps the digest from stretching across a wide reading pane.
_MSO_OPEN = (
    '<!--[if mso]><table role="presentation" width="600" align="center" cellpadding="0" '
    'cellspacing="0"><tr><td><![endif]-->'
)
_MSO_CLOSE = "<!--[if mso]></td></tr></table><![endif]-->"


# ---------------------------------------------------------------------------------------
# Inlining once per shape, not once per digest
#
# css-inline parses and re-serialises the whole document on every call (most of what
# rendering a digest costs). The style it writes on an element depends only on the
# element's tag, class and own style attribute (the rules above have no descendant,
# sibling or attribute selectors), never on the text in it. So the markup is built with
# numbered places where user values go (a :class:`_Markup`), each distinct shape is
# inlined once (there are a few dozen, one per combination of code branches: user data
# never reaches the shape), and a digest fills the places with its values written the
# way the inliner's serialiser writes them. The whole document is assembled from the
# skeleton and one shape per message row. tests/unit/test_render.py checks the result
# is identical to inlining the whole document (:func:`render_digest_reference`).

# Private-use characters: never in our own markup, passed through by the inliner.
_PLACE = "\ue000{}\ue001"
_ROWS_PLACE = "<!--\ue000{}\ue001-->"  # a comment, so a table keeps it where it is
_PLACE_RE = re.compile("<!--\ue000(\\d+)\ue001-->|\ue000(\\d+)\ue001")
_ROWS_START, _ROWS_END = "<!--\ue002-->", "<!--\ue003-->"
# A message row is inlined alone inside a table body (after a first row, so the two
# markers land inside the body with it) in a document with the digest's stylesheet.
_ROWS_BEFORE = (
    f"<!DOCTYPE html><html><head><style>{_CSS}{_AT_RULES_CSS}</style></head>"
    f"<body><table><tr><td></td></tr>{_ROWS_START}"
)
_ROWS_AFTER = f"{_ROWS_END}</table></body></html>"

# A value is one line of text (or attribute value), lines to join with <br>, or rows.
_Value: TypeAlias = "str | tuple[str, ...] | list[_Markup]"


class _Markup:
    """Trusted HTML with numbered places for user values, and the values kept aside."""

    __slots__ = ("parts", "values")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.values: list[_Value] = []

    def add(self, trusted_html: str) -> None:
        self.parts.append(trusted_html)

    def text(self, value: str) -> None:
        """User text, or an attribute value (the place's position in the tag tells)."""
        self.parts.append(_PLACE.format(len(self.values)))
        self.values.append(value)

    def lines(self, lines: tuple[str, ...]) -> None:
        """Lines of user text separated by ``<br>`` (a bare ``<br>`` gets no styles)."""
        self.parts.append(_PLACE.format(len(self.values)))
        self.values.append(lines)

    def rows(self, rows: list[_Markup]) -> None:
        """Table rows, each its own shape."""
        self.parts.append(_ROWS_PLACE.format(len(self.values)))
        self.values.append(rows)

    def shape(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True, slots=True)
class _InlinedShape:
    literals: tuple[str, ...]  # one more than places
    places: tuple[tuple[int, bool], ...]  # (value index, inside an attribute)


@lru_cache(maxsize=256)  # shapes come from code branches only; a few dozen exist
def _inlined_shape(shape: str, is_rows: bool) -> _InlinedShape:
    if is_rows:
        out = _INLINER.inline(_ROWS_BEFORE + shape + _ROWS_AFTER)
        out = out[out.index(_ROWS_START) + len(_ROWS_START) : out.index(_ROWS_END)]
    else:
        out = _INLINER.inline(shape)
    literals: list[str] = []
    places: list[tuple[int, bool]] = []
    pos = 0
    for match in _PLACE_RE.finditer(out):
        literals.append(out[pos : match.start()])
        # Inside a tag when the last "<" comes after the last ">": the serialiser escapes
        # both in text, so outside comments (which hold no places) they only delimit tags.
        in_attribute = out.rfind("<", 0, match.start()) > out.rfind(">", 0, match.start())
        places.append((int(match.group(1) or match.group(2)), in_attribute))
        pos = match.end()
    literals.append(out[pos:])
    if sorted(index for index, _ in places) != list(range(shape.count("\ue001"))):
        raise RuntimeError("css-inline dropped or duplicated a value's place")  # never silently
    return _InlinedShape(tuple(literals), tuple(places))


def _serialized_text(value: str) -> str:
    """``value`` as the inliner writes text it parsed from ``html.escape(value)``: the
    parser turns CR LF and CR into LF and drops NUL; the serialiser escapes & < > and
    the no-break space."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in value:
        value = value.replace("\x00", "")
    return (
        value.replace("&", "&amp;")
        .replace("\u00a0", "&nbsp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _serialized_attribute(value: str) -> str:
    """As :func:`_serialized_text` for an attribute value: NUL becomes U+FFFD, and the
    serialiser escapes & " and the no-break space."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value.replace("&", "&amp;").replace("\u00a0", "&nbsp;").replace('"', "&quot;")


def _inlined(markup: _Markup, *, is_rows: bool = False) -> str:
    """What css-inline makes of ``markup`` with its values escaped into place."""
    shape = _inlined_shape(markup.shape(), is_rows)
    values = markup.values
    out = [shape.literals[0]]
    for (index, in_attribute), literal in zip(shape.places, shape.literals[1:], strict=True):
        value = values[index]
        if isinstance(value, str):
            out.append(_serialized_attribute(value) if in_attribute else _serialized_text(value))
        elif isinstance(value, tuple):
            out.append("<br>".join(_serialized_text(line) for line in value))
        else:
            out.extend(_inlined(row, is_rows=True) for row in value)
        out.append(literal)
    return "".join(out)


def _uninlined(markup: _Markup) -> str:
    """``markup`` with its values in place, before inlining (the reference path)."""
    out: list[str] = []
    for part in markup.parts:
        match = _PLACE_RE.fullmatch(part)
        if match is None:
            out.append(part)
            continue
        value = markup.values[int(match.group(1) or match.group(2))]
        if isinstance(value, str):
            out.append(html.escape(value, quote=True))
        elif isinstance(value, tuple):
            out.append("<br>".join(html.escape(line, quote=True) for line in value))
        else:
            out.extend(_uninlined(row) for row in value)
    return "".join(out)


# ---------------------------------------------------------------------------------------
# HTML


def _fallback_line(m: _Markup, label: str) -> None:
    m.add('<p class="body-text fallback">')
    m.text(label)
    m.add("</p>")


def _img(m: _Markup, src: str, alt: str, width: int) -> None:
    m.add('<img class="thumb" src="')
    m.text(src)
    m.add('" alt="')
    m.text(clean_text(alt))
    m.add(f'" width="{width}" style="width:100%;max-width:{width}px;">')


def _lines(value: str) -> tuple[str, ...]:
    """The writer's lines (kept as ``<br>``), controls removed."""
    return tuple(_LINE_BREAKS.split(clean_text(value)))


def _html_text(m: _Markup, content: ChatContent, _images: _Images | None = None) -> None:
    m.add('<p class="body-text">')
    m.lines(_lines(content.text))
    m.add("</p>")


def _html_emoji(m: _Markup, content: ChatContent, _images: _Images) -> None:
    m.add('<p class="body-text emoji">')
    m.lines(_lines(content.text))
    m.add("</p>")


def _linked(m: _Markup, url: str, draw: Callable[[], None]) -> None:
    m.add('<a href="')
    m.text(url)
    m.add('" target="_blank">')
    draw()
    m.add("</a>")


def _html_image(m: _Markup, content: ChatContent, images: _Images) -> None:
    full = images.src(content.url)
    thumb = images.src(content.thumbnail_url) or full
    if not thumb:  # not from the platform's hosts (or no usable URL): never fetched
        if images.chat_url:
            m.add('<p class="body-text">')
            _linked(m, images.chat_url, lambda: m.add("View picture in chat"))
            m.add("</p>")
        else:
            _fallback_line(m, "[Picture \u2014 open the chat to view]")
        return
    alt = clean_text(content.text) or "Picture sent by the buyer"
    target = full or images.chat_url
    if target:
        _linked(m, target, lambda: _img(m, thumb, alt, 240))
    else:
        _img(m, thumb, alt, 240)


def _html_sticker(m: _Markup, content: ChatContent, images: _Images) -> None:
    src = images.src(content.thumbnail_url) or images.src(content.url)
    label = clean_text(content.text)
    if not src:
        _fallback_line(m, f"[Sticker: {label}]" if label else "[Sticker]")
        return
    _img(m, src, label or "Sticker", 120)


def _html_video(m: _Markup, content: ChatContent, images: _Images) -> None:
    url = images.link(content.url)
    poster = images.src(content.thumbnail_url)
    if poster:
        if url:
            _linked(m, url, lambda: _img(m, poster, "Video preview", 240))
        else:
            _img(m, poster, "Video preview", 240)
    if content.text.strip():
        _html_text(m, content)
    if url:
        m.add('<p class="body-text" style="margin-top:8px;"><a class="small-button" href="')
        m.text(url)
        m.add('" target="_blank">View video</a></p>')
    else:
        _fallback_line(m, "[Video \u2014 open the chat to view]")


def _html_product(m: _Markup, content: ChatContent, images: _Images) -> None:
    title = _product_title(content)
    url = images.link(content.url)
    image_src = images.src(content.thumbnail_url)
    m.add(
        '<table role="presentation" class="product" width="100%" cellpadding="0" '
        'cellspacing="0"><tr>'
    )
    if image_src:
        m.add('<td class="product-cell" width="80" style="width:80px;">')
        _img(m, image_src, title, 80)
        m.add("</td>")
    m.add('<td class="product-cell"><p class="product-name">')
    if url:
        m.add('<a href="')
        m.text(url)
        m.add('" target="_blank" style="color:inherit;">')
        m.text(title)
        m.add("</a>")
    else:
        m.text(title)
    m.add("</p>")
    if content.price.strip():
        m.add('<p class="price">')
        m.text(clean_text(content.price))
        m.add("</p>")
    m.add("</td></tr></table>")


def _html_card(m: _Markup, heading: str, title: str, details: list[str]) -> None:
    """A boxed card: what kind it is, its title (an id), and its detail lines."""
    m.add(
        '<table role="presentation" class="product" width="100%" cellpadding="0" '
        'cellspacing="0"><tr><td class="product-cell"><p class="meta" style="margin:0;">'
    )
    m.text(heading)
    m.add('</p><p class="product-name">')
    m.text(title)
    m.add("</p>")
    for line in details:
        m.add('<p class="meta" style="margin:4px 0 0 0;">')
        m.text(line)
        m.add("</p>")
    m.add("</td></tr></table>")


def _coupon_title(content: ChatContent) -> str:
    title = clean_text(content.title)
    coupon = clean_text(content.coupon_id)
    if title:
        return title
    return f"Coupon {coupon}" if coupon else "Coupon"


def _coupon_details(content: ChatContent) -> list[str]:
    coupon = clean_text(content.coupon_id)
    return [f"Coupon id: {coupon}"] if coupon and content.title.strip() else []


def _html_order(m: _Markup, content: ChatContent, _images: _Images) -> None:
    kind = _kind_of(content) or ContentKind.ORDER_CARD
    _html_card(m, CARD_HEADINGS[kind], _order_label(content), _card_details(content))


def _html_coupon(m: _Markup, content: ChatContent, _images: _Images) -> None:
    _html_card(m, "Coupon", _coupon_title(content), _coupon_details(content))


def _html_emoticon(m: _Markup, content: ChatContent, images: _Images) -> None:
    src = images.src(content.url)
    label = _emoticon_text(content)
    if src:
        m.add('<img class="thumb" src="')
        m.text(src)
        m.add('" alt="')
        m.text(label)
        m.add('" width="48" style="width:48px;max-width:48px;">')
        return
    m.add('<p class="body-text emoji">')
    m.text(label)
    m.add("</p>")


def _html_notice(m: _Markup, content: ChatContent, _images: _Images) -> None:
    m.add('<p class="body-text notice">')
    lines = _lines(content.text)
    m.lines(lines if lines != ("",) else ("Notice",))
    m.add("</p>")


_HTML_BY_KIND: dict[ContentKind, Callable[[_Markup, ChatContent, _Images], None]] = {
    ContentKind.TEXT: _html_text,
    ContentKind.EMOJI: _html_emoji,
    ContentKind.IMAGE: _html_image,
    ContentKind.STICKER: _html_sticker,
    ContentKind.VIDEO: _html_video,
    ContentKind.PRODUCT_CARD: _html_product,
    ContentKind.ORDER_CARD: _html_order,
    ContentKind.RETURN_REFUND_CARD: _html_order,
    ContentKind.LOGISTICS_CARD: _html_order,
    ContentKind.COUPON_CARD: _html_coupon,
    ContentKind.EMOTICON: _html_emoticon,
    ContentKind.NOTICE: _html_notice,
}


def _html_content(m: _Markup, content: ChatContent, images: _Images) -> None:
    kind = _kind_of(content)
    renderer = _HTML_BY_KIND.get(kind) if kind is not None else None
    if renderer is None:  # OTHER or a kind this code has never heard of
        _fallback_line(m, _unsupported_label(content))
        if content.text.strip():
            _html_text(m, content)
        return
    renderer(m, content, images)


def _html_message(message: DigestMessage, buyer: str, when: str, images: _Images) -> _Markup:
    m = _Markup()
    m.add('<tr><td class="message"><p class="meta">')
    m.text(buyer + (f" \u00b7 {when}" if when else ""))
    m.add("</p>")
    _html_content(m, message.content, images)
    m.add("</td></tr>")
    return m


def _preheader(shown: list[_Shown]) -> str:
    """Inbox preview text: the first thing the buyer said, so the list view is useful."""
    for message in shown:
        if message.preview:
            return message.preview[:PREHEADER_MAX_CHARS]
    return ""


def _html_document(facts: _Facts) -> _Markup:
    buyer, marketplace, shop = facts.buyer, facts.marketplace, facts.shop
    chat_url, settings_url, shown = facts.chat_url, facts.settings_url, facts.shown
    count = len(shown)
    noun = "message" if count == 1 else "messages"
    m = _Markup()
    m.add("""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="supported-color-schemes" content="light dark">
<title>""")
    m.text(f"A new message from {marketplace} customer {buyer}")
    m.add(f"""</title>
<style>{_CSS}{_AT_RULES_CSS}</style>
</head>
<body class="page">
<div class="preheader">""")
    m.text(_preheader(shown))
    m.add(f"""</div>
<table role="presentation" class="page" width="100%" cellpadding="0" cellspacing="0">
<tr><td align="center" style="padding:16px 8px;">
{_MSO_OPEN}
<table role="presentation" class="container card" width="600" cellpadding="0" cellspacing="0">
<tr><td class="header">
<p class="eyebrow">""")
    m.text(f"{marketplace} \u00b7 {shop}" if shop else marketplace)
    m.add('</p>\n<p class="title">')
    m.text(f"{count} new {noun} from {buyer}")
    m.add("</p>\n</td></tr>\n")
    m.rows([message.row for message in shown])
    m.add('\n<tr><td class="cta">')
    if chat_url:
        m.add('<a class="button" href="')
        m.text(chat_url)
        m.add('" target="_blank">Reply in chat</a>')
    else:
        m.add('<p class="body-text">')
        m.text(f"Open the {marketplace} chat to reply.")
        m.add("</p>")
    m.add("""</td></tr>
</table>
<table role="presentation" class="container" width="600" cellpadding="0" cellspacing="0">
<tr><td class="footer">
<p style="margin:0 0 8px 0;"><strong>To reply, reply to this email.</strong> The buyer sees
only your new text and emoji, and pictures placed inline where your helpdesk allows them.
Attachments, files, videos and links are not shown to the buyer.</p>
<p style="margin:0;">""")
    m.text(
        f"You receive this because new {marketplace} buyer messages\n"
        f"for {shop or 'your shop'} were unread."
    )
    if settings_url:
        m.add(' <a class="footer-link" href="')
        m.text(settings_url)
        m.add('" target="_blank">Manage email notifications</a>.')
    m.add(f"""</p>
</td></tr>
</table>
{_MSO_CLOSE}
</td></tr>
</table>
</body>
</html>
""")
    return m


# ---------------------------------------------------------------------------------------
# Plain text


def _text_content(content: ChatContent, images: _Images) -> list[str]:
    """Lines for one message in the text part; URLs are printed in full (nothing to click)."""
    kind = _kind_of(content)
    text_lines = [line for line in _LINE_BREAKS.split(clean_text(content.text))]
    if kind in (ContentKind.TEXT, ContentKind.EMOJI):
        return text_lines
    if kind is ContentKind.EMOTICON:
        src = images.src(content.url)
        return [_emoticon_text(content) + (f" ({src})" if src else "")]
    if kind is ContentKind.COUPON_CARD:  # describe_content names the coupon and its id
        return [describe_content(content)]
    if kind is ContentKind.ORDER_CARD:
        return [f"[{_order_label(content)}]", *_card_details(content)]
    if kind in CARD_HEADINGS:  # return/refund, logistics: describe_content names the kind
        return [describe_content(content), *_card_details(content)]
    if kind is ContentKind.NOTICE:
        return [f"[Notice] {line}" if i == 0 else line for i, line in enumerate(text_lines)]
    lines = [describe_content(content)]
    if kind is ContentKind.IMAGE:
        url = images.src(content.url) or images.src(content.thumbnail_url)
        lines = ["[Picture] " + (url or "open the chat to view")]
    elif kind is ContentKind.VIDEO:
        url = images.link(content.url)
        lines = ["[Video] " + (f"View: {url}" if url else "open the chat to view")]
        if content.text.strip():
            lines.extend(text_lines)
    elif kind is ContentKind.PRODUCT_CARD:
        url = images.link(content.url)
        if url:
            lines.append(url)
    elif kind is ContentKind.STICKER:
        pass
    elif content.text.strip():  # unknown kind: keep whatever text came along
        lines.extend(text_lines)
    return lines


def _render_text(facts: _Facts) -> str:
    buyer, marketplace, shop = facts.buyer, facts.marketplace, facts.shop
    chat_url, settings_url, shown = facts.chat_url, facts.settings_url, facts.shown
    count = len(shown)
    noun = "message" if count == 1 else "messages"
    out: list[str] = [
        f"{marketplace}" + (f" \u00b7 {shop}" if shop else ""),
        f"{count} new {noun} from {buyer}",
        "",
    ]
    for message in shown:
        out.append(f"{buyer}" + (f" ({message.when})" if message.when else "") + ":")
        out.extend(f"  {line}" if line else "" for line in message.lines)
        out.append("")
    out.append(
        f"Reply in chat: {chat_url}" if chat_url else f"Open the {marketplace} chat to reply."
    )
    out += [
        "",
        "-- ",  # signature separator: clients and our own reply parser trim what follows
        "To reply, reply to this email. The buyer sees only your new text and emoji, and",
        "pictures placed inline where your helpdesk allows them. Attachments, files, videos",
        "and links are not shown to the buyer.",
    ]
    if settings_url:
        out.append(f"Manage email notifications: {settings_url}")
    return "\n".join(out) + "\n"


def render_digest(digest: Digest, links: DigestLinks) -> RenderedDigest:
    """Render one digest as HTML and plain text; every message kind is shown, none dropped."""
    facts = _facts(digest, links)
    return RenderedDigest(html=_inlined(_html_document(facts)), text=_render_text(facts))


def render_digest_reference(digest: Digest, links: DigestLinks) -> RenderedDigest:
    """:func:`render_digest` with css-inline run over the whole finished document: the
    reference the inlined-once path is tested against."""
    facts = _facts(digest, links)
    return RenderedDigest(
        html=_INLINER.inline(_uninlined(_html_document(facts))), text=_render_text(facts)
    )
