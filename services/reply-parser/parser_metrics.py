"""Reply-parser metrics."""

from prometheus_client import Counter

REPLIES_CLASSIFIED = Counter("bridge_inbound_mail_total", "Inbound mails by classification.",
                             ["class"])
