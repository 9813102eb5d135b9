"""Composing and DKIM-signing digests in helper processes, off the event loop.

Why: rendering, MIME assembly and DKIM (canonicalising, hashing, RSA-2048) are the
mailer's CPU work, and an event loop runs on one core. In helper
processes that work runs on other cores while the loop does what only it can do: Kafka,
the outcome ledger and SMTP. With ``BRIDGE_MAILER_COMPOSE_PROCESSES`` helpers a mailer
pod uses up to 1 + that many cores (deploy/k8s sets the pod's CPU limit to match).

Protocol on a child's stdin/stdout, all integers big-endian:

* first, the settings: a 4-byte length and the settings as JSON (secrets included:
  the pipe is private to the two processes, argv and the environment are not used);
* a request: 4-byte request number, 4-byte length, the digest record's JSON;
* an answer: request number, 1 byte ``0`` (cannot compose) or ``1 + n`` (composed, with
  ``n`` messages shown as a placeholder because they could not be rendered; counted by
  the mailer, whose metrics are the ones scraped), 4-byte length, then either the 2-byte
  lengths of envelope sender and recipient followed by sender, recipient and the signed
  message, or the reason as UTF-8.

The requests of one turn of the event loop go in one write; the child answers all the
requests that arrived together in one write. A child composes with the same
:class:`~mailer.digest_composer.DigestComposer` as the loop would, so the mail is the
same (its Date, reply-token time and DKIM ``t=`` are taken in the child).

If a child dies, its pending and later requests raise :class:`ComposeProcessUnavailable`
and the mailer composes on the loop (slower, never unsigned, never lost).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import struct
import sys
from collections.abc import Callable

import orjson
from prometheus_client import REGISTRY
from pydantic import SecretStr

from mailer.digest_composer import DigestComposer, load_signer
from mailer.mailer_metrics import MESSAGES_UNSHOWN
from mailer.mailer_settings import MailerSettings
from mailer.piped_helper import HelperUnavailable, PipedHelper, write_answers
from shared.codec import DecodeError, decoder
from shared.errors import BridgeError
from shared.events import Digest
from shared.logging import setup_logging

__all__ = ["ComposeFailed", "ComposeProcess", "ComposeProcessUnavailable", "ComposeProcesses"]

_LENGTH = struct.Struct(">I")
_REQUEST = struct.Struct(">II")  # number, length
_ANSWER = struct.Struct(">IBI")  # number, composed, length
_ADDRESSES = struct.Struct(">HH")


class ComposeProcessUnavailable(HelperUnavailable):
    """The compose process is not running (never started, exited or closed)."""


class ComposeFailed(BridgeError, ValueError):
    """The child could not compose this digest; the message says why."""


def settings_payload(cfg: MailerSettings) -> bytes:
    """The settings a child composes with, as JSON with the secrets' values."""
    values = {}
    for name, field in type(cfg).model_fields.items():
        if field.validation_alias is not None:
            continue  # Kafka's bootstrap (env aliases); nothing a child composes with
        value = getattr(cfg, name)
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return orjson.dumps(values, default=str)


class ComposeProcess(PipedHelper[tuple[str, str, bytes]]):
    """One child that turns digest JSON into (sender, recipient, signed message)."""

    unavailable = ComposeProcessUnavailable
    what = "compose process"

    def __init__(self, settings: bytes) -> None:
        super().__init__("mailer.compose_process", first=_LENGTH.pack(len(settings)) + settings)

    async def compose(self, digest_json: bytes) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, signed message) for a digest record's value."""
        return await self._request(digest_json)

    def _frame(self, number: int, payload: bytes) -> bytes:
        return _REQUEST.pack(number, len(payload)) + payload

    async def _read_answer(
        self, stdout: asyncio.StreamReader
    ) -> tuple[int, tuple[str, str, bytes] | Exception]:
        number, composed, length = _ANSWER.unpack(await stdout.readexactly(_ANSWER.size))
        body = await stdout.readexactly(length)
        if not composed:
            return number, ComposeFailed(body.decode("utf-8", "replace"))
        if composed > 1:
            MESSAGES_UNSHOWN.inc(composed - 1)
        sender_len, to_len = _ADDRESSES.unpack_from(body)
        at = _ADDRESSES.size
        sender = body[at : at + sender_len].decode("utf-8")
        to = body[at + sender_len : at + sender_len + to_len].decode("utf-8")
        return number, (sender, to, body[at + sender_len + to_len :])


