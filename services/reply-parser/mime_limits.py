"""Explicit bounds on what one inbound mail may cost the parser.

Hostile or broken mail (deep multipart nesting, thousands of parts, huge decoded payloads,
a clock-eating body) is refused with a :class:`MailTooComplex` carrying the reason; the
parser dead-letters it and moves on to the next mail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.message import Message


class MailTooComplex(ValueError):
    """The mail exceeds a parsing limit; ``str(exc)`` says which."""


@dataclass(frozen=True, slots=True)
class MimeLimits:
    max_depth: int = 20
    max_parts: int = 500
    max_decoded_bytes: int = 60 * 1024 * 1024
    time_budget_s: float = 5.0


def check_raw(raw: bytes, limits: MimeLimits) -> None:
    """Cheap checks before parsing: a part count no real mail has is refused unparsed."""
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
    """A per-message time budget, checked between the pipeline's stages."""

    def __init__(self, budget_s: float) -> None:
        self._budget = budget_s
        self._end = time.perf_counter() + budget_s

    def check(self, stage: str) -> None:
        if time.perf_counter() > self._end:
            raise MailTooComplex(f"time budget of {self._budget:.1f}s spent before {stage}")
