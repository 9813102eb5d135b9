"""DKIM-sign outgoing digests (RFC 6376), rsa-sha256 with relaxed/relaxed canonicalisation.

The signer is built once at start-up from a PEM key (a mounted Kubernetes Secret in
production) and then used as a pure function: bytes in, signed bytes out. A bad key fails
at start-up with :class:`DkimKeyError`, never on the first send.

The mailer signs in one place: :meth:`DkimSigner.sign`, called where the digest is
composed (its compose helper process, or the event loop when there is none). The
canonicalisation is RFC 6376 s.3.4.2/s.3.4.4 written out directly, and the RSA step is
OpenSSL's (through ``cryptography``), rather than dkimpy re-parsing the PEM key, every
header and the whole body with regexes on each sign (docs/performance.md). The output
is byte-identical to dkimpy's public ``dkim.sign``, which tests/unit/test_dkim.py checks
on generated messages. Without ``cryptography``, or for a message the direct path does
not handle, dkimpy signs (same bytes, slower).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dkim
from dkim.crypto import UnparsableKeyError, parse_pem_private_key

from shared.errors import BridgeError

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


class DkimKeyError(BridgeError, ValueError):
    """The DKIM configuration or private key is unusable; the reason says which part."""


@dataclass(frozen=True, slots=True)
class _PreparedSignature:
    """A message canonicalised and hashed, waiting for its RSA signature."""

    message: bytes
    fields: list[tuple[bytes, bytes]]
    digest: bytes  # SHA-256 of the signed headers, the value RSA signs

    def finish(self, signature: bytes) -> bytes:
        """The message with its ``DKIM-Signature`` header, given the RSA signature."""
        fields = [
            (b"b", base64.b64encode(signature)) if k == b"b" else (k, v) for k, v in self.fields
        ]
        value = b"; ".join(b"=".join(x) for x in fields) + b"\r\n"
        return (
            b"DKIM-Signature: "
            + dkim.fold(value, namelen=_SIG_NAME_LEN, linesep=b"\r\n")
            + self.message
        )


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
        # Each name listed twice (oversigning, RFC 6376 s.8.15): the second listing signs the
        # absence of another instance, so a relay cannot add a From or Reply-To above ours.
        self._headers = [h.lower().encode("ascii") for h in SIGNED_HEADERS for _ in (1, 2)]
        self._h_tag = b" : ".join(self._headers)
        self._openssl_key = _openssl_rsa_key(pem)
        # With DNS-name selector and domain, no tag but b= can look like "b=" to dkimpy's
        # RE_BTAG, so _prepare may cut the placeholder off directly (see _empty_b_tag).
        self._plain_names = all(_DNS_NAME.fullmatch(x) for x in (self._selector, self._domain))

    def sign(self, msg_bytes: bytes) -> bytes:
        """Return ``msg_bytes`` with a ``DKIM-Signature`` header prepended.

        relaxed/relaxed canonicalisation survives the header refolding and whitespace
        changes relays commonly make; rsa-sha256 is what every verifier accepts.
        """
        prepared = self._prepare(msg_bytes)
        if prepared is None:
            return self._sign_with_dkimpy(msg_bytes)
        return prepared.finish(self._rsa_sign(prepared.digest))

    def _prepare(self, msg_bytes: bytes) -> _PreparedSignature | None:
        """Canonicalise and hash ``msg_bytes``: everything but the RSA step.

        ``None`` when the direct path does not apply (no ``cryptography``, or a message
        shape it leaves to dkimpy); :meth:`sign` then does it all through dkimpy.
        """
        if self._openssl_key is None:
            return None
        parsed = _split_message(msg_bytes)
        if parsed is None:
            return None
        headers, body = parsed
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(body)).digest())
        fields = [
            (b"v", b"1"),
            (b"a", b"rsa-sha256"),
            (b"c", b"relaxed/relaxed"),
            (b"d", self._domain),
            (b"i", b"@" + self._domain),
            (b"q", b"dns/txt"),
            (b"s", self._selector),
            (b"t", str(int(time.time())).encode("ascii")),
            (b"h", self._h_tag),
            (b"bh", body_hash),
            # As dkimpy: b= folds onto its own line, so adding the real value later does
            # not move the whitespace of the tags before it.
            (b"b", b"0" * 60),
        ]
        # What dkimpy's gen_header does with the placeholder header: fold it, empty b=,
        # canonicalise it, hash it last and without its CRLF (RFC 6376 s.3.7).
        value = dkim.fold(
            b"; ".join(b"=".join(x) for x in fields), namelen=_SIG_NAME_LEN, linesep=b"\r\n"
        )
        value = _empty_b_tag(value) if self._plain_names else dkim.RE_BTAG.sub(b"\\1", value)
        h = hashlib.sha256()
        for name, raw in _select_headers(headers, self._headers):
            h.update(name.lower())
            h.update(b":")
            h.update(_relaxed_header_value(raw))
        h.update(b"dkim-signature:")
        h.update(_relaxed_header_value(b" " + value).rstrip())
        return _PreparedSignature(msg_bytes, fields, h.digest())

    def _rsa_sign(self, digest: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 over a SHA-256 ``digest`` (OpenSSL)."""
        assert self._openssl_key is not None
        signature: bytes = self._openssl_key.sign(
            digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())
        )
        return signature

    def _sign_with_dkimpy(self, msg_bytes: bytes) -> bytes:
        signer = (
            dkim.DKIM(msg_bytes, signature_algorithm=b"rsa-sha256", linesep=b"\r\n")
            if self._openssl_key is None
            else _OpenSslRsaDKIM(msg_bytes, self._openssl_key, linesep=b"\r\n")
        )
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


