"""decide(): classification before delivery, sender checks, content policy and notices."""

from __future__ import annotations

import base64
import dataclasses
from email.message import EmailMessage

import pytest

from reply_parser.inbound_pipeline import OwnIdentity, PipelineConfig, decide
from reply_parser.mail_auth import StaticResolver
from reply_parser.mime_limits import MailTooComplex, MimeLimits
from shared.codec import encode
from shared.events import ChatReply, InboundEnvelope, ShopSettings
from tests.mail_auth_facts import auth_facts

SELLER = "seller@shop.example"
OWN = OwnIdentity("digest.bridge.example", "bridge.example")
ENV = InboundEnvelope(
    mail_id="m1",
    shop_id="7",
    conversation_id="5",
    mail_from=SELLER,
    rcpt_to="tok@chat-seller-us.bridge.example",
    received_at_ms=1000,
    peer="192.0.2.10",
)
MAILBOX = ShopSettings(shop_id="7", destination_email=SELLER)
SALESFORCE = ShopSettings(
    shop_id="7",
    destination_email="cases@shop.example",
    destination_kind="salesforce",
    authorized_senders=(SELLER,),
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _mail(
    text: str = "Yes, size M is in stock.",
    *,
    sender: str = SELLER,
    headers: dict[str, str] | None = None,
    message_id: str = "<r1@shop.example>",
    image: bytes | None = None,
    image_type: str = "png",
    attachment: bool = False,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ENV.rcpt_to
    msg["Subject"] = "Re: A new message from TikTok Shop customer Ana"
    msg["Message-ID"] = message_id
    for key, value in (headers or {}).items():
        del msg[key]
        msg[key] = value
    msg.set_content(text)
    if image is not None:
        msg.add_alternative(f'<p>{text}</p><img src="cid:pic1@shop">', subtype="html")
        msg.get_payload()[1].add_related(
            image, "image", image_type, cid="<pic1@shop>", filename=f"photo.{image_type}"
        )
    if attachment:
        msg.add_attachment(
            b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf"
        )
    return msg.as_bytes()


def test_a_plain_reply_from_the_destination_inbox_is_delivered() -> None:
    decision = decide(_mail(), ENV, MAILBOX, OWN)
    assert decision.classification == "reply"
    assert decision.reply is not None
    assert [p.text for p in decision.reply.parts] == ["Yes, size M is in stock."]
    assert decision.notices == ()


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"X-Autoreply": "yes"},
        {"Precedence": "junk"},
        {"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"},
        {"X-MS-Exchange-Inbox-Rules-Loop": SELLER},
        {"List-Id": "<sellers.lists.example>"},
        {"Subject": "[Request received] Re: A new message from TikTok Shop customer Ana"},
        {"Subject": "Your case #00001234 has been created"},
        {"Subject": "Balasan Otomatis: A new message"},
        {"Subject": "Thư trả lời tự động: A new message"},
    ],
)
def test_automated_mail_is_never_delivered(headers: dict[str, str]) -> None:
    decision = decide(_mail(headers=headers), ENV, MAILBOX, OWN)
    assert decision.classification in ("auto_reply", "loop")
    assert decision.reply is None and decision.reason


def test_x_auto_response_suppress_alone_does_not_stop_a_reply() -> None:
    decision = decide(_mail(headers={"X-Auto-Response-Suppress": "All"}), ENV, MAILBOX, OWN)
    assert decision.classification == "reply"


@pytest.mark.parametrize(
    "text",
    [
        "Thank you for contacting us. This is an automated response: your ticket #48213 has been "
        "created and an agent will answer soon.",
        "I am currently out of the office until Monday with limited access to email.",
        "Your request 4711 has been received. Please do not reply to this email.",
    ],
)
def test_helpdesk_acknowledgement_text_is_an_auto_reply(text: str) -> None:
    decision = decide(_mail(text), ENV, MAILBOX, OWN)
    assert decision.classification == "auto_reply" and decision.reply is None


def test_null_envelope_sender_is_never_delivered() -> None:
    env = dataclasses.replace(ENV, mail_from="")
    assert decide(_mail(), env, MAILBOX, OWN).classification in ("auto_reply", "bounce")


def test_our_own_notice_coming_back_is_a_loop() -> None:
    raw = _mail(headers={"X-Bridge-Notice": "content_withheld"})
    assert decide(raw, ENV, MAILBOX, OWN).classification == "loop"
    raw = _mail(message_id="<notice-abc@digest.bridge.example>")
    assert decide(raw, ENV, MAILBOX, OWN).classification == "loop"


