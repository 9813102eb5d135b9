"""How long a conversation's digest waits: the notification window rule. Pure.

A digest goes out ``quiet`` after the buyer's LAST pending message: 15 minutes when the
shop's destination is a plain mailbox, 5 when it is a helpdesk (every other kind, kinds
this version does not name yet included). A shop may carry its own window
(``ShopSettings.window_override_s``), clamped to the operator's bounds. However long the
buyer keeps typing, the digest leaves at most ``max_wait`` after the first pending
message, so no quiet window is longer than that either.

The consolidator holds messages until :func:`digest_deadline`, the simulation reports
that deadline and the settings API shows the window it applies: all three ask one
:class:`WindowPolicy`, built from the settings by :meth:`WindowPolicy.from_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.events import DestinationKind, ShopSettings

__all__ = ["WindowPolicy", "WindowSettings", "Windows", "destination_kind_of", "digest_deadline"]


@dataclass(frozen=True, slots=True)
class Windows:
    """How long to wait, for one shop, in milliseconds."""

    quiet_ms: int
    max_wait_ms: int


class WindowSettings(Protocol):
    """The settings the policy is read from (``NotificationWindowSettings`` has them)."""

    @property
    def window_mailbox_s(self) -> float: ...
    @property
    def window_helpdesk_s(self) -> float: ...
    @property
    def max_wait_s(self) -> float: ...
    @property
    def window_override_min_s(self) -> float: ...
    @property
    def window_override_max_s(self) -> float: ...


def destination_kind_of(value: str) -> DestinationKind:
    """The destination kind a settings record names; a kind this version does not know is
    a helpdesk we do not name yet (a record written by a newer admin API stays usable)."""
    try:
        return DestinationKind(value)
    except ValueError:
        return DestinationKind.OTHER_HELPDESK


@dataclass(frozen=True, slots=True)
class WindowPolicy:
    """The service-wide window configuration (seconds), read once from settings."""

    mailbox_s: float = 900.0
    helpdesk_s: float = 300.0
    max_wait_s: float = 3600.0
    min_override_s: float = 60.0
    max_override_s: float = 3600.0

    @classmethod
    def from_settings(cls, cfg: WindowSettings) -> WindowPolicy:
        return cls(
            cfg.window_mailbox_s,
            cfg.window_helpdesk_s,
            cfg.max_wait_s,
            cfg.window_override_min_s,
            cfg.window_override_max_s,
        )

    def for_shop(self, shop: ShopSettings) -> Windows:
        """15 min for a mailbox, 5 for a helpdesk, or the shop's override clamped to the
        bounds; never longer than the max wait."""
        if shop.window_override_s is not None:
            quiet = min(
                max(float(shop.window_override_s), self.min_override_s), self.max_override_s
            )
        elif destination_kind_of(shop.destination_kind).is_helpdesk:
            quiet = self.helpdesk_s
        else:
            quiet = self.mailbox_s
        quiet = min(quiet, self.max_wait_s)
        return Windows(int(quiet * 1000), int(self.max_wait_s * 1000))


def digest_deadline(first_pending_at_ms: int, last_buyer_at_ms: int, windows: Windows) -> int:
    """When the pending messages are due: ``quiet`` after the buyer's last one, but no later
    than ``max_wait`` after the first one."""
    return min(last_buyer_at_ms + windows.quiet_ms, first_pending_at_ms + windows.max_wait_ms)
