"""HTML reply bodies to plain text, after removing the blocks mail clients mark as quoted.

Layer one of extraction (see design.md, "Extraction in layers"): client-specific markup is the
most reliable quote marker there is, so it is handled here, on the DOM:

* history a client marks with an element is removed (Outlook ``divRplyFwdMsg``/``appendonsend``,
  Zimbra ``zwchr``, new Outlook for Mac's reference container: everything from there on);
* quoted blocks (Gmail ``blockquote.gmail_quote``, Apple Mail/Thunderbird ``blockquote
  type=cite``, Yahoo ``yahoo_quoted``, ProtonMail ``protonmail_quote``...) are rendered as
  ``> `` lines, so the text layer treats them exactly like quoted plain text: dropped, with the
  attribution line before them, while answers written *between* them are kept;
* attributions marked by class/id are dropped; signatures marked by class/id are written
  between ``signatures.SIGNATURE_START``/``SIGNATURE_END`` lines, so the text layer keeps the
  sign-off and name they may begin with and drops the rest;
* a forwarded message is history like any other: nothing in it is the seller's new text.

Links become their text; ``cid:`` images become one private-use placeholder character each, so
the caller learns which images survive the text layer's trimming, and in what order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser as HTMLParser
from selectolax.lexbor import LexborNode as Node

from .mime_limits import check_deadline
from .quote_patterns import FORWARD_MARKER_RE
from .signatures import SIGNATURE_END, SIGNATURE_MARKS_RE, SIGNATURE_START

# Placeholders for inline images: Supplementary Private Use Area-A, one code point per image.
IMAGE_PLACEHOLDER_BASE = 0xF0000
IMAGE_PLACEHOLDER_RE = re.compile("[\U000f0000-\U000ffffd]")

_DROP_TAGS = "head, style, script, title, meta, link, noscript, template, svg, object, iframe"
_HIDDEN = (
    '[hidden], [style*="display:none"], [style*="display: none"], [style*="mso-hide:all"], '
    '[style*="mso-hide: all"]'
)
# Attribution lines that clients mark up.
_DROP_MARKED = (
    ".gmail_attr, .moz-cite-prefix, .yahoo_quoted_begin, .x_gmail_attr, .gmail_signature_prefix"
)
# Signatures that clients mark up (Gmail, Outlook web/new/mobile, Apple Mail, Thunderbird,
# Yahoo, Zoho).
_SIGNATURES = (
    ".gmail_signature, [data-smartmail=gmail_signature], .moz-signature, #Signature, "
    "#signature, .signature, #ms-outlook-mobile-signature, #AppleMailSignature, "
    ".x_gmail_signature, #x_Signature, [id$=_signature], .zmail_signature_below, "
    "#zmail_signature, #x_ms-outlook-mobile-signature"
)
_SIGNATURE_MARK = "data-reply-parser-signature"
# From here to the end of the document is history (the header block of Outlook's reply/forward).
_CUT_FROM = (
    "#divRplyFwdMsg, [id$=divRplyFwdMsg], #appendonsend, [id$=appendonsend], #zwchr, "
    "#mail-editor-reference-message-container, [id^=mail-editor-reference-message-container], "
    ".OutlookMessageHeader, #OLK_SRC_BODY_SECTION, [id$=OLK_SRC_BODY_SECTION], "
    "#reply-intro, .zmail_extra_hr"
)
# Quoted blocks, rendered as "> " lines.
_QUOTE_BLOCKS = (
    "blockquote[type=cite], blockquote.gmail_quote, .yahoo_quoted, .protonmail_quote, "
    "blockquote.protonmail_quote, .zmail_extra, blockquote.zmail_extra, .gorgias_quote, "
    ".gorgias-quote, blockquote[class*=quote], div.quote, .tutanota_quote, .fastmail-quote"
)
_QUOTE_MARK = "data-reply-parser-quote"

_BLOCK_TAGS = frozenset(
    "address article aside center dd details div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr main nav ol pre section summary table tbody thead tfoot tr ul "
    "blockquote caption".split()
)
_CELL_TAGS = frozenset(("td", "th"))
_WS = re.compile(r"[ \t\n\r\f\v]+")


@dataclass(frozen=True)
class HtmlText:
    """An HTML body reduced to text, with what the reduction set aside."""

    text: str
    # Content-ids of cid: images, in document order; placeholder i in ``text`` stands for cids[i].
    cids: tuple[str, ...] = ()
    # (text, href) of hyperlinks outside quoted blocks, reduced to their text.
    links: tuple[tuple[str, str], ...] = ()
    # src of remote (non-cid) images outside quoted blocks: never delivered.
    remote_images: tuple[str, ...] = ()


def html_to_text(html: str) -> HtmlText:
    """Render *html* as plain text with client-marked quotes removed or ``> ``-prefixed."""
    html = SIGNATURE_MARKS_RE.sub("", IMAGE_PLACEHOLDER_RE.sub("", html))
    tree = HTMLParser(html)
    root = tree.body or tree.root
    if root is None:
        return HtmlText(text="")
    _decompose_all(tree, _DROP_TAGS)
    _decompose_all(tree, _HIDDEN)
    zendesk = tree.css_first(".zd-comment")
    if zendesk is not None:
        # Zendesk notifications list comments newest first: the first one is the new reply.
        root = zendesk
    _cut_marked_history(tree)
    _decompose_all(tree, _DROP_MARKED)
    for node in tree.css(_SIGNATURES):
        node.attrs[_SIGNATURE_MARK] = "1"
    for node in tree.css(_QUOTE_BLOCKS):
        node.attrs[_QUOTE_MARK] = "1"
    renderer = _Renderer()
    renderer.render(root)
    return renderer.result()


def _decompose_all(tree: HTMLParser, selector: str) -> None:
    for node in tree.css(selector):
        try:
            node.decompose()
        except Exception:  # noqa: BLE001 - already removed with an ancestor
            continue


def _cut_marked_history(tree: HTMLParser) -> None:
    """Remove everything from the first history marker (reply or forward) to the end."""
    marker = tree.css_first(_CUT_FROM)
    if marker is None:
        marker = _forward_container(tree)
    if marker is None:
        return
    start: Node | None = marker
    prev = marker.prev
    while (
        prev is not None
        and prev.tag in ("-text", "br", "hr", "-comment")
        and (prev.tag != "-text" or not (prev.text_content or "").strip())
    ):
        start = prev
        prev = prev.prev
    # Remove the marker's following siblings, then climb: whatever follows each ancestor is
    # history too.
    node = start
    while node is not None and node.tag not in ("body", "html"):
        sibling = node.next
        while sibling is not None:
            nxt = sibling.next
            sibling.decompose()
            sibling = nxt
        parent = node.parent
        if node is start:
            node.decompose()
        node = parent


def _forward_container(tree: HTMLParser) -> Node | None:
    """Gmail's forwarded-message container: a ``div.gmail_quote`` whose attribution is the
    "---------- Forwarded message ---------" line, not an "On … wrote:" (whose quote is a
    blockquote, and around which interleaved answers may sit)."""
    for node in tree.css("div.gmail_quote, div.gmail_quote_container"):
        head = node.text(separator="\n")[:300].lstrip().split("\n", 1)[0]
        if FORWARD_MARKER_RE.match(head):
            return node
    return None


@dataclass
class _Renderer:
    """Walks the DOM iteratively (no recursion limit on hostile nesting) and writes text."""

    out: list[str] = field(default_factory=list)
    at_line_start: bool = True
    # Number of trailing newlines already written (for soft newlines / blank lines).
    trailing_newlines: int = 0
    quote_depth: int = 0
    pre_depth: int = 0
    cids: list[str] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)
    remote_images: list[str] = field(default_factory=list)
    list_stack: list[list[int]] = field(default_factory=list)
    signature_depth: int = 0

    def render(self, root: Node) -> None:
        # Stack of (node, entering); exit events restore state after a subtree.
        stack: list[tuple[Node, bool]] = [(root, True)]
        while stack:
            check_deadline("HTML to text")
            node, entering = stack.pop()
            if entering:
                self._enter(node, stack)
            else:
                self._exit(node)

    def _enter(self, node: Node, stack: list[tuple[Node, bool]]) -> None:
        tag = node.tag
        if tag == "-text":
            self._text(node.text_content or "")
            return
        if tag in ("-comment", None):
            return
        if tag == "br":
            self._hard_newline()
            return
        if tag == "img":
            self._image(node)
            return
        if tag == "hr":
            self._soft_newline()
            return
        attrs = node.attributes
        is_quote = _QUOTE_MARK in attrs
        stack.append((node, False))
        if _SIGNATURE_MARK in attrs:
            self.signature_depth += 1
            if self.signature_depth == 1:
                self._mark_line(SIGNATURE_START)
        if is_quote:
            self._soft_newline()
            self.quote_depth += 1
        if tag == "p":
            if "MsoNormal" in (attrs.get("class") or ""):
                self._soft_newline()
            else:
                self._blank_line()
        elif tag == "li":
            self._soft_newline()
            self._write(self._bullet(), raw=True)
        elif tag in ("ul", "ol"):
            self._soft_newline()
            self.list_stack.append([0 if tag == "ol" else -1])
        elif tag in _BLOCK_TAGS:
            self._soft_newline()
        elif tag in _CELL_TAGS:
            if not self.at_line_start:
                self._write(" ", raw=True)
        elif tag == "pre":
            self.pre_depth += 1
        elif tag == "a" and self.quote_depth == 0:
            href = (attrs.get("href") or "").strip()
            text = _WS.sub(" ", node.text(deep=True)).strip()
            if href and text and not href.lower().startswith(("mailto:", "tel:", "#", "cid:")):
                self.links.append((text, href))
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        for child in reversed(children):
            stack.append((child, True))

    def _exit(self, node: Node) -> None:
        tag = node.tag
        if tag == "p":
            if "MsoNormal" in (node.attributes.get("class") or ""):
                self._soft_newline()
            else:
                self._blank_line()
        elif tag in ("ul", "ol"):
            if self.list_stack:
                self.list_stack.pop()
            self._soft_newline()
        elif tag in _BLOCK_TAGS or tag == "li":
            self._soft_newline()
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if _QUOTE_MARK in node.attributes:
            self._soft_newline()
            self.quote_depth = max(0, self.quote_depth - 1)
        if _SIGNATURE_MARK in node.attributes:
            self.signature_depth = max(0, self.signature_depth - 1)
            if self.signature_depth == 0:
                self._mark_line(SIGNATURE_END)

    def _mark_line(self, mark: str) -> None:
        self._soft_newline()
        self._write(mark, raw=True)
        self._hard_newline()

    def _bullet(self) -> str:
        if not self.list_stack:
            return "- "
        counter = self.list_stack[-1]
        if counter[0] < 0:
            return "- "
        counter[0] += 1
        return f"{counter[0]}. "

    def _image(self, node: Node) -> None:
        src = (node.attributes.get("src") or "").strip()
        if self.quote_depth:
            return
        if src.lower().startswith("cid:"):
            cid = src[4:].strip().strip("<>")
            self._write(chr(IMAGE_PLACEHOLDER_BASE + len(self.cids)), raw=True)
            self.cids.append(cid)
        elif src:
            self.remote_images.append(src)

    def _text(self, text: str) -> None:
        if self.pre_depth:
            lines = text.replace("\r\n", "\n").split("\n")
            for i, line in enumerate(lines):
                if i:
                    self._hard_newline()
                if line:
                    self._write(line.replace("\xa0", " "), raw=True)
            return
        text = _WS.sub(" ", text)
        if self.at_line_start:
            text = text.lstrip(" ")
        if text:
            self._write(text.replace("\xa0", " "), raw=True)

    def _write(self, text: str, raw: bool) -> None:
        if self.at_line_start and self.quote_depth:
            self.out.append("> ")
        self.out.append(text)
        self.at_line_start = False
        self.trailing_newlines = 0

    def _hard_newline(self) -> None:
        if self.at_line_start and self.quote_depth:
            # Keep empty quoted lines quoted so a quote block stays one block.
            self.out.append(">")
        self.out.append("\n")
        self.at_line_start = True
        self.trailing_newlines += 1

    def _soft_newline(self) -> None:
        if not self.at_line_start:
            self._hard_newline()

    def _blank_line(self) -> None:
        if not self.out:
            return
        self._soft_newline()
        if self.trailing_newlines < 2:
            self._hard_newline()

    def result(self) -> HtmlText:
        text = "".join(self.out)
        return HtmlText(
            text=text,
            cids=tuple(self.cids),
            links=tuple(self.links),
            remote_images=tuple(self.remote_images),
        )
