"""Extract the newly written text of a seller's email reply: what the buyer may see.

Layers (design.md, "Extraction in layers"):

1. MIME: pick the body (text/plain when it is real, else the HTML), decode it whatever the
   charset claims, undo format=flowed; list attachments as withheld, collect inline images.
2. HTML: client-marked quotes and history go, marked signatures are bracketed
   (``html_text``).
3. Text: invisible leftovers and image placeholders, helpdesk layouts (marker, boilerplate,
   newest comment), quote headers ("On … wrote:" in many languages, wrapped or not), Outlook
   header blocks, "Original Message" and forwarded-message separators (nothing forwarded is
   new text), thread ids, ``>`` quoted lines.
4. Signatures: ``-- ``, "Sent from my iPhone" and translations, "Get Outlook for iOS", and a
   sign-off + name followed by a contact block (``signatures``).
5. Links: addresses out, link texts kept (``links``); the removed addresses are reported.

Never raises on malformed input; every regex sees only lines shorter than
``quote_patterns.MAX_HEADER_LINE`` (links: possessive, one pass), so time stays linear on
hostile input.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from email.message import EmailMessage, Message

from . import quote_patterns as qp
from .html_text import IMAGE_PLACEHOLDER_BASE, IMAGE_PLACEHOLDER_RE, html_to_text
from .links import LinkFree, strip_links
from .mime_limits import check_deadline
from .signatures import (
    SIGNATURE_END,
    SIGNATURE_MARKS_RE,
    SIGNATURE_START,
    keep_from_signature,
    strip_signature_block,
)

SOURCE_PLAIN = "text/plain"
SOURCE_HTML = "text/html"


@dataclass(frozen=True)
class InlineImage:
    """A picture the seller inserted in the reply body (an HTML ``cid:`` reference)."""

    content_type: str
    filename: str | None
    content_id: str
    data: bytes


@dataclass(frozen=True)
class Extraction:
    """What reaches the buyer from one reply, and what was held back."""

    text: str
    inline_images: tuple[InlineImage, ...] = ()
    withheld: tuple[str, ...] = ()
    source: str = SOURCE_PLAIN
    # Addresses taken out of the text (the buyer sees link texts only).
    links_removed: tuple[str, ...] = ()
    # With inline images: the text before image 0, between 0 and 1, ..., after the last, so
    # a destination that delivers pictures shows them where the seller put them.
    segments: tuple[str, ...] = ()


# --- public API ------------------------------------------------------------------------------


def extract_new_text(msg: EmailMessage) -> Extraction:
    """Return the newly written part of the reply *msg* (parsed with ``policy.default``)."""
    try:
        return _extract(msg)
    except Exception:  # noqa: BLE001 - malformed MIME must never break the parser loop
        return Extraction(text="", withheld=("unreadable message body",))


def extract_from_text(text: str) -> str:
    """Return the newly written part of a plain-text reply body."""
    return _text_layer(text).text


def _text_layer(text: str, marked: bool = False) -> LinkFree:
    """Layers 3 and 4 on a text body: trimmed, signatures gone, link addresses removed.

    *marked* text comes from html_text, whose signature elements are bracketed by marks;
    anywhere else the marks are stray characters and go.
    """
    text = _normalise_newlines(text)
    if SIGNATURE_MARKS_RE.search(text):
        text = _reduce_marked_signatures(text) if marked else SIGNATURE_MARKS_RE.sub("", text)
    lines = _drop_leftovers(text.split("\n", MAX_BODY_LINES)[:MAX_BODY_LINES])
    return strip_links(_clean_result(strip_signature_block(_trim_lines(lines))))


# --- MIME layer ----------------------------------------------------------------------------------

# Placeholder text/plain parts some clients send with an HTML body.
_NOT_REAL_PLAIN = re.compile(
    r"^\s*(?:this is a multi-?part message in mime format|"
    r"(?:your|this) (?:e-?mail )?(?:client|program|reader) does not support html|"
    r"to view this (?:message|email),? (?:please )?(?:use|open|enable)|"
    r"this (?:message|email) (?:is|contains|requires) html|"
    r"\[?html (?:message|content|only)\]?)",
    re.IGNORECASE,
)


# Bounds that keep one message's extraction time linear and small. A buyer can receive at
# most ~1 MB of text, and what the seller newly wrote comes first (top-posting) in all but
# exotic mail, so a body is cut to its head: plain text by characters, HTML by tags too
# (the HTML tree's selector matching grows with nesting depth).
MAX_BODY_CHARS = 1_000_000
MAX_HTML_CHARS = 4_000_000
MAX_HTML_TAGS = 20_000
MAX_BODY_LINES = 50_000
_DATA_URI = re.compile(r"""(["'])data:[^"']{256,}\1""")


def _bounded_plain(text: str) -> str:
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS]


def _bounded_html(html: str) -> str:
    if len(html) > 64_000 and "data:" in html:
        html = _DATA_URI.sub('""', html)  # inline data: images are never delivered anyway
    html = html[:MAX_HTML_CHARS]
    if html.count("<") > MAX_HTML_TAGS:
        cut = -1
        for _ in range(MAX_HTML_TAGS):
            cut = html.find("<", cut + 1)
        html = html[:cut]
    return html


def _extract(msg: Message) -> Extraction:
    plain_part = _find_body(msg, "plain")
    html_part = _find_body(msg, "html")
    plain = _bounded_plain(_part_text(plain_part)) if plain_part is not None else None
    html = _bounded_html(_part_text(html_part)) if html_part is not None else None

    withheld: list[str] = []
    links: list[str] = []
    images: tuple[InlineImage, ...] = ()
    segments: tuple[str, ...] = ()
    html_text = None
    html_result: LinkFree | None = None
    if html is not None and (plain is None or not _is_real_plain(plain) or "cid:" in html):
        html_text = html_to_text(html)
        html_result = _text_layer(html_text.text, marked=True)

    if plain is not None and _is_real_plain(plain):
        result, source = _text_layer(plain), SOURCE_PLAIN
        if not result.text and html_result is not None:
            result, source = html_result, SOURCE_HTML
    elif html_result is not None:
        result, source = html_result, SOURCE_HTML
    else:
        result, source = _text_layer(plain or ""), SOURCE_PLAIN
    text = _without_placeholders(result.text) if source == SOURCE_HTML else result.text
    links.extend(result.removed)

    if html_text is not None and html_result is not None:
        with_images = html_result.text
        surviving = [
            ord(ch) - IMAGE_PLACEHOLDER_BASE for ch in IMAGE_PLACEHOLDER_RE.findall(with_images)
        ]
        cid_parts = _parts_by_content_id(msg) if surviving else {}
        picked: list[InlineImage] = []
        for index in surviving:
            if index >= len(html_text.cids):
                continue
            part = cid_parts.get(html_text.cids[index].lower())
            if part is not None:
                picked.append(_inline_image(part, html_text.cids[index]))
            else:
                with_images = with_images.replace(chr(IMAGE_PLACEHOLDER_BASE + index), "", 1)
        images = tuple(picked)
        if images:
            segments = tuple(
                _clean_result(piece.split("\n"))
                for piece in IMAGE_PLACEHOLDER_RE.split(with_images)
            )
        if source == SOURCE_HTML:
            links.extend(href for t, href in html_text.links if t in text)
            withheld.extend(f"remote image: {src}" for src in html_text.remote_images)

    used = {image.content_id.lower() for image in images}
    if msg.is_multipart() or msg.get_content_maintype() != "text":  # else: only a body
        withheld[:0] = _withheld_parts(msg, {id(p) for p in (plain_part, html_part) if p}, used)
    return Extraction(
        text=text,
        inline_images=images,
        withheld=tuple(withheld),
        source=source,
        links_removed=tuple(dict.fromkeys(links)),
        segments=segments,
    )


def _without_placeholders(text: str) -> str:
    if not IMAGE_PLACEHOLDER_RE.search(text):
        return text
    return _clean_result(IMAGE_PLACEHOLDER_RE.sub("", text).split("\n"))


def _is_real_plain(text: str) -> bool:
    stripped = text.strip()
    return bool(stripped) and not _NOT_REAL_PLAIN.match(stripped[:300])


def _find_body(msg: Message, subtype: str) -> Message | None:
    """The body part of *subtype*, as ``EmailMessage.get_body`` picks it, never an attachment."""
    try:
        if isinstance(msg, EmailMessage):
            part = msg.get_body(preferencelist=(subtype,))
            if part is not None:
                return part
    except Exception:  # noqa: BLE001 - fall back to a plain walk below
        pass
    for candidate in msg.walk():
        if candidate.get_content_type() == f"text/{subtype}" and not _is_attachment(candidate):
            return candidate
    return None


def _is_attachment(part: Message) -> bool:
    try:
        return (part.get_content_disposition() or "") == "attachment"
    except Exception:  # noqa: BLE001
        return False


# Charsets mislabelled in the wild, mapped to the superset that decodes what senders meant.
_CHARSET_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "tis-620": "cp874",
    "tis620": "cp874",
    "windows-874": "cp874",
    "iso-8859-11": "cp874",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
}
_SINGLE_BYTE = re.compile(
    r"^(?:ascii|cp125\d|iso-?8859-?\d+|latin-?\d|windows-125\d|koi8-[ru]|cp874)$"
)


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Decode body bytes: declared charset, then UTF-8, then a lenient fallback. Never raises.

    A single-byte declaration (ascii, latin-1, windows-125x) cannot be wrong in a way that
    fails to decode, so valid UTF-8 with non-ASCII bytes is taken as UTF-8 first: senders
    mislabel UTF-8 as latin-1 far more often than latin-1 text happens to be valid UTF-8.
    """
    charset = (declared or "").strip().strip('"').lower()
    charset = _CHARSET_SUPERSETS.get(charset, charset)
    candidates: list[str] = []
    if charset and _SINGLE_BYTE.match(charset):
        candidates = ["utf-8", charset]
    elif charset:
        candidates = [charset, "utf-8"]
    else:
        candidates = ["utf-8"]
    for name in candidates:
        try:
            return data.decode(name)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    # Declared multi-byte text with a few bad bytes: keep the charset, replace the bad bytes.
    # Declared UTF-8/ASCII (or unknown) that is not: most likely Windows Western text.
    fallbacks = ["cp1252"] if charset in ("", "utf-8", "ascii") or not _known(charset) else []
    for name in fallbacks:
        try:
            return data.decode(name)
        except UnicodeDecodeError:
            continue
    for name in (charset, "utf-8"):
        try:
            return data.decode(name or "utf-8", errors="replace")
        except (LookupError, ValueError):
            continue
    return data.decode("latin-1")


def _known(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001
        payload = None
    if payload is None:
        raw = part.get_payload()
        if isinstance(raw, str):
            payload = raw.encode("utf-8", errors="replace")
        else:
            return ""
    if isinstance(payload, str):  # pragma: no cover - defensive
        payload = payload.encode("utf-8", errors="replace")
    if not isinstance(payload, bytes):  # pragma: no cover - a multipart has no text of its own
        return ""
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    text = _normalise_newlines(decode_bytes(payload, charset))
    params = {k.lower(): (v or "").lower() for k, v in _params(part)}
    if part.get_content_type() == "text/plain" and params.get("format") == "flowed":
        text = unflow(text, delsp=params.get("delsp") == "yes")
    return text


def _params(part: Message) -> list[tuple[str, str]]:
    try:
        return [(k, v if isinstance(v, str) else "") for k, v in (part.get_params() or [])]
    except Exception:  # noqa: BLE001
        return []


def unflow(text: str, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed: join soft line breaks (a line ending in a space).

    Lines are joined only with lines of the same quote depth; space-stuffing is removed;
    the signature separator "-- " is never a soft break; with DelSp=yes the space that marked
    the soft break is deleted.
    """
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = -1
    for raw in text.split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        body = raw[depth:]
        if body.startswith(" "):
            body = body[1:]  # space-stuffing (or the space after the quote marks)
        flowed = body.endswith(" ") and body != "-- "
        if buffer is not None and depth == buffer_depth:
            buffer += body
        else:
            if buffer is not None:
                out.append(_requote(buffer, buffer_depth))
            buffer, buffer_depth = body, depth
        if flowed:
            if delsp:
                buffer = buffer[:-1]
            continue
        out.append(_requote(buffer, buffer_depth))
        buffer, buffer_depth = None, -1
    if buffer is not None:
        out.append(_requote(buffer, buffer_depth))
    return "\n".join(out)


