"""The agent notices offsets of chat.events that its consumer skipped."""

from consolidator.offset_continuity import OffsetContinuity


def test_consecutive_offsets_from_the_committed_one_miss_nothing() -> None:
    seen = OffsetContinuity()
    seen.reset({3: 10})
    assert [seen.missing_before(3, o) for o in range(10, 15)] == [None] * 5
    assert seen.expected(3) == 15


def test_a_forward_jump_reports_the_skipped_range_once() -> None:
    seen = OffsetContinuity()
    seen.reset({5: 444})
    for o in range(444, 496):
        assert seen.missing_before(5, o) is None
    assert seen.missing_before(5, 507) == (496, 507)
    assert seen.missing_before(5, 508) is None


def test_a_first_record_past_the_committed_offset_is_a_skip() -> None:
    seen = OffsetContinuity()
    seen.reset({1: 100})
    assert seen.missing_before(1, 130) == (100, 130)


def test_a_redelivery_after_a_seek_back_is_not_a_skip_and_does_not_rewind() -> None:
    seen = OffsetContinuity()
    seen.reset({0: 600})
    for o in range(600, 650):
        seen.missing_before(0, o)
    assert seen.missing_before(0, 605) is None  # seeked back to the committed offset
    assert seen.expected(0) == 650
    assert seen.missing_before(0, 650) is None


def test_a_partition_without_a_known_start_takes_its_first_offset() -> None:
    seen = OffsetContinuity()
    assert seen.missing_before(2, 42) is None
    assert seen.missing_before(2, 44) == (43, 44)
    seen.reset({})
    assert seen.missing_before(2, 7) is None  # a new assignment forgets the old one
