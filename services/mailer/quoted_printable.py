"""Quoted-printable body encoding (RFC 2045 6.7) of UTF-8 text, CRLF line ends. Pure.

The rules applied: printable ASCII except ``=`` stays as it is; every other byte (``=``,
non-ASCII UTF-8, controls) becomes ``=XX``; a space or tab at the end of a line is
escaped too (transports strip trailing whitespace); encoded lines are at most 76
characters, broken with a soft line break ``=`` that never splits an escape. Line ends
in the text (``\\r\\n``, ``\\r`` or ``\\n``) become CRLF, and the body ends with one.
"""

from __future__ import annotations

import re

__all__ = ["MAX_QP_LINE", "quoted_printable"]

MAX_QP_LINE = 76
_SAFE_RUN_END = MAX_QP_LINE - 1  # room for the soft break's "="
_ESCAPE = [b"=%02X" % byte for byte in range(256)]
# Runs of bytes that must be escaped (tab and space are handled at the line's end).
_UNSAFE = re.compile(rb"[^\t\x20-\x3c\x3e-\x7e]+")


def _escape_run(match: re.Match[bytes]) -> bytes:
    return b"".join([_ESCAPE[byte] for byte in match.group()])


def quoted_printable(text: str) -> bytes:
    """``text`` encoded as UTF-8 quoted-printable: 7-bit lines of at most 76 characters,
    joined and ended with CRLF. ``email``'s ``get_content()`` gives ``text`` back (with
    ``\\n`` line ends and a final one)."""
    out: list[bytes] = []
    # bytes.splitlines splits at \r\n, \r and \n only (str's also at U+2028 and others).
    for line in text.encode("utf-8").splitlines() or [b""]:
        encoded = _UNSAFE.sub(_escape_run, line)
        if encoded[-1:] in (b" ", b"\t"):
            encoded = encoded[:-1] + _ESCAPE[encoded[-1]]
        while len(encoded) > MAX_QP_LINE:
            cut = _SAFE_RUN_END
            if encoded[cut - 1] == 0x3D:  # "=": an escape starts at the last place
                cut -= 1
            elif encoded[cut - 2] == 0x3D:  # one starts a place earlier
                cut -= 2
            out.append(encoded[:cut] + b"=")
            encoded = encoded[cut:]
        out.append(encoded)
    out.append(b"")
    return b"\r\n".join(out)