def _requote(line: str, depth: int) -> str:
    return (">" * depth + " " + line) if depth else line


def _parts_by_content_id(msg: Message) -> dict[str, Message]:
    found: dict[str, Message] = {}
    for part in msg.walk():
        cid = part.get("Content-ID")
        if cid:
            found[str(cid).strip().strip("<>").lower()] = part
    return found


def _inline_image(part: Message, cid: str) -> InlineImage:
    try:
        data = part.get_payload(decode=True) or b""
    except Exception:  # noqa: BLE001
        data = b""
    return InlineImage(
        content_type=part.get_content_type(),
        filename=part.get_filename(),
        content_id=cid,
        data=data if isinstance(data, bytes) else b"",
    )


def _withheld_parts(msg: Message, body_ids: set[int], used_cids: set[str]) -> list[str]:
    """Describe every leaf part that is not the body and not a delivered inline image."""
    described: list[str] = []
    for part in msg.walk():
        if part.is_multipart() or id(part) in body_ids:
            continue
        ctype = part.get_content_type()
        cid = str(part.get("Content-ID") or "").strip().strip("<>").lower()
        if cid and cid in used_cids:
            continue
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if ctype in ("text/plain", "text/html") and disposition != "attachment":
            continue  # alternative renderings of the body
        if cid and disposition != "attachment" and ctype.startswith("image/"):
            continue  # inline picture of quoted history or a signature logo, never written
        kind = (
            "video"
            if ctype.startswith("video/")
            else "image"
            if ctype.startswith("image/")
            else "email"
            if ctype == "message/rfc822"
            else "file"
        )
        described.append(f"{kind} attachment: {filename or '(unnamed)'} ({ctype})")
    return described


