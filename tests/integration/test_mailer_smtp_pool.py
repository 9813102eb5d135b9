"""The mailer's SMTP pool against a real aiosmtpd relay on 127.0.0.1: STARTTLS with a
self-signed certificate, AUTH, connection reuse, and how failures are classified."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from devstack.broker import free_port
from mailer.smtp_pool import RelayConfig, SendError, SmtpPool

pytestmark = pytest.mark.integration

USER, PASSWORD = "bridge", "s3cret-relay-pass"
MESSAGE = b"From: a@bridge.example\r\nTo: b@shop.example\r\nSubject: hi\r\n\r\nhello\r\n"


@dataclass
class TlsRelay:
    """aiosmtpd requiring STARTTLS before AUTH and AUTH before MAIL."""

    cert: Path
    key: Path
    port: int = field(default_factory=free_port)
    answer: str = "250 2.0.0 Stored"
    delivered: list[tuple[str, bool, bytes]] = field(default_factory=list)  # (login, tls, raw)
    connections: int = 0
    server: asyncio.base_events.Server | None = None
    sessions: list[SMTP] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer.startswith("250"):
            data = session.auth_data
            login = data.login.decode() if isinstance(data, LoginPassword) else ""
            self.delivered.append((login, bool(session.ssl), envelope.original_content or b""))
        return self.answer

    async def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)

        def authenticate(
            server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
        ) -> AuthResult:
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login == USER.encode()
                and auth_data.password == PASSWORD.encode()
            )
            return AuthResult(success=ok, handled=False, auth_data=auth_data)

        def session() -> SMTP:
            self.connections += 1
            protocol = SMTP(
                self,
                tls_context=context,
                require_starttls=True,
                authenticator=authenticate,
                auth_required=True,
                auth_require_tls=True,
                hostname="relay.test",
            )
            self.sessions.append(protocol)
            return protocol

        self.server = await asyncio.get_running_loop().create_server(
            session, host="127.0.0.1", port=self.port
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for protocol in self.sessions:  # a stopped relay also drops open connections
            if protocol.transport is not None:
                protocol.transport.abort()
        self.sessions.clear()


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to make the relay's test certificate"
    folder = tmp_path_factory.mktemp("relay-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest_asyncio.fixture
async def relay(self_signed: tuple[Path, Path]) -> AsyncIterator[TlsRelay]:
    r = TlsRelay(*self_signed)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def config(relay: TlsRelay, **overrides: object) -> RelayConfig:
    values: dict[str, object] = dict(
        host="127.0.0.1",
        port=relay.port,
        starttls=True,
        username=USER,
        password=PASSWORD,
        timeout_s=5,
        pool_size=2,
        ca_file=str(relay.cert),
    )
    values.update(overrides)
    return RelayConfig(**values)  # type: ignore[arg-type]


async def test_starttls_and_auth_deliver_and_reuse_one_connection(relay: TlsRelay) -> None:
    pool = SmtpPool(config(relay, pool_size=1))
    try:
        for _ in range(5):
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
    finally:
        await pool.close()
    assert len(relay.delivered) == 5
    assert all(login == USER and tls for login, tls, _ in relay.delivered)
    assert relay.connections == 1, "each mail opened a new connection"


async def test_wrong_password_is_relay_trouble_to_retry_not_a_dead_letter(relay: TlsRelay) -> None:
    pool = SmtpPool(config(relay, password="wrong"))
    try:
        with pytest.raises(SendError) as caught:
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
    finally:
        await pool.close()
    assert not caught.value.permanent and "relay unavailable" in caught.value.reason
    assert caught.value.code == 535
    assert not relay.delivered


async def test_an_untrusted_relay_certificate_is_refused(relay: TlsRelay) -> None:
    pool = SmtpPool(config(relay, ca_file=""))  # system CAs do not know the test cert
    try:
        with pytest.raises(SendError, match="relay unavailable") as caught:
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
    finally:
        await pool.close()
    assert not caught.value.permanent
    assert not relay.delivered


async def test_4xx_is_temporary_and_5xx_permanent_on_the_same_connection(relay: TlsRelay) -> None:
    pool = SmtpPool(config(relay, pool_size=1))
    try:
        relay.answer = "451 4.3.0 Try later"
        with pytest.raises(SendError) as temporary:
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
        relay.answer = "550 5.7.1 Refused by policy"
        with pytest.raises(SendError) as permanent:
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
        relay.answer = "250 2.0.0 Stored"
        await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
    finally:
        await pool.close()
    assert (temporary.value.code, temporary.value.permanent) == (451, False)
    assert (permanent.value.code, permanent.value.permanent) == (550, True)
    assert "Refused by policy" in permanent.value.reason
    assert len(relay.delivered) == 1 and relay.connections == 1


async def test_a_relay_restart_costs_one_temporary_failure_then_a_fresh_connection(
    relay: TlsRelay,
) -> None:
    pool = SmtpPool(config(relay, pool_size=1))
    try:
        await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
        await relay.stop()
        with pytest.raises(SendError) as down:
            await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
        assert not down.value.permanent
        await relay.start()
        await pool.send("bounce@bridge.example", ["b@shop.example"], MESSAGE)
    finally:
        await pool.close()
    assert len(relay.delivered) == 2 and relay.connections == 2
