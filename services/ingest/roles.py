"""Who may do what in the admin API: the role x action matrix, declared once. Pure.

Managers (the main account and administrators) change notification settings and
manage users; customer-service agents read settings, users and simulation status
but change nothing. Every refusal carries a reason a person can act on.
"""

from __future__ import annotations

from enum import StrEnum

from shared.events import UserRole


class Action(StrEnum):
    READ_SETTINGS = "read_settings"
    CHANGE_SETTINGS = "change_settings"
    LIST_USERS = "list_users"
    ADD_USER = "add_user"
    REMOVE_USER = "remove_user"
    RESEND_ACTIVATION = "resend_activation"
    RUN_SIMULATION = "run_simulation"
    READ_SIMULATION = "read_simulation"


MANAGERS = frozenset({UserRole.MAIN_ACCOUNT, UserRole.ADMINISTRATOR})
_EVERYONE = frozenset(UserRole)
# Roles that handle customer service (the marketplace gives it to all three): an activated
# user with one of them may be the shop's destination inbox.
CUSTOMER_SERVICE = frozenset(UserRole)

PERMISSIONS: dict[Action, frozenset[UserRole]] = {
    Action.READ_SETTINGS: _EVERYONE,
    Action.CHANGE_SETTINGS: MANAGERS,
    Action.LIST_USERS: _EVERYONE,
    Action.ADD_USER: MANAGERS,
    Action.REMOVE_USER: MANAGERS,
    Action.RESEND_ACTIVATION: MANAGERS,
    # A simulation sends mail to the shop's inbox: part of setting the shop up.
    Action.RUN_SIMULATION: MANAGERS,
    Action.READ_SIMULATION: _EVERYONE,
}

_WHAT = {
    Action.CHANGE_SETTINGS: "change notification settings",
    Action.ADD_USER: "add users",
    Action.REMOVE_USER: "remove users",
    Action.RESEND_ACTIVATION: "resend activation links",
    Action.RUN_SIMULATION: "run a conversation simulation",
}

# Roles a manager may give to a new user: a shop has exactly one main account,
# created when the operator onboards the shop.
ASSIGNABLE_ROLES = frozenset({UserRole.ADMINISTRATOR, UserRole.CS_AGENT})


def handles_customer_service(role: str) -> bool:
    """True when ``role`` answers buyers, so its address may receive the digests."""
    try:
        return UserRole(role) in CUSTOMER_SERVICE
    except ValueError:
        return False


def is_allowed(role: str, action: Action) -> bool:
    """True when ``role`` may perform ``action``; unknown roles may do nothing."""
    try:
        return UserRole(role) in PERMISSIONS[action]
    except ValueError:
        return False


def refusal_reason(role: str, action: Action) -> str:
    """Why ``role`` may not perform ``action`` (for the 403 body)."""
    what = _WHAT.get(action, action.value.replace("_", " "))
    return (
        f"role {role!r} may not {what}: only the shop's main account and administrators "
        f"may; ask one of them"
    )
