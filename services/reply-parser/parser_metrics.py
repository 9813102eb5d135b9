"""Reply-parser metrics."""

from prometheus_client import Counter

REPLIES_CLASSIFIED = Counter(
    "bridge_inbound_mail_total", "Inbound mails by classification.", ["class"]
)
# Delivery reports (bounces) naming one of our digests: "failed" (not delivered) or
# "delayed" (the relay still tries). A rising "failed" rate means sellers miss digests.
DIGESTS_BOUNCED = Counter(
    "bridge_digests_bounced_total", "Delivery reports about our digests, by kind.", ["kind"]
)
# Exported from the start (at 0), so dashboards and alerts see the series before a bounce.
for _kind in ("failed", "delayed"):
    DIGESTS_BOUNCED.labels(_kind)
