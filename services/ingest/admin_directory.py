"""The admin API's state: shop users (from ``admin.users``) and settings (from
``shop.settings``), both compacted topics replayed at start and tailed after.

Records are whole states keyed per user or per shop, so applying one twice is
harmless; ``updated_at_ms`` keeps a write applied locally right after Kafka
acknowledged it from being undone by an older record still arriving on the tail.

Held packed (:func:`shared.codec.pack`) in a disk store
(:class:`shared.topic_state_store.TopicStateStore`) with the topic positions they were
read up to: every shop of the marketplace is here, and a restart reads only what was
written since. Each record is checked in full as it is read. Keys, sorted:
``u<shop>\0<email>`` a user, ``s<shop>`` a shop's settings, ``o<shop>`` a shop with a
main account (onboarded: listed without unpacking users).
"""

from __future__ import annotations

import logging
from collections.abc import Generator

from shared.codec import DecodeError, decode, pack, unpack
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus
from shared.topic_state_store import TopicStateStore

log = logging.getLogger(__name__)


def user_key(shop_id: str, email: str) -> str:
    return f"{shop_id}:{email}"


def _user_prefix(shop_id: str) -> bytes:
    return b"u" + shop_id.encode() + b"\0"


def _settings_key(shop_id: str) -> bytes:
    return b"s" + shop_id.encode()


def _onboarded_key(shop_id: str) -> bytes:
    return b"o" + shop_id.encode()


class AdminDirectory:
    """Users and settings per shop, in ``store`` (default: a temporary one)."""

    def __init__(self, store: TopicStateStore | None = None) -> None:
        self.store = store if store is not None else TopicStateStore()
        # Users removed here whose tombstone the tail has not read back yet, with when: an
        # older record of theirs still on its way (an invite, a resend) must not bring
        # them back. Forgotten when the tombstone is read (or at a restart, which reads
        # the topic from before the removal up to its tombstone).
        self._removed: dict[tuple[str, str], int] = {}

    def close(self) -> None:
        self.store.close()

    def count_shops(self) -> int:
        """Onboarded shops, counted by walking the store (tests and the bench)."""
        return sum(1 for _ in self.store.scan(b"o"))

    # --- queries -------------------------------------------------------------

    def user(self, shop_id: str, email: str) -> ShopUser | None:
        found = self.store.get(_user_prefix(shop_id) + email.strip().lower().encode())
        return None if found is None else unpack(ShopUser, found)

    def users_of(self, shop_id: str) -> list[ShopUser]:
        return sorted(
            (unpack(ShopUser, u) for _, u in self.store.scan(_user_prefix(shop_id))),
            key=lambda u: (u.invited_at_ms, u.email),
        )

    def shop_exists(self, shop_id: str) -> bool:
        return self.store.get(_onboarded_key(shop_id)) is not None

    def shop_ids(self, after: str = "", limit: int | None = None) -> list[str]:
        """Onboarded shops (those with a main account) in id order, from the first id
        greater than ``after``, at most ``limit``."""
        out: list[str] = []
        if limit is not None and limit <= 0:
            return out
        listing: Generator[tuple[bytes, bytes], None, None] = self.store.scan(
            b"o", _onboarded_key(after) if after else b""
        )
        for key, _ in listing:
            out.append(key[1:].decode())
            if limit is not None and len(out) >= limit:
                break
        listing.close()
        return out

    def settings(self, shop_id: str) -> ShopSettings | None:
        found = self.store.get(_settings_key(shop_id))
        return None if found is None else unpack(ShopSettings, found)

    # --- writes (local, after Kafka acknowledged) ----------------------------

    def put_user(self, user: ShopUser) -> None:
        """A user written here (added again after a removal, too)."""
        self._removed.pop((user.shop_id, user.email), None)
        self._store_user(user)
        self.store.commit()

    def _store_user(self, user: ShopUser) -> None:
        key = _user_prefix(user.shop_id) + user.email.encode()
        packed = self.store.get(key)
        current = None if packed is None else unpack(ShopUser, packed)
        if current is None or user.updated_at_ms >= current.updated_at_ms:
            self.store.put(key, pack(user))
            if user.role == UserRole.MAIN_ACCOUNT:
                self.store.put(_onboarded_key(user.shop_id), b"")
            elif current is not None and current.role == UserRole.MAIN_ACCOUNT:
                self._recount(user.shop_id)

    def drop_user(self, shop_id: str, email: str, at_ms: int | None = None) -> None:
        """Forget a user: removed here at ``at_ms`` (records of theirs up to then are
        stale), or their tombstone read from the topic (``None``)."""
        self._drop_user(shop_id, email, at_ms)
        self.store.commit()

    def _drop_user(self, shop_id: str, email: str, at_ms: int | None) -> None:
        if at_ms is None:
            self._removed.pop((shop_id, email), None)
        else:
            self._removed[(shop_id, email)] = at_ms
        key = _user_prefix(shop_id) + email.encode()
        if self.store.get(key) is None:
            return
        self.store.delete(key)
        self._recount(shop_id)

    def _recount(self, shop_id: str) -> None:
        """Whether the shop still has a main account, after one lost that role or left."""
        if main_account(self.users_of(shop_id)) is None:
            self.store.delete(_onboarded_key(shop_id))
        else:
            self.store.put(_onboarded_key(shop_id), b"")

    def put_settings(self, settings: ShopSettings) -> None:
        self._store_settings(settings)
        self.store.commit()

    def _store_settings(self, settings: ShopSettings) -> None:
        key = _settings_key(settings.shop_id)
        current = self.store.get(key)
        if current is None or settings.updated_at_ms >= unpack(ShopSettings, current).updated_at_ms:
            self.store.put(key, pack(settings))

    # --- records from the topics (committed by the reader, with its positions) ----

    def apply_user_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        shop_id, _, email = key.decode().partition(":")
        if value is None:
            self._drop_user(shop_id, email, None)
            return
        try:
            user = decode(ShopUser, value)
        except DecodeError as exc:
            log.warning("bad admin.users record ignored", extra={"reason": str(exc)})
            return
        removed_at = self._removed.get((user.shop_id, user.email))
        if removed_at is not None and user.updated_at_ms <= removed_at:
            return  # written before this replica removed the user: stale
        self._store_user(user)

    def apply_settings_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        if value is None:
            self.store.delete(_settings_key(key.decode()))
            return
        try:
            self._store_settings(decode(ShopSettings, value))
        except DecodeError as exc:
            log.warning("bad shop.settings record ignored", extra={"reason": str(exc)})


def main_account(users: list[ShopUser]) -> ShopUser | None:
    return next((u for u in users if u.role == UserRole.MAIN_ACCOUNT), None)


def authorized_senders(users: list[ShopUser]) -> tuple[str, ...]:
    """Who may answer buyers by email: every ACTIVATED user of the shop, any role."""
    return tuple(sorted(u.email for u in users if u.status == UserStatus.ACTIVE))
