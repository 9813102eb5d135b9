"""A small pool of aiosmtplib connections to the relay, with classified failures.

Connections are reused across messages (one SMTP handshake per connection, not
per mail) and replaced when they break. :class:`SendError` tells the caller
whether trying again can help (4xx, connection trouble) or not (5xx).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import aiosmtplib


class SendError(Exception):
    def __init__(self, reason: str, *, code: int = 0, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class RelayConfig:
    host: str
    port: int
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 15.0
    pool_size: int = 4


class SmtpPool:
    def __init__(self, relay: RelayConfig) -> None:
        self._relay = relay
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(relay.pool_size):
            self._idle.put_nowait(None)  # connect lazily

    async def _connect(self) -> aiosmtplib.SMTP:
        r = self._relay
        client = aiosmtplib.SMTP(hostname=r.host, port=r.port, timeout=r.timeout_s,
                                 start_tls=r.starttls, use_tls=False)
        await client.connect()
        if r.username:
            await client.login(r.username, r.password)
        return client

    async def send(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Send raw bytes; returns the relay's reply text. Raises :class:`SendError`."""
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            errors, reply = await client.sendmail(sender, recipients, message)
            if errors:
                code, text = next(iter(errors.values()))
                raise SendError(f"recipient refused: {code} {text}", code=code,
                                permanent=500 <= code < 600)
            return reply
        except aiosmtplib.SMTPResponseException as exc:
            code = exc.code
            if client is not None and code in (421,):
                await _quietly_close(client)
                client = None
            raise SendError(f"{code} {exc.message}", code=code,
                            permanent=500 <= code < 600) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if client is not None:
                await _quietly_close(client)
            client = None
            raise SendError(f"relay connection failed: {exc.__class__.__name__}: {exc}") from None
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None:
                await _quietly_close(client)


async def _quietly_close(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(Exception):
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 2)
    with contextlib.suppress(Exception):
        client.close()