# --- text layer ----------------------------------------------------------------------------------


def _normalise_newlines(text: str) -> str:
    """LF line ends; invisible characters out, non-breaking spaces as spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text.isascii() or not qp.INVISIBLE_CHARS_RE.search(text):
        return text
    return text.translate(qp.INVISIBLE_CHARS)


def _drop_leftovers(lines: list[str]) -> list[str]:
    """Without lines of tracker glyphs or image placeholders only; placeholders go anywhere."""
    out: list[str] | None = None
    for index, line in enumerate(lines):
        if len(line) > qp.MAX_HEADER_LINE or not line or (line.isascii() and "[" not in line):
            cleaned: str | None = line
        elif qp.TRACKER_LINE_RE.match(line):
            cleaned = None
        elif "[" in line and qp.TEXT_IMAGE_PLACEHOLDER_RE.search(line):
            cleaned = qp.TEXT_IMAGE_PLACEHOLDER_RE.sub("", line)
            if not cleaned.strip():
                cleaned = None
            elif cleaned[:1].isspace() and not line[:1].isspace():
                cleaned = cleaned.lstrip()
        else:
            cleaned = line
        if cleaned is not line and out is None:
            out = lines[:index]
        if out is not None and cleaned is not None:
            out.append(cleaned)
    return lines if out is None else out


def _reduce_marked_signatures(text: str) -> str:
    """Client-marked signature elements reduced to the sign-off and name they begin with."""
    out: list[str] = []
    signature: list[str] | None = None
    for line in text.split("\n"):
        bare = line.strip()
        if bare == SIGNATURE_START and signature is None:
            signature = []
        elif bare == SIGNATURE_END and signature is not None:
            out = keep_from_signature(out, signature)
            signature = None
        elif signature is not None:
            signature.append(line)
        else:
            out.append(SIGNATURE_MARKS_RE.sub("", line))
    if signature is not None:
        out = keep_from_signature(out, signature)
    return "\n".join(out)


def _is_quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


def _is_blank(line: str) -> bool:
    return not line.strip()


def _next_nonblank(lines: list[str], start: int) -> int:
    i = start
    while i < len(lines) and _is_blank(lines[i]):
        i += 1
    return i


def _quote_header_end(lines: list[str], i: int) -> int:
    """If an attribution ("On … wrote:") starts at line *i*, the index of its last line, else -1.

    The attribution may wrap over up to ``MAX_HEADER_WRAP`` lines. Lines too long to be a
    header are not examined at all (bounded time on pathological input).
    """
    first = lines[i]
    if _is_blank(first) or len(first) > qp.MAX_HEADER_LINE:
        return -1
    joined = ""
    for k in range(qp.MAX_HEADER_WRAP):
        j = i + k
        if j >= len(lines) or _is_blank(lines[j]) or len(lines[j]) > qp.MAX_HEADER_LINE:
            return -1
        if k and _is_quoted(lines[j]) != _is_quoted(first):
            return -1
        if k and qp.HEADER_OPENERS_RE.match(lines[j]) and not qp.HEADER_OPENERS_RE.match(first):
            return -1  # the header starts on a later line; *i* is the seller's own text
        joined = f"{joined} {lines[j].strip()}" if joined else lines[j].strip()
        if len(joined) > qp.MAX_HEADER_LINE:
            return -1
        if k and not (qp.HEADER_OPENERS_RE.match(first) or qp.HEADER_EVIDENCE_RE.search(first)):
            return -1
        if qp.HEADER_END_RE.search(joined) and _looks_like_attribution(joined):
            return j
    return -1


def _inline_attribution(line: str) -> bool:
    """An attribution with the quoted text on the same line: opener, evidence, address, verb."""
    if "@" not in line or not qp.HEADER_OPENERS_RE.match(line):
        return False
    match = qp.INLINE_ATTRIBUTION_RE.search(line)
    if match is None:
        return False
    head = line[: match.start()]
    return "@" in head and bool(qp.HEADER_EVIDENCE_RE.search(head))


def _names_an_address(lines: list[str], start: int, end: int) -> bool:
    """An attribution spelling out the quoted writer's address ("… <a@b.example> napisał(a):")."""
    return any(qp.ADDRESS_RE.search(lines[k]) for k in range(start, end + 1))


