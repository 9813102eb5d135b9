"""``email.policy.default`` with parsed headers memoized: same behaviour, a fraction of the cost.

With the modern policy every ``msg.get(...)`` re-parses the header, and the header registry
builds a new class per call. Classification and extraction read Content-Type, From and
friends many times per mail, and most Content-Type values repeat across mails, so parsing
dominated the parser's time. Header objects are immutable ``str`` subclasses, safe to share;
only short values are cached, in a bounded map.
"""

from __future__ import annotations

from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.policy import EmailPolicy
from typing import Any

# Headers the parser reads only as text (addresses go through getaddresses, ids are hashed):
# the modern structured parse of these is the costliest part of header handling and its
# result is unused, so they are parsed as unstructured (encoded words still decoded).
# From is not among them: the author is read from its structured parse (addresses from the
# raw header, so a decoded display name can never add or hide one).
TEXT_ONLY_HEADERS = (
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "message-id",
    "date",
    "resent-date",
    "in-reply-to",
    "references",
)
_MAX_CACHED_VALUE = 2000
_MAX_ENTRIES = 8192
_cache: dict[tuple[str, str], Any] = {}


def _registry() -> HeaderRegistry:
    registry = HeaderRegistry()
    for name in TEXT_ONLY_HEADERS:
        # typeshed wants a BaseHeader subclass; the registry itself mixes BaseHeader into
        # the class it is given, and the stdlib maps its own names to UnstructuredHeader.
        registry.map_to_type(name, UnstructuredHeader)  # type: ignore[arg-type]
    return registry


class CachedHeaderPolicy(EmailPolicy):
    """policy.default whose ``header_fetch_parse`` memoizes (name, raw value) -> header."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name") or len(value) > _MAX_CACHED_VALUE:
            return super().header_fetch_parse(name, value)
        key = (name, value)
        found = _cache.get(key)
        if found is None:
            if len(_cache) >= _MAX_ENTRIES:
                _cache.clear()  # cheap bound; the hot values come back within a few mails
            found = _cache[key] = super().header_fetch_parse(name, value)
        return found


FAST_DEFAULT = CachedHeaderPolicy(header_factory=_registry())


def forget_parsed_headers() -> None:
    """Empty the memo (the extraction bench makes each mail pay for its own header parses)."""
    _cache.clear()
