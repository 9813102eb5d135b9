"""classify_mail: automated mail never reaches the buyer."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest

from reply_parser.classify import classify_body, classify_mail


def _mail(headers: dict[str, str], content_type: str = "text/plain") -> EmailMessage:
    lines = [
        f"{k}: {v}"
        for k, v in {
            "From": "seller@shop.example",
            "Subject": "Re: A new message",
            **headers,
        }.items()
    ]
    raw = "\r\n".join(lines + [f"Content-Type: {content_type}", "", "body"]).encode()
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def test_plain_reply_is_a_reply() -> None:
    assert classify_mail(_mail({})).cls == "reply"


def test_x_auto_response_suppress_alone_is_still_a_reply() -> None:
    assert classify_mail(_mail({"X-Auto-Response-Suppress": "All"})).cls == "reply"


def test_auto_submitted_no_is_a_reply() -> None:
    assert classify_mail(_mail({"Auto-Submitted": "no"})).cls == "reply"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "Out of office"},
        {"Precedence": "bulk"},
        {"Precedence": "auto_reply"},
        {"From": "no-reply@helpdesk.example"},
    ],
)
def test_automation_headers_and_senders_mean_auto_reply(headers: dict[str, str]) -> None:
    assert classify_mail(_mail(headers)).cls == "auto_reply"


@pytest.mark.parametrize(
    "subject",
    [
        "Automatic reply: A new message",
        "Out of Office: A new message",
        "Réponse automatique : x",
        "Automatische Antwort: x",
        "Respuesta automática: x",
        "Risposta automatica: x",
        "自動応答: x",
        "自动回复: x",
        "자동 회신: x",
        "Otomatik yanıt: x",
        "Re: Out of office",
    ],
)
def test_localized_auto_reply_subjects_mean_auto_reply(subject: str) -> None:
    assert classify_mail(_mail({"Subject": subject})).cls == "auto_reply"


def test_dsn_report_is_a_bounce() -> None:
    msg = _mail({}, 'multipart/report; report-type=delivery-status; boundary="b"')
    assert classify_mail(msg).cls == "bounce"


def test_mailer_daemon_is_a_bounce() -> None:
    assert classify_mail(_mail({"From": "MAILER-DAEMON@mx.example"})).cls == "bounce"


def test_x_loop_is_a_loop() -> None:
    assert classify_mail(_mail({"X-Loop": "bridge@chat-seller-us.example"})).cls == "loop"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-MS-Exchange-Generated-Message-Source": "Mailbox Rules Agent"},
        {"Auto-Submitted": "Auto-Generated"},  # Microsoft's casing
        {"Auto-Submitted": "auto-replied (vacation)"},
        {"X-Autoresponse": "1"},
        {"X-Precedence": "bulk"},
        {"List-Id": "Shop sellers <sellers.lists.example>"},
        {
            "List-Unsubscribe": "<https://esp.example/u/1>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        {"X-POST-MessageClass": "9; Autoresponder"},
        {"From": "noreply-support@helpdesk.example"},
        {"Subject": "[Request received] Re: A new message from TikTok Shop customer Ana"},
        {"Subject": "Re: A new message - Ticket Received - 48213"},
        {"Subject": "Your case #00001234 has been created"},
        {"Subject": "We received your request"},
        {"Subject": "Thank you for contacting Best Jackets support"},
    ],
)
def test_exchange_list_and_helpdesk_markers_mean_auto_reply(headers: dict[str, str]) -> None:
    assert classify_mail(_mail(headers)).cls == "auto_reply"


@pytest.mark.parametrize(
    "subject",
    [
        "Resposta automática: x",
        "Automatisch antwoord: x",
        "Automatyczna odpowiedź: x",
        "Balasan Otomatis: x",
        "Balasan automatik: x",
        "ตอบกลับอัตโนมัติ: x",
        "Thư trả lời tự động: x",
        "Awtomatikong tugon: x",
        "自動返信: x",
        "رد تلقائي: x",
        "[EXTERNAL] Automatic reply: x",
        "AW: Abwesenheitsnotiz",
        "AUTO: Jan is out of the office",
    ],
)
def test_more_localized_auto_reply_subjects_mean_auto_reply(subject: str) -> None:
    assert classify_mail(_mail({"Subject": subject})).cls == "auto_reply"


def test_auto_submitted_no_with_a_comment_is_a_reply() -> None:
    assert classify_mail(_mail({"Auto-Submitted": "no (forwarded by a person)"})).cls == "reply"


def test_null_envelope_sender_is_never_a_reply() -> None:
    assert classify_mail(_mail({}), envelope_sender="").cls == "auto_reply"
    assert classify_mail(_mail({"Subject": "Undeliverable: x"}), envelope_sender="").cls == "bounce"
    assert classify_mail(_mail({}), envelope_sender="seller@shop.example").cls == "reply"


def test_return_path_null_in_a_saved_mail_is_never_a_reply() -> None:
    assert classify_mail(_mail({"Return-Path": "<>"})).cls in ("auto_reply", "bounce")


def test_read_receipt_is_automated_not_a_reply() -> None:
    msg = _mail({}, 'multipart/report; report-type=disposition-notification; boundary="b"')
    assert classify_mail(msg).cls == "auto_reply"


@pytest.mark.parametrize(
    "subject",
    [
        "Re: A new message from TikTok Shop customer Ana",
        "Re: A new message from TikTok Shop customer Otomatik",
        "Re: Is the office chair back in stock?",
    ],
)
def test_ordinary_subjects_stay_replies(subject: str) -> None:
    assert classify_mail(_mail({"Subject": subject})).cls == "reply"


def test_body_check_flags_acknowledgements_not_ordinary_answers() -> None:
    assert classify_body("This is an automated response. Your ticket #123 has been created.")
    assert classify_body("Yes, we received your order and it ships today.") is None
    assert classify_body("Please do not reply to this email.")


@pytest.mark.parametrize(
    "text",
    [
        "Your request (12345) has been received and is being reviewed by our support staff.",
        "Thanks for reaching out! We've received your message and will get back to you within "
        "24 hours.",
        "Thank you for contacting us. Your case number 00001234 has been created.",
    ],
)
def test_helpdesk_acknowledgement_bodies_are_automated(text: str) -> None:
    assert classify_body(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "Yes, we received your message about the size. The M fits 38-40.",
        "We have received your return and will refund you today.",
        "Hi Ana, we received your request. The refund is done.",
    ],
)
def test_sellers_confirming_receipt_are_not_automated(text: str) -> None:
    assert classify_body(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "Thank you for contacting Best Jackets. Your case number is 00098765. A member of our team "
        "will respond within 24 hours.",
        "Gracias por contactar con Chaquetas del Sur. Su número de caso es 00098766. Le "
        "responderemos en un plazo de 24 horas.",
        "Vielen Dank für Ihre Nachricht. Wir haben Ihre Anfrage erhalten und melden uns "
        "innerhalb von 24 Stunden.",
        "Merci pour votre message ! Nous avons bien reçu votre demande et nous vous répondrons "
        "sous 24 heures.",
        "お問い合わせいただきありがとうございます。受付番号: 31390。24時間以内にご連絡いたします。",
        "感谢您的来信！我们已收到您的邮件，工单号：88231。客服将在24小时内回复您。",
        "Terima kasih telah menghubungi kami. Kami telah menerima pesan Anda.",
        "Cảm ơn bạn đã liên hệ. Chúng tôi đã nhận được yêu cầu của bạn.",
        "Saya sedang cuti hingga 10 April 2024.",
        "Ik ben afwezig tot maandag 8 april.",
        "Jestem poza biurem do piątku.",
        "Это автоматическое сообщение, отвечать на него не нужно.",
        "この メールは自動送信されています。".replace(" ", ""),
        "이 메일은 자동으로 발송되었습니다.",
    ],
)
def test_acknowledgements_and_absences_in_the_marketplace_languages_are_automated(
    text: str,
) -> None:
    verdict = classify_body(text)
    assert verdict is not None and verdict.by_content


@pytest.mark.parametrize(
    "text",
    [
        "Thank you for contacting us! Your order 12345 ships today and arrives within 3 days.",
        "Thanks for your message. The jacket ships within 2 days.",
        "Vielen Dank für Ihre Nachricht! Die Jacke ist innerhalb von 2 Tagen bei Ihnen.",
        "Your case number is 4471 at the courier; I have asked them to call you.",
    ],
)
def test_one_acknowledgement_signal_alone_does_not_hold_a_reply(text: str) -> None:
    assert classify_body(text) is None


def test_a_helpdesk_case_subject_counts_as_one_signal() -> None:
    text = "Thank you for contacting Best Jackets."
    assert classify_body(text) is None
    assert classify_body(text, "Case 00098765: Re: A new message") is not None


def test_localized_request_received_subjects_are_automated_by_content() -> None:
    for subject in (
        "[Request received] Re: x",
        "[Anfrage erhalten] Re: x",
        "[Demande reçue] Re: x",
        "[Solicitud recibida] Re: x",
    ):
        verdict = classify_mail(_mail({"Subject": subject}))
        assert verdict.cls == "auto_reply" and verdict.by_content, subject


def test_header_verdicts_are_not_content_guesses() -> None:
    assert not classify_mail(_mail({"Auto-Submitted": "auto-replied"})).by_content


@pytest.mark.parametrize(
    "text",
    [
        "thank you for contacting us",
        "gracias por contactar con",
        "votre numéro de ticket",
        "su número de caso es 1",
        "we will respond within 24 hours",
        "le responderemos en 2 días",
        "risponderemo entro 24 ore",
        "24時間以内にご連絡",
        "we have received your request",
        "a member of our team",
        "wir haben ihre nachricht erhalten",
        "i am out of the office",
        "this is an automated message",
        "dies ist eine automatische nachricht",
        "我目前不在办公室",
        "부재중입니다",
        "saya sedang cuti",
        "estou fora do escritório",
        "ticket #12345",
        "受付番号",
        "工单号",
        "nombor tiket",
    ],
)
def test_every_acknowledgement_phrase_counts_as_a_signal(text: str) -> None:
    # A helpdesk case subject is one acknowledgement signal; the phrase must be a second
    # (or declare itself automated), whatever words the classifier looks for first.
    case_subject = "[Case 12345] Re: your order"
    assert classify_body("Sure, it ships tomorrow.", case_subject) is None
    verdict = classify_body(text, case_subject)
    assert verdict is not None and verdict.cls == "auto_reply", text
    assert classify_body(text.upper(), case_subject) is not None, "upper case"
