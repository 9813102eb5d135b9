"""The compose helper processes, for real: children ``python -m mailer.compose_process``.

A child composes and signs the same mail as the event loop (only the moments it takes,
Date, the reply token's time and DKIM ``t=``/``b=``, may differ), its mail verifies with
dkimpy, answers match their requests when many are in flight across several children,
a digest a child cannot compose comes back with the reason, and when the children die
the mailer goes on composing on the loop. No network: children talk over stdin/stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import dkim
import pytest

from mailer.app import Mailer, start_compose_processes
from mailer.compose_process import ComposeFailed, ComposeProcesses, ComposeProcessUnavailable
from mailer.dkim_signing import load_dkim_signer
from mailer.mailer_settings import MailerSettings
from mailer.outcome_ledger import OutcomeLedger
from shared.codec import encode
from shared.events import ChatContent, Digest, DigestMessage
from tests.dkim_keys import dkim_dns, new_rsa_key_file

pytestmark = pytest.mark.integration

SELECTOR, DOMAIN = "bridge2026", "chat-seller-us.bridge.example"


def digest(n: int, *, name: str = "Zoë Buyer") -> Digest:
    return Digest(
        digest_id=f"dg-{n}",
        shop_id="shop-1",
        conversation_id=f"conv-{n}",
        buyer_id="b-1",
        buyer_name=name,
        shop_name="Sunny Socks",
        previous_digest_ids=(f"dg-prev-{n}",),
        messages=(
            DigestMessage(f"m{n}", 1_764_070_000_000, ChatContent(text=f"Wool? #{n} 🧦")),
            DigestMessage(
                f"m{n}b",
                1_764_070_001_000,
                ChatContent(kind="order_card", order_id=f"57{n}", status="paid"),
            ),
        ),
        destination_email=f"owner{n}@sunnysocks.example",
    )


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return new_rsa_key_file(tmp_path_factory.mktemp("dkim") / "private.pem")


def dns_for(key_file: Path):  # type: ignore[no-untyped-def]
    return dkim_dns(key_file, SELECTOR, DOMAIN)


def settings(key_file: Path, **extra: object) -> MailerSettings:
    return MailerSettings(
        dkim_key_file=str(key_file),
        dkim_selector=SELECTOR,
        dkim_domain=DOMAIN,
        token_keys="7:a-test-key-for-compose-processes",  # type: ignore[arg-type]
        bounce_domain="bounces.bridge.example",
        **extra,
    )  # type: ignore[arg-type]


def mailer(cfg: MailerSettings, key_file: Path, processes=None) -> Mailer:  # type: ignore[no-untyped-def]
    signer = load_dkim_signer(SELECTOR, DOMAIN, key_file)
    ledger = OutcomeLedger("127.0.0.1:1", "mail.outcomes")
    return Mailer(cfg, None, None, signer, ledger, processes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(cfg: MailerSettings) -> AsyncIterator[ComposeProcesses]:
    """The configured compose processes, started, closed on the way out."""
    processes = await start_compose_processes(cfg)
    assert processes is not None
    try:
        yield processes
    finally:
        await processes.close()


def comparable(raw: bytes) -> dict[str, object]:
    """What must not depend on where or when the mail was composed."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    headers = {
        k: str(v) for k, v in msg.items() if k not in ("Date", "DKIM-Signature", "From", "Reply-To")
    }
    parts = [p.get_content() for p in msg.walk() if not p.is_multipart()]
    return {"headers": headers, "parts": parts, "from": msg["From"].addresses[0].domain}


async def test_a_child_composes_the_same_signed_mail_as_the_loop(key_file: Path) -> None:
    cfg = settings(key_file, mailer_compose_processes=2)
    async with running(cfg) as processes:
        m = mailer(cfg, key_file, processes)
        items = [digest(n) for n in range(40)]
        in_children = await asyncio.wait_for(
            asyncio.gather(*(m.compose_signed(d, encode(d)) for d in items)), 30
        )
        for d, (sender, to, raw) in zip(items, in_children, strict=True):
            loop_sender, loop_to, loop_raw = m.compose(d)
            assert sender == loop_sender == f"bounce+{d.digest_id}@bounces.bridge.example"
            assert to == loop_to == d.destination_email
            assert comparable(raw) == comparable(loop_raw)
            assert dkim.verify(raw, dnsfunc=dns_for(key_file))
        assert all(p.alive for p in processes.processes)


async def test_a_digest_a_child_cannot_compose_comes_back_with_the_reason(key_file: Path) -> None:
    cfg = settings(
        key_file,
        mailer_compose_processes=1,
        settings_link_template="https://s.example/{no_such_field}",
    )
    async with running(cfg) as processes:
        with pytest.raises(ComposeFailed, match="^KeyError: 'no_such_field'$"):
            await asyncio.wait_for(processes.compose(encode(digest(1))), 30)
        # The child lives on and answers the next request.
        with pytest.raises(ComposeFailed, match="no_such_field"):
            await asyncio.wait_for(processes.compose(encode(digest(2))), 30)
        assert processes.alive


async def test_when_the_children_die_the_mailer_composes_on_the_loop(key_file: Path) -> None:
    cfg = settings(key_file, mailer_compose_processes=1)
    async with running(cfg) as processes:
        m = mailer(cfg, key_file, processes)
        d = digest(3)
        await asyncio.wait_for(m.compose_signed(d, encode(d)), 30)  # started and answering
        os.kill(processes.pids[0], signal.SIGKILL)
        for _ in range(100):
            if not processes.alive:
                break
            await asyncio.sleep(0.05)
        assert not processes.alive
        with pytest.raises(ComposeProcessUnavailable):
            await processes.compose(encode(d))
        sender, to, raw = await asyncio.wait_for(m.compose_signed(d, encode(d)), 30)
        assert to == d.destination_email
        assert dkim.verify(raw, dnsfunc=dns_for(key_file))


async def test_no_children_unless_configured(key_file: Path) -> None:
    assert await start_compose_processes(settings(key_file, mailer_compose_processes=0)) is None


async def test_a_child_that_died_is_restarted_and_composes_again(key_file: Path) -> None:
    cfg = settings(key_file, mailer_compose_processes=1)
    async with running(cfg) as processes:
        child = processes.processes[0]
        child.restart_interval_s = 0.0  # production waits 10 s between restarts
        m = mailer(cfg, key_file, processes)
        d = digest(4)
        await asyncio.wait_for(m.compose_signed(d, encode(d)), 30)
        first_pid = child.pid
        assert first_pid is not None
        os.kill(first_pid, signal.SIGKILL)
        for _ in range(100):
            if not child.alive:
                break
            await asyncio.sleep(0.05)
        # The mail is composed on the loop meanwhile, and the dead child is restarted.
        _, _, raw = await asyncio.wait_for(m.compose_signed(d, encode(d)), 30)
        assert dkim.verify(raw, dnsfunc=dns_for(key_file))
        for _ in range(200):
            if child.alive:
                break
            await asyncio.sleep(0.05)
        assert child.alive and child.pid != first_pid
        _, _, raw = await asyncio.wait_for(processes.compose(encode(d)), 30)
        assert dkim.verify(raw, dnsfunc=dns_for(key_file))
