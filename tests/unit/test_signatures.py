"""Signatures without a '-- ' delimiter: the sign-off and the name stay, the block after goes."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reply_parser.extract import extract_from_text, extract_new_text
from reply_parser.signatures import (
    contact_evidence,
    is_name_line,
    is_sign_off,
    keep_from_signature,
    strip_signature_block,
)


def _message(html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "seller@shop.example"
    msg.set_content(html, subtype="html")
    return email.message_from_bytes(msg.as_bytes(), policy=policy.default)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("sign_off", "name", "block"),
    [
        (
            "Thanks,",
            "Jane",
            "Jane Miller\nCustomer Service Manager | Best Jackets Ltd\n"
            "T: +1 (555) 010-0199\nwww.bestjackets.example",
        ),
        (
            "Belle journée,",
            "Marie",
            "Marie Dupont\nResponsable service client\nTél. : +33 1 42 68 53 00",
        ),
        (
            "Mit freundlichen Grüßen",
            "Thomas",
            "Kundenservice\nJacken Becker GmbH\nHauptstraße 12, 10115 Berlin\nTel.: +49 30 1234567",
        ),
        (
            "Terima kasih,",
            "Dewi",
            "Dewi Lestari\nWA: +62 812-3456-7890\nJl. Sudirman No. 45, Jakarta Selatan",
        ),
        ("Pozdrawiam,", "Kasia", "Katarzyna Nowak\nKierownik sklepu\nKurtki Nowak sp. z o.o."),
        ("Cảm ơn bạn,", "Linh", "Nguyễn Thuỳ Linh\nĐT: 0901 234 567"),
        ("よろしくお願いいたします。", "田中", "株式会社ジャケットストア\nTEL: 03-1234-5678"),
        ("ขอบคุณค่ะ", "นภา", "ฝ่ายบริการลูกค้า ร้านแจ็คเก็ตไทย\nโทร 02-123-4567"),
        ("Saludos,", "Carlos", "Carlos Gómez\nGerente de Ventas\nChaquetas del Sur S.L."),
    ],
)
def test_sign_off_and_name_stay_and_the_contact_block_goes(
    sign_off: str, name: str, block: str
) -> None:
    body = f"Your parcel left today.\n\n{sign_off}\n{name}"
    assert extract_from_text(f"{body}\n\n{block}") == body


def test_a_legal_notice_after_the_name_goes_too() -> None:
    body = "Refund issued.\n\nBest regards,\nSam"
    notice = (
        "CONFIDENTIALITY NOTICE: This e-mail and any attachments are confidential and "
        "intended solely for the addressee. If you are not the intended recipient, "
        "please delete it."
    )
    assert extract_from_text(f"{body}\n\nSam Carter | Head of Care\n\n{notice}") == body


def test_a_short_reply_whose_last_line_is_a_name_keeps_it() -> None:
    assert (
        extract_from_text("Yes, it ships today.\n\nThanks,\nJane")
        == "Yes, it ships today.\n\nThanks,\nJane"
    )
    assert extract_from_text("Sure!\nTom") == "Sure!\nTom"


def test_a_postscript_or_a_sentence_after_the_name_is_kept() -> None:
    ps = "Shipped!\n\nThanks,\nJane\n\nP.S. Call us on +1 555 010 0199 if the courier misses you."
    assert extract_from_text(ps) == ps
    sentence = "Thanks,\nJane\n\nBy the way, the parcel goes via DHL in 2 days."
    assert extract_from_text(sentence) == sentence


def test_a_sign_off_opening_the_reply_does_not_cut_what_follows() -> None:
    text = "Thanks!\nYour order ships Monday.\nTracking number JX48213, phone +1 555 010 0199."
    assert extract_from_text(text) == text


def test_an_unsigned_contact_paragraph_is_cut_after_the_name() -> None:
    text = (
        "Your order shipped.\n\nSanne de Vries\nKlantenservice\nTel: +31 20 123 4567\n"
        "sanne@jassen.example"
    )
    assert extract_from_text(text) == "Your order shipped.\n\nSanne de Vries"


def test_a_return_address_the_seller_gives_is_not_a_signature() -> None:
    text = "Please send it back to:\n\nReturns Dept\nHauptstraße 12\n10115 Berlin"
    assert extract_from_text(text) == text


def test_gmail_signature_element_keeps_the_name_after_a_typed_sign_off() -> None:
    html = (
        '<div dir="ltr"><div>Your parcel left today.</div><div><br></div>'
        '<div>Belle journée,</div><span class="gmail_signature_prefix">-- </span><br>'
        '<div class="gmail_signature">Marie Dupont<br>Responsable SAV<br>'
        "+33 1 42 68 53 00</div></div>"
    )
    assert (
        extract_new_text(_message(html)).text
        == "Your parcel left today.\n\nBelle journée,\nMarie Dupont"
    )


def test_outlook_signature_element_without_a_sign_off_is_dropped_whole() -> None:
    html = (
        '<div>Your parcel left today.</div><div id="Signature"><div>Sam Carter</div>'
        "<div>+44 20 7946 0958</div></div>"
    )
    assert extract_new_text(_message(html)).text == "Your parcel left today."


def test_dash_dash_block_keeps_a_name_that_completes_the_sign_off() -> None:
    before = ["Ok.", "", "Regards,", ""]
    assert keep_from_signature(before, ["Jane", "+1 555 010 0199"]) == [
        "Ok.",
        "",
        "Regards,",
        "Jane",
    ]
    assert keep_from_signature(["Ok.", ""], ["Jane", "+1 555 010 0199"]) == ["Ok.", ""]


def test_line_predicates() -> None:
    assert is_sign_off("Mit freundlichen Grüßen") and is_sign_off("Thanks! 🙏")
    assert not is_sign_off("Thanks for the photo, the jacket is lovely.")
    assert is_name_line("Sanne de Vries") and is_name_line("田中")
    assert not is_name_line("Your order ships Monday.")
    assert contact_evidence("Tel.: +49 30 1234567") and contact_evidence("www.shop.example")
    assert not contact_evidence("The parcel goes via DHL tomorrow.")


_LINES = st.lists(
    st.sampled_from(
        [
            "",
            "Thanks,",
            "Jane",
            "Jane Miller",
            "Sales Manager",
            "+1 555 010 0199",
            "www.x.example",
            "Your parcel left today.",
            "P.S. see you",
            "Best Jackets Ltd",
            "Hauptstraße 12",
            "It ships Monday.",
            "Regards",
            "Customer Service",
        ]
    ),
    max_size=25,
)


@given(_LINES)
def test_the_result_is_always_a_prefix_of_the_input(lines: list[str]) -> None:
    kept = strip_signature_block(lines)
    assert kept == lines[: len(kept)]


def test_a_signer_line_with_a_role_and_a_closing_sentence_are_recognised() -> None:
    assert (
        extract_from_text("Ok.\n\nRegards,\nJane Doe, Sales Manager\n+1 555 010 0199")
        == "Ok.\n\nRegards,\nJane Doe, Sales Manager"
    )
    assert (
        extract_from_text(
            "Ok.\n\nThanks for your patience!\nJane\nBest Jackets Ltd\n+1 555 010 0199"
        )
        == "Ok.\n\nThanks for your patience!\nJane"
    )


def test_an_unsigned_name_with_a_phone_line_loses_the_phone() -> None:
    text = "Hi Ana, refund done.\n\nPriya\nBest Jackets Support | +44 20 7946 0958"
    assert extract_from_text(text) == "Hi Ana, refund done.\n\nPriya"


def test_helpdesk_footer_lines_after_the_team_line_are_part_of_the_block() -> None:
    text = (
        "Your refund is done.\n\nKind regards,\nPriya\nBest Jackets Support\n\n"
        "Ticket #4821 | Status: Solved"
    )
    assert extract_from_text(text) == "Your refund is done.\n\nKind regards,\nPriya"


def test_thunderbird_signature_element_with_its_own_delimiter_keeps_the_name() -> None:
    html = (
        '<p>Shipped today.</p><p>Regards,</p><div class="moz-signature">-- <br>Kasia<br>'
        "tel. +48 22 123 45 67</div>"
    )
    assert extract_new_text(_message(html)).text == "Shipped today.\n\nRegards,\nKasia"