def _looks_like_attribution(text: str) -> bool:
    body = text.lstrip("> ")
    if not qp.HEADER_EVIDENCE_RE.search(body):
        return False
    return bool(qp.WROTE_VERB_RE.search(body) or qp.ENDS_WITH_ADDRESS_RE.search(body))


def _header_block_end(lines: list[str], i: int) -> int:
    """If an Outlook-style header block (From:/Sent:/To:/Subject:) starts at *i*, its last line."""
    line = lines[i]
    if len(line) > qp.MAX_HEADER_LINE or not qp.FROM_LINE_RE.match(line):
        return -1
    keys = 0
    last = -1
    for j in range(i + 1, min(len(lines), i + 1 + qp.HEADER_BLOCK_WINDOW)):
        candidate = lines[j]
        if len(candidate) > qp.MAX_HEADER_LINE:
            break
        if qp.HEADER_KEY_LINE_RE.match(candidate):
            keys += 1
            last = j
        elif _is_blank(candidate) and keys:
            break
    if keys >= 2 or (keys == 1 and ("@" in line or "mailto:" in line.lower())):
        return last
    return -1


def _trim_lines(lines: list[str]) -> list[str]:
    """Apply the quote/separator/helpdesk rules to *lines*; signatures go afterwards."""
    lines = _helpdesk_notification(lines)
    kept: list[str] = []
    n = len(lines)
    i = 0
    while i < n:
        check_deadline("trimming quoted text")
        line = lines[i]
        if len(line) > qp.MAX_HEADER_LINE:
            if not _is_quoted(line):
                kept.append(line)
            i += 1
            continue
        has_content = any(not _is_blank(k) for k in kept)
        prev_blank = not kept or _is_blank(kept[-1])

        if _is_quoted(line):
            i += 1
            continue
        if (
            qp.ZENDESK_MARKER_RE.match(line)
            or qp.is_reply_above_marker(line)
            or qp.SALESFORCE_REF_LINE_RE.match(line)
        ):
            if has_content:
                break
            i += 1
            continue
        if qp.RULE_ONLY_RE.match(line) and has_content and _thread_entry_follows(lines, i + 1):
            break  # a helpdesk's thread layout: rule, "Name, date", older comment
        # A forwarded message is not new text: nothing in it reaches the buyer (it can carry
        # a third party's contact details, or our own digest).
        if (
            qp.FORWARD_MARKER_RE.match(line)
            or qp.ORIGINAL_MESSAGE_RE.match(line)
            or qp.UNDERSCORE_RULE_RE.match(line)
            or _header_block_end(lines, i) >= 0
        ):
            break
        if has_content and prev_blank and _inline_attribution(line):
            break  # "On … <address> wrote: <quoted text>" flattened onto one line
        end = _quote_header_end(lines, i)
        if end >= 0:
            nxt = _next_nonblank(lines, end + 1)
            if nxt < n and _is_quoted(lines[nxt]):
                i = end + 1  # attribution of a quoted block: drop it, keep what follows
                continue
            if nxt >= n:
                break  # attribution with nothing after it (its quote was removed upstream)
            if prev_blank and (
                qp.HEADER_OPENERS_RE.match(line) or qp.ENDS_WITH_ADDRESS_RE.search(lines[end])
            ):
                break  # unquoted history follows (Outlook mobile, some webmails)
            if _names_an_address(lines, i, end):
                break  # "… <a@b.example> wrote:" spells out whose history follows
        if (
            has_content
            and qp.DASHED_ATTRIBUTION_RE.match(line)
            and _looks_like_attribution(line.strip(" -"))
        ):
            break  # Zoho: "---- On …, Name <a@b.example> wrote ----"
        kept.append(line)
        i += 1
    return _strip_signature(kept)


