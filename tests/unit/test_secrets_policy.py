"""The one rule for which secrets a service may start with (shared/secrets_policy.py)."""

from __future__ import annotations

import secrets
import string

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from consolidator.consolidator_settings import ConsolidatorSettings
from fanout.fanout_settings import FanoutSettings
from ingest.admin_signing import parse_signing_keys
from ingest.ingest_settings import IngestSettings
from mailer.mailer_settings import MailerSettings
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.chat_platform.from_settings import CHAT_PLATFORM_SECRETS, WEBHOOK_SECRETS
from shared.config import DEV_SECRETS
from shared.secrets_policy import (
    MIN_KEY_BYTES,
    PUBLISHED,
    REPLY_TOKEN_KEYS,
    Origin,
    SecretSetting,
    key_weakness,
    refuse_weak_secrets,
    secret_field_names,
    setting_weakness,
    weak_secrets,
)

URLSAFE = string.ascii_letters + string.digits + "-_"
ADMIN_RING = SecretSetting("admin_token_keys", Origin.GENERATED, ring=parse_signing_keys)


def strong() -> str:
    return secrets.token_urlsafe(48)


SERVICE_SETTINGS: tuple[type[BaseSettings], ...] = (
    IngestSettings,
    ConsolidatorSettings,
    MailerSettings,
    ReplyParserSettings,
    FanoutSettings,
)


class EverySecret(IngestSettings, MailerSettings, ReplyParserSettings):
    """Settings holding every service's secrets, to check the policy across them."""


def cfg(**values: object) -> EverySecret:
    return EverySecret(**{"dev_mode": False, **values})  # type: ignore[arg-type]


def test_the_secret_settings_are_the_secretstr_fields() -> None:
    assert set(secret_field_names()) == {
        "token_keys",
        "smtp_password",
        "platform_app_secret",
        "platform_access_token",
        "webhook_secret",
        "platform_access_tokens",
        "generic_webhook_secret",
        "admin_token_keys",
        "admin_operator_token",
    }


def test_every_secret_of_every_service_is_listed_with_its_published_default() -> None:
    """The policy knows every published value only if each service's SecretStr fields are
    in DEV_SECRETS, with the default the service really has."""
    found: dict[str, str] = {}
    for settings in SERVICE_SETTINGS:
        for name, info in settings.model_fields.items():
            if info.annotation is SecretStr:
                found[name] = info.default.get_secret_value()
    assert found == DEV_SECRETS


@given(
    st.text(alphabet=URLSAFE, min_size=MIN_KEY_BYTES, max_size=200).filter(
        lambda s: len(set(s)) >= 8
    )
)
def test_random_looking_text_of_32_bytes_or_more_is_a_strong_key(key: str) -> None:
    assert key_weakness(key.encode(), Origin.GENERATED) == ""


@given(st.text(alphabet=URLSAFE, min_size=1, max_size=MIN_KEY_BYTES - 1))
def test_a_key_under_32_bytes_is_weak_and_the_reason_gives_its_length(key: str) -> None:
    assume(key.encode() not in PUBLISHED)  # a published default is named as that instead
    assert (
        key_weakness(key.encode(), Origin.GENERATED)
        == f"{len(key)} bytes, at least {MIN_KEY_BYTES} required"
    )


def test_every_published_default_is_weak_even_for_an_issued_credential() -> None:
    assert b"sandbox-app-secret" in PUBLISHED and b"dev-only-admin-key-change-me" in PUBLISHED
    for value in PUBLISHED:
        assert key_weakness(value, Origin.ISSUED) == "a published default"
        assert key_weakness(value, Origin.GENERATED) == "a published default"


def test_a_long_placeholder_is_not_random_enough() -> None:
    assert key_weakness(b"changeme" * 8, Origin.GENERATED) == "a placeholder, not random"
    assert key_weakness(b"0" * 64, Origin.GENERATED) == "a placeholder, not random"


def test_issued_credentials_keep_their_issuers_format_but_not_empty() -> None:
    assert key_weakness(b"abc123", Origin.ISSUED) == ""
    assert key_weakness(b"", Origin.ISSUED) == "empty"


