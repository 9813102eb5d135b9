"""Header lines written from outside text: cleaned, RFC 2047-encoded and folded by us. Pure.

Why not the ``email`` package's policy: its header factory *parses* the value it is
given, and parsing decodes any ``=?charset?b?...?=`` in it, so a buyer name holding an
encoded CR LF came out as header lines of its own, signed with our DKIM key. Here a value
is never parsed. Outside text is first made one line of display text
(:func:`shared.text_safety.header_safe`); then each word that is not plain printable
ASCII, holds ``=?``, or is too long for a line is written as encoded words by this
module, so every decoder shows exactly the cleaned text and nothing else.

What is written:

* every line at most 78 characters (RFC 5322 2.1.1), folded at spaces with CRLF and one
  space; a line can only be longer when it holds nothing but one token we cannot break
  (a long ``<addr-spec>`` or message id), and never longer than 998;
* encoded words ``=?utf-8?b?...?=`` (B encoding: the same words are valid in unstructured
  text and in display names, with no per-character rules), each at most 75 characters
  (RFC 2047 2) and holding whole grapheme clusters, or whole code points when one
  cluster alone does not fit in a word, so no word splits a UTF-8 sequence;
* consecutive words that need encoding become one run of encoded words holding the
  spaces between them: the space between two encoded words is dropped by decoders
  (RFC 2047 6.2), the space between an encoded word and plain text is kept;
* addresses: the ``local@domain`` must be a plain dot-atom address; anything else is
  refused with :class:`InvalidAddressError`, never repaired. The display name is atoms,
  a quoted string (never holding ``=?``: CPython decodes encoded words even inside
  quotes), or encoded words. CPython's address parser keeps the folding space between
  two encoded words of a display name (RFC 2047 says to drop it), so a display name
  long enough for several words reads with extra spaces there; names we send are short.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable

import regex

from shared.errors import BridgeError
from shared.text_safety import header_safe, is_plain_address

__all__ = [
    "MAX_ENCODED_WORD",
    "MAX_HEADER_LINE",
    "HeaderValueError",
    "InvalidAddressError",
    "address_header",
    "check_addr_spec",
    "token_header",
    "unstructured_header",
]

MAX_HEADER_LINE = 78  # RFC 5322 2.1.1 "SHOULD"; 998 is the hard limit
MAX_HARD_LINE = 998
MAX_ENCODED_WORD = 75  # RFC 2047 2
_EW_PREFIX, _EW_SUFFIX = "=?utf-8?b?", "?="
_EW_OVERHEAD = len(_EW_PREFIX) + len(_EW_SUFFIX)
# The bytes one encoded word of the maximum length carries (base64: 4 chars per 3 bytes).
_MAX_EW_BYTES = (MAX_ENCODED_WORD - _EW_OVERHEAD) // 4 * 3

_GRAPHEME = regex.compile(r"\X")
# A word written as is: printable ASCII (header_safe leaves no controls or spaces in one).
_PLAIN_WORD = re.compile(r"[\x21-\x7e]+\Z")
# atext (RFC 5322 3.2.3): a display-name word that needs no quoting.
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+\Z")
# Our own structured values (dates, message ids, tokens): printable ASCII and spaces.
_TOKEN_VALUE = re.compile(r"[\x21-\x7e]+(?: [\x21-\x7e]+)*\Z")


class HeaderValueError(BridgeError, ValueError):
    """A value the composer built itself is not valid in its header (a bug, not input)."""


class InvalidAddressError(HeaderValueError):
    """A reply or destination address is not a single plain ``local@domain``."""


# A header value is a list of pieces that are never broken, separated by single spaces
# (each a possible fold). A piece is a plain word (written as is when it fits on its
# line, else encoded), text to encode, or a token written as is wherever it lands (an
# address, a message id). Encoded pieces next to each other decode with no space between.
_WORD, _ENCODE, _TOKEN = 0, 1, 2


def unstructured_header(name: str, text: str) -> str:
    """``Name: value`` (CRLF-terminated, folded) for free text such as a Subject.

    ``text`` is cleaned with :func:`header_safe` first, so the header decodes to exactly
    ``header_safe(text)``.
    """
    return _fold(name, _pieces(header_safe(text)))


def address_header(name: str, display_name: str, addr_spec: str, role: str) -> str:
    """``Name: display name <local@domain>`` (or the bare address without a name).

    ``display_name`` is cleaned with :func:`header_safe`; ``addr_spec`` must pass
    :func:`check_addr_spec` (``role`` names it in the error).
    """
    check_addr_spec(addr_spec, role)
    shown = header_safe(display_name)
    if not shown:
        return _fold(name, [(_TOKEN, addr_spec)])
    return _fold(name, [*_display_name_pieces(shown), (_TOKEN, f"<{addr_spec}>")])


def token_header(name: str, value: str) -> str:
    """``Name: value`` for a value we built (date, message ids, base64, a URL in ``<>``),
    folded at its spaces. It must be printable ASCII without ``=?``: anything else means
    outside text reached it unchecked, which is refused, not repaired."""
    if not _TOKEN_VALUE.match(value) or "=?" in value:
        raise HeaderValueError(f"{name} value {value!r} is not plain printable ASCII")
    return _fold(name, [(_TOKEN, token) for token in value.split(" ")])


def check_addr_spec(addr_spec: str, role: str) -> str:
    """``addr_spec`` when it is a plain ``local@domain`` (dot-atom local part, host name
    domain); otherwise :class:`InvalidAddressError`. Addresses come from settings and
    reply tokens, not from buyers, so one that would need cleaning is a bug or an attack."""
    if not is_plain_address(addr_spec):
        raise InvalidAddressError(f"{role} address {addr_spec!r} is not a plain local@domain")
    return addr_spec


def _display_name_pieces(shown: str) -> list[tuple[int, str]]:
    words = shown.split(" ")
    if "=?" not in shown and all(_ATOM.match(w) for w in words):
        return [(_WORD, w) for w in words]
    quoted = '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if "=?" not in shown and shown.isascii() and len(quoted) < MAX_HEADER_LINE:
        return [(_WORD, quoted)]
    return [(_ENCODE, shown)]


def _pieces(text: str) -> list[tuple[int, str]]:
    """Each word of ``text``: plain, or to be encoded (non-ASCII or holding "=?")."""
    if not text:
        return []
    return [
        (_WORD if _PLAIN_WORD.match(word) and "=?" not in word else _ENCODE, word)
        for word in text.split(" ")
    ]


def _fold(name: str, pieces: Iterable[tuple[int, str]]) -> str:
    label = f"{name}:"
    lines = [label]
    for kind, text in _runs(label, pieces):
        if kind == _ENCODE:
            _place_encoded(lines, label, _units(text))
        else:
            _place(lines, label, text)
    if any(len(line) > MAX_HARD_LINE for line in lines):
        raise HeaderValueError(f"{name} has a token longer than a header line may be")
    return "\r\n".join(lines) + "\r\n"


def _runs(label: str, pieces: Iterable[tuple[int, str]]) -> list[tuple[int, str]]:
    """The pieces with neighbouring ones to encode joined into one, spaces included (a
    decoder drops the space between two encoded words). A plain word is encoded too
    when it fits on no line of its own, or when it is first and does not fit after the
    label: a value must not begin on a continuation line, whose space some parsers keep
    as a leading space of the value."""
    out: list[tuple[int, str]] = []
    for kind, text in pieces:
        if kind == _WORD and (
            len(text) + 1 > MAX_HEADER_LINE
            or (not out and len(label) + 1 + len(text) > MAX_HEADER_LINE)
        ):
            kind = _ENCODE
        if kind == _ENCODE and out and out[-1][0] == _ENCODE:
            out[-1] = (_ENCODE, f"{out[-1][1]} {text}")
        else:
            out.append((kind, text))
    return out


def _place(lines: list[str], label: str, token: str) -> None:
    """Append `` token`` to the last line, or on a new line when it would pass 78 (never
    leaving the label's line empty: an unbreakable token then makes that line long)."""
    if len(lines[-1]) + 1 + len(token) > MAX_HEADER_LINE and lines[-1].strip() and lines != [label]:
        lines.append(" " + token)
    else:
        lines[-1] += " " + token


def _place_encoded(lines: list[str], label: str, units: list[bytes]) -> None:
    """``units`` as encoded words filling the lines from the last one on."""
    start = 0
    while start < len(units):
        room = MAX_HEADER_LINE - len(lines[-1]) - 1
        end, word = _encoded_word(units, start, min(room, MAX_ENCODED_WORD))
        if end > start:
            _place(lines, label, word)
            start = end
        elif lines == [label] and len(units[start].decode("utf-8")) > 1:
            # The value's first cluster does not fit after the label: split it into its
            # code points rather than start the value on a continuation line.
            units[start : start + 1] = [ch.encode("utf-8") for ch in units[start].decode("utf-8")]
        else:
            lines.append("")


def _units(text: str) -> list[bytes]:
    """``text`` as UTF-8 grapheme clusters; a cluster too big for one encoded word (long
    ZWJ sequences, a letter with dozens of combining marks) as its code points."""
    units: list[bytes] = []
    for cluster in _GRAPHEME.findall(text):
        data = cluster.encode("utf-8")
        if len(data) <= _MAX_EW_BYTES:
            units.append(data)
        else:
            units.extend(ch.encode("utf-8") for ch in cluster)
    return units


def _encoded_word(units: list[bytes], start: int, max_len: int) -> tuple[int, str]:
    """The longest encoded word of at most ``max_len`` characters holding whole units from
    ``start``: (the index after its last unit, the word); (``start``, "") if none fits."""
    budget = max(0, (max_len - _EW_OVERHEAD) // 4 * 3)
    end, size = start, 0
    while end < len(units) and size + len(units[end]) <= budget:
        size += len(units[end])
        end += 1
    if end == start:
        return start, ""
    payload = base64.b64encode(b"".join(units[start:end])).decode("ascii")
    return end, f"{_EW_PREFIX}{payload}{_EW_SUFFIX}"
