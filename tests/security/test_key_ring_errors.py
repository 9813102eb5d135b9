"""A mistyped key ring setting must not print the secret it holds.

The reply-token parser used to call ``int()`` on the text before the colon: an entry with no
colon (``BRIDGE_TOKEN_KEYS=<secret>``, the id forgotten) raised "invalid literal for int()
with base 10: '<secret>'", which a service printed in its start-up traceback.
"""

from __future__ import annotations

import pytest

from ingest.admin_signing import parse_signing_keys
from shared.tokens import parse_keys

SECRET = "Zq8v3LrW0pTn5yXc2HkM9sBd"


@pytest.mark.parametrize("spec", [SECRET, f"1:ok-secret,{SECRET}", f"{SECRET}:", f" {SECRET} "])
def test_a_token_key_ring_without_an_id_is_refused_without_showing_the_secret(spec: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_keys(spec)
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize("spec", [SECRET, f"k1:ok-secret,{SECRET}", f"{SECRET}.x:y"])
def test_an_admin_key_ring_error_does_not_show_the_secret(spec: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_signing_keys(spec)
    assert SECRET not in str(refused.value)
