"""Key rings from settings (shared/key_ring.py): one parser for every signing key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.admin_signing import parse_signing_keys
from shared.key_ring import KeyRingError, parse_key_ring
from shared.tokens import parse_keys


def _any_id(text: str) -> str | None:
    return text or None


def test_the_first_key_signs_and_every_key_verifies() -> None:
    ring = parse_key_ring("new:s2, old:s1", what="keys", kid_of=_any_id, kid_rule="any")
    assert ring.signing == ("new", b"s2")
    assert ring.secret("old") == b"s1" and ring.secret("gone") is None
    assert list(ring) == [("new", b"s2"), ("old", b"s1")] and len(ring) == 2


def test_a_secret_may_hold_colons_and_blank_entries_are_skipped() -> None:
    ring = parse_key_ring("a:x:y,,", what="keys", kid_of=_any_id, kid_rule="any")
    assert ring.keys == (("a", b"x:y"),)


def test_both_rings_have_text_ids() -> None:
    assert parse_keys("03:secret").signing == ("3", b"secret")
    assert parse_signing_keys("k1:secret").signing == ("k1", b"secret")


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "no keys configured"),
        (" , ", "no keys configured"),
        ("1:a,2", "entry 2 is not 'kid:secret'"),
        ("1:", "entry 1 has no secret"),
        ("16:a", "entry 1 has no valid key id (token key ids are 0-15)"),
        ("x:a", "entry 1 has no valid key id"),
        ("1:a,01:b", "key id 1 is listed twice"),
    ],
)
def test_a_bad_token_ring_says_which_entry_is_wrong(spec: str, reason: str) -> None:
    with pytest.raises(KeyRingError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_keys(spec)


def test_an_admin_key_id_cannot_hold_the_token_separator() -> None:
    with pytest.raises(KeyRingError, match=r"admin token keys: entry 1 has no valid key id"):
        parse_signing_keys("k.1:secret")


def test_the_ring_never_shows_its_secrets() -> None:
    ring = parse_signing_keys("k1:hunter2-secret")
    assert "hunter2" not in repr(ring) and "hunter2" not in str(ring)


@given(st.text(alphabet="abc:,.01 ", max_size=30))
def test_errors_never_quote_the_spec(spec: str) -> None:
    for parse in (parse_keys, parse_signing_keys):
        try:
            parse("SECRETMARK" + spec)
        except KeyRingError as exc:
            assert "SECRETMARK" not in str(exc)
