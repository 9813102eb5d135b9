"""Finding 7: endpoints that send mail cannot be used to flood a mailbox.

Real ingest processes on the real stack (Tansu, mailer, SMTP sink). The limits are the
defaults: 3 activation mails per recipient per hour (10 per day), 20 mails per shop per hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from devstack.broker import free_port
from devstack.stack import ServiceProcesses, wait_healthy
from devstack.topic_reader import records_so_far
from shared.codec import DecodeError, decode, encode
from shared.events import MailNotice, MailOutcome, NoticeKind
from shared.logging import now_ms
from shared.topics import MAIL_NOTICES, MAIL_OUTCOMES, TopicSpec
from tests.conftest import Stack
from tests.polling import eventually
from tests.security.seller_admin import SellerAdmin

pytestmark = pytest.mark.integration
T = TypeVar("T")
PER_RECIPIENT_HOUR = 3
SETTLE_S = 4.0  # for anything published to reach the sink through the mailer


def outside_address() -> str:
    return f"victim-{uuid.uuid4().hex[:10]}@outside.test"


async def on_topic(stack: Stack, cls: type[T], topic: TopicSpec, mark: bytes) -> list[T]:
    """Every record of ``topic`` holding ``mark``, decoded (other tests' bad records skipped)."""
    parts = await records_so_far(stack.env["KAFKA_BOOTSTRAP"], topic.name, topic.partitions)
    found = []
    for rec in (r for recs in parts.values() for r in recs if r.value and mark in r.value):
        with contextlib.suppress(DecodeError):
            found.append(decode(cls, rec.value))
    return found


async def notices_to(stack: Stack, email: str) -> list[MailNotice]:
    return [
        n
        for n in await on_topic(stack, MailNotice, MAIL_NOTICES, email.encode())
        if n.to_address == email
    ]


async def outcomes_of(stack: Stack, ids: set[str]) -> list[MailOutcome]:
    """The newest outcome of each id, once every id has a final one."""
    found: dict[str, MailOutcome] = {}
    for outcome in await on_topic(stack, MailOutcome, MAIL_OUTCOMES, b'"digest_id"'):
        if outcome.digest_id in ids and outcome.status != "attempting":
            found[outcome.digest_id] = outcome
    return list(found.values()) if len(found) == len(ids) else []


def assert_rate_limited(resp: httpx.Response) -> None:
    assert resp.status_code == 429, resp.text
    body = resp.json()
    assert body["code"] == "rate_limited"
    assert "at most 3 activation mails per recipient per hour" in body["error"]
    assert body["limit"]["scope"] == "recipient" and body["limit"]["limit"] == 3
    assert int(resp.headers["Retry-After"]) == body["retry_after_s"] > 0


@contextlib.asynccontextmanager
async def another_ingest(stack: Stack, name: str) -> AsyncIterator[str]:
    """Another ingest replica: same environment, its own port, no state shared but Kafka."""
    port = free_port()
    procs = ServiceProcesses({**stack.env, "BRIDGE_INGEST_PORT": str(port)}, stack.log_dir / name)
    procs.start("ingest")
    try:
        await wait_healthy({name: port}, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        procs.stop_all()


@pytest_asyncio.fixture(scope="module")
async def second_ingest(stack: Stack) -> AsyncIterator[str]:
    async with another_ingest(stack, "ingest-2") as url:
        yield url


async def test_add_remove_readd_resend_cannot_mail_one_recipient_more_than_the_limit(
    stack: Stack,
) -> None:
    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    shop, main = await admin.create_shop()
    victim = outside_address()
    users = f"/admin/shops/{shop}/users"
    answers = []
    for _ in range(3):  # add, remove, re-add, resend ... as fast as the API answers
        answers.append(await admin.call("POST", users, main, {"email": victim, "role": "cs_agent"}))
        answers.append(await admin.call("POST", f"{users}/{victim}/activation", main))
        answers.append(await admin.call("DELETE", f"{users}/{victim}", main))
    codes = [r.status_code for r in answers]
    assert codes[:2] == [201, 202], [r.text for r in answers]
    sent = sum(1 for r in answers if r.status_code in (201, 202))
    assert sent == PER_RECIPIENT_HOUR, codes
    refused = [r for r in answers if r.status_code == 429]
    assert refused
    for resp in refused:
        assert_rate_limited(resp)
    await asyncio.sleep(SETTLE_S)
    assert len(await notices_to(stack, victim)) == PER_RECIPIENT_HOUR
    assert len(admin.activation_mails(victim)) == PER_RECIPIENT_HOUR
    # A replica started now (a restart, a scale-up) counts the mails sent before it started.
    async with another_ingest(stack, "ingest-late") as late:
        resp = await admin.call(
            "POST", users, main, {"email": victim, "role": "cs_agent"}, url=late
        )
        assert_rate_limited(resp)


async def test_a_superseded_link_cannot_ask_for_another_mail(stack: Stack) -> None:
    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    shop, main = await admin.create_shop()
    victim = outside_address()
    resp = await admin.call(
        "POST", f"/admin/shops/{shop}/users", main, {"email": victim, "role": "cs_agent"}
    )
    assert resp.status_code == 201, resp.text
    old = await admin.link_token(victim)
    resp = await admin.call("POST", f"/admin/shops/{shop}/users/{victim}/activation", main)
    assert resp.status_code == 202, resp.text
    await admin.link_token(victim, at_least=2)
    for _ in range(5):  # no sign-in needed: anyone holding the old mail
        resp = await stack.http.post(f"{admin.url}/admin/activation/resend", json={"token": old})
        assert resp.status_code == 409, resp.text
        assert resp.json()["code"] == "superseded"
        assert (
            "a newer activation link was sent to you; use the newest email" in resp.json()["error"]
        )
    resp = await stack.http.post(f"{admin.url}/admin/activate", json={"token": old})
    assert resp.status_code == 410 and "resend" not in resp.json()
    await asyncio.sleep(SETTLE_S)
    assert len(admin.activation_mails(victim)) == 2
    assert len(await notices_to(stack, victim)) == 2


async def test_two_ingest_replicas_together_cannot_exceed_the_per_recipient_limit(
    stack: Stack, second_ingest: str
) -> None:
    first = f"http://127.0.0.1:{stack.ports.ingest}"
    admin = SellerAdmin(stack, first)
    shop, main = await admin.create_shop()
    users = f"/admin/shops/{shop}/users"

    async def known_to_second(email: str) -> bool:
        resp = await admin.call("GET", users, main, url=second_ingest)
        return resp.status_code == 200 and any(u["email"] == email for u in resp.json()["users"])

    # Sequential, alternating replicas, no pause: each replica reads what the other
    # published before deciding, so the limit is exact however fresh its tail is.
    victim = outside_address()
    resp = await admin.call("POST", users, main, {"email": victim, "role": "cs_agent"})
    assert resp.status_code == 201, resp.text
    await eventually(lambda: known_to_second(victim), timeout_s=10)
    answers = []
    for url in (second_ingest, first, second_ingest, first):
        answers.append(await admin.call("POST", f"{users}/{victim}/activation", main, url=url))
    assert [r.status_code for r in answers] == [202, 202, 429, 429], [r.text for r in answers]
    for resp in answers[2:]:
        assert_rate_limited(resp)

    # A burst at both replicas at once: whatever the two publish before they see each
    # other's records, the mailer sends no more than the limit.
    burst = outside_address()
    resp = await admin.call("POST", users, main, {"email": burst, "role": "cs_agent"})
    assert resp.status_code == 201, resp.text
    await eventually(lambda: known_to_second(burst), timeout_s=10)
    answers = await asyncio.gather(
        *(
            admin.call("POST", f"{users}/{burst}/activation", main, url=url)
            for url in (first, second_ingest) * 4
        )
    )
    assert all(r.status_code in (202, 429) for r in answers), [r.text for r in answers]
    published = await notices_to(stack, burst)
    assert len(published) == 1 + sum(1 for r in answers if r.status_code == 202)

    def sent() -> int:
        return len(admin.activation_mails(burst))

    await eventually(lambda: sent() >= min(PER_RECIPIENT_HOUR, len(published)), timeout_s=30)
    await asyncio.sleep(SETTLE_S)
    assert sent() == min(PER_RECIPIENT_HOUR, len(published))
    assert len(admin.activation_mails(victim)) == PER_RECIPIENT_HOUR
    if len(published) > PER_RECIPIENT_HOUR:  # the mailer's backstop: dropped with the reason
        final = await eventually(
            lambda: outcomes_of(stack, {n.notice_id for n in published}),
            timeout_s=30,
            interval_s=0.5,
        )
        dropped = [o for o in final if "too many emails" in o.reason]
        assert len(dropped) == len(published) - PER_RECIPIENT_HOUR


async def test_the_simulation_digest_is_limited_per_recipient(stack: Stack) -> None:
    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    shop, main = await admin.create_shop()
    resp = await admin.call(
        "PATCH", f"/admin/shops/{shop}/settings", main, {"alerts_enabled": True}
    )
    assert resp.status_code == 200, resp.text
    path = f"/admin/shops/{shop}/simulations"
    answers = [await admin.call("POST", path, main) for _ in range(8)]
    codes = [r.status_code for r in answers]
    assert codes == [202] * 6 + [429] * 2, [r.text for r in answers]
    body = answers[-1].json()
    assert body["code"] == "rate_limited" and "simulation mails per recipient" in body["error"]
    assert int(answers[-1].headers["Retry-After"]) > 0


async def test_the_mailer_sends_no_more_notices_than_the_limit_whoever_published_them(
    stack: Stack,
) -> None:
    """The backstop: notices published past the admin API's check (a replica race, a
    producer that does not check) are dropped by the mailer with the reason."""
    victim = outside_address()
    shop = str(7_400_000_000_000_000_000 + uuid.uuid4().int % 10**18)
    now = now_ms()
    notices = [
        MailNotice(
            notice_id=f"activation-flood-{uuid.uuid4().hex}",
            kind=NoticeKind.ACTIVATION,
            to_address=victim,
            subject="Activate your account",
            text=f"link {n}",
            shop_id=shop,
            created_at_ms=now + n,
        )
        for n in range(6)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP"], acks="all")
    await producer.start()
    try:
        for notice in notices:
            await producer.send_and_wait(MAIL_NOTICES.name, encode(notice), key=shop.encode())
    finally:
        await producer.stop()
    ids = {n.notice_id for n in notices}
    final = await eventually(lambda: outcomes_of(stack, ids), timeout_s=30, interval_s=0.5)
    sent = [o for o in final if o.status == "sent"]
    dropped = [o for o in final if o.status == "failed"]
    assert len(sent) == PER_RECIPIENT_HOUR and len(dropped) == 3, final
    for outcome in dropped:
        assert outcome.reason.startswith(
            "not sent: too many emails: at most 3 activation mails per recipient per hour"
        )
    assert len([m for m in stack.platforms.sink.mails if victim in m.rcpt_tos]) == 3
    metrics = (await stack.http.get(f"http://127.0.0.1:{stack.ports.mailer}/metrics")).text
    assert 'bridge_notices_dropped_total{reason="recipient_activation_3600s"}' in metrics
