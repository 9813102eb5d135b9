"""The DKIM RSA helper process, for real: a child ``python -m mailer.rsa_signing_process``.

Its signatures are byte-identical to signing in-process (PKCS#1 v1.5 is deterministic),
answers match their requests when many are in flight, mail the mailer signs through it
verifies with dkimpy, and when the helper dies the mailer goes on signing in-process.
No network: the child talks over its stdin/stdout.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import dkim
import pytest

from mailer.app import Mailer, start_rsa_process
from mailer.dkim_signing import load_dkim_signer
from mailer.mailer_settings import MailerSettings
from mailer.outcome_ledger import OutcomeLedger
from mailer.rsa_signing_process import RsaProcessUnavailable
from tests.dkim_keys import dkim_dns, new_rsa_key_file

pytestmark = pytest.mark.integration

SELECTOR, DOMAIN = "bridge2026", "chat-seller-us.bridge.example"
MESSAGE = (b"From: TikTok Shop <c.tok@chat-seller-us.bridge.example>\r\n"
           b"To: owner@sunnysocks.example\r\nSubject: A new message\r\n"
           b"Date: Fri, 02 Jan 2026 03:04:05 +0000\r\nMessage-ID: <digest-dg-1@d.example>\r\n"
           b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n"
           b"Is it wool?\r\n")


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_rsa_key_file(tmp_path_factory.mktemp("dkim") / "private.pem")


def dns_for(key_file: Path):  # type: ignore[no-untyped-def]
    return dkim_dns(key_file, SELECTOR, DOMAIN)


def mailer_with_helper(key_file: Path, **settings: object) -> tuple[MailerSettings, Mailer]:
    cfg = MailerSettings(dkim_key_file=str(key_file), dkim_selector=SELECTOR,
                         dkim_domain=DOMAIN, **settings)  # type: ignore[arg-type]
    signer = load_dkim_signer(SELECTOR, DOMAIN, key_file)
    ledger = OutcomeLedger("127.0.0.1:1", "mail.outcomes")
    return cfg, Mailer(cfg, None, None, signer, ledger)  # type: ignore[arg-type]


async def test_helper_signatures_equal_in_process_ones_with_many_in_flight(
        key_file: Path) -> None:
    signer = load_dkim_signer(SELECTOR, DOMAIN, key_file)
    cfg = MailerSettings(dkim_key_file=str(key_file))
    helper = await start_rsa_process(cfg, signer)
    assert helper is not None and helper.alive
    try:
        digests = [hashlib.sha256(str(i).encode()).digest() for i in range(200)]
        signatures = await asyncio.wait_for(
            asyncio.gather(*(helper.sign(d) for d in digests)), 30)
        assert signatures == [signer.rsa_sign(d) for d in digests]
    finally:
        await helper.close()
    assert not helper.alive
    with pytest.raises(RsaProcessUnavailable):
        await helper.sign(digests[0])


async def test_mail_signed_through_the_helper_verifies_and_survives_its_death(
        key_file: Path) -> None:
    cfg, mailer = mailer_with_helper(key_file)
    helper = await start_rsa_process(cfg, mailer.signer)
    assert helper is not None
    mailer._rsa_process = helper
    try:
        signed = await mailer.sign(MESSAGE)
        assert dkim.verify(signed, dnsfunc=dns_for(key_file))
        assert helper.pid is not None
        process = helper._process
        assert process is not None
        process.kill()
        await asyncio.wait_for(process.wait(), 10)
        # In flight when it died, or asked after: signed in-process, never unsigned.
        after = await asyncio.wait_for(mailer.sign(MESSAGE), 10)
        assert after.startswith(b"DKIM-Signature:")
        assert dkim.verify(after, dnsfunc=dns_for(key_file))
        assert not helper.alive
    finally:
        await helper.close()
        mailer.close()


async def test_no_helper_without_dkim_or_when_turned_off(key_file: Path) -> None:
    signer = load_dkim_signer(SELECTOR, DOMAIN, key_file)
    assert await start_rsa_process(MailerSettings(), None) is None
    assert await start_rsa_process(
        MailerSettings(dkim_key_file=str(key_file), mailer_dkim_rsa_process=False),
        signer) is None
