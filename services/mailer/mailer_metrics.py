"""Mailer-specific metrics."""

from prometheus_client import Counter, Histogram

from shared.metrics import LATENCY_BUCKETS

DIGESTS_SENT = Counter("bridge_digests_sent_total", "Digest emails by final SMTP outcome.",
                       ["outcome"])
SEND_RETRIES = Counter("bridge_smtp_retries_total", "SMTP sends retried after a temporary failure.")
SEND_SECONDS = Histogram("bridge_smtp_send_seconds", "One SMTP transaction to the relay.",
                         buckets=LATENCY_BUCKETS)
