"""Finding 4: a spoofed seller reply must never reach the buyer.

The pure part pins the decision: who the author is (one address in one From header, or
refused under every policy), the policy table (the default asks for a DKIM or SPF pass of
the author's domain; DNS trouble defers, never accepts), the per-shop override's typing and
what the seller's simulation shows. The stack part sends replies over real SMTP to the reply
front; the parser asks the stack's own loopback name server (devstack.dns_zone), whose
records each test sets, so no query leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import subprocess
import time
import uuid
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import dkim
import pytest
from aiokafka import AIOKafkaProducer

from devstack.broker import free_port
from devstack.dns_zone import DevZone, start_dev_dns
from devstack.topic_reader import records_so_far
from ingest.simulation import SimulationTrace, simulation_steps
from reply_parser.inbound_pipeline import OwnIdentity, PipelineConfig, decide
from reply_parser.mail_auth import (
    NONE,
    PASS,
    POLICIES,
    AuthResult,
    DnsPythonResolver,
    DnsTempError,
    StaticResolver,
    auth_verdict,
    shop_policy,
)
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.codec import DecodeError, decode, encode
from shared.events import (
    ChatEvent,
    DeadLetter,
    InboundEnvelope,
    InboundResult,
    MailNotice,
    MailOutcome,
    ReplyClass,
    ShopSettings,
)
from shared.notification_window import Windows
from shared.tokens import mint_token, parse_keys, reply_address
from shared.topics import DEAD_LETTER, MAIL_INBOUND_RESULTS, MAIL_NOTICES, SHOP_SETTINGS
from tests.conftest import Stack
from tests.dkim_keys import new_rsa_key_file
from tests.mail_auth_facts import auth_facts
from tests.polling import eventually

SELLER = "seller@shop.example"
OWN = OwnIdentity("digest.bridge.example", "bridge.example")
ENV = InboundEnvelope(
    mail_id="m1",
    shop_id="7",
    conversation_id="5",
    mail_from="mallory@evil.example",
    rcpt_to="tok@chat-seller-us.bridge.example",
    received_at_ms=1000,
    peer="203.0.113.9",
)
MAILBOX = ShopSettings(shop_id="7", destination_email=SELLER)


def _mail(
    *,
    from_headers: tuple[str, ...] = (SELLER,),
    text: str = "Pay me directly.",
    message_id: str = "<s1@evil.example>",
) -> bytes:
    lines = [f"From: {v}" for v in from_headers] + [
        f"To: {ENV.rcpt_to}",
        "Subject: Re: A new message",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
        "",
    ]
    return "\r\n".join(lines).encode()


# --- who the author is: refused under every policy when it is not one address ------------------

SEVERAL_AUTHORS = {
    "two addresses": (f"{SELLER}, mallory@evil.example",),
    "the seller second": (f"mallory@evil.example, {SELLER}",),
    "a group": (f"team: {SELLER}, mallory@evil.example;",),
    "two headers": (SELLER, "mallory@evil.example"),
    "two headers, same seller": (SELLER, SELLER),
    "encoded comma in a display name": (
        f"=?utf-8?q?a=2C_{SELLER.replace('@', '=40')}?= <mallory@evil.example>",
    ),
    "unreadable": ("seller at shop",),
}


@pytest.mark.parametrize("policy_name", POLICIES)
@pytest.mark.parametrize("case", sorted(SEVERAL_AUTHORS))
def test_a_reply_without_exactly_one_author_is_refused_under_every_policy(
    case: str, policy_name: str
) -> None:
    shop = dataclasses.replace(MAILBOX, mail_auth_policy=policy_name)  # type: ignore[arg-type]
    raw = _mail(from_headers=SEVERAL_AUTHORS[case])
    decision = decide(raw, ENV, shop, OWN, auth=auth_facts(raw, ENV, StaticResolver()))
    if case == "encoded comma in a display name":
        # one author, mallory: the decoded display name neither adds nor hides an address
        assert decision.classification == "rejected"
        assert "the sender is not a registered" in decision.reason
        assert decision.sender == "mallory@evil.example"  # the address stays out of the reason
        return
    assert decision.classification == "rejected" and decision.reply is None
    assert "From" in decision.reason, decision.reason
    (notice,) = decision.notices
    assert notice.kind == "sender_rejected" and notice.to_address == SELLER


def test_two_from_headers_name_the_reason() -> None:
    raw = _mail(from_headers=(SELLER, "mallory@evil.example"))
    decision = decide(raw, ENV, MAILBOX, OWN, auth=auth_facts(raw, ENV, StaticResolver()))
    assert decision.reason == "2 From headers (a mail has one author)"


def test_two_from_addresses_name_the_reason() -> None:
    raw = _mail(from_headers=(f"{SELLER}, mallory@evil.example",))
    decision = decide(raw, ENV, MAILBOX, OWN, auth=auth_facts(raw, ENV, StaticResolver()))
    assert decision.reason == "the From header names 2 addresses (a reply must have one author)"


# --- the policy table ---------------------------------------------------------------------------


def _result(aligned: str, dmarc: str = NONE, dmarc_policy: str = "") -> AuthResult:
    return AuthResult(
        dmarc=dmarc, dmarc_policy=dmarc_policy, aligned=aligned, from_domain="shop.example"
    )


# rows: result -> outcome under aligned_pass, dmarc_pass, dmarc_fail, dmarc_reject, off
TABLE = [
    (
        "aligned DKIM/SPF pass, DMARC pass",
        _result(PASS, PASS, "reject"),
        ("accept", "accept", "accept", "accept", "accept"),
    ),
    (
        "aligned pass, no DMARC record",
        _result(PASS),
        ("accept", "refuse", "accept", "accept", "accept"),
    ),
    (
        "nothing authenticates, no DMARC record (the finding)",
        _result("fail"),
        ("refuse", "refuse", "accept", "accept", "accept"),
    ),
    (
        "DMARC fail, p=reject",
        _result("fail", "fail", "reject"),
        ("refuse", "refuse", "refuse", "refuse", "accept"),
    ),
    (
        "DMARC fail, p=none",
        _result("fail", "fail", "none"),
        ("refuse", "refuse", "refuse", "accept", "accept"),
    ),
    (
        "DMARC record did not answer, nothing could pass",
        _result("fail", "temperror"),
        ("refuse", "defer", "defer", "defer", "accept"),
    ),
    (
        "DNS hid what could be an aligned pass",
        _result("temperror", "temperror"),
        ("defer", "defer", "defer", "defer", "accept"),
    ),
    (
        "aligned key did not answer, no DMARC record",
        _result("temperror"),
        ("defer", "refuse", "accept", "accept", "accept"),
    ),
]


@pytest.mark.parametrize("name, result, outcomes", TABLE, ids=[row[0] for row in TABLE])
def test_policy_decision_table(name: str, result: AuthResult, outcomes: tuple[str, ...]) -> None:
    assert POLICIES == ("aligned_pass", "dmarc_pass", "dmarc_fail", "dmarc_reject", "off")
    got = tuple(auth_verdict(result, p).outcome for p in POLICIES)
    assert got == outcomes
    for p in POLICIES:
        verdict = auth_verdict(result, p)
        assert bool(verdict.reason) == (verdict.outcome != "accept")


def test_dns_trouble_is_never_accepted_while_any_check_is_on() -> None:
    for result in (_result("temperror", "temperror"), _result("fail", "temperror")):
        for p in POLICIES:
            if p != "off":
                assert auth_verdict(result, p).outcome != "accept", p


def test_default_policy_requires_an_aligned_pass_for_mailboxes_and_helpdesks() -> None:
    cfg = ReplyParserSettings()  # type: ignore[call-arg]
    assert (cfg.inbound_auth_policy, cfg.inbound_auth_policy_helpdesk) == (
        "aligned_pass",
        "aligned_pass",
    )
    for kind in ("mailbox", "zendesk", "salesforce", "gorgias", "other_helpdesk"):
        shop = ShopSettings(shop_id="7", destination_kind=kind)
        assert shop_policy(shop, mailbox="aligned_pass", helpdesk="dmarc_pass") == (
            "aligned_pass" if kind == "mailbox" else "dmarc_pass"
        )
    own = ShopSettings(shop_id="7", destination_kind="zendesk", mail_auth_policy="off")
    assert shop_policy(own, mailbox="aligned_pass", helpdesk="aligned_pass") == "off"


def test_the_per_shop_override_accepts_only_known_policies() -> None:
    record = encode(ShopSettings(shop_id="7", mail_auth_policy="dmarc_fail"))
    assert decode(ShopSettings, record).mail_auth_policy == "dmarc_fail"
    with pytest.raises(DecodeError, match="mail_auth_policy"):
        decode(ShopSettings, record.replace(b'"dmarc_fail"', b'"strict"'))


def test_unauthenticated_mail_from_an_activated_user_is_refused_by_default() -> None:
    """The finding, pure: the seller's address in From, no DKIM, SPF none for the envelope."""
    raw = _mail()
    decision = decide(raw, ENV, MAILBOX, OWN, auth=auth_facts(raw, ENV, StaticResolver()))
    assert decision.classification == "rejected" and decision.reply is None
    assert "no DKIM signature or SPF pass of the sender's domain shop.example" in decision.reason
    assert decision.auth is not None and decision.auth.aligned == "fail"


