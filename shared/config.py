"""Configuration from the environment, read once into a typed settings object.

Defaults run the whole system on one machine; production sets the variables
in the Kubernetes ConfigMap/Secrets (see deploy/k8s). The default secrets are
development values: a service refuses to start with them unless ``dev_mode`` is
on (shared/secrets_policy.py). ``KAFKA_BOOTSTRAP`` is read without the
``BRIDGE_`` prefix so a real Kafka is one variable away.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import MailAuthPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BRIDGE_", extra="ignore")

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
    notices_from: str = "notifications@bridge.localhost"  # sender of activation and other notices
    message_id_domain: str = "digest.bridge.localhost"
    chat_deep_link_base: str = "http://127.0.0.1:8300/chat"
    # The chat platform's own image hosts (comma-separated; ".example.com" also matches its
    # subdomains): only pictures there are shown inline in a digest, any other becomes a
    # link to the chat (a remote image elsewhere is a tracking pixel for its owner).
    # Locally the sandbox serves images from 127.0.0.1.
    digest_image_hosts: str = "127.0.0.1"
    # Where a digest's List-Unsubscribe and footer send a shop manager: the seller centre's
    # notification settings in production; the admin API's settings resource locally.
    settings_link_template: str = "http://127.0.0.1:8000/admin/shops/{shop_id}/settings"

    # Reply-address tokens: "kid:secret,kid:secret"; the first is used to sign.
    token_keys: SecretStr = SecretStr("1:dev-only-token-key-change-me")
    token_ttl_days: int = 90

    # Notification windows (seconds): the consolidator's debounce and the simulation.
    # The consolidator's own timing knobs: consolidator/consolidator_settings.py.
    window_mailbox_s: float = 900.0
    window_helpdesk_s: float = 300.0

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
    # What one client may hold of the front: connections open at once (in total and per
    # client IP), a session's wall-clock time, and a minimum average data rate after a grace
    # period (a client dripping a byte every few seconds is cut off, 421 4.4.2).
    inbound_max_conversations_per_mail: int = 3  # each is one copy of the mail on Kafka
    inbound_max_connections: int = 500
    inbound_max_connections_per_ip: int = 20
    inbound_session_max_s: float = 900.0
    inbound_min_bytes_per_s: float = 256.0
    inbound_rate_grace_s: float = 30.0

    # Inbound reply content policy (reply-parser). Destination kinds whose buyers get the
    # seller's inline pictures as chat images unless ShopSettings.inline_images_allowed says
    # otherwise (comma-separated DestinationKind values; the reference allows Salesforce).
    inline_images_default_kinds: str = "salesforce"
    chat_image_max_bytes: int = 10 * 1024 * 1024  # the platform's image upload limit
    reply_record_budget_bytes: int = 960 * 1024  # one chat.replies record, under Kafka's 1 MB
    # Inbound authentication: the policy a shop without its own (ShopSettings.mail_auth_policy)
    # gets, for mailbox and for helpdesk destinations. Both default to an aligned DKIM or SPF
    # pass of the registered sender's domain: every supported helpdesk can sign for the
    # shop's domain (docs/setup-*.md), and a weaker default would let anyone who knows a
    # seller's address answer buyers as the seller. Authentication-Results authserv-ids of
    # our own MX to trust (comma-separated; empty = trust none and evaluate DKIM/SPF/DMARC
    # here), DNS timeout for those checks, the name server they ask ("ip[:port]"; empty =
    # the system's resolvers).
    inbound_auth_policy: MailAuthPolicy = "aligned_pass"
    inbound_auth_policy_helpdesk: MailAuthPolicy = "aligned_pass"
    trusted_authserv_ids: str = ""
    auth_dns_timeout_s: float = 2.0
    auth_dns_server: str = ""
    # A reply whose authentication met DNS trouble is checked again (mail.inbound.retry) with
    # backoff, at most this many times in all, then dead-lettered and the shop told.
    auth_retry_attempts: int = 12
    auth_retry_base_s: float = 30.0
    auth_retry_max_s: float = 240.0
    # Loop brakes: delivered replies per conversation, sender_rejected notices per shop.
    reply_rate_limit: int = 30
    reply_rate_window_s: float = 3600.0
    rejection_notice_limit: int = 5
    # sender_rejected (authenticated senders' refusals) and held_as_automated (registered
    # senders' mail) notices share one budget: at most this many per (shop, sender) per
    # window; rejection_notice_limit counts per (shop, sender domain).
    rejection_notice_per_sender_limit: int = 1
    # Malformed-MIME limits: a mail beyond them is dead-lettered with the reason.
    mime_max_depth: int = 20
    mime_max_parts: int = 500
    mime_max_decoded_bytes: int = 60 * 1024 * 1024
    parse_time_budget_s: float = 5.0
    # Header limits checked on the raw bytes before any decoding (decoding costs grow with
    # the square of a header's size): the block, one field, fields, "=?" encoded words.
    mime_max_header_block_bytes: int = 128 * 1024
    mime_max_header_bytes: int = 16 * 1024
    mime_max_header_fields: int = 1000
    mime_max_encoded_words: int = 500
    # Content-* fields of every part (their structured parse costs the most per byte).
    mime_max_content_header_bytes: int = 4 * 1024
    mime_max_content_params: int = 100
    # Poison mail: a record the parser process died on this many times is dead-lettered on
    # the next start instead of parsed again. A parse still running after parser_stuck_after_s,
    # or (when > 0) a process grown past parser_max_rss_mb while parsing, ends the process so
    # the orchestrator restarts it: neither can be interrupted from inside the parse.
    parser_max_attempts: int = 2
    parser_stuck_after_s: float = 60.0
    parser_max_rss_mb: int = 0
    # Another group (empty: the parser's own) or input topic only to isolate a test or canary.
    parser_group: str = ""
    parser_inbound_topic: str = "mail.inbound"

    # Chat platform
    platform_base_url: str = "http://127.0.0.1:8300"
    platform_app_key: str = "sandbox-app-key"
    platform_app_secret: SecretStr = SecretStr("sandbox-app-secret")
    platform_access_token: SecretStr = SecretStr("sandbox-access-token")
    webhook_secret: SecretStr = SecretStr("sandbox-app-secret")
    chat_platform: Literal["tiktok", "generic"] = "tiktok"  # which adapter fan-out sends with
    # Per-shop access tokens (a Secret): "shop_id=token,shop_id=token". When set, only
    # these shops are served; platform_access_token stays the fallback when empty.
    platform_access_tokens: SecretStr = SecretStr("")
    platform_shop_ciphers: str = ""  # "shop_id=cipher,..." for cross-border shops
    platform_qps_per_api: float = 50.0  # the platform's documented default per app+shop
    # Connections (and requests in flight) per process to the platform; ~latency x rate.
    platform_max_connections: int = 64
    generic_platform_base_url: str = ""
    # The generic adapter (webhook route and sender) is off while this is empty: no default.
    generic_webhook_secret: SecretStr = SecretStr("")

    # Ingest hardening
    ingest_max_body_bytes: int = 256 * 1024
    ingest_max_inflight: int = 2000  # Kafka writes awaiting ack before answering 503
    ingest_kafka_timeout_s: float = 2.5  # the platform wants an answer within 3 s
    ingest_dedup_capacity: int = 200_000  # recent message ids remembered per process

    # Fan-out
    fanout_max_attempts: int = 12
    fanout_backoff_base_s: float = 0.2
    fanout_backoff_max_s: float = 30.0
    fanout_mark_read: bool = True
    fanout_group: str = "bridge-fanout"
    fanout_replies_topic: str = "chat.replies"  # another name only to isolate a test or canary

    # Admin API (ingest): bearer-token keys "kid:secret,..." (first signs), the operator's
    # token for onboarding shops, API-token lifetime, where activation links point.
    admin_token_keys: SecretStr = SecretStr("1:dev-only-admin-key-change-me")
    admin_operator_token: SecretStr = SecretStr("dev-only-operator-token")
    admin_token_ttl_days: int = 30
    activation_link_base: str = "http://127.0.0.1:8000/admin/activate"
    # "sandbox": simulated buyer messages go through the platform sandbox's buyer endpoint
    # (the whole loop, chat included); "direct": published on chat.events by the ingest.
    simulation_mode: Literal["sandbox", "direct"] = "sandbox"
    # Mail a stranger or a user can make us send (shared/send_limits.py): counted from
    # mail.notices and admin.audit by every ingest replica (429 over a limit) and by the
    # mailer (drops a notice over it). 0 turns a limit off.
    send_limit_activation_per_recipient_hour: int = 3
    send_limit_activation_per_recipient_day: int = 10
    send_limit_simulation_per_recipient_hour: int = 6
    send_limit_per_shop_hour: int = 20

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

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()  # type: ignore[call-arg]  # every field has a default