def _openssl_rsa_key(pem: bytes) -> rsa.RSAPrivateKey | None:
    if serialization is None:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None  # dkimpy accepted it; let dkimpy sign it
    return key if isinstance(key, rsa.RSAPrivateKey) else None


_SIG_NAME_LEN = len(b"DKIM-Signature")
_WSP_RUN = re.compile(rb"[\t ]+")
_SPACE_RUN = re.compile(rb"  +")
_HEADER_NAME = re.compile(rb"([\x21-\x7e]+?):")


_DNS_NAME = re.compile(rb"[A-Za-z0-9._-]+")
_B_PLACEHOLDER = b" b=" + b"0" * 60


def _empty_b_tag(value: bytes) -> bytes:
    """``dkim.RE_BTAG.sub(b"\\1", value)`` for a folded signature value that ends in
    the b= placeholder and whose other tags cannot hold a ``b=`` (plain DNS names, digits,
    base64 after "bh="): the regex scans the whole value, this cuts the known 60
    characters. Anything else goes through the regex."""
    if value.endswith(_B_PLACEHOLDER) and value.count(b"b=") == 1:
        return value[:-60]
    return dkim.RE_BTAG.sub(b"\\1", value)


def _split_message(msg: bytes) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
    """(header fields as (name, raw value incl. folds and CRLF), body), parsed as dkimpy's
    ``rfc822_parse`` does: any line ending counts, CRLF is what gets hashed. ``None``
    for shapes left to dkimpy (no header/body separator, a line that is not a header)."""
    if msg.count(b"\n") != msg.count(b"\r\n"):
        msg = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    end = msg.find(b"\r\n\r\n")
    if end <= 0:
        return None
    headers: list[tuple[bytes, bytes]] = []
    for line in msg[:end].split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not headers:
                return None
            name, value = headers[-1]
            headers[-1] = (name, value + line + b"\r\n")
            continue
        match = _HEADER_NAME.match(line)
        if match is None:
            return None
        headers.append((match.group(1), line[match.end() :] + b"\r\n"))
    return headers, msg[end + 4 :]


def _select_headers(
    headers: list[tuple[bytes, bytes]], wanted: list[bytes]
) -> list[tuple[bytes, bytes]]:
    """RFC 6376 s.5.4.2: for each listed name, the last instance not yet taken, bottom up;
    a name with no (further) instance signs its absence and hashes nothing."""
    # Each name's positions, top down, so taking one is a pop, not a rescan of the
    # headers per listed name.
    positions: dict[bytes, list[int]] = {}
    for i, (name, _) in enumerate(headers):
        positions.setdefault(name.lower(), []).append(i)
    chosen = []
    for name in wanted:
        found = positions.get(name)
        if found:
            chosen.append(headers[found.pop()])
    return chosen


def _relaxed_header_value(value: bytes) -> bytes:
    """RFC 6376 s.3.4.2 for one value: unfold, runs of WSP to one space, trim; CRLF ends it."""
    value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return value.strip() + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 s.3.4.4: no WSP before a line end, runs of WSP to one space, no trailing
    empty lines, a non-empty body ends in CRLF."""
    # Same result as dkimpy's regexes (trailing WSP removed, then runs squeezed), in a
    # few C passes: tabs become spaces, runs of spaces become one (a regex whose literal
    # prefix "  " lets it skip single spaces; [\t ]+ would stop at every space), and a
    # line's one remaining trailing space goes.
    body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACE_RUN.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


class _OpenSslRsaDKIM(dkim.DKIM):  # type: ignore[misc]
    """dkimpy's signer with the RSASSA-PKCS1-v1_5 step done by OpenSSL.

    dkimpy calls its module-level RSA function from inside ``gen_header``; overriding
    that one method (a copy of dkimpy 1.1's, minus the ed25519 branch and standardize
    mode) is the narrowest hook. The DKIM tests verify every signature with dkimpy.
    """

    def __init__(self, message: bytes, key: rsa.RSAPrivateKey, *, linesep: bytes) -> None:
        super().__init__(message, signature_algorithm=b"rsa-sha256", linesep=linesep)
        self._rsa = key

    def gen_header(
        self,
        fields,
        include_headers,
        canon_policy,
        header_name,
        pk,  # type: ignore[no-untyped-def]
        standardize=False,
    ):
        header_value = b"; ".join(b"=".join(x) for x in fields)
        header_value = dkim.fold(header_value, namelen=len(header_name), linesep=b"\r\n")
        header_value = dkim.RE_BTAG.sub(b"\\1", header_value)
        header = (header_name, b" " + header_value)
        h = dkim.HashThrough(self.hasher(), self.debug_content)
        sig = dict(fields)
        headers = canon_policy.canonicalize_headers(self.headers)
        self.signed_headers = dkim.hash_headers(
            h, canon_policy, headers, include_headers, header, sig
        )
        signature = self._rsa.sign(h.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        idx = [i for i in range(len(fields)) if fields[i][0] == b"b"][0]
        fields[idx] = (b"b", base64.b64encode(signature))
        header_value = b"; ".join(b"=".join(x) for x in fields) + self.linesep
        return dkim.fold(header_value, namelen=len(header_name), linesep=self.linesep)