def test_dns_trouble_defers_and_the_last_attempt_refuses() -> None:
    resolver = StaticResolver({("shop.example", "TXT"): "temperror"})  # type: ignore[dict-item]
    env = dataclasses.replace(ENV, mail_from=SELLER)
    raw = _mail()
    first = decide(raw, env, MAILBOX, OWN, auth=auth_facts(raw, env, resolver))
    assert first.classification == "deferred" and first.reply is None and not first.notices
    assert "DNS did not answer" in first.reason
    last = decide(raw, env, MAILBOX, OWN, auth=auth_facts(raw, env, resolver), last_attempt=True)
    assert last.classification == "rejected" and last.auth_unchecked
    assert last.notices[0].kind == "sender_rejected"


# --- whose domain is whose: the Public Suffix List, private section included -------------------

SHARED_SUFFIXES = ["uk.com", "github.io", "eu.org", "com.bd"]


@pytest.mark.parametrize("suffix", SHARED_SUFFIXES)
def test_an_attackers_own_domain_under_a_shared_public_suffix_does_not_align(suffix: str) -> None:
    """shop.<suffix> and evil.<suffix> belong to different owners: the attacker's SPF pass for
    its own domain says nothing about the seller's."""
    seller = f"seller@shop.{suffix}"
    shop = dataclasses.replace(MAILBOX, destination_email=seller)
    env = dataclasses.replace(ENV, mail_from=f"x@evil.{suffix}")
    resolver = StaticResolver({(f"evil.{suffix}", "TXT"): [f"v=spf1 ip4:{ENV.peer} -all"]})
    raw = _mail(from_headers=(seller,))
    decision = decide(raw, env, shop, OWN, auth=auth_facts(raw, env, resolver))
    assert decision.auth is not None and decision.auth.spf == PASS  # the attacker's own pass
    assert decision.classification == "rejected" and decision.reply is None, decision.reason
    assert decision.auth.aligned == "fail"
    assert f"sender's domain shop.{suffix}" in decision.reason


