"""A fresh DKIM RSA key on disk and the DNS answer a verifier would get for it."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path


def new_rsa_key_file(path: Path) -> Path:
    """A 2048-bit RSA private key in PEM at ``path`` (openssl, as an operator makes one)."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to generate the test DKIM key"
    subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    return path


def dkim_dns(key_file: Path, selector: str, domain: str) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` publishing the key's public half at ``selector._domainkey.domain``."""
    public_der = subprocess.run(
        ["openssl", "rsa", "-in", str(key_file), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    name = f"{selector}._domainkey.{domain}.".encode()
    return lambda query, timeout=5: record if query == name else None
