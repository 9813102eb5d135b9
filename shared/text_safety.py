"""Outside text (buyer, seller and shop names) made safe to show on one line. Pure.

One rule for every service that puts a name where a reader sees it (a mail header, a
notice's subject or body, the digest's HTML and text): :func:`header_safe`.
"""

from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "header_safe", "strip_bidi_controls"]

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
# Anything the slow path would change inside the text: a character above, whitespace other
# than a space, or two spaces in a row.
_NEEDS_CLEANING = re.compile(
    f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}\ud800-\udfff]|[^\\S ]|  ")


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


def strip_bidi_controls(text: str) -> str:
    """``text`` without bidi controls, line breaks kept: for text of ours that quotes
    outside names (a notice body), where a reversed run could disguise what it says."""
    return _BIDI.sub("", text)
