"""DKIM-sign outgoing digests (RFC 6376) with dkimpy.

The signer is built once at start-up from a PEM key (a mounted Kubernetes Secret in
production) and then used as a pure function: bytes in, signed bytes out. A bad key fails
at start-up with :class:`DkimKeyError`, never on the first send.

dkimpy does the canonicalisation, hashing and header layout; only the RSA private-key
operation is handed to OpenSSL (through ``cryptography``) when that is installed. dkimpy's
own RSA is pure-Python big-integer arithmetic, ~6 ms per 2048-bit signature, which made
signing the largest per-digest cost of the mailer; OpenSSL does it in well under 1 ms.
Without ``cryptography`` the signer falls back to dkimpy's RSA (same bytes, slower).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

try:  # optional accelerator, see the module docstring
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
except ImportError:  # pragma: no cover - exercised only where cryptography is absent
    serialization = None  # type: ignore[assignment]

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
        self._openssl_key = _openssl_rsa_key(pem)

    def sign(self, msg_bytes: bytes) -> bytes:
        """Return ``msg_bytes`` with a ``DKIM-Signature`` header prepended.

        relaxed/relaxed canonicalisation survives the header refolding and whitespace
        changes relays commonly make; rsa-sha256 is what every verifier accepts.
        """
        signer = (dkim.DKIM(msg_bytes, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
                  if self._openssl_key is None
                  else _OpenSslRsaDKIM(msg_bytes, self._openssl_key, linesep=b"\r\n"))
        signature: bytes = signer.sign(
            self._selector,
            self._domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=self._headers,
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


def _openssl_rsa_key(pem: bytes) -> object | None:
    if serialization is None:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None  # dkimpy accepted it; let dkimpy sign it
    return key if isinstance(key, rsa.RSAPrivateKey) else None


class _OpenSslRsaDKIM(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's signer with the RSASSA-PKCS1-v1_5 step done by OpenSSL.

    dkimpy calls its module-level RSA function from inside ``gen_header``; overriding
    that one method (a copy of dkimpy 1.1's, minus the ed25519 branch and standardize
    mode) is the narrowest hook. The DKIM tests verify every signature with dkimpy.
    """

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey, *, linesep: bytes) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256", linesep=linesep)
        self._rsa = key

    def gen_header(self, fields, include_headers, canon_policy, header_name, pk,  # type: ignore[no-untyped-def]
                   standardize=False):
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = dkim.HashThrough(self.hasher(), self.debug_content)
        sig = dict(fields)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(h, canon_policy, headers, include_headers,
                                                header, sig)
        signature = self._rsa.sign(h.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        idx = [i for i in range(len(fields)) if fields[i][0] == b"b"][0]
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)