def _thread_entry_follows(lines: list[str], start: int) -> bool:
    """After a rule: a short "Name, date time" line opening an older comment (helpdesks)."""
    j = _next_nonblank(lines, start)
    if j >= len(lines) or len(lines[j]) > 120:
        return False
    line = lines[j]
    return bool(qp.HEADER_EVIDENCE_RE.search(line)) and bool(qp.THREAD_TIME_RE.search(line))


def _helpdesk_notification(lines: list[str]) -> list[str]:
    """Reduce a helpdesk notification (a "reply above this line" marker on top) to its
    newest comment.

    Zendesk puts "##- Please type your reply above this line -##" (localized) first, then
    "Your request (#N) has been updated…", then comments newest first, each as author, date,
    body, separated by rules of dashes, and a "This email is a service from …" footer.
    Freshdesk, Help Scout and Gorgias follow the same shape with their own marker wording.
    """
    first = _next_nonblank(lines, 0)
    if (
        first >= len(lines)
        or len(lines[first]) > qp.MAX_HEADER_LINE
        or not (
            qp.ZENDESK_MARKER_RE.match(lines[first])
            or qp.is_reply_above_marker(lines[first], anywhere=True)
        )
    ):
        return lines
    body = [ln for ln in lines[first + 1 :] if not qp.ZENDESK_UPDATE_RE.match(ln)]
    # The boilerplate paragraph under the marker names the ticket number, in any language.
    start = _next_nonblank(body, 0)
    end = start
    while (
        end < len(body)
        and not _is_blank(body[end])
        and not qp.ZENDESK_SEPARATOR_RE.match(body[end])
    ):
        end += 1
    paragraph = " ".join(body[start:end])
    if (
        start < end
        and len(paragraph) <= qp.HELPDESK_BOILERPLATE_MAX
        and qp.TICKET_NUMBER_RE.search(paragraph)
    ):
        start = _next_nonblank(body, end)
    # Skip to the first comment (after the first rule, if the template has one near the top).
    if start < len(body) and qp.ZENDESK_SEPARATOR_RE.match(body[start]):
        start = _next_nonblank(body, start + 1)
    # Author and date lines: short lines before the body, the date one carrying a time/year.
    for _ in range(2):
        if (
            start < len(body)
            and len(body[start]) < 120
            and qp.HEADER_EVIDENCE_RE.search(body[start])
        ):
            start = _next_nonblank(body, start + 1)
            break
        if start < len(body) and len(body[start]) < 80:
            after = _next_nonblank(body, start + 1)
            if (
                after < len(body)
                and len(body[after]) < 120
                and qp.HEADER_EVIDENCE_RE.search(body[after])
            ):
                start = _next_nonblank(body, after + 1)
                break
    comment: list[str] = []
    for line in body[start:]:
        if (
            qp.ZENDESK_SEPARATOR_RE.match(line)
            or qp.ZENDESK_FOOTER_RE.match(line)
            or qp.HELPDESK_ATTACHMENTS_RE.match(line)
        ):
            break
        comment.append(line)
    return comment


