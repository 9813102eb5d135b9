"""How many mails one shop and one recipient may be sent per window. Pure.

One rule for everyone who sends or decides to send: the admin API (ingest, every
replica) refuses a request that would go over a limit, and the mailer drops a
notice that went over it anyway (a replica race, a producer that does not check).
Both count what is on the log (``mail.notices``, and simulated conversations on
``admin.audit``), never their own memory alone, so the count is the same on every
replica that has read the same records.

The rule: a send at time ``t`` is within limits when, for every limit that applies to
its kind, fewer than ``limit`` other counted sends of the same scope (recipient or
shop) are later than ``t - window_ms``. Decided one send at a time and counting each
admitted send, no window of that length ever holds more than ``limit`` of them,
whatever order the sends are decided in and however their clocks disagree (a send
stamped later than ``t`` counts too). The admin API counts every published send
(a refused flood keeps its sender throttled); the mailer counts what it admitted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass

from shared.config import SendLimitSettings
from shared.events import MailNotice, NoticeKind
from shared.topics import DAY_MS

HOUR_MS = 3_600_000
RECIPIENT = "recipient"
SHOP = "shop"


@dataclass(frozen=True, slots=True)
class SendLimit:
    """At most ``limit`` sends of ``kinds`` (empty: every kind) per ``scope`` per window."""

    scope: str  # RECIPIENT or SHOP
    limit: int
    window_ms: int
    kinds: frozenset[str] = frozenset()
    exempt: frozenset[str] = frozenset()  # kinds this limit does not count

    def applies_to(self, kind: str) -> bool:
        return self.limit > 0 and (not self.kinds or kind in self.kinds) and kind not in self.exempt

    def describe(self) -> str:
        what = " or ".join(sorted(self.kinds)) + " mails" if self.kinds else "mails"
        if self.exempt:
            what += " other than " + " or ".join(sorted(self.exempt))
        per = {HOUR_MS: "hour", DAY_MS: "day"}.get(self.window_ms, f"{self.window_ms // 1000} s")
        return f"{self.limit} {what} per {self.scope} per {per}"


@dataclass(frozen=True, slots=True)
class MailSend:
    """One mail as the limits count it (the recipient is compared case-insensitively)."""

    send_id: str
    kind: str
    shop_id: str
    recipient: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class OverLimit:
    """Why a send is refused and when the oldest counted send leaves the window."""

    limit: SendLimit
    retry_after_s: int

    @property
    def reason(self) -> str:
        return (
            f"too many emails: at most {self.limit.describe()}; try again in {self.retry_after_s} s"
        )

    @property
    def label(self) -> str:
        """A bounded metric label: scope and window, never an address or a shop id."""
        kinds = "_".join(sorted(self.limit.kinds)) or "all"
        return f"{self.limit.scope}_{kinds}_{self.limit.window_ms // 1000}s"

    def as_dict(self) -> dict[str, object]:
        return {
            "scope": self.limit.scope,
            "limit": self.limit.limit,
            "window_s": self.limit.window_ms // 1000,
            "kinds": sorted(self.limit.kinds),
            "retry_after_s": self.retry_after_s,
        }


def send_of(notice: MailNotice) -> MailSend:
    """A notice as the limits count it (its own creation time, not the reader's clock)."""
    return MailSend(
        send_id=notice.notice_id,
        kind=notice.kind,
        shop_id=notice.shop_id,
        recipient=notice.to_address,
        at_ms=notice.created_at_ms,
    )


def limits_from(cfg: SendLimitSettings) -> tuple[SendLimit, ...]:
    """The limits the settings ask for; a limit of 0 is off."""
    activation = frozenset({NoticeKind.ACTIVATION.value})
    # Console sign-in links are asked for by address like an activation resend: same limits.
    sign_in = frozenset({NoticeKind.SIGN_IN.value})
    return (
        SendLimit(RECIPIENT, cfg.send_limit_activation_per_recipient_hour, HOUR_MS, activation),
        SendLimit(RECIPIENT, cfg.send_limit_activation_per_recipient_day, DAY_MS, activation),
        SendLimit(RECIPIENT, cfg.send_limit_activation_per_recipient_hour, HOUR_MS, sign_in),
        SendLimit(RECIPIENT, cfg.send_limit_activation_per_recipient_day, DAY_MS, sign_in),
        SendLimit(
            RECIPIENT,
            cfg.send_limit_simulation_per_recipient_hour,
            HOUR_MS,
            frozenset({NoticeKind.SIMULATION.value}),
        ),
        # Anyone may ask for a sign-in link (no sign-in before it): were those counted per
        # shop, a stranger knowing a few users' addresses could spend the shop's budget and
        # block its activation mails and notices. Their per-recipient limits above hold.
        SendLimit(SHOP, cfg.send_limit_per_shop_hour, HOUR_MS, exempt=sign_in),
    )


class SendWindow:
    """Sends seen in the last (longest) window, per recipient and per shop, deduplicated by id.

    Feed it the sends that count (:meth:`observe`, in any order, repeats ignored) and
    decide each new one with :meth:`admit`.
    """

    def __init__(self, limits: Iterable[SendLimit]) -> None:
        self.limits = tuple(lim for lim in limits if lim.limit > 0)
        self._horizon_ms = max((lim.window_ms for lim in self.limits), default=0)
        self._seen: dict[str, MailSend] = {}
        # (scope, key) -> sorted [(at_ms, send_id, kind)]
        self._by_key: dict[tuple[str, str], list[tuple[int, str, str]]] = {}

    def __len__(self) -> int:
        return len(self._seen)

    @property
    def horizon_ms(self) -> int:
        """How far back a reader must look to decide any limit."""
        return self._horizon_ms

    def observe(self, send: MailSend) -> bool:
        """Count ``send``; False when its id was counted already."""
        if not self.limits or send.send_id in self._seen:
            return False
        self._seen[send.send_id] = send
        entry = (send.at_ms, send.send_id, send.kind)
        for key in _keys(send.shop_id, send.recipient):
            bisect.insort(self._by_key.setdefault(key, []), entry)
        return True

    def forget(self, send_id: str) -> None:
        """Uncount a send that was never published (its write failed)."""
        send = self._seen.pop(send_id, None)
        if send is None:
            return
        entry = (send.at_ms, send.send_id, send.kind)
        for key in _keys(send.shop_id, send.recipient):
            entries = self._by_key.get(key, [])
            i = bisect.bisect_left(entries, entry)
            if i < len(entries) and entries[i] == entry:
                del entries[i]
            if not entries:
                self._by_key.pop(key, None)

    def over_limit(
        self, kind: str, shop_id: str, recipient: str, at_ms: int, send_id: str = ""
    ) -> OverLimit | None:
        """The first limit a send of ``kind`` at ``at_ms`` would break, counting the sends
        later than ``at_ms`` minus the window, except ``send_id`` itself."""
        keys = dict(_keys(shop_id, recipient))
        for lim in self.limits:
            if not lim.applies_to(kind):
                continue
            entries = self._by_key.get((lim.scope, keys[lim.scope]), [])
            start = bisect.bisect_right(entries, (at_ms - lim.window_ms, "\U0010ffff"))
            counted = [at for at, sid, k in entries[start:] if lim.applies_to(k) and sid != send_id]
            if len(counted) >= lim.limit:
                oldest = counted[len(counted) - lim.limit]
                retry_ms = oldest + lim.window_ms - at_ms
                return OverLimit(lim, max(1, -(-retry_ms // 1000)))
        return None

    def admit(self, send: MailSend) -> OverLimit | None:
        """Decide one send: the limit it would break, or None and it is counted."""
        over = self.over_limit(send.kind, send.shop_id, send.recipient, send.at_ms, send.send_id)
        if over is None:
            self.observe(send)
        return over

    def prune(self, now_ms: int) -> int:
        """Forget sends older than the longest window before ``now_ms``; returns how many."""
        cutoff = now_ms - self._horizon_ms
        old = [s for s in self._seen.values() if s.at_ms <= cutoff]
        for send in old:
            self.forget(send.send_id)
        return len(old)


def _keys(shop_id: str, recipient: str) -> tuple[tuple[str, str], ...]:
    return ((SHOP, shop_id), (RECIPIENT, recipient.strip().lower()))
