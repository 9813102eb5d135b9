"""The playground's replies (devstack/reply_styles.py) as each client writes them: built
against a digest the mailer composes, run through the reply parser's own pipeline, the buyer
gets exactly the new text; the out-of-office answer reaches nobody."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from devstack.reply_styles import ReplyStyle, build_reply, out_of_office_reply
from mailer.digest_composer import DigestComposer
from mailer.mailer_settings import MailerSettings
from reply_parser.inbound_pipeline import OwnIdentity, PipelineConfig, decide
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.events import (
    ChatContent,
    ContentKind,
    Digest,
    DigestMessage,
    InboundEnvelope,
    ReplyClass,
    ShopSettings,
)

ANSWER = "Yes, the blue one ships tomorrow 📦\n\nThanks for asking!"


def digest_mail() -> EmailMessage:
    digest = Digest(
        digest_id="dg-styles",
        shop_id="7494049642642441621",
        conversation_id="576460602530154245",
        buyer_id="b-1",
        buyer_name="Ana",
        shop_name="Demo shop",
        destination_email="support@shop.localhost",
        messages=(
            DigestMessage("m1", 1_764_070_000_000, ChatContent(text="Hi! Is this in stock?")),
            DigestMessage(
                "m2",
                1_764_070_060_000,
                ChatContent(kind=ContentKind.ORDER_CARD, order_id="5764607523034234567"),
            ),
        ),
    )
    _sender, _to, raw = DigestComposer(MailerSettings(), None).compose(digest)
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def delivered(reply: EmailMessage) -> tuple[ReplyClass, str]:
    cfg = ReplyParserSettings()
    env = InboundEnvelope("m", "s", "c", "support@shop.localhost", "r", 0)
    decision = decide(
        reply.as_bytes(),
        env,
        ShopSettings(shop_id="s"),
        OwnIdentity(cfg.message_id_domain, cfg.reply_domain_base),
        config=PipelineConfig(check_sender=False, envelope_known=False),
    )
    return decision.classification, decision.text


@pytest.mark.parametrize("style", list(ReplyStyle))
def test_each_client_style_delivers_only_the_new_text(style: ReplyStyle) -> None:
    original = digest_mail()
    reply = build_reply(style, original, ANSWER, "Support <support@shop.localhost>")
    assert reply["To"] == original["Reply-To"]
    assert reply["In-Reply-To"] == original["Message-ID"]
    body = reply.get_body(("plain",))
    assert body is not None and "Hi! Is this in stock?" in body.get_content(), "no history"
    assert delivered(reply) == (ReplyClass.REPLY, ANSWER)


def test_each_style_has_its_clients_marks() -> None:
    original = digest_mail()

    def text(style: ReplyStyle) -> str:
        body = build_reply(style, original, ANSWER, "support@shop.localhost").get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    assert "wrote:\n> " in text(ReplyStyle.GMAIL)
    assert "________________________________\nFrom: " in text(ReplyStyle.OUTLOOK)
    assert text(ReplyStyle.ZENDESK).startswith("##- Please type your reply above this line -##")
    salesforce = text(ReplyStyle.SALESFORCE)
    assert ":ref\n" in salesforce and "- Original Message -" in salesforce


def test_out_of_office_answer_is_automated_and_reaches_no_buyer() -> None:
    original = digest_mail()
    ooo = out_of_office_reply(original, "support@shop.localhost")
    assert ooo["Auto-Submitted"] == "auto-replied"
    classification, text = delivered(ooo)
    assert classification == ReplyClass.AUTO_REPLY and text == ""
