"""Outside text (buyer, seller and shop names, message bodies) made safe to show. Pure.

One rule for every service that puts a name where a reader sees it (a mail header, a
notice's subject or body, the digest's HTML and text): :func:`header_safe`, cut to a length
with :func:`truncate_graphemes`. An address is shown only when :func:`is_plain_address`.
Text of several lines (a buyer's message in a digest, a seller's reply on its way to chat)
keeps its tabs and line breaks and loses every other control: :func:`keep_tabs_and_lines`.
"""

from __future__ import annotations

import re

import regex

__all__ = [
    "BIDI_CONTROLS",
    "ELLIPSIS",
    "header_safe",
    "is_plain_address",
    "keep_tabs_and_lines",
    "strip_bidi_controls",
    "truncate_graphemes",
]

ELLIPSIS = "\u2026"
_GRAPHEME = regex.compile(r"\X")
# A plain ``local@domain``: a dot-atom local part (RFC 5322 3.2.3 atext, no quoting) and a
# host-name domain. Anything else (a quoted local part, a comment, an address literal) can
# carry spaces and sentences, so it is never written as is where a reader sees it.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOT_ATOM_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@{_LABEL}(?:\.{_LABEL})*\Z")
MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3 path limit, less the angle brackets

# The Unicode Bidi_Control characters: ALM, LRM, RLM, the embeddings and overrides
# (U+202A-202E) and the isolates (U+2066-2069). In a name they only serve to make text
# read in an order other than the one it is stored in ("Trojan source" subjects).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"

# Cc (controls, incl. CR, LF, TAB, NEL) and Zl/Zp (U+2028/U+2029, line breaks to some
# parsers) separate words, so they become spaces; bidi controls and lone surrogates (not
# encodable as UTF-8) are invisible, so they go. ZWJ, ZWNJ and variation selectors are
# kept: emoji sequences and some scripts need them.
_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_INVISIBLE = re.compile(f"[{BIDI_CONTROLS}\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# In body text: CR is a line break (CRLF, or a lone CR from an old Mac client), written as
# LF; the other C0 and C1 controls but tab and LF are invalid in HTML text, shown as boxes
# or nothing in chat, and nothing a person typed on purpose.
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CARRIAGE_RETURNS = re.compile("\r\n?")
# Anything the slow path would change inside the text: a character above, whitespace other
# than a space, or two spaces in a row.
_NEEDS_CLEANING = re.compile(
    f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}\ud800-\udfff]|[^\\S ]|  "
)


def header_safe(value: str) -> str:
    """``value`` as one line of display text: controls and line and paragraph separators
    become spaces, bidi controls are removed, runs of whitespace become one space, and
    neither end has one.

    It says nothing about encoding: in a mail header the result still has to be encoded
    by us (the mailer's ``header_encoding``, which applies this again), so that it is
    7-bit and any ``=?...?=`` in it stays literal text.
    """
    if not _NEEDS_CLEANING.search(value):
        return value.strip()  # the usual name: nothing to remove or collapse
    return _SPACES.sub(" ", _BREAKS.sub(" ", _INVISIBLE.sub("", value))).strip()


def keep_tabs_and_lines(text: str) -> str:
    """``text`` with its tabs and line breaks (CRLF and CR written as LF) and no other
    C0/C1 control character. Bidi controls and Unicode line separators are left to the
    caller: a body may use them, a one-line name may not (:func:`header_safe`)."""
    if not _BODY_CONTROLS.search(text):
        return text
    return _BODY_CONTROLS.sub("", _CARRIAGE_RETURNS.sub("\n", text))


def strip_bidi_controls(text: str) -> str:
    """``text`` without bidi controls, line breaks kept: for text of ours that quotes
    outside names (a notice body), where a reversed run could disguise what it says."""
    return _BIDI.sub("", text)


def truncate_graphemes(value: str, limit: int) -> str:
    """Cut ``value`` to at most ``limit`` grapheme clusters, ending in an ellipsis if cut.

    Grapheme clusters, not code points: a family emoji or a flag is never split in half.
    """
    graphemes = _GRAPHEME.findall(value)
    if len(graphemes) <= limit:
        return value
    return "".join(graphemes[: limit - 1]).rstrip() + ELLIPSIS


def is_plain_address(address: str) -> bool:
    """``address`` is a plain ``local@domain`` (dot-atom local part, host-name domain, no
    ``=?``, at most 254 characters): safe to show or write as is."""
    return (
        len(address) <= MAX_ADDRESS
        and _DOT_ATOM_ADDRESS.match(address) is not None
        and "=?" not in address
    )
