"""Configuration from the environment: the settings several services share.

Each service reads one settings class, its own (``<service>/<service>_settings.py``),
built from :class:`BridgeSettings` (Kafka, identity, development mode, logging) and
the groups below that more than one service reads. Read once, by the service's
entry point, and passed down: library functions take the settings (or the values)
they need as arguments. Unknown fields are refused when a class is built in code
(a knob given to the wrong service is an error); environment variables of other
services are ignored, so one ConfigMap serves all.

Defaults run the whole system on one machine; production sets the variables in the
Kubernetes ConfigMap/Secrets (see deploy/k8s). ``KAFKA_BOOTSTRAP`` is read without
the ``BRIDGE_`` prefix so a real Kafka is one variable away. The default secrets are
development values, all listed in :data:`DEV_SECRETS`: a service refuses to start
with them unless ``dev_mode`` is on (shared/secrets_policy.py).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Every secret setting of every service and its published development default (empty:
# no default; the feature that reads it is off until it is set). A service's settings
# class takes its secrets' defaults from here, so the policy knows every published value.
DEV_SECRETS: dict[str, str] = {
    "token_keys": "1:dev-only-token-key-change-me",
    "smtp_password": "",
    "platform_app_secret": "sandbox-app-secret",
    "platform_access_token": "sandbox-access-token",
    "webhook_secret": "sandbox-app-secret",
    "platform_access_tokens": "",
    "generic_webhook_secret": "",
    "admin_token_keys": "1:dev-only-admin-key-change-me",
    "admin_operator_token": "dev-only-operator-token",
}


def dev_secret(name: str) -> SecretStr:
    """The published development default of the secret setting ``name``."""
    return SecretStr(DEV_SECRETS[name])


class BridgeSettings(BaseSettings):
    """What every service reads. Belongs here: Kafka, the marketplace's identity, modes
    and logging. A knob one service reads goes in that service's class; one a few read,
    in a group below."""

    model_config = SettingsConfigDict(env_prefix="BRIDGE_", extra="forbid")

    # Development mode: accept the default (published) secrets below and other weak ones.
    # The local run command, the devstack, the tests and the benchmarks turn it on;
    # production never does (every service refuses to start with them otherwise).
    dev_mode: bool = False

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "BRIDGE_KAFKA_BOOTSTRAP")
    )
    # Idempotent producers (acks=all, enable_idempotence): "auto" asks the broker once at
    # start-up (InitProducerId) and uses them where it hands out producer ids: real Kafka
    # yes, Tansu no. true/false fix it per deployment (shared.kafka.producer_idempotence).
    kafka_idempotence: Literal["auto"] | bool = "auto"
    kafka_session_timeout_ms: int = 6000
    kafka_request_timeout_ms: int = 10000

    # Marketplace and mail identity
    marketplace_name: str = "TikTok Shop"
    # Reply address: <token>@chat-seller-<region>.<reply_domain_base>
    reply_domain_base: str = "bridge.localhost"
    message_id_domain: str = "digest.bridge.localhost"
    chat_deep_link_base: str = "http://127.0.0.1:8300/chat"
    # A shop's destination inbox when its settings name none (its main account's email).
    default_destination_email: str = "seller@shop.localhost"

    http_host: str = "127.0.0.1"  # where every service serves /metrics and /healthz
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


class LedgerSettings(BridgeSettings):
    """The idempotency ledgers (shared/idempotency_ledger.py): the mailer's and the fan-out's."""

    # Read every ledger partition, not only those of the assigned input partitions: for one
    # retention after upgrading to per-partition placement (docs/scaling.md, "Ledgers per
    # partition"), when older records still lie on the partition of their key.
    ledger_read_all: bool = False


class ReplyTokenSettings(BridgeSettings):
    """Reply-address tokens: the mailer signs them, the reply front verifies them."""

    # "kid:secret,kid:secret"; the first is used to sign.
    token_keys: SecretStr = dev_secret("token_keys")
    token_ttl_days: int = 90


class NotificationWindowSettings(BridgeSettings):
    """The notification windows: the consolidator's debounce and the simulation's."""

    # Seconds after the buyer's last message, by destination kind
    window_mailbox_s: float = 900.0
    window_helpdesk_s: float = 300.0
    # A conversation never waits longer than this from its first pending message.
    max_wait_s: float = 3600.0
    # Bounds on a shop's own window override (seconds)
    window_override_min_s: float = 60.0
    window_override_max_s: float = 3600.0


class SendLimitSettings(BridgeSettings):
    """Mail a stranger or a user can make us send (shared/send_limits.py): counted from
    mail.notices and admin.audit by every ingest replica (429 over a limit) and by the
    mailer (drops a notice over it). 0 turns a limit off."""

    send_limit_activation_per_recipient_hour: int = 3
    send_limit_activation_per_recipient_day: int = 10
    send_limit_simulation_per_recipient_hour: int = 6
    send_limit_per_shop_hour: int = 20


class ChatPlatformSettings(BridgeSettings):
    """The chat platform's API and webhooks: ingest receives, the fan-out sends."""

    platform_base_url: str = "http://127.0.0.1:8300"
    platform_app_key: str = "sandbox-app-key"
    platform_app_secret: SecretStr = dev_secret("platform_app_secret")
    platform_access_token: SecretStr = dev_secret("platform_access_token")
    webhook_secret: SecretStr = dev_secret("webhook_secret")
    chat_platform: Literal["tiktok", "generic"] = "tiktok"  # which adapter fan-out sends with
    # Per-shop access tokens (a Secret): "shop_id=token,shop_id=token". When set, only
    # these shops are served; platform_access_token stays the fallback when empty.
    platform_access_tokens: SecretStr = dev_secret("platform_access_tokens")
    platform_shop_ciphers: str = ""  # "shop_id=cipher,..." for cross-border shops
    platform_qps_per_api: float = 50.0  # the platform's documented default per app+shop
    # Connections (and requests in flight) per process to the platform; ~latency x rate.
    platform_max_connections: int = 64
    generic_platform_base_url: str = ""
    # The generic adapter (webhook route and sender) is off while this is empty: no default.
    generic_webhook_secret: SecretStr = dev_secret("generic_webhook_secret")
