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
import os
import struct
import sys
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailer.piped_helper import HelperUnavailable, PipedHelper, write_answers

__all__ = ["RsaProcessUnavailable", "RsaSigningProcess"]

_NUMBER = struct.Struct(">I")
_DIGEST_LEN = 32
_REQUEST_LEN = _NUMBER.size + _DIGEST_LEN


class RsaProcessUnavailable(HelperUnavailable):
    """The signing process is not running (never started, exited or closed)."""


class RsaSigningProcess(PipedHelper[bytes]):
    """A child process that signs SHA-256 hashes with the DKIM key in ``key_file``."""

    unavailable = RsaProcessUnavailable
    what = "DKIM signing process"

    def __init__(self, key_file: str, signature_len: int) -> None:
        super().__init__("mailer.rsa_signing_process", key_file)
        self._signature_len = signature_len

    async def sign(self, digest: bytes) -> bytes:
        """The RSASSA-PKCS1-v1_5 signature of a SHA-256 ``digest``."""
        if len(digest) != _DIGEST_LEN:
            raise ValueError("a SHA-256 digest is 32 bytes")
        return await self._request(digest)

    def _frame(self, number: int, payload: bytes) -> bytes:
        return _NUMBER.pack(number) + payload

    async def _read_answer(self, stdout: asyncio.StreamReader) -> tuple[int, bytes]:
        answer = await stdout.readexactly(_NUMBER.size + self._signature_len)
        return _NUMBER.unpack_from(answer)[0], answer[_NUMBER.size:]


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
        if not write_answers(answers_fd, answers):
            return  # the mailer is gone


if __name__ == "__main__":
    _serve(sys.argv[1])
