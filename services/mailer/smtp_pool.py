"""A small pool of aiosmtplib connections to the relay, with classified failures.

Connections are reused across messages (one SMTP handshake per connection, not
per mail) and replaced when they break. STARTTLS (or implicit TLS) and AUTH are
done once per connection. :class:`SendError` tells the caller whether trying
again can help (4xx, connection trouble) or not (5xx), and whether the relay may
already have the mail (``ambiguous``).

Timeouts follow RFC 5321 s.4.5.3.2 where it matters: the reply to the end of DATA is
waited for up to ``data_timeout_s`` (the RFC's 10 minutes by default), because a relay
may be slow to answer a mail it has already taken, and giving up then means a resend
(a duplicate). Every other command keeps the short ``timeout_s``: nothing is lost by
giving up on them early.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

import aiosmtplib
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import normalize_message_line_endings

from shared.errors import BridgeError


class SendError(BridgeError):
    """One failed SMTP transaction; ``permanent`` when the relay answered 5xx.

    ``ambiguous`` (a :data:`AMBIGUOUS_REASONS` value, else ``""``) when the relay's reply
    to the message itself never came: it may have the mail, and a retry may duplicate it.
    """

    def __init__(
        self, reason: str, *, code: int = 0, permanent: bool = False, ambiguous: str = ""
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent
        self.ambiguous = ambiguous


# Why an end-of-DATA reply never came (the metric's bounded ``reason`` label).
AMBIGUOUS_TIMEOUT = "timeout"  # no reply within data_timeout_s
AMBIGUOUS_DISCONNECTED = "disconnected"  # the connection dropped while waiting for it
AMBIGUOUS_REASONS = (AMBIGUOUS_TIMEOUT, AMBIGUOUS_DISCONNECTED)


@dataclass(frozen=True, slots=True)
class RelayConfig:
    host: str
    port: int
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 15.0  # every command but the end of DATA
    pool_size: int = 4
    use_tls: bool = False  # implicit TLS (465) instead of STARTTLS
    ca_file: str = ""  # CA bundle for a relay with a private certificate
    validate_certs: bool = True
    data_timeout_s: float = 600.0  # the reply to the end of DATA (RFC 5321 s.4.5.3.2.6)


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


class SmtpPool:
    """At most ``pool_size`` concurrent SMTP transactions, each on a reused connection."""

    def __init__(self, relay: RelayConfig) -> None:
        self._relay = relay
        self._idle: asyncio.Queue[aiosmtplib.SMTP | None] = asyncio.Queue()
        for _ in range(relay.pool_size):
            self._idle.put_nowait(None)  # connect lazily

    @property
    def size(self) -> int:
        return self._relay.pool_size

    async def _connect(self) -> aiosmtplib.SMTP:
        r = self._relay
        client = aiosmtplib.SMTP(
            hostname=r.host,
            port=r.port,
            timeout=r.timeout_s,
            use_tls=r.use_tls,
            # False, not None: None would mean "STARTTLS if offered", which silently
            # downgrades when a relay stops offering it.
            start_tls=r.starttls and not r.use_tls,
            validate_certs=r.validate_certs,
            cert_bundle=r.ca_file or None,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:
            # Once per connection: _transaction sends MAIL/RCPT itself (see there).
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        if r.username:
            try:
                await client.login(r.username, r.password)
            except BaseException:
                await _quietly_close(client)
                raise
        return client

    async def send(self, sender: str, recipients: list[str], message: bytes) -> str:
        """Send raw bytes; returns the relay's reply text. Raises :class:`SendError`."""
        client = await self._idle.get()
        try:
            if client is None or not client.is_connected:
                try:
                    client = await self._connect()
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    # Connect, STARTTLS or AUTH failing is the relay's (or our config's)
                    # trouble, not this message's: always worth another try, never a
                    # dead letter, even when the relay said 5xx (e.g. 535 bad password).
                    client = None
                    raise SendError(
                        f"relay unavailable: {exc.__class__.__name__}: {exc}",
                        code=getattr(exc, "code", 0),
                    ) from None
            return await _transaction(
                client, sender, recipients, message, self._relay.data_timeout_s
            )
        except _AmbiguousData as exc:
            await _quietly_close(client)
            client = None
            raise SendError(
                f"no reply to the end of DATA ({exc.reason}): the relay may have the mail",
                ambiguous=exc.reason,
            ) from None
        except aiosmtplib.SMTPRecipientRefused as exc:
            raise SendError(
                f"recipient refused: {exc.code} {exc.message}",
                code=exc.code,
                permanent=_is_permanent(exc.code),
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code == 421 or exc.code < 400:
                # 421: the relay is closing the channel; start the next try on a fresh one.
                await _quietly_close(client)
                client = None
            raise SendError(
                f"{exc.code} {exc.message}", code=exc.code, permanent=_is_permanent(exc.code)
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if client is not None:
                await _quietly_close(client)
            client = None
            raise SendError(f"relay connection failed: {exc.__class__.__name__}: {exc}") from None
        except asyncio.CancelledError:
            # Cancelled mid-transaction (shutdown, a revoke cut off during the long wait
            # for the end of DATA): the relay's late reply would be read as the answer to
            # the next command on this connection, so it is dropped, not reused.
            if client is not None:
                client.close()
            client = None
            raise
        finally:
            self._idle.put_nowait(client)

    async def close(self) -> None:
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client is not None:
                await _quietly_close(client)


class _AmbiguousData(BridgeError):
    """The message went out but its reply did not come back (``reason``: why)."""


async def _transaction(
    client: aiosmtplib.SMTP,
    sender: str,
    recipients: list[str],
    message: bytes,
    data_timeout_s: float,
) -> str:
    """MAIL, RCPT per recipient, DATA: what ``SMTP.sendmail`` does, minus repeated work.

    ``sendmail`` validates every address twice, each time with the email package's
    pure-Python ``parseaddr``, and, for the SIZE parameter, normalises the message's
    line endings with a regex before ``data`` does it again (costs in
    docs/performance.md). Here a plain address is checked by one regex (:func:`smtp_path`),
    and SIZE is the message's length when its line endings are already CRLF, as
    composed and signed mail's are. MAIL and RCPT go through aiosmtplib's
    ``execute_command``, which still refuses control characters in any argument.
    Any refusal resets the envelope, as ``sendmail`` does.

    ``data`` waits ``data_timeout_s`` for its replies; a timeout or a dropped connection
    there raises :class:`_AmbiguousData`. aiosmtplib's ``data`` sends DATA and the message
    under one timeout, so this also covers a relay that stalls on DATA itself before its
    354: counted as ambiguous though the message did not go (rare, and it errs on the
    side of counting).
    """
    options = []
    if client.supports_extension("size"):
        options.append(f"SIZE={_transmitted_size(message)}".encode("ascii"))
    try:
        response = await client.execute_command(b"MAIL", b"FROM:" + smtp_path(sender), *options)
        if response.code != 250:
            raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
        for recipient in recipients:
            response = await client.execute_command(b"RCPT", b"TO:" + smtp_path(recipient))
            if response.code not in (250, 251):
                raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
        try:
            response = await client.data(message, timeout=data_timeout_s)
        except aiosmtplib.SMTPTimeoutError:
            raise _AmbiguousData(AMBIGUOUS_TIMEOUT) from None
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
            raise _AmbiguousData(AMBIGUOUS_DISCONNECTED) from None
    except aiosmtplib.SMTPResponseException:
        with contextlib.suppress(
            ConnectionError, aiosmtplib.SMTPResponseException, aiosmtplib.SMTPServerDisconnected
        ):
            await client.rset()
        raise
    return response.message


# RFC 5321 Dot-string "@" domain, ASCII only: what the mailer's own reply, bounce and
# notice addresses and ordinary destination addresses look like. For these parseaddr
# returns the address unchanged, so aiosmtplib would send exactly "<address>".
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
)


def smtp_path(address: str) -> bytes:
    """``<address>`` for MAIL FROM/RCPT TO, as aiosmtplib's ``mail``/``rcpt`` quote it;
    anything but a plain address goes through aiosmtplib's own parser (and its check for
    characters that cannot go on a command line). ``""`` is the null reverse-path."""
    if not address:
        return b"<>"
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return quote_address(address).encode("ascii")


def _transmitted_size(message: bytes) -> int:
    """Octets of ``message`` as DATA sends it (RFC 1870), before dot-stuffing."""
    if message.count(b"\n") == message.count(b"\r\n") == message.count(b"\r") and message.endswith(
        b"\r\n"
    ):
        return len(message)  # already CRLF throughout: nothing to normalise
    return len(normalize_message_line_endings(message))


async def _quietly_close(client: aiosmtplib.SMTP | None) -> None:
    if client is None:
        return
    with contextlib.suppress(Exception):
        if client.is_connected:
            await asyncio.wait_for(client.quit(), 2)
    with contextlib.suppress(Exception):
        client.close()
