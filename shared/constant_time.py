"""Constant-time comparison of secrets and signatures that arrive as text. Pure.

``hmac.compare_digest`` raises ``TypeError`` for a ``str`` with non-ASCII characters, so
comparing a header value as ``str`` turns any stranger's odd header into a 500. Both sides
are compared as UTF-8 bytes instead: a non-ASCII value simply does not match.
"""

from __future__ import annotations

import hmac


def same_secret(expected: str, given: str) -> bool:
    """Whether ``given`` equals ``expected``, in time independent of where they differ."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))