def _strip_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if qp.SIG_DELIMITER_RE.match(line):
            lines = keep_from_signature(lines[:index], lines[index + 1 :])
            break
    lines = list(lines)
    while True:
        while lines and _is_blank(lines[-1]):
            lines.pop()
        if not lines:
            return lines
        last = lines[-1]
        if len(last) > qp.MAX_HEADER_LINE:
            return lines
        stripped = IMAGE_PLACEHOLDER_RE.sub("", last)
        if qp.MOBILE_SIGNATURE_RE.match(stripped) or qp.RULE_ONLY_RE.match(stripped):
            lines.pop()
            continue
        if qp.DASH_NAME_SIGNATURE_RE.match(stripped) and len(lines) >= 2 and _is_blank(lines[-2]):
            lines.pop()
            continue
        return lines


def _clean_result(lines: list[str]) -> str:
    """Remove helpdesk thread ids, trailing spaces, repeated blank lines; strip the ends."""
    cleaned: list[str] = []
    for line in lines:
        if len(line) <= qp.MAX_HEADER_LINE and ("ref:" in line or "thread::" in line):
            line = qp.SALESFORCE_THREAD_RE.sub("", qp.SALESFORCE_REF_RE.sub("", line))
        line = line.rstrip()
        if not line and cleaned and not cleaned[-1]:
            continue
        cleaned.append(line)
    return "\n".join(cleaned).strip("\n").strip()
