"""The fan-out's decision table: skip, mark, check, and what fails with a part. Pure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fanout import delivery_decision as decision
from fanout.delivery_decision import FirstStep, plan_reply
from shared.events import DeliveryStatus


def test_a_reply_whose_parts_all_have_final_records_is_skipped() -> None:
    assert plan_reply([0, 1, 2], {0, 1, 2}, marker_at_ms=None).first is FirstStep.SKIP
    assert plan_reply([0, 1], {0, 1}, marker_at_ms=123).first is FirstStep.SKIP


def test_a_first_attempt_writes_the_marker_before_posting() -> None:
    plan = plan_reply([2, 0, 1], set(), marker_at_ms=None)
    assert plan.first is FirstStep.WRITE_MARKER and plan.pending == (0, 1, 2)


def test_a_replay_with_a_marker_checks_the_platform_first() -> None:
    plan = plan_reply([0, 1, 2], {0}, marker_at_ms=1_700_000_000_000)
    assert plan.first is FirstStep.CHECK_PLATFORM and plan.pending == (1, 2)


@given(
    indices=st.sets(st.integers(0, 50), max_size=20),
    delivered=st.sets(st.integers(0, 50), max_size=20),
    marker=st.none() | st.integers(0, 2**41),
)
def test_pending_is_every_part_without_a_final_record_in_order(
    indices: set[int], delivered: set[int], marker: int | None
) -> None:
    plan = plan_reply(list(indices), delivered, marker)
    assert plan.pending == tuple(sorted(indices - delivered))
    assert (plan.first is FirstStep.SKIP) == (not plan.pending)


def test_the_platform_is_asked_from_a_little_before_the_marker() -> None:
    assert decision.look_since_s(1_700_000_000_999) == 1_700_000_000 - 5


@given(present=st.integers(0, 30), recorded=st.integers(0, 30))
def test_only_parts_beyond_the_recorded_ones_are_counted_as_found(
    present: int, recorded: int
) -> None:
    assert decision.found_beyond_recorded(present, recorded) == max(0, present - recorded)


def test_a_post_found_after_an_ambiguous_failure_is_already_delivered() -> None:
    assert decision.posted_status("m-1") is DeliveryStatus.DELIVERED
    assert decision.posted_status(None) is DeliveryStatus.ALREADY_DELIVERED


def test_a_refused_part_and_an_exhausted_part_are_told_apart() -> None:
    refused = decision.part_not_posted(3, "text too long", 1, exhausted=False)
    assert (refused.reason, refused.reason_class) == (
        "chat platform refused part 3: text too long",
        "platform_permanent",
    )
    tired = decision.part_not_posted(3, "503", 12, exhausted=True)
    assert (tired.reason, tired.reason_class, tired.attempts) == (
        "part 3 not accepted after 12 attempts: 503",
        "platform_exhausted",
        12,
    )
    picture = decision.part_not_posted(1, "bad image", 1, exhausted=False, picture=True)
    assert picture.reason == "chat platform refused the picture of part 1: bad image"
    assert (
        decision.part_not_posted(1, "429", 4, exhausted=True, picture=True).reason
        == "picture of part 1 not uploaded after 4 attempts: 429"
    )


@given(pending=st.lists(st.integers(0, 100), min_size=1, max_size=15, unique=True), data=st.data())
def test_a_failed_part_holds_back_every_later_part(pending: list[int], data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(pending) - 1))
    records = decision.failed_records(pending, at, "refused", 2)
    assert [r[0] for r in records] == pending[at:]
    assert records[0] == (pending[at], "refused", 2)
    assert all(r[1] == f"part {pending[at]} failed: refused" and r[2] == 0 for r in records[1:])
