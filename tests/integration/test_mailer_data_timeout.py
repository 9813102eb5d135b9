"""The reply to the end of DATA: waited for as RFC 5321 s.4.5.3.2.6 says, and counted
when it never comes.

A relay that has taken a mail but is slow to say 250 must not get it twice: the end of
DATA waits ``BRIDGE_SMTP_DATA_TIMEOUT_S`` (10 minutes by default), every other command
the short ``BRIDGE_SMTP_TIMEOUT_S``. When even that wait runs out (or the connection
drops after the final dot) the outcome is ambiguous: counted on
``bridge_mailer_ambiguous_sends_total``, retried (a duplicate rather than a loss) and
noted in the ``sent`` outcome. Timeouts are scaled down here (1 s command timeout, a few
seconds of data timeout) so the tests run in seconds.

Real parts only: aiosmtpd relays on 127.0.0.1 (:class:`tests.mailer_run.Relay`), the pool
itself, and the mailer process on a broker of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio

from devstack.stack import wait_healthy
from mailer.smtp_pool import (
    AMBIGUOUS_DISCONNECTED,
    AMBIGUOUS_TIMEOUT,
    RelayConfig,
    SendError,
    SmtpPool,
)
from shared.compacted_topic import replay_topic
from shared.events import ChatContent, Digest, DigestMessage
from shared.topics import MAIL_OUTCOMES
from tests.mailer_run import Mailers, Relay, produce
from tests.polling import eventually
from tests.private_broker import private_broker

pytestmark = pytest.mark.integration

COMMAND_TIMEOUT_S = 1.0


def mail(digest_id: str) -> bytes:
    return (
        "From: a@bridge.example\r\nTo: b@shop.example\r\nSubject: hi\r\n"
        f"Message-ID: <{digest_id}@bridge.example>\r\nX-Bridge-Digest-Id: {digest_id}\r\n"
        "\r\nhello\r\n"
    ).encode()


def pool_for(relay: Relay, data_timeout_s: float) -> SmtpPool:
    return SmtpPool(
        RelayConfig(
            host="127.0.0.1",
            port=relay.port,
            timeout_s=COMMAND_TIMEOUT_S,
            data_timeout_s=data_timeout_s,
            pool_size=1,
        )
    )


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


# The pool: which failures are ambiguous, and that a slow 250 is waited for.


async def test_a_250_slower_than_the_command_timeout_is_waited_for(relay: Relay) -> None:
    relay.reply_stall_s, relay.stall_replies = 3 * COMMAND_TIMEOUT_S, 1
    pool = pool_for(relay, data_timeout_s=10)
    try:
        reply = await pool.send("a@bridge.example", ["b@shop.example"], mail("slow"))
    finally:
        await pool.close()
    assert reply.startswith("2.0.0 Stored")
    assert relay.counts["slow"] == 1


async def test_no_reply_to_the_end_of_data_is_an_ambiguous_timeout(relay: Relay) -> None:
    relay.reply_stall_s, relay.stall_replies = 3.0, 1
    pool = pool_for(relay, data_timeout_s=0.5)
    try:
        with pytest.raises(SendError) as info:
            await pool.send("a@bridge.example", ["b@shop.example"], mail("stalled"))
        # The relay has it: that is why the failure is ambiguous, not merely temporary.
        assert relay.counts["stalled"] == 1
        assert (info.value.ambiguous, info.value.permanent) == (AMBIGUOUS_TIMEOUT, False)
        # The pool replaced the connection it gave up on: the next send works.
        await pool.send("a@bridge.example", ["b@shop.example"], mail("next"))
    finally:
        await pool.close()
    assert relay.counts["next"] == 1


async def test_a_connection_dropped_after_the_final_dot_is_ambiguous(relay: Relay) -> None:
    relay.drop_replies = 1
    pool = pool_for(relay, data_timeout_s=5)
    try:
        with pytest.raises(SendError) as info:
            await pool.send("a@bridge.example", ["b@shop.example"], mail("dropped"))
    finally:
        await pool.close()
    assert relay.counts["dropped"] == 1
    assert info.value.ambiguous == AMBIGUOUS_DISCONNECTED


async def test_a_send_cancelled_while_waiting_does_not_leave_its_reply_to_the_next(
    relay: Relay,
) -> None:
    relay.reply_stall_s, relay.stall_replies = 2.0, 1
    pool = pool_for(relay, data_timeout_s=10)
    try:
        waiting = asyncio.create_task(
            pool.send("a@bridge.example", ["b@shop.example"], mail("cancelled"))
        )
        await eventually(lambda: relay.counts["cancelled"] == 1, timeout_s=5, what="the DATA")
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        # On a reused connection the stalled 250 would answer this MAIL FROM and every
        # later reply would be one command off.
        reply = await pool.send("a@bridge.example", ["b@shop.example"], mail("after"))
    finally:
        await pool.close()
    assert reply.startswith("2.0.0 Stored")
    assert relay.counts["after"] == 1


async def test_a_relay_that_is_down_is_not_ambiguous(relay: Relay) -> None:
    await relay.stop()  # nothing listens: the mail cannot have gone anywhere
    pool = pool_for(relay, data_timeout_s=5)
    try:
        with pytest.raises(SendError) as info:
            await pool.send("a@bridge.example", ["b@shop.example"], mail("refused"))
    finally:
        await pool.close()
    assert info.value.ambiguous == ""


# The mailer process: a digest through Kafka, the relay and mail.outcomes.


@pytest_asyncio.fixture
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    # One per test: a digest another test left unsent must not take this test's stall.
    b = private_broker(tmp_path_factory.mktemp("mailer-data-timeout-broker"))
    await b.start_with_topics()
    try:
        yield b.bootstrap
    finally:
        b.stop()


def make_digest(run: str, n: int) -> Digest:
    return Digest(
        digest_id=f"dg-{run}-{n}",
        shop_id=f"shop-{run}",
        conversation_id=f"conv-{n}",
        buyer_id=f"buyer-{n}",
        buyer_name="Ana",
        shop_name="Sunny Socks",
        messages=(DigestMessage(f"m-{run}-{n}", 1_764_070_000_000 + n, ChatContent(text="Hi?")),),
        destination_email="owner@sunnysocks.example",
    )


async def recorded(bootstrap: str) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}

    def apply(rec) -> None:  # type: ignore[no-untyped-def]
        if rec.value is not None:
            found[rec.key.decode()] = orjson.loads(rec.value)

    await replay_topic(bootstrap, MAIL_OUTCOMES.name, apply)
    return found


async def wait_sent(
    bootstrap: str, ids: set[str], timeout_s: float
) -> dict[str, dict[str, object]]:
    """Every outcome on mail.outcomes, once each of ``ids`` is recorded ``sent``."""

    async def all_sent() -> dict[str, dict[str, object]] | None:
        outcomes = await recorded(bootstrap)
        return outcomes if all(outcomes.get(i, {}).get("status") == "sent" for i in ids) else None

    return await eventually(all_sent, timeout_s=timeout_s, interval_s=0.3, what=f"{ids} sent")


async def ambiguous_sends(port: int) -> dict[str, float]:
    """The mailer's ambiguous sends by reason, the reasons still at 0 left out."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("bridge_mailer_ambiguous_sends_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            if count := float(line.rsplit(" ", 1)[1]):
                found[reason] = count
    return found


