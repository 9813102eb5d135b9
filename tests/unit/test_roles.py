"""The role x action matrix: every role against every action, allowed and refused."""

from __future__ import annotations

import pytest

from ingest.roles import ASSIGNABLE_ROLES, Action, is_allowed, refusal_reason
from shared.events import UserRole

EXPECTED = {
    # action: (main account, administrator, customer-service agent)
    Action.READ_SETTINGS: (True, True, True),
    Action.CHANGE_SETTINGS: (True, True, False),
    Action.LIST_USERS: (True, True, True),
    Action.ADD_USER: (True, True, False),
    Action.REMOVE_USER: (True, True, False),
    Action.RESEND_ACTIVATION: (True, True, False),
    Action.RUN_SIMULATION: (True, True, False),
    Action.READ_SIMULATION: (True, True, True),
}
ROLES = (UserRole.MAIN_ACCOUNT, UserRole.ADMINISTRATOR, UserRole.CS_AGENT)


def test_matrix_covers_every_action() -> None:
    assert set(EXPECTED) == set(Action)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role_index", range(3))
def test_each_role_is_allowed_or_refused_each_action_as_specified(
    action: Action, role_index: int
) -> None:
    assert is_allowed(ROLES[role_index], action) is EXPECTED[action][role_index]


@pytest.mark.parametrize("action", list(Action))
def test_unknown_role_may_do_nothing(action: Action) -> None:
    assert not is_allowed("owner", action)


def test_agent_refusal_to_change_settings_names_who_may() -> None:
    reason = refusal_reason(UserRole.CS_AGENT, Action.CHANGE_SETTINGS)
    assert "change notification settings" in reason and "administrators" in reason


def test_main_account_cannot_be_assigned_to_a_new_user() -> None:
    assert UserRole.MAIN_ACCOUNT not in ASSIGNABLE_ROLES
    assert ASSIGNABLE_ROLES == {UserRole.ADMINISTRATOR, UserRole.CS_AGENT}
