"""A shop with no shop.settings record was never onboarded: nothing is emailed for it and no
address may answer its buyers by email, the default inbox included."""

from __future__ import annotations

from email.message import EmailMessage

from reply_parser.inbound_pipeline import OwnIdentity, decide
from shared.config import BridgeSettings
from shared.events import InboundEnvelope, ReplyClass
from shared.settings_view import ShopSettingsView, default_settings

DEFAULT_INBOX = BridgeSettings().default_destination_email


def test_a_shop_without_a_record_has_alerts_off_and_no_destination_or_sender() -> None:
    view = ShopSettingsView(BridgeSettings())
    shop = view.get("7494049642642441621")
    assert view.find("7494049642642441621") is None
    assert shop == default_settings("7494049642642441621")
    assert (shop.alerts_enabled, shop.destination_email, shop.authorized_senders) == (False, "", ())


def test_a_reply_from_the_default_inbox_is_refused_for_a_shop_never_onboarded() -> None:
    msg = EmailMessage()
    msg["From"] = DEFAULT_INBOX
    msg["To"] = "tok@chat-seller-us.bridge.example"
    msg["Subject"] = "Re: A new message"
    msg["Message-ID"] = "<r1@shop.localhost>"
    msg.set_content("Refund approved, here is the link.")
    env = InboundEnvelope(
        mail_id="m1",
        shop_id="7",
        conversation_id="5",
        mail_from=DEFAULT_INBOX,
        rcpt_to=msg["To"],
        received_at_ms=1000,
    )
    decision = decide(
        bytes(msg),
        env,
        default_settings("7"),
        OwnIdentity("digest.bridge.example", "bridge.example"),
    )
    assert decision.classification == ReplyClass.REJECTED
    assert decision.reply is None and decision.notices == ()
