"""The fan-out's settings: retries, marking read, its group and input topic.

What belongs here: knobs only the fan-out reads. The chat platform's settings (shared
with the ingest) come from ``shared/config.py``. Same ``BRIDGE_`` environment prefix.
"""

from __future__ import annotations

from shared.config import ChatPlatformSettings, LedgerSettings
from shared.topics import CHAT_REPLIES, DAY_MS, MAIL_INBOUND, MAIL_INBOUND_RETRY, replay_window_ms


class FanoutSettings(ChatPlatformSettings, LedgerSettings):
    """Knobs only the fan-out reads; one another service reads too belongs in a group
    of ``shared/config.py`` (add the group to the bases here)."""

    fanout_port: int = 8104
    fanout_max_attempts: int = 12
    fanout_backoff_base_s: float = 0.2
    fanout_backoff_max_s: float = 30.0
    fanout_mark_read: bool = True
    fanout_group: str = "bridge-fanout"
    fanout_replies_topic: str = "chat.replies"  # another name only to isolate a test or canary
    # How long a delivered part is remembered (then tombstoned on chat.deliveries) after its
    # newest record: by default as long as a replay could bring its reply back (see
    # docs/exactly-once.md). Shorter saves memory; a replay older than it posts again.
    fanout_delivery_retention_days: float = (
        replay_window_ms(MAIL_INBOUND, MAIL_INBOUND_RETRY, CHAT_REPLIES) / DAY_MS
    )
    # Write tombstones for forgotten part keys so the compacted topic stops growing too.
    fanout_delivery_tombstones: bool = True
