"""Which time zone a shop's digests show message times in, and how a time is written. Pure.

A shop may name an IANA zone (``ShopSettings.time_zone``); otherwise its region's zone from
:data:`REGION_TIME_ZONES` applies, and UTC where the region is not listed. The consolidator
resolves the zone once per digest (:func:`digest_time_zone`) and the mailer writes each time
with the zone named (:func:`format_local_time`), so a seller never has to guess what
"14:05" means. The admin API validates a zone with :func:`is_time_zone`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "REGION_TIME_ZONES",
    "digest_time_zone",
    "format_local_time",
    "is_time_zone",
    "region_time_zone",
]

# Region code (the reply-domain region, ShopSettings.region) -> the zone its sellers most
# likely keep. Markets spanning several zones get the one of their largest seller base;
# a shop elsewhere sets its own zone.
REGION_TIME_ZONES: dict[str, str] = {
    "us": "America/Los_Angeles",
    "gb": "Europe/London",
    "uk": "Europe/London",
    "ie": "Europe/Dublin",
    "de": "Europe/Berlin",
    "fr": "Europe/Paris",
    "es": "Europe/Madrid",
    "it": "Europe/Rome",
    "mx": "America/Mexico_City",
    "br": "America/Sao_Paulo",
    "jp": "Asia/Tokyo",
    "id": "Asia/Jakarta",
    "my": "Asia/Kuala_Lumpur",
    "ph": "Asia/Manila",
    "sg": "Asia/Singapore",
    "th": "Asia/Bangkok",
    "vn": "Asia/Ho_Chi_Minh",
}
UTC_ZONE = "UTC"


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    """The IANA zones of this machine's database; not its files that are no zone of their
    own ("localtime", "Factory") nor a folder such as "America" (ZoneInfo raises on it)."""
    return frozenset(available_timezones()) - {"localtime", "Factory", "posixrules"}


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    if name not in _known_zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # a database changed under us
        return None


def is_time_zone(name: str) -> bool:
    """True when ``name`` is an IANA zone this machine's zone database knows."""
    return _zone(name) is not None


def region_time_zone(region: str) -> str:
    """The region's default zone; UTC for a region not in the table."""
    return REGION_TIME_ZONES.get(region.lower(), UTC_ZONE)


def digest_time_zone(region: str, time_zone: str = "") -> str:
    """The zone a digest shows times in: the shop's own when it is a known zone, else
    the region's."""
    return time_zone if is_time_zone(time_zone) else region_time_zone(region)


def _offset_label(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds() // 60)
    if minutes == 0:
        return "GMT"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"GMT{sign}{hours}" + (f":{rest:02d}" if rest else "")


def format_local_time(sent_at_ms: int, time_zone: str) -> str:
    """``02 Dec 2026, 14:05 GMT+7, Asia/Jakarta``: the time in the zone, with its offset
    at that moment and its name; ``"..., 14:05 UTC"`` for UTC or a zone this machine does
    not know. "" for no time."""
    if sent_at_ms <= 0:
        return ""
    zone = _zone(time_zone) if time_zone != UTC_ZONE else None
    if zone is None:
        moment = datetime.fromtimestamp(sent_at_ms / 1000, tz=ZoneInfo(UTC_ZONE))
        return moment.strftime("%d %b %Y, %H:%M UTC")
    moment = datetime.fromtimestamp(sent_at_ms / 1000, tz=zone)
    return moment.strftime("%d %b %Y, %H:%M") + f" {_offset_label(moment.utcoffset())}, {zone.key}"