def test_same_message_id_yields_the_same_reply_id_and_part_keys() -> None:
    first = decide(_mail(), ENV, MAILBOX, OWN).reply
    again = decide(_mail(), dataclasses.replace(ENV, mail_id="m2"), MAILBOX, OWN).reply
    other = decide(_mail(message_id="<r2@shop.example>"), ENV, MAILBOX, OWN).reply
    assert first is not None and again is not None and other is not None
    assert first.reply_id == again.reply_id != other.reply_id
    assert first.part_key(0) == again.part_key(0)


def test_unregistered_unauthenticated_sender_is_refused_and_nobody_is_told() -> None:
    forger = "mallory@evil.example"
    decision = decide(
        _mail(sender=forger), dataclasses.replace(ENV, mail_from=forger), MAILBOX, OWN
    )
    assert decision.classification == "rejected" and "not a registered" in decision.reason
    assert forger not in decision.reason  # the reason is logged and published
    assert decision.reply is None and decision.notices == ()


def test_unregistered_authenticated_sender_is_refused_and_only_the_shop_is_told() -> None:
    outsider = "olga@partner.example"
    resolver = StaticResolver({("partner.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"]})
    env = dataclasses.replace(ENV, mail_from=outsider)
    raw = _mail(sender=outsider)
    decision = decide(raw, env, MAILBOX, OWN, auth=auth_facts(raw, env, resolver))
    assert decision.classification == "rejected" and decision.reply is None
    (notice,) = decision.notices
    assert notice.kind == "sender_rejected" and outsider in notice.text
    assert notice.to_address == MAILBOX.destination_email != outsider
    again = decide(raw, env, MAILBOX, OWN, auth=auth_facts(raw, env, resolver))
    assert again.notices[0].notice_id == notice.notice_id


def test_registered_cs_agent_is_accepted() -> None:
    decision = decide(_mail(), ENV, SALESFORCE, OWN)
    assert decision.classification == "reply"


def test_attachment_is_withheld_and_the_seller_gets_one_non_looping_notice() -> None:
    decision = decide(_mail(attachment=True), ENV, MAILBOX, OWN)
    assert decision.reply is not None
    assert all(not p.image_b64 for p in decision.reply.parts)
    (notice,) = decision.notices
    assert notice.kind == "content_withheld"
    assert notice.to_address == SELLER
    assert notice.auto_submitted == "auto-replied"
    assert notice.in_reply_to == "<r1@shop.example>"
    assert "invoice.pdf" in notice.text
    assert (
        decide(_mail(attachment=True), ENV, MAILBOX, OWN).notices[0].notice_id == notice.notice_id
    )


def test_inline_picture_reaches_a_salesforce_buyer_as_an_image_part() -> None:
    decision = decide(_mail(image=PNG), ENV, SALESFORCE, OWN)
    assert decision.reply is not None
    text, image = decision.reply.parts
    assert text.text == "Yes, size M is in stock." and image.index == 1
    assert base64.b64decode(image.image_b64) == PNG
    assert image.image_content_type == "image/png" and image.image_filename == "photo.png"
    assert decision.notices == ()


def test_inline_picture_is_withheld_on_a_mailbox_destination_by_default() -> None:
    decision = decide(_mail(image=PNG), ENV, MAILBOX, OWN)
    assert decision.reply is not None and len(decision.reply.parts) == 1
    assert decision.notices[0].kind == "content_withheld"
    assert "photo.png" in decision.notices[0].text


def test_shop_setting_overrides_the_destination_kind_default() -> None:
    allowed = dataclasses.replace(MAILBOX, inline_images_allowed=True)
    refused = dataclasses.replace(SALESFORCE, inline_images_allowed=False)
    assert len(decide(_mail(image=PNG), ENV, allowed, OWN).reply.parts) == 2  # type: ignore[union-attr]
    assert len(decide(_mail(image=PNG), ENV, refused, OWN).reply.parts) == 1  # type: ignore[union-attr]


def test_per_kind_defaults_come_from_config() -> None:
    cfg = PipelineConfig(image_kinds=frozenset({"mailbox"}))
    assert len(decide(_mail(image=PNG), ENV, MAILBOX, OWN, config=cfg).reply.parts) == 2  # type: ignore[union-attr]


def test_image_type_the_chat_cannot_show_is_withheld() -> None:
    decision = decide(_mail(image=b"BM" + b"\x00" * 40, image_type="bmp"), ENV, SALESFORCE, OWN)
    assert decision.reply is not None and len(decision.reply.parts) == 1
    assert "image/bmp" in decision.notices[0].text