def test_a_subdomain_signature_of_the_sellers_registrable_domain_still_aligns(
    dkim_key: tuple[bytes, str],
) -> None:
    """The positive control: relaxed alignment still joins mail.shop.co.uk to shop.co.uk."""
    seller = "seller@shop.co.uk"
    shop = dataclasses.replace(MAILBOX, destination_email=seller)
    env = dataclasses.replace(ENV, mail_from="bounces@esp.example")
    private, public = dkim_key
    raw = _mail(from_headers=(seller,), text="Yes, it ships tomorrow.")
    signed = (
        dkim.sign(
            raw,
            b"s1",
            b"mail.shop.co.uk",
            private,
            include_headers=[b"from", b"to", b"subject", b"message-id"],
        )
        + raw
    )
    resolver = StaticResolver({("s1._domainkey.mail.shop.co.uk", "TXT"): [public]})
    decision = decide(signed, env, shop, OWN, auth=auth_facts(signed, env, resolver))
    assert decision.auth is not None and decision.auth.dkim_domains == ("mail.shop.co.uk",)
    assert decision.auth.aligned == PASS
    assert decision.classification == "reply", decision.reason


# --- Authentication-Results: only the topmost header of the trusted authserv-id counts ----------


def test_an_unparseable_trusted_authentication_results_header_is_not_skipped_for_a_lower_forged_one() -> (
    None
):
    """Our MX's header is the topmost with its id; anything below it the sender may have written.
    When that topmost one does not parse there is no trusted result: the mail is checked here."""
    trusted = "mx.bridge.example"
    top = f"Authentication-Results: {trusted}; dkim=pass header.d=shop.example (\u00ff"
    forged = (
        f"Authentication-Results: {trusted}; dkim=pass header.d=shop.example; "
        "spf=pass smtp.mailfrom=seller@shop.example; dmarc=pass header.from=shop.example"
    )
    raw = f"{top}\r\n{forged}\r\n".encode() + _mail()
    cfg = PipelineConfig(trusted_authserv_ids=frozenset({trusted}))
    decision = decide(
        raw, ENV, MAILBOX, OWN, auth=auth_facts(raw, ENV, StaticResolver(), cfg), config=cfg
    )
    assert decision.auth is not None and decision.auth.source == "local"
    assert decision.classification == "rejected" and decision.reply is None
    assert decision.auth.aligned == "fail" and decision.auth.dmarc == NONE


