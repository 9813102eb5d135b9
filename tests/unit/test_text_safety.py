"""Body text keeps its tabs and line breaks and loses every other control character
(shared/text_safety.keep_tabs_and_lines), for the digest and the chat alike."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from mailer.render import clean_text
from shared.text_safety import keep_tabs_and_lines

CONTROLS = [chr(c) for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)]]


def test_tabs_and_line_feeds_are_kept() -> None:
    assert (
        keep_tabs_and_lines("Size:\tM\nColour:\tblue\n\nThanks")
        == "Size:\tM\nColour:\tblue\n\nThanks"
    )


def test_carriage_returns_are_line_breaks() -> None:
    assert keep_tabs_and_lines("one\r\ntwo\rthree\x00") == "one\ntwo\nthree"


def test_other_controls_are_removed() -> None:
    assert keep_tabs_and_lines("a\x00b\x07c\x0bd\x0ce\x1bf\x7fg\x85h\x9fi") == "abcdefghi"


def test_text_without_controls_is_returned_as_is() -> None:
    text = "Hello 👋🏽 \u202eevil\u202c \u2028 next"
    assert keep_tabs_and_lines(text) is text


@given(st.text(alphabet=st.one_of(st.sampled_from(CONTROLS), st.characters())))
def test_only_tab_and_line_feed_survive_among_controls(text: str) -> None:
    cleaned = keep_tabs_and_lines(text)
    assert all(c in "\t\n" for c in cleaned if unicodedata.category(c) == "Cc")
    # Nothing else is touched: the printable characters stay, in order.
    assert [c for c in cleaned if unicodedata.category(c) != "Cc"] == [
        c for c in text if unicodedata.category(c) != "Cc"
    ]
    assert cleaned.count("\n") == text.replace("\r\n", "\n").count("\n") + text.replace(
        "\r\n", ""
    ).count("\r")


@given(st.text(alphabet=st.one_of(st.sampled_from(CONTROLS), st.characters())))
def test_the_digest_and_the_chat_clean_text_alike(text: str) -> None:
    # The digest's clean_text is the same rule, trimmed at both ends.
    assert clean_text(text) == keep_tabs_and_lines(text).strip()
