"""Signing-key rings from settings: ``"kid:secret,kid:secret"``, the first key signs. Pure.

Every HMAC key of the bridge (reply-address tokens, the admin API's tokens and activation
links) rotates the same way: the new key is listed first and signs, the old ones stay
listed so what they signed still verifies, and are dropped once that has expired. Each
token format says which key ids it can carry (``kid_of``). Key ids are text everywhere.

A malformed ring raises :class:`KeyRingError` naming the entry by its position, never its
text (a misplaced colon can put a secret where the key id belongs): the message may reach
a log or a terminal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.errors import BridgeError

__all__ = ["KeyRing", "KeyRingError", "parse_key_ring"]


class KeyRingError(BridgeError, ValueError):
    """A key ring setting is malformed; the message never contains a secret."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """``(key id, secret)`` pairs in the configured order; the first signs."""

    keys: tuple[tuple[str, bytes], ...]

    @property
    def signing(self) -> tuple[str, bytes]:
        """The key id and secret new tokens are signed with."""
        return self.keys[0]

    def secret(self, kid: str) -> bytes | None:
        """The secret of key ``kid``, or None for an unknown (or retired) key."""
        return next((secret for k, secret in self.keys if k == kid), None)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __repr__(self) -> str:  # the ids only: a ring may be logged or shown in a traceback
        return f"KeyRing(ids={[kid for kid, _ in self.keys]!r})"


def parse_key_ring(
    spec: str, *, what: str, kid_of: Callable[[str], str | None], kid_rule: str
) -> KeyRing:
    """Parse ``"kid:secret[,kid:secret...]"`` (blank entries skipped).

    ``kid_of`` returns a key id in its canonical spelling, or None when the text is not one
    (``kid_rule`` says what is, in the error). ``what`` names the setting in errors.
    """
    keys: list[tuple[str, bytes]] = []
    entries = [item.strip() for item in spec.split(",")]
    for position, item in enumerate((e for e in entries if e), start=1):
        kid_text, sep, secret = item.partition(":")
        if not sep:
            raise KeyRingError(f"{what}: entry {position} is not 'kid:secret'")
        kid = kid_of(kid_text.strip())
        if kid is None:
            raise KeyRingError(f"{what}: entry {position} has no valid key id ({kid_rule})")
        if not secret:
            raise KeyRingError(f"{what}: entry {position} has no secret")
        if any(k == kid for k, _ in keys):
            raise KeyRingError(f"{what}: key id {kid} is listed twice")
        keys.append((kid, secret.encode()))
    if not keys:
        raise KeyRingError(f"{what}: no keys configured (expected 'kid:secret[,kid:secret...]')")
    return KeyRing(tuple(keys))