# --- what the seller's simulation shows ---------------------------------------------------------


def _trace(result: InboundResult) -> SimulationTrace:
    event = ChatEvent(kind="buyer_message", shop_id="7", conversation_id="sim-1", received_at_ms=1)
    outcome = MailOutcome(
        digest_id="d", shop_id="7", conversation_id="sim-1", status="sent", at_ms=2
    )
    return SimulationTrace(
        shop_id="7", started_at_ms=0, buyer_message=event, outcomes=[outcome], inbound=[result]
    )


def test_simulation_shows_why_a_helpdesk_reply_was_refused_and_what_to_set_up() -> None:
    zendesk = ShopSettings(
        shop_id="7", destination_email="support@shop.example", destination_kind="zendesk"
    )
    summary = _result("fail").summary()
    refused = InboundResult(
        mail_id="m",
        shop_id="7",
        conversation_id="sim-1",
        classification=ReplyClass.REJECTED,
        reason=f"no DKIM ... ({summary})",
        auth=summary,
        auth_outcome="refuse",
        at_ms=3,
    )
    step = simulation_steps(_trace(refused), zendesk, now_ms=4, windows=Windows(1000, 3_600_000))[2]
    assert step.state == "failed"
    assert "aligned=fail" in step.detail and "DKIM CNAME" in step.detail
    assert "docs/setup-zendesk.md" in step.detail


