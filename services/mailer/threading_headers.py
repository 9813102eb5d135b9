"""Deterministic threading headers: successive digests of one conversation thread together.

Every value here is a pure function of ids the digest already carries
(``digest_id``, ``previous_digest_ids``, the conversation key), so the mailer keeps no
state for threading and a re-sent digest carries byte-identical headers, which lets the
receiving side (and our own reply parser) recognise duplicates and our own mail.

* ``Message-ID``: ``<digest-{digest_id}@{domain}>``
* ``In-Reply-To``: the latest previous digest; ``References``: the previous digests in
  order, capped (first + last N) so a very long-lived conversation does not produce an
  unbounded header (RFC 5322 3.6.4 allows trimming; the first id anchors the thread).
* ``Thread-Index``: Outlook's conversation index, whose 22-byte header block is derived
  from the conversation key so every digest of a conversation carries the same one.
"""

from __future__ import annotations

import base64
import hashlib
import re

__all__ = [
    "MAX_REFERENCES",
    "digest_message_id",
    "digest_id_from_message_id",
    "references",
    "in_reply_to",
    "notice_message_id",
    "outside_message_id",
    "thread_index",
]

# Gmail and Outlook only need the first and recent ids; 20 keeps the header well under
# the 998-octet line limit even before folding.
MAX_REFERENCES = 20

# A dot-atom made of characters that need no quoting anywhere (RFC 5322 id-left).
_SAFE_ID = re.compile(r"^[A-Za-z0-9_+=-]+(?:\.[A-Za-z0-9_+=-]+)*$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SAFE_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
# A msg-id someone else wrote (RFC 5322 3.6.4, no obsolete forms, no CFWS): printable
# ASCII without "<", ">" or spaces, one "@"; "=?" is refused so no decoder sees a word.
_OUTSIDE_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>\Z")
_MAX_OUTSIDE_MSG_ID = 250
_HASHED_PREFIX = "h"
_MAX_ID_LEFT = 100

# FILETIME (100 ns ticks since 1601) of 2024-01-01T00:00Z. Outlook only needs the header
# block to be identical across a conversation; a fixed time keeps it deterministic.
_THREAD_INDEX_FILETIME = 133_485_408_000_000_000
_MAX_THREAD_CHILD_BLOCKS = 50


def _id_left(digest_id: str) -> str:
    """The Message-ID local part for a digest id: the id itself when safe, else its hash."""
    if _SAFE_ID.fullmatch(digest_id) and len(digest_id) <= _MAX_ID_LEFT:
        return digest_id
    # Anything else could break the header's syntax; a hash stays unique and deterministic.
    # 128 bits is plenty, and short enough that the header line is not folded.
    return _HASHED_PREFIX + hashlib.sha256(digest_id.encode("utf-8")).hexdigest()[:32]


def _check_domain(domain: str) -> str:
    if not _SAFE_DOMAIN.fullmatch(domain):
        raise ValueError(f"message id domain {domain!r} is not a valid host name")
    return domain.lower()


def digest_message_id(digest_id: str, domain: str) -> str:
    """The Message-ID of a digest email, angle brackets included."""
    if not digest_id:
        raise ValueError("digest id must not be empty")
    return f"<digest-{_id_left(digest_id)}@{_check_domain(domain)}>"


def notice_message_id(notice_id: str, domain: str) -> str:
    """The Message-ID of a notice email: ``<notice-{notice_id}@{domain}>``, the id hashed
    when it is not a safe dot-atom."""
    if not notice_id:
        raise ValueError("notice id must not be empty")
    return f"<notice-{_id_left(notice_id)}@{_check_domain(domain)}>"


def outside_message_id(value: str) -> str | None:
    """``value`` (a Message-ID from a mail we received) when it is one plain
    ``<left@right>`` fit to write into In-Reply-To/References; else ``None``: threading
    is a nicety, never worth writing text we did not check into a header."""
    candidate = value.strip()
    if (
        len(candidate) > _MAX_OUTSIDE_MSG_ID
        or "=?" in candidate
        or candidate.count("@") != 1
        or not _OUTSIDE_MSG_ID.match(candidate)
    ):
        return None
    return candidate


def digest_id_from_message_id(message_id: str, domain: str) -> str | None:
    """The digest id in one of our Message-IDs, or ``None`` when it is not ours.

    Only ids that were used verbatim can be recovered; hashed ones come back as their
    hashed form, which still tells "this is one of our digests".
    """
    value = message_id.strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    left, sep, right = value.rpartition("@")
    if not sep or right.lower() != domain.lower() or not left.startswith("digest-"):
        return None
    return left[len("digest-") :] or None


def references(previous_digest_ids: tuple[str, ...], domain: str) -> tuple[str, ...]:
    """Message-IDs for ``References``: oldest first, capped to the first + the latest ones."""
    ids = [digest_message_id(d, domain) for d in previous_digest_ids if d]
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return tuple(ids)


def in_reply_to(previous_digest_ids: tuple[str, ...], domain: str) -> str | None:
    """The latest previous digest's Message-ID, or ``None`` for a conversation's first digest."""
    for digest_id in reversed(previous_digest_ids):
        if digest_id:
            return digest_message_id(digest_id, domain)
    return None


def thread_index(conversation_key: str, previous_digest_ids: tuple[str, ...]) -> str:
    """Outlook ``Thread-Index``: one header block per conversation, one child per earlier digest.

    Layout (MS-OXOMSG 2.2.1.3): 22-byte header block = 0x01 + the 5 high bytes of a
    FILETIME + a 16-byte GUID; then 5 bytes per reply. The GUID is the conversation
    key's hash, so every digest of a conversation shares it.
    """
    guid = hashlib.sha256(b"thread-index:" + conversation_key.encode("utf-8")).digest()[:16]
    filetime_high = (_THREAD_INDEX_FILETIME >> 24).to_bytes(5, "big")
    block = b"\x01" + filetime_high + guid
    for position, digest_id in enumerate(previous_digest_ids[-_MAX_THREAD_CHILD_BLOCKS:]):
        # Child block: 32 bits of (delta-code bit 0 + time delta), then 4 random + 4 sequence
        # bits; a hash stands in for both so the value stays deterministic.
        digest = hashlib.sha256(digest_id.encode("utf-8")).digest()
        delta = ((position + 1) << 8) & 0x7FFFFFFF
        block += delta.to_bytes(4, "big") + bytes([(digest[0] & 0xF0) | (position & 0x0F)])
    return base64.b64encode(block).decode("ascii")