def test_key_rings_are_checked_key_by_key() -> None:
    ring = f"3:{strong()},2:too-short,1:dev-only-admin-key-change-me"
    assert setting_weakness(ADMIN_RING, ring) == [
        f"key 2: 9 bytes, at least {MIN_KEY_BYTES} required",
        "key 1: a published default",
    ]
    assert setting_weakness(REPLY_TOKEN_KEYS, f"2:{strong()},1:{strong()}") == []


def test_a_malformed_ring_is_reported_without_quoting_the_value() -> None:
    problems = setting_weakness(REPLY_TOKEN_KEYS, "my-secret-without-a-kid")
    assert problems == ["malformed key ring (expected kid:secret[,kid:secret...])"]
    assert setting_weakness(REPLY_TOKEN_KEYS, "") == ["empty"]


def test_a_secret_is_checked_only_where_the_service_needs_it() -> None:
    # The ingest mounts the generic webhook only when configured: empty is "off", not weak.
    settings = cfg(webhook_secret="issued-by-the-platform")
    assert weak_secrets(settings, WEBHOOK_SECRETS) == []
    assert weak_secrets(
        cfg(webhook_secret="x", generic_webhook_secret="short"), WEBHOOK_SECRETS
    ) == [f"BRIDGE_GENERIC_WEBHOOK_SECRET (5 bytes, at least {MIN_KEY_BYTES} required)"]


def test_the_sender_needs_only_the_configured_platforms_credentials() -> None:
    tiktok = cfg(platform_app_secret="issued", platform_access_token="issued-token")
    assert weak_secrets(tiktok, CHAT_PLATFORM_SECRETS) == []
    generic = cfg(chat_platform="generic")  # TikTok's defaults are not read by this sender
    assert weak_secrets(generic, CHAT_PLATFORM_SECRETS) == ["BRIDGE_GENERIC_WEBHOOK_SECRET (empty)"]
    assert (
        weak_secrets(
            cfg(chat_platform="generic", generic_webhook_secret=strong()), CHAT_PLATFORM_SECRETS
        )
        == []
    )


def test_per_shop_tokens_replace_the_fallback_token_and_are_checked_per_shop() -> None:
    settings = cfg(
        platform_app_secret="issued", platform_access_tokens="111=tok-a,222=sandbox-access-token"
    )
    assert weak_secrets(settings, CHAT_PLATFORM_SECRETS) == [
        "BRIDGE_PLATFORM_ACCESS_TOKENS (key for shop 222: a published default)"
    ]


def test_the_relay_password_is_needed_only_with_a_relay_login() -> None:
    password = SecretSetting("smtp_password", Origin.ISSUED, needed=lambda c: bool(c.smtp_username))
    assert weak_secrets(cfg(), [password]) == []
    assert weak_secrets(cfg(smtp_username="bridge"), [password]) == ["BRIDGE_SMTP_PASSWORD (empty)"]


def test_production_refuses_with_one_line_naming_every_variable_and_no_value() -> None:
    with pytest.raises(SystemExit) as refused:
        refuse_weak_secrets(cfg(), [*WEBHOOK_SECRETS, REPLY_TOKEN_KEYS], "svc")
    message = str(refused.value.code)
    assert "\n" not in message
    assert message.startswith("svc: refusing to start with default or weak secrets: ")
    assert "BRIDGE_WEBHOOK_SECRET (a published default)" in message
    assert "BRIDGE_TOKEN_KEYS (key 1: a published default)" in message
    assert "secrets.token_urlsafe(48)" in message and "BRIDGE_DEV_MODE=true" in message
    assert not any(value.decode() in message for value in PUBLISHED)


def test_development_mode_accepts_the_defaults_and_strong_secrets_need_no_mode() -> None:
    used = [*WEBHOOK_SECRETS, REPLY_TOKEN_KEYS]
    refuse_weak_secrets(cfg(dev_mode=True), used, "svc")  # returns: no exit
    refuse_weak_secrets(cfg(webhook_secret="issued", token_keys=f"1:{strong()}"), used, "svc")
