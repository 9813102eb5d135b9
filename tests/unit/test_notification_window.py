"""The notification window rule (shared/notification_window.py), and that the consolidator,
the simulation and the settings API all apply it alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consolidator.consolidation import ChatRecord, Consolidation
from consolidator.deadline_index import DeadlineIndex
from consolidator.debounce import state_header
from ingest.settings_change import settings_document
from ingest.simulation import SimulationTrace, simulation_steps
from shared.config import NotificationWindowSettings
from shared.events import ChatContent, ChatEvent, ChatEventKind, DestinationKind, ShopSettings
from shared.notification_window import (
    WindowPolicy,
    Windows,
    destination_kind_of,
    digest_deadline,
)

MIN = 60_000
POLICY = WindowPolicy(mailbox_s=900, helpdesk_s=300, max_wait_s=3600)
HELPDESKS = [k for k in DestinationKind if k.is_helpdesk]


def test_mailbox_waits_15_minutes_and_helpdesks_5() -> None:
    assert POLICY.for_shop(ShopSettings("s1")).quiet_ms == 15 * MIN
    for kind in (*HELPDESKS, "some_new_desk"):
        shop = ShopSettings(shop_id="s1", destination_kind=kind)
        assert POLICY.for_shop(shop).quiet_ms == 5 * MIN, kind


def test_shop_override_is_clamped_to_sane_bounds() -> None:
    assert POLICY.for_shop(ShopSettings("s1", window_override_s=120)).quiet_ms == 2 * MIN
    assert POLICY.for_shop(ShopSettings("s1", window_override_s=1)).quiet_ms == 1 * MIN
    assert POLICY.for_shop(ShopSettings("s1", window_override_s=10**6)).quiet_ms == 60 * MIN


def test_no_window_is_longer_than_the_max_wait() -> None:
    short = WindowPolicy(mailbox_s=900, helpdesk_s=300, max_wait_s=600, max_override_s=3600)
    assert short.for_shop(ShopSettings("s1")).quiet_ms == 10 * MIN
    assert short.for_shop(ShopSettings("s1", window_override_s=3000)).quiet_ms == 10 * MIN


def test_policy_is_read_from_the_settings() -> None:
    cfg = NotificationWindowSettings(
        window_mailbox_s=20,
        window_helpdesk_s=7,
        max_wait_s=100,
        window_override_min_s=2,
        window_override_max_s=50,
    )
    assert WindowPolicy.from_settings(cfg) == WindowPolicy(20, 7, 100, 2, 50)


def test_deadline_is_quiet_after_the_last_message_capped_at_max_wait() -> None:
    w = Windows(quiet_ms=15 * MIN, max_wait_ms=60 * MIN)
    assert digest_deadline(0, 10 * MIN, w) == 25 * MIN
    assert digest_deadline(0, 50 * MIN, w) == 60 * MIN


policies = st.builds(
    lambda mailbox, helpdesk, max_wait, lo, span: WindowPolicy(
        mailbox, helpdesk, max_wait, lo, lo + span
    ),
    st.integers(1, 10_000),
    st.integers(1, 10_000),
    st.integers(1, 10_000),
    st.integers(1, 5_000),
    st.integers(0, 5_000),
)
kinds = st.one_of(st.sampled_from(list(DestinationKind)), st.text(max_size=20))
overrides = st.one_of(st.none(), st.integers(-(10**9), 10**9))


def windows_of(policy: WindowPolicy, kind: str, override: int | None) -> Windows:
    return policy.for_shop(ShopSettings("s1", destination_kind=kind, window_override_s=override))


@given(policies, kinds, overrides)
def test_every_destination_kind_gets_a_window_within_the_bounds(
    policy: WindowPolicy, kind: str, override: int | None
) -> None:
    windows = windows_of(policy, kind, override)
    assert windows.max_wait_ms == int(policy.max_wait_s * 1000)
    assert 0 < windows.quiet_ms <= windows.max_wait_ms
    if override is not None:
        low = min(policy.min_override_s, policy.max_wait_s)
        assert int(low * 1000) <= windows.quiet_ms <= int(policy.max_override_s * 1000)
    elif destination_kind_of(kind).is_helpdesk:
        assert windows.quiet_ms == int(min(policy.helpdesk_s, policy.max_wait_s) * 1000)
    else:
        assert windows.quiet_ms == int(min(policy.mailbox_s, policy.max_wait_s) * 1000)


@given(
    policies, kinds, overrides, st.integers(0, 10**12), st.lists(st.integers(0, 10**7), max_size=20)
)
def test_the_deadline_never_passes_the_max_wait_after_the_first_message(
    policy: WindowPolicy, kind: str, override: int | None, first: int, gaps: list[int]
) -> None:
    windows = windows_of(policy, kind, override)
    last = first + sum(gaps)
    due = digest_deadline(first, last, windows)
    assert due <= first + windows.max_wait_ms
    assert due <= last + windows.quiet_ms
    assert due == last + windows.quiet_ms or due == first + windows.max_wait_ms


# --- the three callers agree ---------------------------------------------------------------

AGREEMENT_POLICY = WindowPolicy(
    mailbox_s=900, helpdesk_s=300, max_wait_s=3600, min_override_s=60, max_override_s=1800
)
AGREEMENT_SHOPS = [
    ShopSettings("s1", destination_email="a@shop.test"),
    *[ShopSettings("s1", destination_email="a@shop.test", destination_kind=k) for k in HELPDESKS],
    ShopSettings("s1", destination_email="a@shop.test", window_override_s=5),  # below bounds
    ShopSettings("s1", destination_email="a@shop.test", window_override_s=7200),  # above
    ShopSettings(
        "s1", destination_email="a@shop.test", destination_kind="zendesk", window_override_s=600
    ),
]


@pytest.mark.parametrize(
    "shop", AGREEMENT_SHOPS, ids=lambda s: f"{s.destination_kind}-{s.window_override_s}"
)
def test_simulation_settings_api_and_consolidator_agree_on_the_window(shop: ShopSettings) -> None:
    arrived = 1_700_000_000_000
    event = ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id="s1",
        conversation_id="sim-1",
        message_id="m1",
        sent_at_ms=arrived,
        buyer_name="Simulated buyer",
        content=ChatContent(text="hi"),
        received_at_ms=arrived,
    )
    # The consolidator's deadline for that message.
    engine = Consolidation(AGREEMENT_POLICY, lambda _: shop, lambda _k, _p: None, DeadlineIndex())
    result = engine.apply_batch([ChatRecord(b"s1:sim-1", 0, event)])
    state = result.writes[b"s1:sim-1"][1]
    assert state is not None
    consolidator_due = state_header(state)[1]
    # The simulation's "due" step.
    trace = SimulationTrace(shop_id="s1", started_at_ms=arrived, buyer_message=event)
    step = simulation_steps(trace, shop, now_ms=arrived, windows=AGREEMENT_POLICY.for_shop(shop))[1]
    assert step.state == "pending"
    # The settings API's reported window.
    reported = settings_document(shop, [], AGREEMENT_POLICY)["digest_window_minutes"]

    assert step.at_ms == consolidator_due
    assert arrived + round(reported * MIN) == consolidator_due
    assert f"due {(consolidator_due - arrived) / 1000:g} s" in step.detail
