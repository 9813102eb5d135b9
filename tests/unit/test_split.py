"""split_for_chat: chat-sized parts, counted in UTF-16 units, never inside a grapheme."""

from __future__ import annotations

import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from reply_parser.split import split_for_chat, utf16_len
from shared.chat_platform.tiktok_messages import outgoing_text

GRAPHEMES = [
    "a",
    "b",
    "Z",
    "é",
    "e\u0301",
    "ñ",
    "字",
    "ภ",
    "ู",
    "가",
    " ",
    " ",
    "\n",
    "\n\n",
    ".",
    "!",
    "😀",
    "👍🏽",
    "👨\u200d👩\u200d👧\u200d👦",
    "🇬🇧",
    "🇯🇵",
    "🏳\ufe0f\u200d🌈",
    "a\u0308\u0301",
    "\u0915\u094d\u0937",
    "word",
    "sentence. ",
    "🧑🏿\u200d🚀",
]


def _grapheme_boundaries(text: str) -> set[int]:
    return {m.end() for m in regex.finditer(r"\X", text)} | {0}


def _assert_parts_rejoin(original: str, parts: list[str]) -> None:
    """Each part occurs in order in the original with only whitespace between parts."""
    position = 0
    for part in parts:
        index = original.find(part, position)
        assert index >= 0, part
        assert original[position:index].strip() == ""
        position = index + len(part)
    assert original[position:].strip() == ""


def test_short_reply_is_one_part() -> None:
    assert split_for_chat("  Hello there  ") == ["Hello there"]


def test_blank_reply_gives_no_parts() -> None:
    assert split_for_chat(" \n\t ") == []


def test_reply_longer_than_2000_chars_is_split_at_a_word() -> None:
    text = " ".join(["parcel"] * 500)  # 3,499 chars
    parts = split_for_chat(text)
    assert len(parts) == 2
    assert all(utf16_len(p) <= 2000 for p in parts)
    assert all(p.split(" ")[-1] == "parcel" and p.split(" ")[0] == "parcel" for p in parts)


def test_paragraph_break_preferred_over_word_break() -> None:
    first = "x" * 1500
    text = first + "\n\n" + "y " * 400
    assert split_for_chat(text)[0] == first


def test_sentence_end_preferred_over_word_break() -> None:
    text = ("word " * 300).strip() + ". " + ("more " * 200)
    parts = split_for_chat(text)
    assert parts[0].endswith(".")


def test_limit_is_counted_in_utf16_units_not_code_points() -> None:
    text = "😀" * 1500  # 1,500 code points, 3,000 UTF-16 units
    parts = split_for_chat(text)
    assert [utf16_len(p) for p in parts] == [2000, 1000]


def test_zwj_family_emoji_is_never_cut() -> None:
    family = "👨\u200d👩\u200d👧\u200d👦"  # 11 UTF-16 units
    parts = split_for_chat(family * 10, limit=30)
    assert all(p.replace(family, "") == "" for p in parts)


def test_single_word_longer_than_limit_is_hard_split_at_grapheme_boundary() -> None:
    text = "e\u0301" * 50
    parts = split_for_chat(text, limit=11)
    assert "".join(parts) == text
    assert all(not p.startswith("\u0301") for p in parts)
    assert all(utf16_len(p) <= 11 for p in parts)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(GRAPHEMES), max_size=400), st.integers(min_value=24, max_value=300))
def test_parts_rejoin_fit_and_respect_graphemes(pieces: list[str], limit: int) -> None:
    text = "".join(pieces)
    parts = split_for_chat(text, limit=limit)
    _assert_parts_rejoin(text, parts)
    # No part is empty or starts/ends with a whitespace-only grapheme cluster.
    for part in parts:
        clusters = regex.findall(r"\X", part)
        assert clusters and clusters[0].strip() and clusters[-1].strip()
    assert all(utf16_len(p) <= limit for p in parts)
    boundaries = _grapheme_boundaries(text)
    position = 0
    for part in parts:
        start = text.find(part, position)
        end = start + len(part)
        assert start in boundaries and end in boundaries, (part, text)
        position = end


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000), st.integers(min_value=40, max_value=2000))
def test_arbitrary_text_rejoins_and_fits(text: str, limit: int) -> None:
    parts = split_for_chat(text, limit=limit)
    _assert_parts_rejoin(text, parts)
    assert all(0 < utf16_len(p) <= limit for p in parts)


@settings(max_examples=50)
@given(
    st.lists(st.sampled_from(GRAPHEMES), min_size=1, max_size=60).map("".join), st.integers(1, 400)
)
def test_every_part_of_a_long_reply_is_a_sendable_chat_message(unit: str, times: int) -> None:
    text = unit * times
    # The split and the platform adapter read the one limit of the chat platform's contract.
    for part in split_for_chat(text):
        assert outgoing_text(part).msg_type == "TEXT"
