"""The poison-mail bookkeeping: which records a restarted parser parses one at a time, and
how many deaths it counts for each; the watchdog's verdicts."""

from __future__ import annotations

import time

from reply_parser.parse_guard import AttemptLog, ParseWatchdog


def _log(found: dict[int, tuple[int, int, int]]) -> AttemptLog:
    return AttemptLog(None, "g", "t", found)  # type: ignore[arg-type]  # no writes here


def test_without_markers_every_batch_is_parsed_normally() -> None:
    log = _log({})
    assert not log.suspect(0, 10, 20)
    assert log.deaths_before(0, 10) == 0


def test_a_batch_marker_makes_its_records_parsed_one_at_a_time_with_no_deaths_yet() -> None:
    log = _log({0: (10, 14, 1)})
    assert log.suspect(0, 8, 12)
    assert [log.deaths_before(0, o) for o in (8, 9, 10, 14)] == [None, None, 0, 0]


def test_a_single_record_marker_counts_the_deaths_of_that_record() -> None:
    log = _log({3: (12, 12, 2)})
    assert log.suspect(3, 10, 15)
    assert [log.deaths_before(3, o) for o in (11, 12)] == [None, 2]
    assert log.deaths_before(3, 13) == 0  # past it: the marker is forgotten
    assert not log.suspect(3, 12, 12)


def test_a_batch_after_the_markers_is_not_suspect_and_clears_them() -> None:
    log = _log({0: (10, 14, 1), 1: (5, 5, 1)})
    assert not log.suspect(0, 15, 30)
    assert not log.suspect(0, 10, 14)  # forgotten once passed
    assert log.suspect(1, 5, 9)  # other partitions keep theirs


def test_the_watchdog_names_a_stuck_parse_and_nothing_when_idle() -> None:
    watchdog = ParseWatchdog(stuck_after_s=0.05)
    assert watchdog.breach() is None
    with watchdog.parsing("mail.inbound/0@7"):
        assert watchdog.breach() is None
        time.sleep(0.1)
        reason = watchdog.breach()
    assert reason is not None and "mail.inbound/0@7" in reason and "still running" in reason
    assert watchdog.breach() is None


def test_the_watchdog_names_a_parse_that_grew_the_process_past_its_limit() -> None:
    watchdog = ParseWatchdog(stuck_after_s=60, max_rss_bytes=1)
    with watchdog.parsing("mail.inbound/2@9"):
        reason = watchdog.breach()
    assert reason is not None and "process grew" in reason and "mail.inbound/2@9" in reason