class ComposeProcesses:
    """Several compose processes, used in turn; a dead one is skipped."""

    def __init__(self, cfg: MailerSettings, count: int) -> None:
        settings = settings_payload(cfg)
        self.processes = [ComposeProcess(settings) for _ in range(count)]
        self._turn = itertools.cycle(range(count))

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.processes))

    @property
    def alive(self) -> bool:
        return any(p.alive for p in self.processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def revive(self) -> None:
        """Restart the children that died (see :meth:`PipedHelper.revive`)."""
        for process in self.processes:
            process.revive()

    async def compose(self, digest_json: bytes) -> tuple[str, str, bytes]:
        for _ in self.processes:
            process = self.processes[next(self._turn)]
            if process.alive:
                return await process.compose(digest_json)
        raise ComposeProcessUnavailable("no compose process is running")

    async def close(self) -> None:
        await asyncio.gather(*(p.close() for p in self.processes))


def _unshown_so_far() -> float:
    return REGISTRY.get_sample_value("bridge_digest_messages_unshown_total") or 0.0


def _answer(composer: DigestComposer, decode: Callable[[bytes], Digest], request: bytes) -> bytes:
    """One request's answer, after its number: ``1 + n`` and the mail, or ``0`` and why not."""
    unshown_before = _unshown_so_far()
    try:
        sender, to, message = composer.compose_signed(decode(request))
    except DecodeError as exc:
        return b"\x00" + f"undecodable Digest: {exc}".encode()
    except Exception as exc:  # noqa: BLE001 - reported to the loop, which dead-letters it
        return b"\x00" + f"{type(exc).__name__}: {exc}".encode()
    s, t = sender.encode("utf-8"), to.encode("utf-8")
    composed = 1 + min(254, int(_unshown_so_far() - unshown_before))
    return bytes([composed]) + _ADDRESSES.pack(len(s), len(t)) + s + t + message


def _read_exactly(fd: int, size: int, pending: bytearray) -> bytes | None:
    while len(pending) < size:
        received = os.read(fd, 1 << 16)
        if not received:
            return None
        pending += received
    out = bytes(pending[:size])
    del pending[:size]
    return out


def _serve() -> None:
    """The child: compose every request from stdin until EOF."""
    requests_fd, answers_fd = sys.stdin.fileno(), sys.stdout.fileno()
    pending = bytearray()
    header = _read_exactly(requests_fd, _LENGTH.size, pending)
    if header is None:
        return
    settings = _read_exactly(requests_fd, _LENGTH.unpack(header)[0], pending)
    if settings is None:
        return
    cfg = MailerSettings(**orjson.loads(settings))
    setup_logging("mailer-compose", cfg.log_level)  # JSON lines on the pod's stderr
    composer, decode = DigestComposer(cfg, load_signer(cfg)), decoder(Digest)
    while True:
        answers = bytearray()
        # All the complete requests that arrived together, answered in one write.
        while len(pending) >= _REQUEST.size:
            number, length = _REQUEST.unpack_from(pending)
            if len(pending) < _REQUEST.size + length:
                break
            request = bytes(pending[_REQUEST.size : _REQUEST.size + length])
            del pending[: _REQUEST.size + length]
            answer = _answer(composer, decode, request)
            answers += _ANSWER.pack(number, answer[0], len(answer) - 1) + answer[1:]
        if not write_answers(answers_fd, answers):
            return  # the mailer is gone
        received = os.read(requests_fd, 1 << 16)
        if not received:
            return  # the mailer closed the pipe (or exited)
        pending += received


if __name__ == "__main__":
    _serve()
