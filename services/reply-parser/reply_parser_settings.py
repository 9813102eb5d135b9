"""The reply-parser's settings, for both of its processes (the SMTP front and the parser).

What belongs here: knobs only the reply-parser reads. Reply-address tokens (the mailer
signs them) come from ``shared/config.py``. Same ``BRIDGE_`` environment prefix.
"""

from __future__ import annotations

from shared.config import ReplyTokenSettings
from shared.events import MailAuthPolicy


class ReplyParserSettings(ReplyTokenSettings):
    """Knobs only the reply-parser (front and parser) reads; one another service reads
    too belongs in a group of ``shared/config.py`` (add the group to the bases here)."""

    reply_parser_port: int = 8103
    reply_front_port: int = 8105

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
