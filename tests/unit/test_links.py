"""strip_links: the buyer sees link texts, never addresses, in every form clients write them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reply_parser.links import strip_links


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("See the size guide<https://shop.example/size> first.", "See the size guide first."),
        ("See the size guide <https://shop.example/size> first.", "See the size guide first."),
        ("See the size guide [https://shop.example/size] first.", "See the size guide first."),
        ("See the size guide ( https://shop.example/size ) first.", "See the size guide first."),
        ("See the size guide (https://shop.example/size).", "See the size guide."),
        ("See [the size guide](https://shop.example/size) first.", "See the size guide first."),
        ("Track it here: https://track.example.com/abc123", "Track it here:"),
        ("Visit www.shop.example/sale today.", "Visit today."),
        ("Write to a@shop.example<mailto:a@shop.example>.", "Write to a@shop.example."),
        ("Amazon.com and shop.example stay words.", "Amazon.com and shop.example stay words."),
    ],
)
def test_the_link_text_stays_and_the_address_goes(text: str, expected: str) -> None:
    assert strip_links(text).text == expected


def test_a_line_that_held_only_an_address_goes_and_a_wrapped_stop_rejoins() -> None:
    text = "Tracking:\nhttps://track.example.com/abc\n\nand our policy\n<https://x.example/r>."
    assert strip_links(text).text == "Tracking:\n\nand our policy."


def test_removed_addresses_are_reported_for_the_seller_notice() -> None:
    result = strip_links("a<https://x.example/1> b https://y.example/2")
    assert result.removed == ("https://x.example/1", "https://y.example/2")
    assert strip_links("no links here").removed == ()


_WORDS = st.sampled_from(["see", "page", "Thanks.", "(note)", "[x]", "<b>", "size", ""])
_URLS = st.sampled_from(
    [
        "https://a.example/p?q=1",
        "http://b.example",
        "www.c.example/x",
        "<https://d.example/>",
        "[https://e.example]",
        "( https://f.example )",
    ]
)


@given(st.lists(st.one_of(_WORDS, _URLS), max_size=30), st.sampled_from([" ", "\n"]))
def test_no_address_survives_and_a_second_pass_changes_nothing(parts: list[str], sep: str) -> None:
    result = strip_links(sep.join(parts))
    for marker in ("https://", "http://", "www."):
        assert marker not in result.text
    assert strip_links(result.text).text == result.text


def test_a_megabyte_of_half_links_is_handled_in_linear_time() -> None:
    import time

    start = time.perf_counter()
    for unit in ("'https://", "(https://", "<https://", "[a](https://"):
        strip_links(unit * (1_000_000 // len(unit)))
    assert time.perf_counter() - start < 20