def test_image_over_the_platform_limit_is_withheld() -> None:
    cfg = PipelineConfig(max_image_bytes=50)
    decision = decide(_mail(image=PNG), ENV, SALESFORCE, OWN, config=cfg)
    assert decision.reply is not None and len(decision.reply.parts) == 1
    assert "over the chat limit" in decision.notices[0].text


def test_images_never_push_the_reply_record_past_one_megabyte() -> None:
    big = b"\x89PNG" + bytes(range(256)) * 2800  # ~700 KB: fits once, not twice
    msg = EmailMessage()
    msg["From"], msg["Message-ID"], msg["Subject"] = SELLER, "<big@shop.example>", "Re: x"
    msg.set_content("two photos")
    msg.add_alternative('<p>two photos</p><img src="cid:a@s"><img src="cid:b@s">', subtype="html")
    html = msg.get_payload()[1]
    html.add_related(big, "image", "png", cid="<a@s>", filename="a.png")
    html.add_related(big, "image", "png", cid="<b@s>", filename="b.png")
    decision = decide(msg.as_bytes(), ENV, SALESFORCE, OWN)
    reply = decision.reply
    assert isinstance(reply, ChatReply)
    assert [bool(p.image_b64) for p in reply.parts] == [False, True]
    assert len(encode(reply)) <= 1024 * 1024
    assert "too large to carry" in decision.notices[0].text


def test_control_characters_never_reach_the_buyer() -> None:
    decision = decide(_mail("Hello\x00 there\x1b"), ENV, MAILBOX, OWN)
    assert decision.reply is not None and decision.reply.parts[0].text == "Hello there"


def test_dmarc_fail_with_p_reject_refuses_the_reply() -> None:
    resolver = StaticResolver(
        {
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject"],
            ("shop.example", "TXT"): ["v=spf1 ip4:198.51.100.0/24 -all"],
        }
    )
    weak = dataclasses.replace(MAILBOX, mail_auth_policy="dmarc_reject")
    decision = decide(_mail(), ENV, weak, OWN, auth=auth_facts(_mail(), ENV, resolver))
    assert decision.classification == "rejected" and "DMARC" in decision.reason
    # The shop's own address forged: the shop is told (budgeted per sender and domain).
    assert decision.notices[0].kind == "sender_rejected"


def test_dmarc_pass_through_spf_delivers_the_reply() -> None:
    resolver = StaticResolver(
        {
            ("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=reject"],
            ("shop.example", "TXT"): ["v=spf1 ip4:192.0.2.0/24 -all"],
        }
    )
    decision = decide(_mail(), ENV, MAILBOX, OWN, auth=auth_facts(_mail(), ENV, resolver))
    assert decision.classification == "reply"
    assert decision.auth is not None and decision.auth.dmarc == "pass"


def test_shop_policy_dmarc_fail_refuses_even_with_p_none() -> None:
    resolver = StaticResolver({("_dmarc.shop.example", "TXT"): ["v=DMARC1; p=none"]})
    weak = dataclasses.replace(MAILBOX, mail_auth_policy="dmarc_reject")
    facts = auth_facts(_mail(), ENV, resolver)
    assert decide(_mail(), ENV, weak, OWN, auth=facts).classification == "reply"
    strict = dataclasses.replace(MAILBOX, mail_auth_policy="dmarc_fail")
    assert decide(_mail(), ENV, strict, OWN, auth=facts).classification == "rejected"


def test_deeply_nested_mime_is_refused_with_a_reason() -> None:
    depth = 40
    lines = [f"From: {SELLER}", "Subject: Re: x"]
    for level in range(depth):
        lines += [f'Content-Type: multipart/mixed; boundary="b{level}"', "", f"--b{level}"]
    lines += ["Content-Type: text/plain", "", "deep"]
    raw = "\r\n".join(lines).encode()
    with pytest.raises(MailTooComplex, match="nesting"):
        decide(raw, ENV, MAILBOX, OWN, config=PipelineConfig(limits=MimeLimits(max_depth=20)))


DAY_MS = 86_400_000