def test_simulation_shows_a_deferred_reply_as_pending_and_an_accepted_one_with_its_auth() -> None:
    deferred = InboundResult(
        mail_id="m",
        shop_id="7",
        conversation_id="sim-1",
        classification=ReplyClass.DEFERRED,
        reason="authentication could not be "
        "checked now, DNS did not answer (…); checked again in 30 s",
        auth_outcome="defer",
        at_ms=3,
    )
    step = simulation_steps(_trace(deferred), MAILBOX, now_ms=4, windows=Windows(1000, 3_600_000))[
        2
    ]
    assert step.state == "pending" and "checked again" in step.detail
    accepted = InboundResult(
        mail_id="m",
        shop_id="7",
        conversation_id="sim-1",
        classification=ReplyClass.REPLY,
        reason="new text extracted",
        parts=1,
        auth=_result(PASS).summary(),
        auth_outcome="accept",
        at_ms=3,
    )
    step = simulation_steps(_trace(accepted), MAILBOX, now_ms=4, windows=Windows(1000, 3_600_000))[
        2
    ]
    assert (
        step.state == "ok"
        and "sender authentication: author shop.example: aligned=pass" in step.detail
    )


# --- on the running stack -----------------------------------------------------------------------


@pytest.mark.integration
async def test_the_parsers_resolver_asks_the_configured_loopback_server_only() -> None:
    """With BRIDGE_AUTH_DNS_SERVER set, every lookup (reserved names included) goes to that
    server; SERVFAIL there is a temporary error, never an empty answer."""
    zone = DevZone({("seller.localhost", "TXT"): ["v=spf1 ip4:127.0.0.0/8 -all"]})
    port = free_port()
    transport = await start_dev_dns(zone, "127.0.0.1", port)
    try:
        resolver = DnsPythonResolver(1.0, nameserver=f"127.0.0.1:{port}")
        assert await asyncio.to_thread(resolver.txt, "seller.localhost") == [
            "v=spf1 ip4:127.0.0.0/8 -all"
        ]
        zone.fail("down.localhost")
        with pytest.raises(DnsTempError):
            await asyncio.to_thread(resolver.txt, "down.localhost")
        assert await asyncio.to_thread(resolver.txt, "absent.localhost") == []
    finally:
        transport.close()


def _rcpt(stack: Stack, shop: str, conv: str) -> str:
    keys = parse_keys(stack.env.get("BRIDGE_TOKEN_KEYS", "1:dev-only-token-key-change-me"))
    token = mint_token(shop, conv, keys, now_s=time.time(), ttl_s=3600)
    return reply_address(token, "us", stack.env.get("BRIDGE_REPLY_DOMAIN_BASE", "bridge.localhost"))


