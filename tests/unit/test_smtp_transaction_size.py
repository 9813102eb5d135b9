"""The SIZE the mailer announces is the size aiosmtplib's DATA will transmit."""

from __future__ import annotations

from aiosmtplib.protocol import normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from mailer.smtp_pool import _transmitted_size


@settings(max_examples=500)
@given(st.lists(st.sampled_from([b"a", b".", b" ", b"\r\n", b"\n", b"\r", b"\r\r\n", b"=0D"]),
                max_size=40).map(b"".join))
def test_announced_size_is_the_normalised_length(message: bytes) -> None:
    assert _transmitted_size(message) == len(normalize_message_line_endings(message))
