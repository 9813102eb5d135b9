"""The shop's time zone: set through the settings change (422 naming the field when it is
not an IANA zone), reported as the zone applied, carried on the digest by the consolidator."""

from __future__ import annotations

import pytest

from consolidator.debounce import ConversationState, add_buyer_message, release_digest
from ingest.settings_change import InvalidRequest, apply_settings_change, settings_document
from shared.events import ChatContent, ChatEvent, ChatEventKind, ShopSettings
from shared.notification_window import WindowPolicy

SHOP = ShopSettings("s1", destination_email="a@shop.test", region="id")


def change(**fields: object) -> ShopSettings:
    return apply_settings_change(SHOP, dict(fields), [], now_ms=1, actor="t")


def test_time_zone_is_set_by_iana_name_and_cleared_to_the_regions() -> None:
    assert change(time_zone="Europe/Berlin").time_zone == "Europe/Berlin"
    assert change(time_zone="").time_zone == ""
    assert change(time_zone=None).time_zone == ""


@pytest.mark.parametrize("bad", ["Mars/Olympus", "GMT+7 ", "../../etc/passwd", 7, ["UTC"]])
def test_a_time_zone_that_is_not_an_iana_name_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(InvalidRequest) as refused:
        change(time_zone=bad)
    assert [e.field for e in refused.value.errors] == ["time_zone"]
    assert refused.value.status == 422


def test_settings_report_the_zone_digests_use() -> None:
    policy = WindowPolicy()
    assert settings_document(SHOP, [], policy)["time_zone"] == "Asia/Jakarta"
    shop = change(time_zone="Europe/Berlin")
    assert settings_document(shop, [], policy)["time_zone"] == "Europe/Berlin"


@pytest.mark.parametrize(
    ("shop", "zone"),
    [
        (SHOP, "Asia/Jakarta"),
        (ShopSettings("s1", region="gb", time_zone="Asia/Tokyo"), "Asia/Tokyo"),
    ],
)
def test_the_consolidator_carries_the_shops_zone_on_the_digest(
    shop: ShopSettings, zone: str
) -> None:
    state = ConversationState()
    event = ChatEvent(
        ChatEventKind.BUYER_MESSAGE, "s1", "c1", "m1", 1_000, content=ChatContent(text="hi")
    )
    windows = WindowPolicy().for_shop(shop)
    add_buyer_message(state, event, windows)
    digest = release_digest(state, shop, "c1", 10**12)
    assert digest is not None and digest.time_zone == zone
