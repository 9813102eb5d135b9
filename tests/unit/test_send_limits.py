"""The send-limit rule: sliding windows per recipient and per shop, the same answer for every
observer of the same sends, whatever order it read them in."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from shared.config import SendLimitSettings
from shared.events import MailNotice, NoticeKind
from shared.send_limits import (
    DAY_MS,
    HOUR_MS,
    MailSend,
    SendWindow,
    limits_from,
    send_of,
)

LIMITS = limits_from(SendLimitSettings())  # 3/h and 10/day activation per recipient, 20/h per shop
T0 = 1_800_000_000_000


def activation(n: int, at: int, *, shop: str = "s1", to: str = "eve@evil.test") -> MailSend:
    return MailSend(f"activation-{n}", NoticeKind.ACTIVATION, shop, to, at)


def test_the_fourth_activation_mail_to_one_recipient_within_an_hour_is_over_the_limit() -> None:
    window = SendWindow(LIMITS)
    for n in range(3):
        assert window.over_limit("activation", "s1", "eve@evil.test", T0 + n) is None
        window.observe(activation(n, T0 + n))
    over = window.over_limit("activation", "s2", "EVE@evil.test ", T0 + 10)
    assert over is not None and over.limit.scope == "recipient"
    assert "3 activation mails per recipient per hour" in over.reason
    assert over.retry_after_s == 3600  # the first one leaves the window an hour after it
    # an hour after the first, one more is allowed
    assert window.over_limit("activation", "s1", "eve@evil.test", T0 + HOUR_MS) is None


def test_ten_a_day_hold_even_when_spread_under_the_hourly_limit() -> None:
    window = SendWindow(LIMITS)
    for n in range(10):
        window.observe(activation(n, T0 + n * 2 * HOUR_MS))  # one every two hours
    at = T0 + 20 * HOUR_MS
    over = window.over_limit("activation", "s1", "eve@evil.test", at)
    assert over is not None and over.limit.window_ms == DAY_MS
    assert window.over_limit("activation", "s1", "eve@evil.test", T0 + DAY_MS) is None


def test_the_shop_limit_counts_every_kind_and_other_recipients() -> None:
    window = SendWindow(LIMITS)
    for n in range(20):
        window.observe(
            MailSend(f"n{n}", NoticeKind.SENDER_REJECTED, "s1", f"u{n}@shop.test", T0 + n)
        )
    over = window.over_limit("activation", "s1", "new@shop.test", T0 + 100)
    assert over is not None and over.limit.scope == "shop"
    assert window.over_limit("activation", "s2", "new@shop.test", T0 + 100) is None


def test_sign_in_links_anyone_may_ask_for_never_spend_the_shops_budget() -> None:
    window = SendWindow(LIMITS)
    # A stranger asks for sign-in links for seven users, three each: all that the
    # per-recipient limits allow, and more than the shop's hourly budget of 20.
    for n in range(21):
        to = f"u{n % 7}@shop.test"
        assert window.over_limit(NoticeKind.SIGN_IN, "s1", to, T0 + n) is None
        window.observe(MailSend(f"sign-in-{n}", NoticeKind.SIGN_IN, "s1", to, T0 + n))
    # The shop's activation mails and notices still go.
    assert window.over_limit("activation", "s1", "new@shop.test", T0 + 100) is None
    assert window.over_limit(NoticeKind.SENDER_REJECTED, "s1", "m@shop.test", T0 + 100) is None
    over = window.over_limit(NoticeKind.SIGN_IN, "s1", "u0@shop.test", T0 + 100)
    assert over is not None and over.limit.scope == "recipient"


def test_a_send_never_counts_itself_and_a_repeat_is_counted_once() -> None:
    window = SendWindow(LIMITS)
    sends = [activation(n, T0 + n) for n in range(4)]
    verdicts = [window.admit(s) for s in sends]
    assert [v is None for v in verdicts] == [True, True, True, False]
    assert window.admit(sends[0]) is None  # a replay of an admitted send: still admitted
    assert len(window) == 3


def test_forget_uncounts_a_send_that_was_never_published() -> None:
    window = SendWindow(LIMITS)
    for n in range(3):
        window.observe(activation(n, T0 + n))
    window.forget("activation-2")
    assert window.over_limit("activation", "s1", "eve@evil.test", T0 + 5) is None


def test_prune_forgets_only_sends_older_than_the_longest_window() -> None:
    window = SendWindow(LIMITS)
    window.observe(activation(1, T0))
    window.observe(activation(2, T0 + DAY_MS))
    assert window.prune(T0 + DAY_MS + 1) == 1
    assert len(window) == 1


def test_a_notice_counts_by_its_own_time_and_lower_cased_recipient() -> None:
    notice = MailNotice(
        notice_id="activation-x",
        kind="activation",
        to_address="Eve@Evil.test",
        subject="s",
        text="t",
        shop_id="s1",
        created_at_ms=T0,
    )
    window = SendWindow(LIMITS)
    for n in range(3):
        window.observe(activation(n, T0 - n - 1, to="eve@evil.test"))
    send = send_of(notice)
    assert window.over_limit(send.kind, send.shop_id, send.recipient, send.at_ms) is not None


def test_a_limit_of_zero_is_off() -> None:
    window = SendWindow(
        limits_from(
            SendLimitSettings(
                send_limit_activation_per_recipient_hour=0,
                send_limit_activation_per_recipient_day=0,
                send_limit_per_shop_hour=0,
            )
        )
    )
    for n in range(50):
        window.observe(activation(n, T0 + n))
    assert window.over_limit("activation", "s1", "eve@evil.test", T0 + 100) is None


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, 3 * HOUR_MS)),
        min_size=1,
        max_size=80,
    ),
    st.randoms(use_true_random=False),
)
def test_sends_admitted_one_by_one_in_any_order_never_exceed_a_limit_in_any_window(
    specs: list[tuple[int, int, int]], rnd: random.Random
) -> None:
    sends = [
        MailSend(f"id{i}", NoticeKind.ACTIVATION, f"s{shop}", f"r{rcpt}@x.test", T0 + at)
        for i, (shop, rcpt, at) in enumerate(specs)
    ]
    rnd.shuffle(sends)  # the order a mailer handles them in; clocks need not agree with it
    window = SendWindow(LIMITS)
    ok = [s for s in sends if window.admit(s) is None]
    assert ok  # the first is always admitted
    for s in ok:
        in_hour = [o for o in ok if s.at_ms - HOUR_MS < o.at_ms <= s.at_ms]
        assert sum(o.recipient == s.recipient for o in in_hour) <= 3
        assert sum(o.shop_id == s.shop_id for o in in_hour) <= 20
