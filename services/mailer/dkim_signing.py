"""DKIM-sign outgoing digests (RFC 6376) with dkimpy.

The signer is built once at start-up from a PEM key (a mounted Kubernetes Secret in
production) and then used as a pure function: bytes in, signed bytes out. A bad key fails
at start-up with :class:`DkimKeyError`, never on the first send.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

__all__ = [
    "SIGNED_HEADERS",
    "DkimKeyError",
    "DkimSigner",
    "load_dkim_signer",
    "dkim_signer_from_env",
]

# The headers a reader relies on, plus the MIME structure. Listing a header the message
# lacks (e.g. In-Reply-To on a first digest) signs its absence, so nobody can add it later.
SIGNED_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
)

ENV_SELECTOR = "BRIDGE_DKIM_SELECTOR"
ENV_DOMAIN = "BRIDGE_DKIM_DOMAIN"
ENV_KEY_FILE = "BRIDGE_DKIM_KEY_FILE"


class DkimKeyError(ValueError):
    """The DKIM configuration or private key is unusable; the reason says which part."""


class DkimSigner:
    """Signs RFC 5322 messages for one ``selector._domainkey.domain`` key."""

    def __init__(self, selector: str, domain: str, private_key_pem: bytes | str) -> None:
        if not selector or not domain:
            raise DkimKeyError("DKIM selector and domain must both be set")
        pem = (
            private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
        )
        try:
            parse_pem_private_key(pem)
        except (UnparsableKeyError, ValueError, IndexError) as exc:
            raise DkimKeyError(
                f"DKIM private key for {selector}._domainkey.{domain} "
                f"is not a usable RSA PEM key: {exc}"
            ) from exc
        self.selector = selector
        self.domain = domain
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")
        self._key = pem
        self._headers = [h.lower().encode("ascii") for h in SIGNED_HEADERS]

    def sign(self, msg_bytes: bytes) -> bytes:
        """Return ``msg_bytes`` with a ``DKIM-Signature`` header prepended.

        relaxed/relaxed canonicalisation survives the header refolding and whitespace
        changes relays commonly make; rsa-sha256 is what every verifier accepts.
        """
        signature: bytes = dkim.sign(
            msg_bytes,
            self._selector,
            self._domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=b"rsa-sha256",
            include_headers=self._headers,
            linesep=b"\r\n",
        )
        return signature + msg_bytes

    def __repr__(self) -> str:  # never print the key
        return f"DkimSigner(selector={self.selector!r}, domain={self.domain!r})"


def load_dkim_signer(selector: str, domain: str, key_path: str | os.PathLike[str]) -> DkimSigner:
    """A signer whose private key is read from a file (e.g. a mounted Secret)."""
    path = Path(key_path)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise DkimKeyError(f"cannot read DKIM private key file {path}: {exc.strerror}") from exc
    return DkimSigner(selector, domain, pem)


def dkim_signer_from_env(environ: Mapping[str, str] | None = None) -> DkimSigner | None:
    """The signer configured by ``BRIDGE_DKIM_SELECTOR/DOMAIN/KEY_FILE``, or ``None`` if unset.

    ``None`` (no DKIM) is the local default: the loopback SMTP sink does not verify. A
    partial configuration is an error, since silently sending unsigned mail in production
    would hurt deliverability without anyone noticing.
    """
    env = os.environ if environ is None else environ
    values = {name: env.get(name, "").strip() for name in (ENV_SELECTOR, ENV_DOMAIN, ENV_KEY_FILE)}
    if not any(values.values()):
        return None
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise DkimKeyError(f"DKIM partly configured; also set {', '.join(missing)}")
    return load_dkim_signer(values[ENV_SELECTOR], values[ENV_DOMAIN], values[ENV_KEY_FILE])
