"""The inbound decision is pure: DNS is looked up at the edge (the parser) and only when the
decision depends on it; decide() takes what authentication found and needs no resolver."""

from __future__ import annotations

import asyncio
import dataclasses

from reply_parser.inbound_pipeline import InboundDecision, Screened, decide, screen
from reply_parser.mail_auth import (
    PASS,
    TEMPERROR,
    AuthResult,
    DnsFindings,
    StaticResolver,
    local_result,
    parse_dmarc,
)
from reply_parser.parser_app import Parser
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.events import ReplyClass, ShopSettings
from tests.unit.test_inbound_pipeline import ENV, MAILBOX, OWN, _mail

DNS_DOWN = AuthResult(
    dkim="none",
    spf=TEMPERROR,
    spf_domain="shop.example",
    from_domain="shop.example",
    aligned=TEMPERROR,
)
ALIGNED = AuthResult(spf=PASS, spf_domain="shop.example", from_domain="shop.example", aligned=PASS)


def test_dns_trouble_found_at_the_edge_defers_the_reply_without_a_resolver() -> None:
    decision = decide(_mail(), ENV, MAILBOX, OWN, auth=DNS_DOWN)
    assert decision.classification == ReplyClass.DEFERRED and decision.reply is None
    last = decide(_mail(), ENV, MAILBOX, OWN, auth=DNS_DOWN, last_attempt=True)
    assert last.classification == ReplyClass.REJECTED and last.auth_unchecked


def test_an_aligned_pass_found_at_the_edge_delivers_the_reply() -> None:
    decision = decide(_mail(), ENV, MAILBOX, OWN, auth=ALIGNED)
    assert decision.classification == ReplyClass.REPLY and decision.auth == ALIGNED


def test_a_registered_senders_reply_needs_authentication() -> None:
    screened = screen(_mail(), ENV, MAILBOX, OWN)
    assert isinstance(screened, Screened) and screened.needs_auth


def test_automated_mail_and_loops_are_decided_before_any_lookup() -> None:
    auto = screen(_mail(headers={"Auto-Submitted": "auto-replied"}), ENV, MAILBOX, OWN)
    loop = screen(_mail(headers={"X-Bridge-Notice": "1"}), ENV, MAILBOX, OWN)
    assert isinstance(auto, InboundDecision) and auto.classification == ReplyClass.AUTO_REPLY
    assert isinstance(loop, InboundDecision) and loop.classification == ReplyClass.LOOP


def test_a_stranger_is_authenticated_only_when_the_shop_could_be_told() -> None:
    stranger = dataclasses.replace(ENV, mail_from="olga@partner.example")
    raw = _mail(sender="olga@partner.example")
    told = screen(raw, stranger, MAILBOX, OWN)
    nobody = screen(raw, stranger, dataclasses.replace(MAILBOX, destination_email=""), OWN)
    assert isinstance(told, Screened) and told.needs_auth
    assert isinstance(nobody, Screened) and not nobody.needs_auth


class CountingResolver(StaticResolver):
    def __init__(self) -> None:
        super().__init__({("shop.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]})
        self.asked: list[str] = []

    def txt(self, name: str) -> list[str]:
        self.asked.append(name)
        return super().txt(name)


class OneShop:
    def get(self, shop_id: str) -> ShopSettings:
        return MAILBOX


def _parser(resolver: CountingResolver) -> Parser:
    return Parser(ReplyParserSettings(), producer=None, shops=OneShop(), resolver=resolver)  # type: ignore[arg-type]


def test_the_parser_looks_up_dns_at_the_edge_and_passes_the_result_in() -> None:
    resolver = CountingResolver()
    decision = asyncio.run(_parser(resolver).decide(_mail(), ENV, last_attempt=False))
    assert "shop.example" in resolver.asked
    assert decision.classification == ReplyClass.REPLY
    assert decision.auth is not None and decision.auth.spf == PASS


def test_the_parser_asks_no_dns_for_an_auto_reply() -> None:
    resolver = CountingResolver()
    raw = _mail(headers={"Auto-Submitted": "auto-replied"})
    decision = asyncio.run(_parser(resolver).decide(raw, ENV, last_attempt=False))
    assert decision.classification == ReplyClass.AUTO_REPLY and resolver.asked == []


def _found(**kw: object) -> DnsFindings:
    base: dict[str, object] = dict(
        dkim="none",
        dkim_domains=(),
        dkim_temp_domains=(),
        spf="none",
        spf_domain="shop.example",
        dmarc_record=None,
        dmarc_applies="",
        dmarc_known=True,
    )
    return DnsFindings(**{**base, **kw})  # type: ignore[arg-type]


def test_what_dns_said_is_judged_without_asking_again() -> None:
    record = parse_dmarc("v=DMARC1; p=reject")
    passed = local_result(
        "shop.example", _found(spf=PASS, dmarc_record=record, dmarc_applies="reject")
    )
    assert (passed.aligned, passed.dmarc, passed.dmarc_policy) == (PASS, PASS, "reject")
    failed = local_result(
        "shop.example", _found(spf="fail", dmarc_record=record, dmarc_applies="reject")
    )
    assert (failed.aligned, failed.dmarc) == ("fail", "fail")


def test_a_dmarc_record_that_did_not_answer_leaves_a_relaxed_match_undecided() -> None:
    # mail.shop.example's SPF passed; strict alignment (which the record may ask) would fail.
    found = _found(spf=PASS, spf_domain="mail.shop.example", dmarc_known=False)
    result = local_result("shop.example", found)
    assert (result.dmarc, result.aligned) == (TEMPERROR, TEMPERROR)
