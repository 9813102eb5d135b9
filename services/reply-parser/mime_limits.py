"""Explicit bounds on what one inbound mail may cost the parser.

Hostile or broken mail (a header block of thousands of encoded words, deep multipart nesting,
thousands of parts, huge decoded payloads, a clock-eating body) is refused with a
:class:`MailTooComplex` carrying the reason; the parser dead-letters it and moves on to the
next mail.

The header checks run on the raw bytes, before anything is decoded: the standard library's
modern header parser keeps, for every encoded word, a copy of the rest of its header, so its
time and memory grow with the square of a header's size. No real mail comes near these
limits (real header blocks are a few KB, a Subject has at most a few dozen encoded words).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.message import Message

from shared.errors import BridgeError


class MailTooComplex(BridgeError, ValueError):
    """The mail exceeds a parsing limit; ``str(exc)`` says which."""


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_depth: int = 20
    max_parts: int = 500
    max_decoded_bytes: int = 60 * 1024 * 1024
    time_budget_s: float = 5.0
    max_header_block_bytes: int = 128 * 1024
    max_header_bytes: int = 16 * 1024  # one field, continuation lines included
    max_header_fields: int = 1000
    max_encoded_words: int = 500  # "=?" in the header block and the Content-* fields
    # Content-* fields of every part: their structured parse is the costliest per byte.
    max_content_header_bytes: int = 4 * 1024
    max_content_params: int = 100


# A Content-* field with its continuation lines, in any part's headers (the top block too).
_CONTENT_FIELD = re.compile(rb"\ncontent-[a-z-]*:[^\n]*(?:\n[ \t][^\n]*)*", re.I)
_CONTENT_FIELD_FIRST = re.compile(rb"content-[a-z-]*:[^\n]*(?:\n[ \t][^\n]*)*", re.I)


def header_block(raw: bytes) -> bytes:
    """The raw header block: everything before the first empty line (all of it if none)."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[: min(ends)] if ends else raw


def check_raw(raw: bytes, limits: MimeLimits) -> None:
    """Cheap checks on the raw bytes before parsing: headers no real mail has, and a part
    count no real mail has, are refused undecoded."""
    header = header_block(raw)
    if len(header) > limits.max_header_block_bytes:
        raise MailTooComplex(
            f"header block of {len(header)} bytes (limit {limits.max_header_block_bytes})"
        )
    words = header.count(b"=?")
    if words > limits.max_encoded_words:
        raise MailTooComplex(
            f"{words} encoded words in the header block (limit {limits.max_encoded_words})"
        )
    fields = 0
    longest = 0
    size = 0
    for line in header.split(b"\n"):
        if line[:1] in (b" ", b"\t"):  # a continuation line belongs to the field above
            size += len(line) + 1
        else:
            fields += 1
            size = len(line) + 1
        longest = max(longest, size)
    if fields > limits.max_header_fields:
        raise MailTooComplex(f"{fields} header fields (limit {limits.max_header_fields})")
    if longest > limits.max_header_bytes:
        raise MailTooComplex(f"a header field of {longest} bytes (limit {limits.max_header_bytes})")
    first = _CONTENT_FIELD_FIRST.match(raw)
    for found in ([first] if first else []) + list(_CONTENT_FIELD.finditer(raw)):
        value = found.group()
        if len(value) > limits.max_content_header_bytes:
            raise MailTooComplex(
                f"a Content-* header field of {len(value)} bytes "
                f"(limit {limits.max_content_header_bytes})"
            )
        if value.count(b";") > limits.max_content_params:
            raise MailTooComplex(
                f"a Content-* header field with {value.count(b';')} "
                f"parameters (limit {limits.max_content_params})"
            )
        if found.start() >= len(header):  # the top block's were counted above
            words += value.count(b"=?")
    if words > limits.max_encoded_words:
        raise MailTooComplex(
            f"{words} encoded words in the headers (limit {limits.max_encoded_words})"
        )
    boundaries = raw.count(b"\n--")
    if boundaries > limits.max_parts * 4:
        raise MailTooComplex(f"{boundaries} boundary lines (limit {limits.max_parts * 4})")


def check_structure(msg: Message, limits: MimeLimits) -> None:
    """Walk the MIME tree without recursion; refuse depth, part count and decoded size."""
    stack: list[tuple[Message, int]] = [(msg, 1)]
    parts = 0
    estimated = 0
    while stack:
        part, depth = stack.pop()
        parts += 1
        if depth > limits.max_depth:
            raise MailTooComplex(f"MIME nesting deeper than {limits.max_depth}")
        if parts > limits.max_parts:
            raise MailTooComplex(f"more than {limits.max_parts} MIME parts")
        payload = part.get_payload()
        if isinstance(payload, list):
            stack.extend((child, depth + 1) for child in payload if isinstance(child, Message))
        elif isinstance(payload, str):
            # base64 shrinks, quoted-printable and 8bit stay at most the same size: the
            # encoded length bounds the decoded one.
            estimated += len(payload)
            if estimated > limits.max_decoded_bytes:
                raise MailTooComplex(f"decoded parts exceed {limits.max_decoded_bytes} bytes")


class Deadline:
    """A per-message time budget, checked between the pipeline's stages and, through
    :func:`check_deadline`, inside their long loops while the deadline is active."""

    def __init__(self, budget_s: float) -> None:
        self._budget = budget_s
        self._end = time.perf_counter() + budget_s

    def check(self, stage: str) -> None:
        if time.perf_counter() > self._end:
            raise MailTooComplex(f"time budget of {self._budget:.1f}s spent before {stage}")

    @contextmanager
    def active(self) -> Iterator[Deadline]:
        """Make this the deadline :func:`check_deadline` checks (in this context only)."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)


_ACTIVE: ContextVar[Deadline | None] = ContextVar("parse_deadline", default=None)


def check_deadline(stage: str) -> None:
    """Raise :class:`MailTooComplex` when the mail being parsed has spent its time budget.

    For long loops inside a stage (HTML to text, line trimming): a no-op outside a parse,
    so those functions stay usable on their own.
    """
    deadline = _ACTIVE.get()
    if deadline is not None:
        deadline.check(stage)
