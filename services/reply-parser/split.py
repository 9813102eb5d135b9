"""Split a seller's reply into chat-sized messages.

The chat platform limits one message to 2,000 characters (``CHAT_MESSAGE_LIMIT``, part of the
chat platform's contract in :mod:`shared.chat_platform.base`). "Characters" there are counted the
way JavaScript counts them: UTF-16 code units (an emoji outside the BMP counts 2, a ZWJ family
emoji 11). Counting in UTF-16 units is therefore the safe unit: a part that fits in UTF-16 units
also fits in code points or graphemes.
"""

from __future__ import annotations

import regex

from shared.chat_platform.base import CHAT_MESSAGE_LIMIT

_GRAPHEME = regex.compile(r"\X")
# Break opportunities, best first.  Each pattern matches the whitespace *at* the boundary;
# the part ends before the match and the next part starts after it.
_PARAGRAPH_BREAK = regex.compile(r"\n[ \t\r\f\v]*\n\s*")
_LINE_BREAK = regex.compile(r"\n\s*")
_SENTENCE_BREAK = regex.compile(r"(?<=[.!?…。！？])\s+|(?<=[。！？])")
_WORD_BREAK = regex.compile(r"\s+")
_BREAKS = (_PARAGRAPH_BREAK, _LINE_BREAK, _SENTENCE_BREAK, _WORD_BREAK)
# Leading whitespace that is a whole grapheme cluster: a space carrying a combining mark
# (" \u0e39") is one cluster and is kept whole, not stripped.
# Control characters (line breaks among them) are always clusters of their own, so a mark
# after "\n" does not make the "\n" part of it.
_LEADING_SPACE = regex.compile(
    r"(?:\r\n|[\r\n\x0b\x0c\x1c-\x1f\x85\u2028\u2029]|"
    r"\s(?!\p{Grapheme_Cluster_Break=Extend}|\p{Grapheme_Cluster_Break=SpacingMark}|\u200d))*"
)
# A boundary is only "good" when it leaves the part at least this full; otherwise a lower
# priority boundary further along is preferred (avoids a 30-character part followed by many).
_MIN_FILL = 0.5


def utf16_len(text: str) -> int:
    """Length of *text* in UTF-16 code units (what the chat platform counts)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def split_for_chat(text: str, limit: int = CHAT_MESSAGE_LIMIT) -> list[str]:
    """Split *text* into chat messages of at most *limit* UTF-16 code units each.

    Boundaries are chosen, best first, at a paragraph break, a line break, a sentence end or
    a space, within the limit; a boundary is never placed inside a grapheme cluster (emoji
    ZWJ sequences, flags, skin tones, combining marks stay whole). A single "word" longer
    than the limit is hard-split at a grapheme boundary. Whitespace at the boundaries is
    dropped, so ``"".join`` of the parts equals the input modulo whitespace at boundaries.
    No part is empty; blank input gives ``[]``.

    A single grapheme cluster longer than *limit* (only pathological input, e.g. thousands of
    combining marks) cannot be kept whole; it is cut at a code point boundary.
    """
    if limit < 2:
        raise ValueError("limit must be at least 2 UTF-16 code units")
    text = _lstrip(text.rstrip())
    parts: list[str] = []
    while text:
        # len() first: utf16_len is O(n) and the remaining text can be megabytes long.
        if len(text) <= limit and utf16_len(text) <= limit:
            parts.append(text)
            break
        head, rest = _cut(text, limit)
        head = head.rstrip()
        if head:
            parts.append(head)
        text = _lstrip(rest)
    return parts


def _lstrip(text: str) -> str:
    """Strip leading whitespace without splitting a grapheme cluster."""
    match = _LEADING_SPACE.match(text)
    return text[match.end() :] if match else text


def _cut(text: str, limit: int) -> tuple[str, str]:
    """Return (head, rest) with head within *limit* units, cut at the best boundary."""
    end = _window_end(text, limit)
    window = text[:end]
    # Whitespace right after the window is a boundary too ("word" ends exactly at the limit).
    probe = text[: end + 1]
    if probe.isascii():  # every index is a grapheme boundary except inside "\r\n"
        boundaries = None
    else:
        boundaries = {m.end() for m in _GRAPHEME.finditer(probe)}
    best_any = -1
    for pattern in _BREAKS:
        last = -1
        for match in pattern.finditer(probe):
            start = match.start()
            if 0 < start <= end and (
                start in boundaries
                if boundaries is not None
                else probe[start - 1 : start + 1] != "\r\n"
            ):
                last = start
        if last > 0:
            if last >= _MIN_FILL * end:
                return text[:last], text[last:]
            best_any = max(best_any, last)
    if best_any > 0:
        return text[:best_any], text[best_any:]
    return window, text[end:]


def _window_end(text: str, limit: int) -> int:
    """Largest grapheme-boundary index whose prefix fits in *limit* UTF-16 units."""
    prefix = text[: limit + 1]
    if prefix.isascii():  # one unit per character; "\r\n" is the only two-character cluster
        end = min(len(text), limit)
        return end - 1 if 0 < end < len(text) and text[end - 1 : end + 1] == "\r\n" else end
    used = 0
    end = 0
    # Only scan a bounded prefix: a grapheme is at least one code unit.
    for match in _GRAPHEME.finditer(text, 0, min(len(text), limit + 1)):
        size = utf16_len(match.group())
        if used + size > limit:
            break
        used += size
        end = match.end()
    if end == 0:
        # The first grapheme alone exceeds the limit: cut at code points (a Python str never
        # splits a surrogate pair, so this is still valid text).
        for i, ch in enumerate(text):
            used += 2 if ord(ch) > 0xFFFF else 1
            if used > limit:
                return max(i, 1)
    return end
