"""The DKIM signer: its configuration errors, and its output byte for byte dkimpy's.

Signatures on the mail the mailer actually sends, verified against the published key:
tests/integration/test_dkim_sent_mail.py. The RSA key is generated per module with the
``openssl`` CLI.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import unittest.mock
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailer.compose import ComposeContext, compose_digest_bytes
from mailer.dkim_signing import (
    ENV_DOMAIN,
    ENV_KEY_FILE,
    ENV_SELECTOR,
    SIGNED_HEADERS,
    DkimKeyError,
    DkimSigner,
    dkim_signer_from_env,
    load_dkim_signer,
)
from mailer.render import DigestLinks
from shared.events import ChatContent, Digest, DigestMessage

SELECTOR = "bridge2026"
DOMAIN = "chat-seller-us.bridge.example"


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    private_path: Path
    dns_txt: bytes  # the TXT record a verifier would find at <selector>._domainkey.<domain>


@pytest.fixture(scope="module")
def test_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to generate the test DKIM key"
    path = tmp_path_factory.mktemp("dkim") / "private.pem"
    subprocess.run([openssl, "genrsa", "-out", str(path), "2048"], check=True, capture_output=True)
    public_der = subprocess.run(
        [openssl, "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    txt = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    return SigningKey(private_pem=path.read_bytes(), private_path=path, dns_txt=txt)


def fake_dns(test_key: SigningKey) -> Callable[..., bytes | None]:
    """A dnsfunc for dkim.verify that knows only our selector's record."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode():
            return test_key.dns_txt
        return None

    return lookup


def digest_bytes(previous: tuple[str, ...] = ("dg-0001",)) -> bytes:
    digest = Digest(
        digest_id="dg-0002",
        shop_id="shop-7",
        conversation_id="conv-42",
        buyer_id="buyer-9",
        buyer_name="Zoë Buyer",
        shop_name="Sunny Socks",
        previous_digest_ids=previous,
        messages=(DigestMessage("m1", 1_764_070_000_000, ChatContent(text="Is it wool? 🧦")),),
    )
    ctx = ComposeContext(
        marketplace_name="TikTok Shop",
        from_address=f"c.tok123@{DOMAIN}",
        to_address="owner@sunnysocks.example",
        message_id_domain="digest.bridge.example",
        links=DigestLinks("https://s.example/chat", "https://s.example/settings", "TikTok Shop"),
        list_unsubscribe_url="https://s.example/settings",
        now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    return compose_digest_bytes(digest, ctx)


def test_unusable_key_fails_at_construction_with_a_clear_reason() -> None:
    with pytest.raises(DkimKeyError, match="not a usable RSA PEM key"):
        DkimSigner(SELECTOR, DOMAIN, b"-----BEGIN PRIVATE KEY-----\nnope\n")


def test_missing_key_file_fails_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(DkimKeyError, match="cannot read DKIM private key file"):
        load_dkim_signer(SELECTOR, DOMAIN, tmp_path / "absent.pem")


def test_env_loader_returns_none_when_dkim_is_not_configured() -> None:
    assert dkim_signer_from_env({}) is None


def test_env_loader_refuses_a_partial_configuration() -> None:
    with pytest.raises(DkimKeyError, match=ENV_KEY_FILE):
        dkim_signer_from_env({ENV_SELECTOR: SELECTOR, ENV_DOMAIN: DOMAIN})


def test_env_loader_reads_the_mounted_key_file(test_key: SigningKey) -> None:
    signer = dkim_signer_from_env(
        {ENV_SELECTOR: SELECTOR, ENV_DOMAIN: DOMAIN, ENV_KEY_FILE: str(test_key.private_path)}
    )
    assert signer is not None
    assert "PRIVATE" not in repr(signer)
    assert dkim.verify(signer.sign(digest_bytes()), dnsfunc=fake_dns(test_key))


def dkimpy_sign(signer: DkimSigner, pem: bytes, message: bytes) -> bytes:
    """What dkimpy's public ``dkim.sign`` makes of ``message`` with the signer's settings
    (its own pure-Python RSA, its own canonicalisation)."""
    signature: bytes = dkim.sign(
        message,
        signer.selector.encode(),
        signer.domain.encode(),
        pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h.lower().encode() for h in SIGNED_HEADERS for _ in (1, 2)],
        linesep=b"\r\n",
    )
    return signature + message


