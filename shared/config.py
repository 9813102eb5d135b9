"""Configuration from the environment, read once into a typed settings object.

Defaults run the whole system on one machine; production sets the variables
in the Kubernetes ConfigMap/Secrets (see deploy/k8s). ``KAFKA_BOOTSTRAP`` is
read without the ``BRIDGE_`` prefix so a real Kafka is one variable away.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGE_", extra="ignore")

    # Kafka
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP", "BRIDGE_KAFKA_BOOTSTRAP")
    )
    # Tansu refuses InitProducerId; turn on for a real Kafka.
    kafka_idempotence: bool = False
    kafka_session_timeout_ms: int = 6000
    kafka_request_timeout_ms: int = 10000

    # Marketplace and mail identity
    marketplace_name: str = "TikTok Shop"
    reply_domain_base: str = "bridge.localhost"  # reply address: <token>@chat-seller-<region>.<base>
    notices_from: str = "notifications@bridge.localhost"  # sender of activation and other notices
    message_id_domain: str = "digest.bridge.localhost"
    chat_deep_link_base: str = "http://127.0.0.1:8300/chat"
    settings_link_base: str = "http://127.0.0.1:8000/settings"

    # Reply-address tokens: "kid:secret,kid:secret"; the first is used to sign.
    token_keys: SecretStr = SecretStr("1:dev-only-token-key-change-me")
    token_ttl_days: int = 90

    # Consolidation windows (seconds)
    window_mailbox_s: float = 900.0
    window_helpdesk_s: float = 300.0
    max_wait_s: float = 3600.0
    tick_interval_s: float = 0.25

    # Outbound SMTP relay
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_pool_size: int = 4
    smtp_timeout_s: float = 15.0
    smtp_max_attempts: int = 8
    smtp_backoff_base_s: float = 0.5
    smtp_backoff_max_s: float = 60.0
    default_destination_email: str = "seller@shop.localhost"
    # DKIM: signing is on when a key file (e.g. a mounted Secret) is given
    dkim_selector: str = "bridge"
    dkim_domain: str = "bridge.localhost"
    dkim_key_file: str = ""

    # Inbound SMTP (reply-parser front)
    inbound_smtp_host: str = "127.0.0.1"
    inbound_smtp_port: int = 2525
    inbound_max_bytes: int = 50 * 1024 * 1024

    # Chat platform
    platform_base_url: str = "http://127.0.0.1:8300"
    platform_app_key: str = "sandbox-app-key"
    platform_app_secret: SecretStr = SecretStr("sandbox-app-secret")
    platform_access_token: SecretStr = SecretStr("sandbox-access-token")
    webhook_secret: SecretStr = SecretStr("sandbox-app-secret")
    chat_message_limit: int = 2000

    # HTTP ports (every service serves /metrics and /healthz)
    ingest_port: int = 8000
    consolidator_port: int = 8101
    mailer_port: int = 8102
    reply_parser_port: int = 8103
    fanout_port: int = 8104
    reply_front_port: int = 8105
    sandbox_port: int = 8300
    mail_sink_smtp_port: int = 8025
    mail_sink_http_port: int = 8301
    http_host: str = "127.0.0.1"

    # Consolidator state store: "memory://" or "rocksdb://" (disk, production)
    consolidator_store: str = "memory://"
    consolidator_data_dir: str = "var/consolidator"

    log_level: str = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
