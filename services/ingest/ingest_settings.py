"""The ingest's settings: webhooks, the admin API and the simulation.

What belongs here: knobs only the ingest reads. Knobs other services read too come
from the shared groups in ``shared/config.py`` (the chat platform, send limits, the
notification windows). Same ``BRIDGE_`` environment prefix.
"""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr, field_validator

from shared.config import (
    ChatPlatformSettings,
    NotificationWindowSettings,
    SendLimitSettings,
    dev_secret,
)


class IngestSettings(ChatPlatformSettings, SendLimitSettings, NotificationWindowSettings):
    """Knobs only the ingest reads; one another service reads too belongs in a group
    of ``shared/config.py`` (add the group to the bases here)."""

    ingest_port: int = 8000

    # Ingest hardening
    ingest_max_body_bytes: int = 256 * 1024
    ingest_max_inflight: int = 2000  # Kafka writes awaiting ack before answering 503
    ingest_kafka_timeout_s: float = 2.5  # the platform wants an answer within 3 s
    ingest_dedup_capacity: int = 200_000  # recent message ids remembered per process

    # Serve the admin API (/admin) from this process. Only its replicas replay the user
    # directory (admin.users + shop.settings; its cost per shop: docs/scaling.md): at many
    # shops, run webhook replicas with false and a small admin deployment with true.
    ingest_admin_api: bool = True
    # Where those replicas keep the directory (a rocksdict store with the topic positions
    # it was read to, so a restart reads only what changed since): a volume in
    # production. Empty: a temporary directory removed at stop (a full replay each start).
    ingest_directory_path: str = ""

    # Admin API: bearer-token keys "kid:secret,..." (first signs), the operator's token for
    # onboarding shops, API-token lifetime, where activation links point.
    admin_token_keys: SecretStr = dev_secret("admin_token_keys")
    admin_operator_token: SecretStr = dev_secret("admin_operator_token")
    admin_token_ttl_days: int = 30
    # The console's activation page as mails link to it; the console's other mailed links
    # (sign-in) are built beside it, so it must end in /console/activate.
    activation_link_base: str = "http://127.0.0.1:8000/console/activate"
    # Seller console (browser pages under /console): how long a sign-in lasts.
    console_session_ttl_hours: int = 12
    # Where the set-up guides (docs/setup-*.md) are published, e.g. the repository's docs
    # URL; empty: the console serves them from docs/ (a source checkout).
    console_guides_url: str = ""
    # "sandbox": simulated buyer messages go through the platform sandbox's buyer endpoint
    # (the whole loop, chat included); "direct": published on chat.events by the ingest.
    simulation_mode: Literal["sandbox", "direct"] = "sandbox"

    @field_validator("activation_link_base")
    @classmethod
    def _console_activation_page(cls, value: str) -> str:
        # A base kept from before the console (.../admin/activate) would mail sign-in
        # links to a path that does not exist: refuse to start instead.
        if not value.rstrip("/").endswith("/console/activate"):
            raise ValueError(
                f"must be the console's activation page, ending in /console/activate "
                f"(got {value!r})"
            )
        return value.rstrip("/")
