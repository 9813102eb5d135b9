"""Upload Buyer Messages Image from the TikTok client: multipart field ``data``, the body left
out of the signature, the url/width/height read back, unacceptable pictures refused before any
call. The HTTP side is an in-memory httpx transport (no network)."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import httpx
import orjson
import pytest

from shared.chat_platform.base import PlatformError
from shared.chat_platform.tiktok_client import TikTokShopClient
from shared.chat_platform.tiktok_signing import sign_request

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def client_with(handler: httpx.MockTransport) -> TikTokShopClient:
    http = httpx.AsyncClient(base_url="http://platform.test", transport=handler)
    return TikTokShopClient(
        "http://platform.test", "key", "secret", {"*": "tok"}, qps_per_api=0, http=http
    )


def test_upload_sends_multipart_data_field_signed_without_the_body() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=orjson.dumps(
                {
                    "code": 0,
                    "message": "Success",
                    "data": {"url": "https://img.test/a.png", "width": "304", "height": 290},
                }
            ),
        )

    client = client_with(httpx.MockTransport(handle))
    image = asyncio.run(client.upload_image("shop-1", PNG, "image/png"))
    assert (image.url, image.width, image.height) == ("https://img.test/a.png", 304, 290)
    (req,) = seen
    assert req.url.path == "/customer_service/202309/images/upload"
    assert req.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert req.headers["x-tts-access-token"] == "tok"
    body = req.read()
    assert b'name="data"; filename="image.png"' in body and PNG in body
    query = dict(parse_qsl(urlsplit(str(req.url)).query))
    assert query["sign"] == sign_request(req.url.path, query, b"", "secret")
    assert query["sign"] != sign_request(req.url.path, query, body, "secret")


@pytest.mark.parametrize(
    ("data", "ctype", "why"),
    [
        (PNG, "image/bmp", "not accepted"),
        (b"", "image/png", "empty"),
        (b"\xff\xd8\xff" + b"\x00" * (10 * 1024 * 1024), "image/jpeg", "allows 10485760"),
    ],
)
def test_unacceptable_picture_is_refused_without_a_call(data: bytes, ctype: str, why: str) -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no call expected")

    client = client_with(httpx.MockTransport(handle))
    with pytest.raises(PlatformError) as info:
        asyncio.run(client.upload_image("shop-1", data, ctype))
    assert why in info.value.reason and not info.value.retryable


def test_upload_5xx_is_retryable_but_not_ambiguous() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=b'{"code":36009007,"message":"busy"}')

    client = client_with(httpx.MockTransport(handle))
    with pytest.raises(PlatformError) as info:
        asyncio.run(client.upload_image("shop-1", PNG, "image/png"))
    assert info.value.retryable and not info.value.ambiguous
