"""The mailer's settings: the relay, DKIM, the digest's links, batching and the ledger.

What belongs here: knobs only the mailer reads. Reply-address tokens (the reply front
verifies them) and the send limits (the ingest counts them too) come from the shared
groups in ``shared/config.py``. Same ``BRIDGE_`` environment prefix; the figures behind
the defaults are in docs/performance.md.
"""

from __future__ import annotations

from pydantic import SecretStr

from mailer.outcome_ledger import DEFAULT_RETENTION_MS
from shared.config import (
    ChatPlatformSettings,
    LedgerSettings,
    ReplyTokenSettings,
    SendLimitSettings,
    dev_secret,
)
from shared.topics import DAY_MS


class MailerSettings(ChatPlatformSettings, ReplyTokenSettings, SendLimitSettings, LedgerSettings):
    """Knobs only the mailer reads; one another service reads too belongs in a group
    of ``shared/config.py`` (add the group to the bases here)."""

    mailer_port: int = 8102
    notices_from: str = "notifications@bridge.localhost"  # sender of activation and other notices
    # The chat platform's own image hosts (comma-separated; ".example.com" also matches its
    # subdomains): only pictures there are shown inline in a digest, any other becomes a
    # link to the chat (a remote image elsewhere is a tracking pixel for its owner).
    # Locally the sandbox serves images from 127.0.0.1.
    digest_image_hosts: str = "127.0.0.1"
    # Where a digest's List-Unsubscribe and footer send a shop manager: the console's
    # notification settings page (it asks the seller to sign in when needed).
    settings_link_template: str = "http://127.0.0.1:8000/console/shops/{shop_id}/settings"

    # Card lookups (mailer/card_lookup.py): product and order cards show what the chat
    # platform's product and order APIs say about their ids. Off: cards show their ids.
    card_lookups: bool = True
    # The most a digest waits for its lookups in all; past it, cards show their ids.
    card_lookup_budget_s: float = 1.5
    # Looked-up products and orders kept (per shop and id, all shops together), and how long.
    card_cache_entries: int = 50_000
    card_cache_ttl_s: float = 600.0
    # An id the platform did not know, or a shop whose lookups failed, timed out or were
    # rate limited, is not asked again for this long (a 429's Retry-After when longer):
    # a slow or down API costs one budget, not one per digest.
    card_failure_ttl_s: float = 60.0

    # Outbound SMTP relay
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: SecretStr = dev_secret("smtp_password")
    smtp_pool_size: int = 4
    smtp_timeout_s: float = 15.0
    # How long the reply to the end of DATA is waited for: RFC 5321 s.4.5.3.2.6's 10
    # minutes. A relay slow to answer a mail it already took must not turn into a resend
    # (a duplicate); smtp_timeout_s stays the limit for every other command.
    smtp_data_timeout_s: float = 600.0
    # On SIGTERM the mailer stops taking digests and lets the SMTP tries on the wire get
    # their reply and be recorded, for at most this long; a try still waiting then is cut
    # and its mail resent by the next owner (same Message-ID). Shorter than the data
    # timeout on purpose: a healthy relay answers in seconds, and a 10-minute wait per
    # pod would hold every rollout during a stalled relay. deploy/k8s gives the mailer's
    # pods terminationGracePeriodSeconds above it (tests/deploy checks).
    mailer_shutdown_drain_s: float = 45.0
    # A digest whose newest record is another process's ``attempting`` mark, younger than
    # this, is left to that process: its send may still be on the wire (an owner the group
    # dropped while it was sending, or one slow to let go at a rebalance), and its outcome
    # is waited for until the mark is this old; only then is the mail sent again. Covers a
    # relay transaction and its outcome record; the price is that the digests a killed
    # mailer was sending reach the seller up to this much later.
    mailer_attempt_lease_s: float = 30.0
    # At a rebalance the mailer lets the SMTP tries on the wire of a revoked partition get
    # their reply and be recorded before letting it go, for at most this long; the group is
    # told to wait for it this long plus a margin (the consumer's rebalance timeout), so
    # the next owner never starts while this one is still sending.
    mailer_revoke_drain_s: float = 30.0
    smtp_max_attempts: int = 8
    smtp_backoff_base_s: float = 0.5
    smtp_backoff_max_s: float = 60.0
    # DKIM: signing is on when a key file (e.g. a mounted Secret) is given
    dkim_selector: str = "bridge"
    dkim_domain: str = "bridge.localhost"
    dkim_key_file: str = ""

    # Consumer group on mail.digests/mail.notices; replicas of one deployment share it.
    mailer_group: str = "bridge-mailer"
    # Records per batch; each batch costs one fetch, one outcome catch-up and one commit,
    # overlapped with the previous batch's sends (mailer/batch_pipeline.py). Small, because
    # a rebalance waits for both batches in flight (cut off at the revoke timeout, 60 s).
    mailer_batch_records: int = 64
    # Digests in flight at once (composed, being recorded or sent). Above the SMTP pool
    # size so Kafka round trips overlap with sending; the pool still caps SMTP sessions.
    # Also the most that a kill -9 can make send twice (see app.py).
    mailer_concurrency: int = 32
    # Producer linger for the two outcome records per digest (attempting, then sent): up
    # to 2x it added to a digest's latency (nothing next to mail delivery), and the records
    # of many digests in flight share a produce request.
    mailer_producer_linger_ms: int = 10
    # A temporary SMTP failure (4xx, relay down) is retried, with backoff capped at
    # smtp_backoff_max_s, until smtp_max_attempts tries AND this long have passed; only
    # then is the digest dead-lettered. Long, like an MTA queue: an outage is waited out.
    smtp_retry_window_s: float = 4 * 3600.0
    # Relay TLS: a CA bundle for a private relay certificate; verification stays on
    # unless explicitly turned off (only ever for a loopback test relay).
    smtp_tls_ca_file: str = ""
    smtp_validate_certs: bool = True
    # Implicit TLS (port 465) instead of STARTTLS.
    smtp_use_tls: bool = False
    # VERP: when set, each digest's envelope sender is bounce+<digest id>@<this domain>,
    # so a bounce names the digest (and so the shop) that bounced; point the domain's MX at
    # your own bounce processor (the reply front accepts reply addresses only). Unset, the
    # envelope sender is the reply address: delivery reports come back to the reply front
    # and the parser names the digest from the headers they return
    # (reply-parser/bounce_report.py, bridge_digests_bounced_total).
    bounce_domain: str = ""
    # Helper processes that compose and DKIM-sign digests (mailer/compose_process.py),
    # so the event loop keeps only Kafka and SMTP; 0 composes and signs on the loop (as
    # the loop does while a helper that died restarts). Each helper adds up to one core
    # of use; deploy/k8s sizes the pod's CPU limit to match.
    mailer_compose_processes: int = 1
    # How long an outcome is remembered (and then tombstoned on mail.outcomes) after its
    # newest record: by default as long as a replay could still bring its digest back
    # (see docs/exactly-once.md). Shorter saves memory and lets a replay older than
    # it resend (never lose) a digest.
    mailer_outcome_retention_days: float = DEFAULT_RETENTION_MS / DAY_MS
    # Write tombstones for forgotten ids so the compacted topic stops growing too.
    mailer_outcome_tombstones: bool = True
