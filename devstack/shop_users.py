"""A shop's activated users, as the admin API lists them: who the playground and the mail
sink may answer a digest as (the reply parser accepts replies only from them)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from cachetools import TTLCache

from shared.events import UserRole, UserStatus

# Users change when a manager adds, activates or removes one: a few seconds old is fresh
# enough for a page, and a page of mails from one shop asks once.
USERS_TTL_S = 5.0


@dataclass(frozen=True)
class ShopUser:
    email: str
    role: str


class ShopUsers:
    """Reads ``GET /admin/shops/{shop}/users`` with the operator's token (development stack
    only: the operator may read every shop)."""

    def __init__(self, ingest_url: str, operator_token: str) -> None:
        self._url = ingest_url.rstrip("/")
        self._token = operator_token
        self._cache: TTLCache[str, tuple[ShopUser, ...]] = TTLCache(1024, USERS_TTL_S)

    async def activated(self, shop_id: str) -> tuple[ShopUser, ...]:
        """The shop's activated users, main account first; () for a shop the admin API does
        not know (or when it does not answer)."""
        if (cached := self._cache.get(shop_id)) is not None:
            return cached
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                resp = await http.get(
                    f"{self._url}/admin/shops/{shop_id}/users",
                    headers={"Authorization": f"Bearer {self._token}"},
                )
        except httpx.HTTPError:
            return ()
        if resp.status_code != 200:
            return ()
        users = tuple(
            ShopUser(str(u["email"]), str(u["role"]))
            for u in resp.json().get("users", [])
            if u.get("status") == UserStatus.ACTIVE
        )
        users = tuple(sorted(users, key=lambda u: (u.role != UserRole.MAIN_ACCOUNT, u.email)))
        self._cache[shop_id] = users
        return users
