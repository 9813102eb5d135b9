"""How both chat-platform clients read a failed exchange (shared/chat_platform/base.py)."""

from __future__ import annotations

import httpx
import pytest

from shared.chat_platform.base import retry_after_s, transport_error

REQUEST = httpx.Request("POST", "http://127.0.0.1/x")


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("t"), httpx.PoolTimeout("t")]
)
def test_a_connection_never_made_is_retryable_and_never_ambiguous(exc: httpx.HTTPError) -> None:
    err = transport_error(exc, "POST")
    assert err.retryable and not err.ambiguous
    assert "unreachable" in err.reason


@pytest.mark.parametrize("method, ambiguous", [("POST", True), ("GET", False)])
def test_a_lost_response_is_ambiguous_only_after_a_post(method: str, ambiguous: bool) -> None:
    err = transport_error(httpx.ReadTimeout("slow", request=REQUEST), method)
    assert err.retryable and err.ambiguous is ambiguous


@pytest.mark.parametrize(
    "header, expected", [("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("soon", None), (None, None)]
)
def test_retry_after_reads_seconds_and_ignores_what_it_cannot_read(
    header: str | None, expected: float | None
) -> None:
    headers = {"retry-after": header} if header is not None else {}
    assert retry_after_s(httpx.Response(429, headers=headers)) == expected
