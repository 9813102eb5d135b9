"""Message times in the shop's zone, with the zone named; zones validated by name."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.chat_platform.emoticons import emoticon_name, emoticon_text
from shared.region_time import (
    REGION_TIME_ZONES,
    digest_time_zone,
    format_local_time,
    is_time_zone,
)

T0 = 1_764_070_000_000  # 2025-11-25 11:26:40 UTC
SUMMER = 1_751_371_200_000  # 2025-07-01 12:00:00 UTC


def test_time_shows_in_the_zone_with_its_offset_and_name() -> None:
    assert format_local_time(T0, "Asia/Jakarta") == "25 Nov 2025, 18:26 GMT+7, Asia/Jakarta"
    assert format_local_time(T0, "Asia/Kolkata") == "25 Nov 2025, 16:56 GMT+5:30, Asia/Kolkata"


def test_offset_follows_daylight_saving_at_the_message_time() -> None:
    assert format_local_time(T0, "Europe/London") == "25 Nov 2025, 11:26 GMT, Europe/London"
    assert format_local_time(SUMMER, "Europe/London") == "01 Jul 2025, 13:00 GMT+1, Europe/London"
    assert format_local_time(SUMMER, "America/Los_Angeles").endswith(
        "05:00 GMT-7, America/Los_Angeles"
    )


def test_utc_or_an_unknown_zone_shows_utc_and_no_time_shows_nothing() -> None:
    assert format_local_time(T0, "UTC") == "25 Nov 2025, 11:26 UTC"
    assert format_local_time(T0, "Mars/Olympus") == "25 Nov 2025, 11:26 UTC"
    assert format_local_time(0, "Asia/Jakarta") == ""


def test_the_shops_zone_wins_over_its_regions_and_an_invalid_one_falls_back() -> None:
    assert digest_time_zone("id") == "Asia/Jakarta"
    assert digest_time_zone("us", "Asia/Jakarta") == "Asia/Jakarta"
    assert digest_time_zone("gb", "Not/AZone") == "Europe/London"
    assert digest_time_zone("zz") == "UTC"


@pytest.mark.parametrize(
    "name",
    [
        "",
        " Asia/Jakarta",
        "../../etc/passwd",
        "/etc/localtime",
        "x" * 80,
        "America",  # a folder of the database: ZoneInfo raises IsADirectoryError on it
        "Asia",
        "localtime",
        "Factory",
        "right/UTC",  # leap-second clocks, ~27 s off
        "posix/Asia/Jakarta",
    ],
)
def test_a_name_that_is_not_an_iana_zone_is_refused(name: str) -> None:
    assert not is_time_zone(name)


def test_every_region_default_is_a_zone_this_machine_knows() -> None:
    assert all(is_time_zone(zone) for zone in REGION_TIME_ZONES.values())


@given(st.text(max_size=40))
def test_any_zone_name_renders_a_time_without_crashing(name: str) -> None:
    assert format_local_time(T0, name).startswith("25 Nov 2025, ")


def test_emoticon_codes_become_emoji_and_unknown_codes_their_bare_name() -> None:
    assert emoticon_text("[smile]") == "\U0001f642"
    assert emoticon_text("smile") == "\U0001f642"
    assert emoticon_text("[laughwithtears][notacode]") == "\U0001f602 notacode"
    assert emoticon_text("[a sentence in brackets]") == "[a sentence in brackets]"
    assert emoticon_name("[smile]") == "smile" and emoticon_name("[a][b]") == ""
