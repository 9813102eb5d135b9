"""The admin directory (held packed) answers with the records it was given: a stale record
arriving on the tail after a newer local write does not undo it, removing a shop's last
user forgets the shop, and a bad record is skipped."""

from __future__ import annotations

from dataclasses import replace

from ingest.admin_directory import AdminDirectory
from shared.codec import encode
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus


def user(updated_at_ms: int, status: str = UserStatus.PENDING) -> ShopUser:
    return ShopUser(
        shop_id="s1",
        email="a@s1.example",
        role=UserRole.MAIN_ACCOUNT,
        status=status,
        updated_at_ms=updated_at_ms,
    )


def test_a_stale_user_record_on_the_tail_does_not_undo_a_newer_local_write() -> None:
    directory = AdminDirectory()
    directory.put_user(user(2000, UserStatus.ACTIVE))
    directory.apply_user_record(b"s1:a@s1.example", encode(user(1000)))
    assert directory.user("s1", "A@s1.example ") == user(2000, UserStatus.ACTIVE)
    assert directory.shop_exists("s1") and directory.count_shops() == 1


def test_a_record_older_than_a_removal_here_does_not_bring_the_user_back() -> None:
    # The Kafka leg caught it: a resend's record read back after the removal was applied
    # listed the removed user again until the tombstone came through.
    directory = AdminDirectory()
    directory.put_user(user(1000))
    directory.put_user(agent := replace(user(2000), email="b@s1.example", role=UserRole.CS_AGENT))
    directory.drop_user("s1", agent.email, at_ms=3000)
    directory.apply_user_record(b"s1:b@s1.example", encode(agent))  # the resend, late
    assert directory.user("s1", agent.email) is None
    directory.apply_user_record(b"s1:b@s1.example", None)  # its tombstone, read back
    again = replace(agent, updated_at_ms=3000)  # added again, even within the same ms
    directory.put_user(again)
    assert directory.user("s1", agent.email) == again
    later = replace(agent, updated_at_ms=4000)
    directory.apply_user_record(b"s1:b@s1.example", encode(later))
    assert directory.user("s1", agent.email) == later


def test_a_stale_settings_record_does_not_undo_newer_settings() -> None:
    directory = AdminDirectory()
    directory.put_settings(ShopSettings(shop_id="s1", shop_name="New", updated_at_ms=2000))
    directory.apply_settings_record(
        b"s1", encode(ShopSettings(shop_id="s1", shop_name="Old", updated_at_ms=1000))
    )
    found = directory.settings("s1")
    assert found is not None and found.shop_name == "New"


def test_removing_the_last_user_forgets_the_shop() -> None:
    directory = AdminDirectory()
    directory.apply_user_record(b"s1:a@s1.example", encode(user(1000)))
    directory.apply_user_record(b"s1:a@s1.example", None)
    assert directory.users_of("s1") == [] and not directory.shop_exists("s1")
    assert directory.count_shops() == 0


def test_a_bad_user_record_is_skipped_and_the_user_kept() -> None:
    directory = AdminDirectory()
    directory.put_user(user(1000))
    directory.apply_user_record(b"s1:a@s1.example", b'{"shop_id":"s1","email":7,"role":"x"}')
    assert directory.user("s1", "a@s1.example") == user(1000)


def test_a_shop_is_listed_while_it_has_a_main_account() -> None:
    directory = AdminDirectory()
    directory.put_user(user(1000))
    agent = ShopUser(shop_id="s1", email="b@s1.example", role=UserRole.CS_AGENT)
    directory.put_user(agent)
    assert directory.shop_ids() == ["s1"] and directory.shop_exists("s1")
    demoted = ShopUser(
        shop_id="s1", email="a@s1.example", role=UserRole.ADMINISTRATOR, updated_at_ms=2000
    )
    directory.put_user(demoted)
    assert directory.shop_ids() == [] and not directory.shop_exists("s1")
    directory.put_user(user(3000))
    directory.drop_user("s1", "a@s1.example")
    assert directory.shop_ids() == [] and directory.users_of("s1") == [agent]


def main_of(shop: str) -> ShopUser:
    return ShopUser(shop_id=shop, email=f"a@{shop}.example", role=UserRole.MAIN_ACCOUNT)


def test_shop_listing_pages_in_id_order_and_follows_onboarding_and_removal() -> None:
    directory = AdminDirectory()
    for shop in ("s3", "s1", "s2", "s4"):
        directory.put_user(main_of(shop))
    assert directory.shop_ids() == ["s1", "s2", "s3", "s4"]
    assert directory.shop_ids("s1", 2) == ["s2", "s3"]
    assert directory.shop_ids("s4", 2) == [] and directory.shop_ids("", 0) == []
    directory.drop_user("s2", main_of("s2").email)
    directory.put_user(main_of("s0"))
    assert directory.shop_ids("", 10) == ["s0", "s1", "s3", "s4"]
