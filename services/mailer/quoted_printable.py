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
# After "=" itself is escaped: runs of the other bytes that must be (non-ASCII, controls
# but line ends; tab and space are handled at the line's end).
_UNSAFE = re.compile(rb"[^\t\n\r\x20-\x7e]+")


def _escape_run(match: re.Match[bytes]) -> bytes:
    return b"".join([_ESCAPE[byte] for byte in match.group()])


def quoted_printable(text: str) -> bytes:
    """``text`` encoded as UTF-8 quoted-printable: 7-bit lines of at most 76 characters,
    joined and ended with CRLF. ``email``'s ``get_content()`` gives ``text`` back (with
    ``\\n`` line ends and a final one)."""
    escaped = _UNSAFE.sub(_escape_run, text.encode("utf-8").replace(b"=", b"=3D"))
    out: list[bytes] = []
    # bytes.splitlines splits at \r\n, \r and \n only (str's also at U+2028 and others).
    for line in escaped.splitlines() or [b""]:
        if line[-1:] in (b" ", b"\t"):
            line = line[:-1] + _ESCAPE[line[-1]]
        while len(line) > MAX_QP_LINE:
            cut = _SAFE_RUN_END
            if line[cut - 1] == 0x3D:  # "=": an escape starts at the last place
                cut -= 1
            elif line[cut - 2] == 0x3D:  # one starts a place earlier
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
    out.append(b"")
    return b"\r\n".join(out)
