"""The local mail sink (devstack/mail_sink.py) over real SMTP and HTTP on loopback.

Listing thousands of stored mails must not stall the sink's SMTP side (both share one event
loop, as in the local stack): each mail's headers are read once, on arrival, and a listing
shows one page of them, newest first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import httpx
import pytest
import pytest_asyncio

from devstack import mail_sink
from devstack.broker import free_port
from devstack.mail_sink import SinkState, StoredMail, create_sink_web, start_sink_smtp
from devstack.stack import serve_in_loop

STORED = 3_000
# Generous: the listing must not hold the SMTP side for the time it takes to parse every
# stored mail (seconds for a few thousand digests), on a loaded machine.
SMTP_DURING_LISTING_MAX_S = 1.0


def digest_like(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "TikTok Shop <noreply@bridge.example>"
    msg["To"] = "seller@shop.localhost"
    msg["Reply-To"] = f"TikTok Shop <c{n}.token@chat-seller-us.bridge.example>"
    msg["Subject"] = f"A new message from TikTok Shop customer Zoë {n} 🧦"
    msg["Message-ID"] = make_msgid(domain="digest.bridge.example")
    text = f"Is it wool? message {n} " * 40
    msg.set_content(text)
    msg.add_alternative(
        f"<html><body><p>{text}</p>" + "<div>card</div>" * 100 + "</body></html>", subtype="html"
    )
    return msg


def digests_like(count: int) -> list[bytes]:
    """``count`` digest-sized mails, each with its own Message-ID (built from one template:
    composing thousands of mails would take longer than the test)."""
    first = digest_like(0)
    template, mid = first.as_bytes(), str(first["Message-ID"])
    raws = []
    for n in range(count):
        raw = template.replace(b"c0.token@", f"c{n}.token@".encode())
        raws.append(raw.replace(mid.encode(), f"<sink-test-{n}@digest.bridge.example>".encode(), 1))
    return raws


@dataclass
class Sink:
    state: SinkState
    smtp_port: int
    http: httpx.AsyncClient


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[Sink]:
    state = SinkState()
    smtp_port, http_port = free_port(), free_port()
    smtp = await start_sink_smtp(state, "127.0.0.1", smtp_port)
    web = create_sink_web(
        state,
        inbound_host="127.0.0.1",
        inbound_port=free_port(),
        default_from="seller@shop.localhost",
    )
    server, task = await serve_in_loop(web, http_port)
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=60)
    try:
        yield Sink(state, smtp_port, http)
    finally:
        await http.aclose()
        server.should_exit = True
        await task
        smtp.close()


def fill(state: SinkState, count: int) -> list[bytes]:
    """Store ``count`` digest-sized mails the way the SMTP handler does."""
    raws = digests_like(count)
    for raw in raws:
        state.store(StoredMail("bounce@bridge.example", ["seller@shop.localhost"], raw))
    return raws


async def test_listing_thousands_of_mails_does_not_stall_an_smtp_transaction(sink: Sink) -> None:
    fill(sink.state, STORED)
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.smtp_port, timeout=60)
    await smtp.connect()
    sent = 0
    try:
        for path in ("/messages", "/"):
            listing = asyncio.create_task(sink.http.get(path, params={"limit": 500}))
            slowest = 0.0
            while not listing.done():  # mail keeps arriving while the listing is served
                started = time.perf_counter()
                await smtp.send_message(digest_like(STORED + sent))
                slowest = max(slowest, time.perf_counter() - started)
                sent += 1
            assert listing.result().status_code == 200
            assert slowest < SMTP_DURING_LISTING_MAX_S, f"{path}: SMTP took {slowest:.2f} s"
    finally:
        await smtp.quit()
    assert len(sink.state.mails) == STORED + sent


async def test_each_mail_is_parsed_once_however_often_it_is_listed(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses = {"headers": 0, "whole": 0}

    class CountingHeaderParser(mail_sink.BytesHeaderParser):
        def parsebytes(self, text, headersonly=True):  # type: ignore[no-untyped-def]
            parses["headers"] += 1
            return super().parsebytes(text, headersonly)

    class CountingParser(mail_sink.BytesParser):
        def parsebytes(self, text, headersonly=False):  # type: ignore[no-untyped-def]
            parses["whole"] += 1
            return super().parsebytes(text, headersonly)

    monkeypatch.setattr(mail_sink, "BytesHeaderParser", CountingHeaderParser)
    monkeypatch.setattr(mail_sink, "BytesParser", CountingParser)
    fill(sink.state, 50)
    for _ in range(3):
        assert (await sink.http.get("/messages")).status_code == 200
        assert (await sink.http.get("/")).status_code == 200
    assert parses == {"headers": 50, "whole": 0}
    for _ in range(2):
        assert (await sink.http.get("/messages/7/html")).status_code == 200
    assert parses == {"headers": 50, "whole": 1}


async def test_listing_pages_newest_first_below_before(sink: Sink) -> None:
    fill(sink.state, 12)
    page = (await sink.http.get("/messages", params={"limit": 5})).json()
    assert [m["n"] for m in page] == [11, 10, 9, 8, 7]
    assert page[0]["subject"] == "A new message from TikTok Shop customer Zoë 0 🧦"
    assert page[0]["reply_to"] == "TikTok Shop <c11.token@chat-seller-us.bridge.example>"
    assert page[0]["message_id"] == "<sink-test-11@digest.bridge.example>"
    assert page[0]["received_at"] <= time.time()
    older = (await sink.http.get("/messages", params={"limit": 5, "before": 7})).json()
    assert [m["n"] for m in older] == [6, 5, 4, 3, 2]
    last = (await sink.http.get("/messages", params={"limit": 5, "before": 2})).json()
    assert [m["n"] for m in last] == [1, 0]
    html = (await sink.http.get("/", params={"limit": 5})).text
    assert "/messages/11'" in html and "/messages/6'" not in html
    assert "before=7" in html
    too_many = await sink.http.get("/messages", params={"limit": mail_sink.PAGE_MAX + 1})
    assert too_many.status_code == 422 and "limit" in too_many.text


async def test_a_message_id_delivered_twice_is_counted_as_a_duplicate(sink: Sink) -> None:
    once, twice = digest_like(1), digest_like(2)
    for msg in (once, twice, twice):
        await aiosmtplib.send(msg, hostname="127.0.0.1", port=sink.smtp_port, timeout=30)
    assert sink.state.duplicates() == {str(twice["Message-ID"]): [1, 2]}