def test_a_digest_is_signed_byte_for_byte_like_dkimpy(test_key: SigningKey) -> None:
    signer = DkimSigner(SELECTOR, DOMAIN, test_key.private_pem)
    with mock_clock():  # the same t= tag for both
        assert signer.sign(digest_bytes()) == dkimpy_sign(
            signer, test_key.private_pem, digest_bytes()
        )


_WSP_TEXT = st.text(alphabet=st.sampled_from(list("ab:;=<>@. \t")), max_size=40)
# The signed headers, one that is not signed, and signed names in other cases.
_HEADER_NAMES = st.sampled_from([*SIGNED_HEADERS, "X-Other", "subject", "FROM"])


@st.composite
def raw_messages(draw: st.DrawFn) -> bytes:
    """Messages shaped like ours and unlike: folded and repeated headers, WSP runs and
    tabs, trailing spaces and blank lines, LF or CRLF line ends."""
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    fields = [("From", "a@b.example")] + draw(
        st.lists(st.tuples(_HEADER_NAMES, _WSP_TEXT), max_size=8)
    )
    head = b""
    for name, value in fields:
        folds = draw(st.lists(_WSP_TEXT.map(lambda s: s.strip() or "x"), max_size=2))
        head += (
            f"{name}:{value}".encode()
            + b"".join(
                eol + draw(st.sampled_from([b" ", b"\t", b"  "])) + f.encode() for f in folds
            )
            + eol
        )
    body_lines = draw(
        st.lists(st.text(alphabet=st.sampled_from(list("xy= \t")), max_size=30), max_size=8)
    )
    return (
        head
        + eol
        + eol.join(line.encode() for line in body_lines)
        + draw(st.sampled_from([b"", eol, eol * 3]))
    )


@given(raw_messages())
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_direct_canonicalisation_signs_byte_for_byte_like_dkimpy(
    fast_signer: DkimSigner, test_key: SigningKey, message: bytes
) -> None:
    with mock_clock():
        assert fast_signer.sign(message) == dkimpy_sign(fast_signer, test_key.private_pem, message)


@pytest.fixture(scope="module")
def fast_signer(test_key: SigningKey) -> DkimSigner:
    return DkimSigner(SELECTOR, DOMAIN, test_key.private_pem)


@contextlib.contextmanager
def mock_clock() -> Iterator[None]:
    """The same t= tag for both signers (hypothesis does not mix with monkeypatch)."""
    with unittest.mock.patch("time.time", lambda: 1_767_225_600.0):
        yield


_BODY_LINES = st.lists(
    st.text(alphabet=st.sampled_from(list("xy=. \t\r\n")), max_size=40), max_size=10
)


@given(_BODY_LINES, st.sampled_from([b"\r\n", b"\n"]))
@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_body_with_wsp_runs_mixed_line_ends_and_lone_cr_signs_like_dkimpy(
    fast_signer: DkimSigner, test_key: SigningKey, lines: list[str], eol: bytes
) -> None:
    message = (
        b"From: a@b.example"
        + eol
        + b"Subject: x"
        + eol
        + eol
        + eol.join(line.encode() for line in lines)
    )
    with mock_clock():
        assert fast_signer.sign(message) == dkimpy_sign(fast_signer, test_key.private_pem, message)


# Selector and domain come from settings: DNS names, and strings that could fool a
# shortcut that assumes only the b= tag can look like "b=" to dkimpy's RE_BTAG.
_SIGNER_NAMES = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True) | st.text(
    alphabet=st.sampled_from(list("ab=; \t.-")), min_size=1, max_size=20
).filter(str.strip)


_DIGEST = digest_bytes()


@given(_SIGNER_NAMES, _SIGNER_NAMES)
@example("x; b =y", "b.example")
@example("b", "b=.example")
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_selector_and_domain_sign_like_dkimpy(
    test_key: SigningKey, selector: str, domain: str
) -> None:
    signer = DkimSigner(selector, domain, test_key.private_pem)
    with mock_clock():
        assert signer.sign(_DIGEST) == dkimpy_sign(signer, test_key.private_pem, _DIGEST)
