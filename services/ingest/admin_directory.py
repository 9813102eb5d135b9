"""The admin API's state in memory: shop users (from ``admin.users``) and settings
(from ``shop.settings``), both compacted topics replayed at start and tailed after.

Records are whole states keyed per user or per shop, so applying one twice is
harmless; ``updated_at_ms`` keeps a write applied locally right after Kafka
acknowledged it from being undone by an older record still arriving on the tail.

Held packed (:func:`shared.codec.pack`), like the settings view: every shop of the
marketplace is here, and a packed record is a few hundred bytes where the objects
were a few kilobytes. Each record is checked in full as it is read.
"""

from __future__ import annotations

import logging
from bisect import bisect_right

from shared.codec import DecodeError, decode, pack, unpack
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus

log = logging.getLogger(__name__)


def user_key(shop_id: str, email: str) -> str:
    return f"{shop_id}:{email}"


class AdminDirectory:
    def __init__(self) -> None:
        self._users: dict[str, dict[str, bytes]] = {}  # shop id -> email -> packed ShopUser
        self._settings: dict[str, bytes] = {}  # shop id -> packed ShopSettings
        # Shops with a main account (onboarded): listing them must not unpack every user.
        self._onboarded: set[str] = set()
        # Users removed here whose tombstone the tail has not read back yet, with when: an
        # older record of theirs still on its way (an invite, a resend) must not bring
        # them back. Forgotten when the tombstone is read.
        self._removed: dict[tuple[str, str], int] = {}
        # The same ids sorted, made on the first listing after a change: shops are onboarded
        # rarely and listed often, and a million ids take a while to sort.
        self._listing: list[str] | None = None

    def __len__(self) -> int:
        """Shops with users."""
        return len(self._users)

    # --- queries -------------------------------------------------------------

    def user(self, shop_id: str, email: str) -> ShopUser | None:
        found = self._users.get(shop_id, {}).get(email.strip().lower())
        return None if found is None else unpack(ShopUser, found)

    def users_of(self, shop_id: str) -> list[ShopUser]:
        return sorted(
            (unpack(ShopUser, u) for u in self._users.get(shop_id, {}).values()),
            key=lambda u: (u.invited_at_ms, u.email),
        )

    def shop_exists(self, shop_id: str) -> bool:
        return shop_id in self._onboarded

    def shop_ids(self, after: str = "", limit: int | None = None) -> list[str]:
        """Onboarded shops (those with a main account) in id order, from the first id
        greater than ``after``, at most ``limit``."""
        if self._listing is None:
            self._listing = sorted(self._onboarded)
        start = bisect_right(self._listing, after) if after else 0
        return self._listing[start : None if limit is None else start + limit]

    def settings(self, shop_id: str) -> ShopSettings | None:
        found = self._settings.get(shop_id)
        return None if found is None else unpack(ShopSettings, found)

    # --- writes (local, after Kafka acknowledged) ----------------------------

    def put_user(self, user: ShopUser) -> None:
        """A user written here (added again after a removal, too)."""
        self._removed.pop((user.shop_id, user.email), None)
        self._store_user(user)

    def _store_user(self, user: ShopUser) -> None:
        shop = self._users.setdefault(user.shop_id, {})
        packed = shop.get(user.email)
        current = None if packed is None else unpack(ShopUser, packed)
        if current is None or user.updated_at_ms >= current.updated_at_ms:
            shop[user.email] = pack(user)
            if user.role == UserRole.MAIN_ACCOUNT:
                self._onboarded.add(user.shop_id)
                self._listing = None
            elif current is not None and current.role == UserRole.MAIN_ACCOUNT:
                self._recount(user.shop_id)

    def drop_user(self, shop_id: str, email: str, at_ms: int | None = None) -> None:
        """Forget a user: removed here at ``at_ms`` (records of theirs up to then are
        stale), or their tombstone read from the topic (``None``)."""
        if at_ms is None:
            self._removed.pop((shop_id, email), None)
        else:
            self._removed[(shop_id, email)] = at_ms
        shop = self._users.get(shop_id)
        if shop is None or shop.pop(email, None) is None:
            return
        if not shop:
            del self._users[shop_id]
        self._recount(shop_id)

    def _recount(self, shop_id: str) -> None:
        """Whether the shop still has a main account, after one lost that role or left."""
        if main_account(self.users_of(shop_id)) is None:
            self._onboarded.discard(shop_id)
        else:
            self._onboarded.add(shop_id)
        self._listing = None

    def put_settings(self, settings: ShopSettings) -> None:
        current = self._settings.get(settings.shop_id)
        if current is None or settings.updated_at_ms >= unpack(ShopSettings, current).updated_at_ms:
            self._settings[settings.shop_id] = pack(settings)

    # --- records from the topics ----------------------------------------------

    def apply_user_record(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        shop_id, _, email = key.decode().partition(":")
        if value is None:
            self.drop_user(shop_id, email)
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
            self._settings.pop(key.decode(), None)
            return
        try:
            self.put_settings(decode(ShopSettings, value))
        except DecodeError as exc:
            log.warning("bad shop.settings record ignored", extra={"reason": str(exc)})


def main_account(users: list[ShopUser]) -> ShopUser | None:
    return next((u for u in users if u.role == UserRole.MAIN_ACCOUNT), None)


def authorized_senders(users: list[ShopUser]) -> tuple[str, ...]:
    """Who may answer buyers by email: every ACTIVATED user of the shop, any role."""
    return tuple(sorted(u.email for u in users if u.status == UserStatus.ACTIVE))