def timeouts(data_timeout_s: float) -> dict[str, str]:
    return {
        "BRIDGE_SMTP_TIMEOUT_S": str(COMMAND_TIMEOUT_S),
        "BRIDGE_SMTP_DATA_TIMEOUT_S": str(data_timeout_s),
    }


async def test_a_relay_stalling_its_250_past_the_command_timeout_gets_each_digest_once(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    # Every reply to the end of DATA stalls 3 s: longer than the command timeout (where
    # the old mailer gave up and sent again), shorter than the data timeout.
    relay.reply_stall_s, relay.stall_replies = 3.0, 10_000
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(3)]
    mailers = Mailers(broker, relay, tmp_path, timeouts(data_timeout_s=5))
    await mailers.start()
    try:
        await produce(broker, digests)
        ids = {d.digest_id for d in digests}
        outcomes = await wait_sent(broker, ids, timeout_s=30)
        await asyncio.sleep(1.5)  # a resend would arrive now
        assert {i: relay.counts[i] for i in ids} == dict.fromkeys(ids, 1), mailers.logs()
        assert all(outcomes[i]["reason"] == "" for i in ids)
        assert await ambiguous_sends(mailers.ports.mailer) == {}
    finally:
        mailers.procs.stop_all()


async def test_no_reply_within_the_data_timeout_is_counted_once_resent_and_noted(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    # The first reply stalls past the data timeout; the resend is answered at once.
    relay.reply_stall_s, relay.stall_replies = 4.0, 1
    run = uuid.uuid4().hex[:8]
    digest = make_digest(run, 0)
    mailers = Mailers(broker, relay, tmp_path, timeouts(data_timeout_s=1.5))
    await mailers.start()
    try:
        await produce(broker, [digest])
        outcomes = await wait_sent(broker, {digest.digest_id}, timeout_s=30)
        await eventually(
            lambda: relay.counts[digest.digest_id] >= 2, timeout_s=5, what="the resend"
        )
        await asyncio.sleep(1.0)
        # The documented choice: a duplicate (same Message-ID), never a loss, and counted.
        assert relay.counts[digest.digest_id] == 2
        assert len(relay.message_ids[digest.digest_id]) == 1
        assert await ambiguous_sends(mailers.ports.mailer) == {AMBIGUOUS_TIMEOUT: 1.0}
        outcome = outcomes[digest.digest_id]
        assert outcome["attempts"] == 2
        assert str(outcome["reason"]).startswith(
            "1 earlier attempt(s) got no reply to the end of DATA"
        )
    finally:
        mailers.procs.stop_all()


async def test_sigterm_while_the_relay_holds_its_250_waits_for_it_and_sends_once(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    # What Kubernetes does on a rollout: SIGTERM while a mail is on the wire. The mailer
    # stops taking digests, waits for the relay's late 250, records it and exits 0; the
    # next mailer finds the outcome and does not send the mail again.
    relay.reply_stall_s, relay.stall_replies = 3.0, 1
    run = uuid.uuid4().hex[:8]
    digest = make_digest(run, 0)
    mailers = Mailers(broker, relay, tmp_path, timeouts(data_timeout_s=10))
    await mailers.start()
    try:
        await produce(broker, [digest])
        await eventually(
            lambda: relay.counts[digest.digest_id] == 1, timeout_s=30, what="the mail at the relay"
        )
        proc = mailers.procs.procs["mailer"]
        os.killpg(proc.pid, signal.SIGTERM)  # the relay holds its 250 for 3 s more
        await eventually(lambda: proc.poll() is not None, timeout_s=20, what="the mailer's exit")
        assert proc.returncode == 0, mailers.logs()
        outcome = (await recorded(broker))[digest.digest_id]
        assert outcome["status"] == "sent", mailers.logs()
        mailers.procs.start("mailer")
        await wait_healthy({"mailer": mailers.ports.mailer}, timeout_s=30)
        await asyncio.sleep(2.0)  # a resend would arrive now
        assert relay.counts[digest.digest_id] == 1, mailers.logs()
    finally:
        mailers.procs.stop_all()