def _stack_mail(from_headers: tuple[str, ...], rcpt: str, text: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = from_headers[0], rcpt, "Re: A new message"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mail.localhost>"
    msg.set_content(text)
    raw = msg.as_bytes(policy=policy.SMTP)
    # The email package refuses to write a second From header; a forger's client does not.
    # The extra ones go right after the first, so the seller's address comes first.
    after_from = raw.index(b"\r\n", raw.index(b"From: ")) + 2
    extra = b"".join(f"From: {v}\r\n".encode() for v in from_headers[1:])
    return raw[:after_from] + extra + raw[after_from:]


async def _send(stack: Stack, envelope_from: str, rcpt: str, raw: bytes) -> None:
    await aiosmtplib.send(
        raw,
        sender=envelope_from,
        recipients=[rcpt],
        hostname="127.0.0.1",
        port=stack.ports.inbound_smtp,
        timeout=30,
    )


async def _results(stack: Stack, conv: str) -> list[InboundResult]:
    recs = await records_so_far(
        stack.env["KAFKA_BOOTSTRAP"], MAIL_INBOUND_RESULTS.name, MAIL_INBOUND_RESULTS.partitions
    )
    found = [decode(InboundResult, r.value or b"") for rs in recs.values() for r in rs]
    return [r for r in found if r.conversation_id == conv]


async def _texts(stack: Stack, conv: str) -> list[str]:
    return [r["content"]["content"] for r in await stack.buyer_view(conv)]


async def _final(stack: Stack, conv: str, timeout_s: float = 30) -> InboundResult:
    async def final() -> InboundResult | None:
        done = [r for r in await _results(stack, conv) if r.classification != "deferred"]
        return done[-1] if done else None

    return await eventually(final, timeout_s=timeout_s, what=f"a final result for {conv}")


async def _configure_shop(stack: Stack, shop: str, seller: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            SHOP_SETTINGS.name,
            encode(ShopSettings(shop_id=shop, destination_email=seller)),
            key=shop.encode(),
        )
    finally:
        await producer.stop()
    await asyncio.sleep(1.5)  # the parser's settings view applies the record


def _default_seller(stack: Stack) -> str:
    return stack.env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")


@pytest.mark.integration
async def test_unauthenticated_reply_from_an_activated_users_address_is_not_delivered(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)  # the default seller's address is an activated user
    await stack.buyer_says(shop, conv, "Where is my parcel?")
    rcpt, seller = _rcpt(stack, shop, conv), _default_seller(stack)
    forged = _stack_mail((seller,), rcpt, "Pay the balance to IBAN XX00 attacker.")
    await _send(stack, "mallory@evil.localhost", rcpt, forged)

    result = await _final(stack, conv)
    assert result.classification == "rejected", result
    assert "no DKIM signature or SPF pass of the sender's domain shop.localhost" in result.reason
    assert result.auth_outcome == "refuse" and "aligned=fail" in result.auth
    await asyncio.sleep(2)  # a wrongly delivered reply would have reached the sandbox by now
    assert await _texts(stack, conv) == []

    async def notices() -> list[MailNotice]:
        recs = await records_so_far(
            stack.env["KAFKA_BOOTSTRAP"], MAIL_NOTICES.name, MAIL_NOTICES.partitions
        )
        found = [decode(MailNotice, r.value or b"") for rs in recs.values() for r in rs]
        return [n for n in found if n.conversation_id == conv]

    (notice,) = await eventually(notices, timeout_s=15)
    assert notice.kind == "sender_rejected" and notice.to_address == seller


@pytest.mark.integration
@pytest.mark.parametrize("shape", ["two addresses", "two headers"])
async def test_a_reply_naming_two_authors_is_refused(
    stack: Stack, unique_conversation: tuple[str, str], shape: str
) -> None:
    shop, conv = unique_conversation
    await stack.buyer_says(shop, conv, "Can I pay by card?")
    rcpt, seller = _rcpt(stack, shop, conv), _default_seller(stack)
    authors = (
        (f"{seller}, mallory@evil.localhost",)
        if shape == "two addresses"
        else (seller, "mallory@evil.localhost")
    )
    # The envelope is the seller's domain, which passes SPF from loopback: the first From
    # address alone would authenticate.
    mail = _stack_mail(authors, rcpt, "Send the refund to my other account.")
    await _send(stack, seller, rcpt, mail)

    result = await _final(stack, conv)
    assert result.classification == "rejected", result
    assert "From" in result.reason and "one author" in result.reason
    await asyncio.sleep(2)
    assert await _texts(stack, conv) == []


@pytest.fixture(scope="module")
def dkim_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    path = new_rsa_key_file(tmp_path_factory.mktemp("dkim") / "seller.pem")
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return Path(path).read_bytes(), "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.mark.integration
async def test_a_dkim_signed_reply_from_the_registered_senders_domain_is_delivered(
    stack: Stack, unique_conversation: tuple[str, str], dkim_key: tuple[bytes, str]
) -> None:
    shop, conv = unique_conversation
    domain = f"d{uuid.uuid4().hex[:10]}.localhost"
    seller = f"agent@{domain}"
    private, public = dkim_key
    stack.platforms.dns_zone.set(f"s1._domainkey.{domain}", "TXT", [public])
    await _configure_shop(stack, shop, seller)
    await stack.buyer_says(shop, conv, "Is the lamp dimmable?")
    rcpt = _rcpt(stack, shop, conv)
    raw = _stack_mail((seller,), rcpt, "Yes, it is dimmable.")
    signed = (
        dkim.sign(
            raw,
            b"s1",
            domain.encode(),
            private,
            include_headers=[b"from", b"to", b"subject", b"message-id"],
        )
        + raw
    )
    # Sent through a helpdesk or ESP: the envelope is theirs, only DKIM speaks for the domain.
    await _send(stack, "bounces@esp.localhost", rcpt, signed)

    assert await eventually(lambda: _texts(stack, conv), timeout_s=30) == ["Yes, it is dimmable."]
    result = await _final(stack, conv)
    assert result.classification == "reply" and result.auth_outcome == "accept"
    assert f"dkim=pass (d={domain})" in result.auth


@pytest.mark.integration
async def test_dns_trouble_defers_the_reply_which_is_delivered_once_dns_answers(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    domain = f"d{uuid.uuid4().hex[:10]}.localhost"
    seller = f"owner@{domain}"
    zone = stack.platforms.dns_zone
    zone.set(domain, "TXT", ["v=spf1 ip4:127.0.0.0/8 -all"])
    zone.fail(domain)  # the seller's name servers answer SERVFAIL for now
    await _configure_shop(stack, shop, seller)
    await stack.buyer_says(shop, conv, "Do you have it in red?")
    rcpt = _rcpt(stack, shop, conv)
    mail = _stack_mail((seller,), rcpt, "Yes, red is in stock.")
    await _send(stack, seller, rcpt, mail)

    async def deferred() -> list[InboundResult]:
        return [r for r in await _results(stack, conv) if r.classification == "deferred"]

    first = (await eventually(deferred, timeout_s=30))[0]
    assert "DNS did not answer" in first.reason and "checked again" in first.reason
    assert first.auth_outcome == "defer" and "spf=temperror" in first.auth
    assert await _texts(stack, conv) == []  # not accepted on a guess

    zone.fail(domain, False)
    assert await eventually(lambda: _texts(stack, conv), timeout_s=30) == ["Yes, red is in stock."]
    final = await _final(stack, conv)
    assert final.classification == "reply" and "spf=pass" in final.auth
    await asyncio.sleep(2)
    assert await _texts(stack, conv) == ["Yes, red is in stock."]  # once


@pytest.mark.integration
async def test_dns_trouble_that_never_ends_dead_letters_the_reply_with_the_reason(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    domain = f"d{uuid.uuid4().hex[:10]}.localhost"
    seller = f"owner@{domain}"
    stack.platforms.dns_zone.fail(domain)
    await _configure_shop(stack, shop, seller)
    await stack.buyer_says(shop, conv, "Still there?")
    rcpt = _rcpt(stack, shop, conv)
    await _send(stack, seller, rcpt, _stack_mail((seller,), rcpt, "Yes!"))

    attempts = int(stack.env["BRIDGE_AUTH_RETRY_ATTEMPTS"])
    final = await _final(stack, conv, timeout_s=60)
    assert final.classification == "rejected" and final.auth_outcome == "defer"
    assert (
        len([r for r in await _results(stack, conv) if r.classification == "deferred"])
        == attempts - 1
    )

    async def letter() -> list[DeadLetter]:
        recs = await records_so_far(stack.env["KAFKA_BOOTSTRAP"], DEAD_LETTER.name, 1)
        found = [decode(DeadLetter, r.value or b"") for rs in recs.values() for r in rs]
        return [d for d in found if d.key == f"{shop}:{conv}"]

    (dead,) = await eventually(letter, timeout_s=15)
    assert dead.reason.startswith(f"authentication could not be checked after {attempts} attempts")
    assert dead.source_topic == "mail.inbound.retry"
    assert await _texts(stack, conv) == []
