"""The SIZE the mailer announces in MAIL FROM (RFC 1870) is the size of what the relay receives.

Checked through the pool's public ``send`` against a real aiosmtpd relay on 127.0.0.1, for
messages with CRLF, bare LF, bare CR and dot-leading lines: a wrong SIZE makes a strict relay
refuse mail that would fit, or accept a promise the DATA then breaks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from aiosmtplib.protocol import normalize_message_line_endings

from devstack.broker import free_port
from mailer.smtp_pool import RelayConfig, SmtpPool

pytestmark = pytest.mark.integration

HEAD = b"From: a@bridge.example\r\nTo: b@shop.example\r\nSubject: size\r\n\r\n"
BODIES = [
    b"hello\r\n",  # CRLF throughout, as composed and signed mail is
    b"hello\nworld\n",  # bare LF
    b"hello\rworld\r",  # bare CR
    b"one\r\r\ntwo\n\r\nthree",  # mixed, and no final line break
    b".leading dot\r\n..two dots\r\n.\r\nend\r\n",  # dot-stuffed on the wire, not counted
    "emoji \U0001f600 and =0D\r\n".encode(),
]


@dataclass
class SizeRecordingRelay:
    port: int = field(default_factory=free_port)
    received: list[tuple[list[str], bytes]] = field(default_factory=list)  # (MAIL options, data)
    server: asyncio.base_events.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((list(envelope.mail_options), envelope.original_content or b""))
        return "250 2.0.0 Stored"

    async def start(self) -> None:
        self.server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, hostname="relay.test"), host="127.0.0.1", port=self.port
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[SizeRecordingRelay]:
    r = SizeRecordingRelay()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_announced_size_is_the_size_of_the_data_the_relay_receives(
    relay: SizeRecordingRelay,
) -> None:
    pool = SmtpPool(RelayConfig(host="127.0.0.1", port=relay.port, timeout_s=5, pool_size=1))
    try:
        for body in BODIES:
            await pool.send("bounce@bridge.example", ["b@shop.example"], HEAD + body)
    finally:
        await pool.close()
    assert len(relay.received) == len(BODIES)
    for body, (options, data) in zip(BODIES, relay.received, strict=True):
        announced = [int(o.split("=", 1)[1]) for o in options if o.upper().startswith("SIZE=")]
        expected = len(normalize_message_line_endings(HEAD + body))
        assert announced == [expected], (body, options)
        assert len(data) == expected, (body, len(data))
