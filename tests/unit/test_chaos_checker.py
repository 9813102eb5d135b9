"""The chaos checker counts loss, duplication and reordering from what went in and what the
outside world received, and tells the documented duplicate window apart; beside it, the
mailers' own window figure is summed over every mailer process of the run."""

from __future__ import annotations

from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from devstack.chaos import OUTCOME_RECORD_METRIC, RESENDS_UNKNOWN_METRIC, MailerWindow
from devstack.chaos_checker import (
    Digest,
    ReplyMailed,
    buyer_text,
    check_digests,
    check_reply_parts,
    longest_stall,
    parse_digest,
    reply_words,
)


def digest(mid: str, *markers: tuple[str, int]) -> Digest:
    return Digest(mid, tuple(markers))


def test_every_message_once_in_order_counts_nothing() -> None:
    counts = check_digests(
        {"1": 3, "2": 1},
        [digest("<a>", ("1", 0), ("1", 1)), digest("<b>", ("2", 0)), digest("<c>", ("1", 2))],
    )
    assert (counts.lost, counts.duplicated, counts.reordered, counts.documented_window) == (
        0,
        0,
        0,
        0,
    )
    assert counts.delivered == 4 and not counts.failed


def test_a_message_in_no_digest_is_lost() -> None:
    counts = check_digests({"1": 3}, [digest("<a>", ("1", 0), ("1", 2))])
    assert counts.lost == 1 and counts.examples["lost"] == ["bm-1-1"] and counts.failed


def test_the_same_message_id_again_is_the_documented_window_not_a_duplicate() -> None:
    counts = check_digests(
        {"1": 2}, [digest("<a>", ("1", 0), ("1", 1)), digest("<a>", ("1", 0), ("1", 1))]
    )
    assert counts.documented_window == 1 and counts.duplicated == 0 and not counts.failed


def test_a_message_in_two_digests_with_different_ids_is_duplicated() -> None:
    counts = check_digests({"1": 2}, [digest("<a>", ("1", 0)), digest("<b>", ("1", 0), ("1", 1))])
    assert counts.duplicated == 1 and counts.documented_window == 0 and counts.failed


def test_a_message_after_a_later_one_of_its_conversation_is_reordered() -> None:
    counts = check_digests({"1": 3}, [digest("<a>", ("1", 0), ("1", 2)), digest("<b>", ("1", 1))])
    assert counts.reordered == 1 and counts.lost == 0 and counts.failed


def test_a_message_posted_but_never_acknowledged_may_appear_but_is_not_owed() -> None:
    counts = check_digests({"1": 1}, [digest("<a>", ("1", 0), ("1", 1))], posted={"1": 3})
    assert counts.unexpected == 0 and counts.lost == 0 and not counts.failed
    assert check_digests({"1": 1}, [digest("<a>", ("1", 0), ("1", 1))]).unexpected == 1


def test_mails_without_markers_are_not_digests_of_the_run() -> None:
    counts = check_digests({"1": 1}, [digest("<n>"), digest("<a>", ("1", 0))])
    assert counts.delivered == 1 and not counts.failed


@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=5),
    st.randoms(use_true_random=False),
)
def test_any_split_into_digests_in_order_is_clean(sizes: list[int], rnd) -> None:  # type: ignore[no-untyped-def]
    sent = {str(c): n for c, n in enumerate(sizes)}
    mails = []
    for conv, n in sent.items():
        seq = 0
        while seq < n:
            take = rnd.randint(1, n - seq)
            mails.append(digest(f"<{conv}.{seq}>", *((conv, s) for s in range(seq, seq + take))))
            seq += take
    rnd.shuffle(mails)  # conversations interleave; each one's digests keep their order
    mails.sort(key=lambda d: (d.markers[0][0], d.markers[0][1]))
    counts = check_digests(sent, mails)
    assert not counts.failed and counts.delivered == sum(sizes)


def test_parse_digest_reads_markers_from_the_plain_body_in_order() -> None:
    msg = EmailMessage()
    msg["Message-ID"] = "<d1@x>"
    msg.set_content(
        "\n".join(buyer_text("42", s) for s in (0, 1, 7)) + "\n" + "x" * 300, cte="quoted-printable"
    )
    parsed = parse_digest(bytes(msg))
    assert parsed.message_id == "<d1@x>"
    assert parsed.markers == (("42", 0), ("42", 1), ("42", 7))


def parts_of(conv: str, reply: int, words: int, size: int) -> list[str]:
    w = reply_words(conv, reply, words)
    return [" ".join(w[i : i + size]) for i in range(0, words, size)]


def test_reply_parts_all_delivered_once_in_order_count_nothing() -> None:
    views = {"9": parts_of("9", 0, 10, 4) + parts_of("9", 1, 3, 4)}
    counts = check_reply_parts([ReplyMailed("9", 0, 10), ReplyMailed("9", 1, 3)], views)
    assert (counts.lost, counts.duplicated, counts.reordered) == (0, 0, 0)
    assert counts.delivered == 4


def test_a_missing_reply_part_is_lost_and_a_repeated_one_duplicated() -> None:
    parts = parts_of("9", 0, 12, 4)
    counts = check_reply_parts([ReplyMailed("9", 0, 12)], {"9": [parts[0], parts[0], parts[2]]})
    assert counts.lost == 1 and counts.duplicated == 1 and counts.reordered == 0


def test_a_part_after_a_later_part_is_reordered() -> None:
    parts = parts_of("9", 0, 12, 4)
    counts = check_reply_parts([ReplyMailed("9", 0, 12)], {"9": [parts[1], parts[0], parts[2]]})
    assert counts.reordered == 1 and counts.lost == 0


def test_a_second_reply_before_the_first_is_reordered() -> None:
    views = {"9": parts_of("9", 1, 3, 4) + parts_of("9", 0, 3, 4)}
    counts = check_reply_parts([ReplyMailed("9", 0, 3), ReplyMailed("9", 1, 3)], views)
    assert counts.reordered == 1


def test_longest_stall_counts_only_while_something_is_owed() -> None:
    samples = [
        (0.0, 0, 0),
        (5.0, 0, 0),
        (6.0, 0, 3),
        (9.0, 0, 3),
        (10.0, 2, 1),
        (11.0, 3, 0),
        (30.0, 3, 0),
    ]
    assert longest_stall(samples) == 3.0


def test_mailer_window_sums_the_histograms_of_every_scraped_mailer_process() -> None:
    def process(observations: list[float], resends: int) -> str:
        registry = CollectorRegistry()
        hist = Histogram(
            OUTCOME_RECORD_METRIC, "", buckets=(0.005, 0.01, 0.05, 1), registry=registry
        )
        for seconds in observations:
            hist.observe(seconds)
        Counter(RESENDS_UNKNOWN_METRIC.removesuffix("_total"), "", registry=registry).inc(resends)
        return generate_latest(registry).decode()

    window = MailerWindow()
    window.add(process([0.002] * 98, resends=0))  # killed mid-run
    window.add(process([0.03, 0.5], resends=2))  # the restarted one, at the end
    assert (window.records, window.resends_unknown, window.scrapes) == (100, 2, 2)
    assert window.bound(0.5) == 0.005
    assert window.bound(0.99) == 0.05
    assert window.bound(1.0) == 1.0
    assert "n=100" in window.line() and "max<=1000ms" in window.line()