def test_links_notice_is_sent_once_per_conversation_per_utc_day() -> None:
    first = decide(
        _mail("Track it: https://track.example.com/a1", message_id="<a@s.example>"),
        ENV,
        MAILBOX,
        OWN,
    )
    later = decide(
        _mail("And here: https://track.example.com/b2", message_id="<b@s.example>"),
        dataclasses.replace(ENV, received_at_ms=ENV.received_at_ms + 3_600_000),
        MAILBOX,
        OWN,
    )
    next_day = decide(
        _mail("Again: https://track.example.com/c3", message_id="<c@s.example>"),
        dataclasses.replace(ENV, received_at_ms=ENV.received_at_ms + DAY_MS),
        MAILBOX,
        OWN,
    )
    other = decide(
        _mail("Other: https://track.example.com/d4", message_id="<d@s.example>"),
        dataclasses.replace(ENV, conversation_id="6"),
        MAILBOX,
        OWN,
    )
    assert first.text == "Track it:"
    (notice,) = first.notices
    assert notice.kind == "links_removed" and notice.to_address == SELLER
    assert "https://track.example.com/a1" in notice.text
    assert notice.auto_submitted == "auto-replied"
    # The mailer sends each notice id once: the same id means the day's repeats are dropped.
    assert later.notices[0].notice_id == notice.notice_id
    assert next_day.notices[0].notice_id != notice.notice_id
    assert other.notices[0].notice_id != notice.notice_id


def test_an_attachment_and_a_link_give_the_per_reply_notice_and_the_daily_one() -> None:
    decision = decide(_mail("See https://x.example/p", attachment=True), ENV, MAILBOX, OWN)
    kinds = sorted(n.kind for n in decision.notices)
    assert kinds == ["content_withheld", "links_removed"]
    withheld = next(n for n in decision.notices if n.kind == "content_withheld")
    assert "x.example" not in withheld.text


def test_a_mail_held_back_on_its_wording_alone_tells_the_shop() -> None:
    text = (
        "Thank you for contacting Best Jackets. Your case number is 00098765. A member of "
        "our team will respond within 24 hours."
    )
    decision = decide(_mail(text), ENV, SALESFORCE, OWN)
    assert decision.classification == "auto_reply" and decision.reply is None
    (notice,) = decision.notices
    assert notice.kind == "held_as_automated" and notice.to_address == "cases@shop.example"
    assert notice.auto_submitted == "auto-generated"
    subject = decide(_mail(headers={"Subject": "[Request received] Re: x"}), ENV, MAILBOX, OWN)
    assert [n.kind for n in subject.notices] == ["held_as_automated"]


def test_a_mail_marked_automatic_by_its_headers_sends_no_notice() -> None:
    decision = decide(_mail(headers={"Auto-Submitted": "auto-replied"}), ENV, MAILBOX, OWN)
    assert decision.classification == "auto_reply" and decision.notices == ()


@pytest.mark.parametrize(
    ("from_header", "reason"),
    [
        (None, "no From header"),
        ("Best Jackets Support", "no readable address"),
        ("<<>>@@ ;;", "no readable address"),
    ],
)
def test_mail_no_shop_could_accept_is_refused_without_a_shop_context(
    from_header: str | None, reason: str
) -> None:
    msg = EmailMessage()
    if from_header is not None:
        msg["From"] = from_header
    msg["Subject"] = "Re: A new message"
    msg.set_content("Yes, it ships today.")
    decision = decide(
        msg.as_bytes(),
        ENV,
        MAILBOX,
        OWN,
        config=PipelineConfig(check_sender=False, envelope_known=False),
    )
    assert decision.classification == "rejected" and decision.reply is None
    assert reason in decision.reason


def test_pictures_arrive_between_the_text_parts_where_the_seller_put_them() -> None:
    msg = EmailMessage()
    msg["From"] = SELLER
    msg["Subject"] = "Re: A new message"
    msg["Message-ID"] = "<pics@shop.example>"
    msg.set_content(
        "Here is the label:\n[image: label.png]\nAnd the box:\n[image: box.png]\nThanks"
    )
    msg.add_alternative(
        '<div>Here is the label:</div><img src="cid:l@s"><div>And the box:</div>'
        '<img src="cid:b@s"><div>Thanks</div>',
        subtype="html",
    )
    html = msg.get_payload()[1]
    html.add_related(PNG, "image", "png", cid="<l@s>", filename="label.png")
    html.add_related(PNG + b"\x01", "image", "png", cid="<b@s>", filename="box.png")
    decision = decide(msg.as_bytes(), ENV, SALESFORCE, OWN)
    assert decision.reply is not None
    shape = [p.text or p.image_filename for p in decision.reply.parts]
    assert shape == ["Here is the label:", "label.png", "And the box:", "box.png", "Thanks"]
    assert [p.index for p in decision.reply.parts] == [0, 1, 2, 3, 4]
    assert decision.text == "Here is the label:\nAnd the box:\nThanks"


def test_pictures_a_destination_does_not_show_leave_the_text_in_one_piece() -> None:
    decision = decide(_mail(image=PNG), ENV, MAILBOX, OWN)
    assert decision.reply is not None
    assert [p.text for p in decision.reply.parts] == ["Yes, size M is in stock."]
