"""A shop's notification settings: validate a change, build the new record. Pure.

Every field is checked before anything is built, and all errors are reported
together, so a request with one bad field changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from ingest.admin_directory import authorized_senders, main_account
from ingest.roles import handles_customer_service
from shared.errors import BridgeError
from shared.events import DestinationKind, ShopSettings, ShopUser, UserStatus
from shared.notification_window import WindowPolicy, destination_kind_of
from shared.region_time import digest_time_zone, is_time_zone
from shared.tokens import reply_domain_prefix

REGION_RE = re.compile(r"^[a-z][a-z0-9]{1,9}$")
_EMAIL_RE = re.compile(
    r"^[^@\s<>,;\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$"
)
SETTINGS_FIELDS = (
    "alerts_enabled",
    "destination_email",
    "destination_kind",
    "region",
    "shop_name",
    "time_zone",
)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str


class InvalidRequest(BridgeError):
    """One or more fields are wrong; nothing was written."""

    def __init__(self, errors: list[FieldError], status: int = 422) -> None:
        super().__init__("; ".join(f"{e.field}: {e.reason}" for e in errors))
        self.errors = errors
        self.status = status


def normalize_email(value: object, field: str) -> str:
    """A lower-cased address, or :class:`InvalidRequest` naming ``field``."""
    if not isinstance(value, str):
        raise InvalidRequest([FieldError(field, "expected an email address string")])
    email = value.strip().lower()
    if len(email) > 254 or not _EMAIL_RE.match(email):
        raise InvalidRequest([FieldError(field, f"{value!r} is not an email address")])
    return email


def initial_settings(
    shop_id: str, main_email: str, *, shop_name: str, region: str, now_ms: int, actor: str
) -> ShopSettings:
    """A newly onboarded shop: digests to the main account's inbox, a mailbox, and alerts
    off until one of the shop's managers turns them on (the shop opts in to mail)."""
    return ShopSettings(
        shop_id=shop_id,
        alerts_enabled=False,
        destination_email=main_email,
        destination_kind=DestinationKind.MAILBOX,
        region=region,
        shop_name=shop_name,
        authorized_senders=(),
        updated_at_ms=now_ms,
        updated_by=actor,
    )


def apply_settings_change(
    current: ShopSettings, change: dict[str, Any], users: list[ShopUser], *, now_ms: int, actor: str
) -> ShopSettings:
    """The settings after ``change``; :class:`InvalidRequest` lists every bad field."""
    errors: list[FieldError] = []
    updates: dict[str, Any] = {}
    for name in change:
        if name not in SETTINGS_FIELDS:
            settable = ", ".join(SETTINGS_FIELDS)
            errors.append(FieldError(name, f"unknown field; settable: {settable}"))
    if "alerts_enabled" in change:
        if isinstance(change["alerts_enabled"], bool):
            updates["alerts_enabled"] = change["alerts_enabled"]
        else:
            errors.append(FieldError("alerts_enabled", "expected true or false"))
    if "destination_kind" in change:
        kind = change["destination_kind"]
        if isinstance(kind, str) and kind in {k.value for k in DestinationKind}:
            updates["destination_kind"] = DestinationKind(kind).value
        else:
            errors.append(
                FieldError(
                    "destination_kind",
                    "expected one of " + ", ".join(k.value for k in DestinationKind),
                )
            )
    if "region" in change:
        region = change["region"]
        if isinstance(region, str) and REGION_RE.match(region):
            updates["region"] = region
        else:
            errors.append(
                FieldError(
                    "region",
                    "expected a region code such as 'us' or 'gb' "
                    "(lower-case letters/digits; the reply domain becomes "
                    f"{reply_domain_prefix('<region>')})",
                )
            )
    if "shop_name" in change:
        name = change["shop_name"]
        if isinstance(name, str) and len(name) <= 200 and name.isprintable():
            updates["shop_name"] = name.strip()
        else:
            errors.append(FieldError("shop_name", "expected printable text of at most 200 chars"))
    if "time_zone" in change:
        zone = change["time_zone"]
        if zone is None or zone == "" or (isinstance(zone, str) and is_time_zone(zone)):
            updates["time_zone"] = zone or ""  # "" / null: the region's zone
        else:
            errors.append(
                FieldError(
                    "time_zone",
                    "expected an IANA time zone such as 'Asia/Jakarta' or 'Europe/London', "
                    'or "" for the region\'s zone',
                )
            )
    if "destination_email" in change:
        try:
            updates["destination_email"] = destination_for(change["destination_email"], users)
        except InvalidRequest as exc:
            errors.extend(exc.errors)
    if errors:
        raise InvalidRequest(errors)
    return replace(
        current,
        **updates,
        authorized_senders=authorized_senders(users),
        updated_at_ms=now_ms,
        updated_by=actor,
    )


def destination_for(value: object, users: list[ShopUser]) -> str:
    """The inbox digests go to: the main account's by default (null or ""), or the address
    of any activated user of this shop whose role handles customer service."""
    main = main_account(users)
    if value is None or value == "":
        if main is None:
            raise InvalidRequest([FieldError("destination_email", "the shop has no main account")])
        return main.email
    email = normalize_email(value, "destination_email")
    if main is not None and email == main.email:
        return email
    user = next((u for u in users if u.email == email), None)
    if user is None or not handles_customer_service(user.role):
        raise InvalidRequest(
            [
                FieldError(
                    "destination_email",
                    f"{email} is not a user of this shop: add it as a user (administrator or "
                    "customer-service agent) and activate it first",
                )
            ]
        )
    if user.status != UserStatus.ACTIVE:
        raise InvalidRequest(
            [
                FieldError(
                    "destination_email",
                    f"{email} is registered but not activated yet: activate it first (the "
                    "activation email was sent to it)",
                )
            ]
        )
    return email


def settings_document(
    settings: ShopSettings, users: list[ShopUser], window_policy: WindowPolicy
) -> dict[str, Any]:
    """The settings as the API shows them, with what the destination kind implies: the
    digest window is the one the consolidator applies to this shop."""
    kind = destination_kind_of(settings.destination_kind)
    window_minutes = window_policy.for_shop(settings).quiet_ms / 60_000
    main = main_account(users)
    inline = (
        settings.inline_images_allowed
        if settings.inline_images_allowed is not None
        else kind is DestinationKind.SALESFORCE
    )
    return {
        "shop_id": settings.shop_id,
        "shop_name": settings.shop_name,
        "alerts_enabled": settings.alerts_enabled,
        "destination_email": settings.destination_email,
        "destination_is_main_account": main is not None
        and settings.destination_email == main.email,
        "destination_kind": kind.value,
        "digest_window_minutes": (
            int(window_minutes) if window_minutes.is_integer() else window_minutes
        ),
        "inbound_inline_images_allowed": inline,
        "region": settings.region,
        "reply_domain_prefix": reply_domain_prefix(settings.region),
        # The zone digests show times in: the shop's own, else its region's.
        "time_zone": digest_time_zone(settings.region, settings.time_zone),
        "authorized_senders": list(settings.authorized_senders),
        "updated_at_ms": settings.updated_at_ms,
        "updated_by": settings.updated_by,
    }
