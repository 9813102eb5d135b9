"""DKIM's RSA step in a helper process: the event loop hands over a hash, gets a signature.

Why a process: RSA-2048 signing is ~0.25 ms of CPU per digest, the largest single cost
in the mailer once rendering is cheap. On the event loop it stalls everything else; on
a thread it does not help either: OpenSSL releases the GIL while signing, but the thread
must win it back from the busy loop after every signature (a forced switch, up to the
5 ms switch interval), which costs the loop more than the signature itself. A child
process has its own interpreter: the loop pays a pipe write and a read per turn (the
requests of one turn of the event loop go in one write, and the child answers all the
requests that arrived together in one write).

Protocol on the child's stdin/stdout: a request is a 4-byte request number and the
32-byte SHA-256 the signature covers; the answer is the request number and the
PKCS#1 v1.5 signature (key size / 8 bytes). The child loads the key from the same file
as the mailer: the key never crosses the pipe. PKCS#1 v1.5 is deterministic, so the
child's signature is byte-identical to the in-process one.

If the child dies, every pending and later :meth:`RsaSigningProcess.sign` raises
:class:`RsaProcessUnavailable`; the mailer then signs in-process (slower, never unsigned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

__all__ = ["RsaProcessUnavailable", "RsaSigningProcess"]

log = logging.getLogger(__name__)

_NUMBER = struct.Struct(">I")
_DIGEST_LEN = 32
_REQUEST_LEN = _NUMBER.size + _DIGEST_LEN


class RsaProcessUnavailable(RuntimeError):
    """The signing process is not running (never started, exited or closed)."""


class RsaSigningProcess:
    """A child process that signs SHA-256 hashes with the DKIM key in ``key_file``."""

    def __init__(self, key_file: str, signature_len: int) -> None:
        self._key_file = key_file
        self._signature_len = signature_len
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._next = 0
        self._outbox = bytearray()
        self._closing = False  # close() ends the child: its exit is not an error then

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mailer.rsa_signing_process", self._key_file,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        self._reader = asyncio.create_task(self._read_answers(), name="dkim-rsa-answers")

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        return (self._process is not None and self._process.returncode is None
                and self._reader is not None and not self._reader.done())

    async def sign(self, digest: bytes) -> bytes:
        """The RSASSA-PKCS1-v1_5 signature of a SHA-256 ``digest``."""
        if len(digest) != _DIGEST_LEN:
            raise ValueError("a SHA-256 digest is 32 bytes")
        if not self.alive:
            raise RsaProcessUnavailable("the DKIM signing process is not running")
        assert self._process is not None and self._process.stdin is not None
        number = self._next
        self._next = (self._next + 1) % 2**32
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._pending[number] = answer
        if not self._outbox:
            loop.call_soon(self._flush)  # one pipe write for all requests of this turn
        self._outbox += _NUMBER.pack(number) + digest
        return await answer

    def _flush(self) -> None:
        requests, self._outbox = bytes(self._outbox), bytearray()
        process = self._process
        try:
            if process is None or process.stdin is None:
                raise ConnectionError("closed")
            process.stdin.write(requests)
        except (ConnectionError, RuntimeError) as exc:
            for offset in range(0, len(requests), _REQUEST_LEN):
                (number,) = _NUMBER.unpack_from(requests, offset)
                waiter = self._pending.pop(number, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(RsaProcessUnavailable(
                        f"the DKIM signing process is gone: {exc}"))

    async def _read_answers(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        size = _NUMBER.size + self._signature_len
        try:
            while True:
                answer = await stdout.readexactly(size)
                (number,) = _NUMBER.unpack_from(answer)
                waiter = self._pending.pop(number, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(answer[_NUMBER.size:])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if not self._closing:
                log.error("DKIM signing process exited; signing in-process from now on",
                          extra={"error": str(exc)})
        finally:
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(RsaProcessUnavailable("the DKIM signing process exited"))
            self._pending.clear()

    async def close(self) -> None:
        self._closing = True
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()  # EOF: the child's loop ends
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def _serve(key_file: str) -> None:
    """The child: sign every request from stdin until EOF."""
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit(f"{key_file} is not an RSA private key")
    pad, algorithm = padding.PKCS1v15(), Prehashed(hashes.SHA256())
    requests_fd, answers_fd = sys.stdin.fileno(), sys.stdout.fileno()
    pending = b""
    while True:
        received = os.read(requests_fd, 65536)
        if not received:
            return  # the mailer closed the pipe (or exited)
        pending += received
        answers = bytearray()
        # All the requests that arrived together, answered in one write.
        while len(pending) >= _REQUEST_LEN:
            request, pending = pending[:_REQUEST_LEN], pending[_REQUEST_LEN:]
            answers += request[:_NUMBER.size] + key.sign(request[_NUMBER.size:], pad, algorithm)
        view = memoryview(answers)
        while view:
            try:
                view = view[os.write(answers_fd, view):]
            except BrokenPipeError:
                return  # the mailer is gone


if __name__ == "__main__":
    _serve(sys.argv[1])
