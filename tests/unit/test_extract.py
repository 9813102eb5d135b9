"""extract_new_text / extract_from_text: only what the seller newly wrote reaches the buyer."""

from __future__ import annotations

import email
import sys
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from reply_parser.extract import (
    Extraction,
    decode_bytes,
    extract_from_text,
    extract_new_text,
    unflow,
)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "replies"
HEADER = "On Wed, Apr 3, 2024 at 4:19 PM TikTok Shop <c-1@chat-seller-us.example> wrote:"


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)  # type: ignore[return-value]


def _message(plain: str | None = None, html: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "seller@shop.example"
    msg["Subject"] = "Re: A new message"
    if plain is not None:
        msg.set_content(plain)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    return _parse(msg.as_bytes())


def test_gmail_plain_reply_drops_quote_header_and_quoted_lines() -> None:
    assert (
        extract_from_text(f"Yes, in stock.\n\n{HEADER}\n\n> Is it in stock?\n") == "Yes, in stock."
    )


def test_quote_header_wrapped_over_two_lines_is_found() -> None:
    text = "Ok.\n\nOn Wed, Apr 3, 2024 at 4:19 PM Customer Service Team <\nc-1@x.example> wrote:\n\n> Hi\n"
    assert extract_from_text(text) == "Ok."


def test_answers_interleaved_between_quoted_lines_are_kept() -> None:
    text = f"{HEADER}\n> Size?\nM.\n> Colour?\nBlue.\n"
    assert extract_from_text(text) == "M.\nBlue."


def test_pasted_wrote_line_inside_a_paragraph_is_kept() -> None:
    text = "Checked with the courier and\nthe driver wrote: left at door.\nSorry!"
    assert extract_from_text(text) == text


def test_outlook_header_block_cuts_the_history() -> None:
    text = "Refunded.\n\nFrom: Shop <a@b.example>\nSent: Monday\nTo: me\nSubject: Hi\n\nold text"
    assert extract_from_text(text) == "Refunded."


def test_localized_outlook_header_block_cuts_the_history() -> None:
    text = "Erstattet.\n\nVon: Shop <a@b.example>\nGesendet: Montag\nAn: ich\nBetreff: Hi\n\nalt"
    assert extract_from_text(text) == "Erstattet."


def test_signature_after_dash_dash_is_removed() -> None:
    assert extract_from_text("Ships today.\n\n-- \nJane\nShop Ltd") == "Ships today."


def test_sent_from_my_iphone_translations_are_removed() -> None:
    for signature in (
        "Sent from my iPhone",
        "Von meinem iPhone gesendet",
        "iPhoneから送信",
        "发自我的iPhone",
        "Enviado desde mi iPhone",
    ):
        assert extract_from_text(f"Ok.\n\n{signature}") == "Ok."


def test_sentence_starting_like_a_mobile_signature_is_kept() -> None:
    text = "Sent from my warehouse yesterday, it arrives Friday."
    assert extract_from_text(text) == text


def test_nothing_inside_a_forwarded_message_reaches_the_buyer() -> None:
    forwarded = (
        "---------- Forwarded message ---------\nFrom: Courier <c@x.example>\n"
        "Date: Wed, Apr 3, 2024\nSubject: Delivered\nTo: <me@x.example>\n\n"
        "Delivered at 10:42. Driver Tom, +44 7700 900123."
    )
    assert extract_from_text(forwarded) == ""
    assert extract_from_text("See below.\n\n" + forwarded) == "See below."


def test_zendesk_notification_yields_newest_comment() -> None:
    text = (
        "##- Please type your reply above this line -##\n\nYour request (1) has been updated.\n"
        "------------------------------\n\nJane\n\nApr 3, 2024, 16:45\n\nShipped.\n\n"
        "------------------------------\n\nAna\n\nApr 3, 2024, 16:00\n\nWhere?\n"
    )
    assert extract_from_text(text) == "Shipped."


def test_salesforce_thread_ids_and_original_message_are_removed() -> None:
    text = (
        "Refund done.\nref:_00D5g00LXq._5005g01AbCd:ref\n\n"
        "--------------- Original Message ---------------\nFrom: x\n\nold"
    )
    assert extract_from_text(text) == "Refund done."


def test_html_only_gmail_reply_is_converted_without_quote_or_link_targets() -> None:
    html = (
        '<div dir="ltr">See <a href="https://x.example/p">this page</a>.</div>'
        '<div class="gmail_quote"><div class="gmail_attr">' + HEADER + "</div>"
        '<blockquote class="gmail_quote">old</blockquote></div>'
    )
    result = extract_new_text(_message(html=html))
    assert result.text == "See this page."
    assert result.source == "text/html"
    assert result.links_removed == ("https://x.example/p",)


def test_outlook_web_divrplyfwdmsg_history_is_removed() -> None:
    html = (
        '<div>We can exchange it.</div><hr><div id="divRplyFwdMsg"><b>From:</b> a<br>'
        "<b>Subject:</b> A new message</div><div>old buyer text</div>"
    )
    assert extract_new_text(_message(html=html)).text == "We can exchange it."


def test_real_plain_part_is_preferred_over_html() -> None:
    result = extract_new_text(_message(plain="Plain answer.", html="<p>Html answer.</p>"))
    assert (result.text, result.source) == ("Plain answer.", "text/plain")


def test_inline_image_is_delivered_and_attachment_withheld() -> None:
    msg = EmailMessage()
    msg["From"] = "seller@shop.example"
    msg.set_content("Photo attached.")
    msg.add_alternative(
        '<p>Photo attached.<img src="cid:p1@x"></p><blockquote type="cite">'
        '<img src="cid:old@x"></blockquote>',
        subtype="html",
    )
    html_part = msg.get_payload()[1]
    html_part.add_related(
        b"PNGDATA", maintype="image", subtype="png", cid="<p1@x>", filename="p.png"
    )
    html_part.add_related(b"OLD", maintype="image", subtype="png", cid="<old@x>", filename="o.png")
    msg.add_attachment(b"%PDF", maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(b"MP4", maintype="video", subtype="mp4", filename="clip.mp4")
    result = extract_new_text(_parse(msg.as_bytes()))
    assert result.text == "Photo attached."
    assert [(i.content_id, i.data, i.filename) for i in result.inline_images] == [
        ("p1@x", b"PNGDATA", "p.png")
    ]
    assert any("invoice.pdf" in w for w in result.withheld)
    assert any(w.startswith("video") and "clip.mp4" in w for w in result.withheld)


def test_wrong_declared_charset_degrades_gracefully() -> None:
    assert decode_bytes("Größe".encode(), "iso-8859-1") == "Größe"
    assert decode_bytes("Größe".encode("cp1252"), "utf-8") == "Größe"
    assert decode_bytes("退款".encode("gbk"), "gb2312") == "退款"
    assert decode_bytes("沒問題".encode("big5"), "x-nonexistent-charset")  # never raises
    assert decode_bytes(b"ok \x81\x8d", "utf-8").startswith("ok ")


def test_format_flowed_soft_breaks_are_joined_honouring_delsp() -> None:
    assert unflow("water \nproof.", delsp=True) == "waterproof."
    assert unflow("one \ntwo", delsp=False) == "one two"
    assert unflow("-- \nsig") == "-- \nsig"


def test_malformed_mime_never_raises() -> None:
    raw = (
        b'Content-Type: multipart/mixed; boundary="zz"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b'--zz\r\nContent-Type: text/plain; charset="\xff"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"!!!not base64@@@\r\n--zz"
    )
    assert isinstance(extract_new_text(_parse(raw)), Extraction)
    assert isinstance(extract_new_text(_parse(b"\x00\xff garbage")), Extraction)


def test_ten_megabyte_single_line_is_handled_in_bounded_time() -> None:
    line = ("On " + "1 wrote: " * 1_200_000)[:10_000_000]
    start = time.perf_counter()
    extract_from_text(f"{line}\n\n> quoted")
    html = "<div>" + "a " * 5_000_000 + "</div>"
    extract_new_text(_message(html=html))
    assert time.perf_counter() - start < 20


def test_hand_made_corpus_is_at_least_95_percent_exact() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from score_replies import load_cases, ours, score

    cases = load_cases(CORPUS)
    assert len(cases) >= 50
    result = score(cases, ours)
    assert result.exact >= 0.95, [name for name, _, _ in result.failures]


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("lang_*.input.eml")))
def test_quote_header_in_each_language_is_removed(name: str) -> None:
    msg = _parse((CORPUS / name).read_bytes())
    expected = (CORPUS / name.replace(".input.eml", ".expected.txt")).read_text("utf-8").strip()
    assert extract_new_text(msg).text == expected


@pytest.mark.parametrize(
    ("marker", "boilerplate"),
    [
        (
            "##- Please type your reply above this line -##",
            "Your request (4821) has been updated. To add additional comments, reply to this email.",
        ),
        (
            "##- Bitte geben Sie Ihre Antwort über dieser Zeile ein. -##",
            "Ihre Anfrage (4821) wurde aktualisiert. Antworten Sie auf diese E-Mail.",
        ),
        (
            "##- このメールに返信する場合は、この行より上に入力してください -##",
            "リクエスト(4821)が更新されました。",
        ),
        ("Please type your reply above this line", "Ticket #4821 has been updated."),
        (
            "## Por favor, responda por encima de esta línea ##",
            "Su solicitud (4821) fue actualizada.",
        ),
    ],
)
def test_helpdesk_notification_in_any_locale_yields_the_newest_comment(
    marker: str, boilerplate: str
) -> None:
    text = (
        f"{marker}\n\n{boilerplate}\n----------------------------------------------\n\n"
        "Jana Agent (Best Jackets)\n\n3 Apr 2024, 16:45\n\nShipped today.\n\n"
        "----------------------------------------------\n\nAna\n\n3 Apr 2024, 16:19\n\n"
        "Where is it?\n"
    )
    assert extract_from_text(text) == "Shipped today."


def test_a_rule_then_name_and_time_starts_older_helpdesk_comments() -> None:
    text = "Refund issued.\n\nLucía\n\n---\n\nAna Lopez, 3 abr 2024 16:19\n\n¿Y mi reembolso?"
    assert extract_from_text(text) == "Refund issued.\n\nLucía"


def test_salesforce_thread_ids_classic_and_new_end_or_leave_the_text() -> None:
    for ref in ("ref:_00D5g00LXq._5005g01AbCd:ref", "ref:!00D5g00LXq.!500Hs01AbCdE:ref"):
        assert (
            extract_from_text(f"Approved.\n{ref}\nTikTok Shop wrote on 03/04/2024:\nold")
            == "Approved."
        )
        assert extract_from_text(f"Approved. [ {ref} ]") == "Approved."


def test_invisible_leftovers_go_and_emoji_joiners_stay() -> None:
    text = (
        "Bonjour\u00a0Ana,\u200b\n\nShipped.\u2060\n\u1427\n\u200b\n\u00a0\n\ufeff\n"
        "👨\u200d👩\u200d👧\n   \n\t\n"
    )
    assert extract_from_text(text) == "Bonjour Ana,\n\nShipped.\n\n👨\u200d👩\u200d👧"


@pytest.mark.parametrize(
    "placeholder",
    [
        "[image: return-label.png]",
        "[image]",
        "[Imagen]",
        "[cid:image001.png@01DA8E2B.5C3E1F40]",
        "[Bild: foto.jpg]",
        "[画像]",
    ],
)
def test_image_placeholders_of_text_alternatives_are_removed(placeholder: str) -> None:
    assert (
        extract_from_text(f"Here is the label:\n{placeholder}\nThanks")
        == "Here is the label:\nThanks"
    )
    assert extract_from_text(f"A photo {placeholder} of the box.") == "A photo of the box."


def test_links_are_reduced_to_their_text_in_plain_bodies() -> None:
    msg = _message(
        plain="Track it here<https://track.example.com/abc>: JX48213.\n"
        "Size guide: https://shop.example/size"
    )
    result = extract_new_text(msg)
    assert result.text == "Track it here: JX48213.\nSize guide:"
    assert result.links_removed == ("https://track.example.com/abc", "https://shop.example/size")


def test_gmail_html_forward_delivers_nothing_of_the_forwarded_message() -> None:
    html = (
        '<div dir="ltr">See below.<br><div class="gmail_quote"><div dir="ltr" '
        'class="gmail_attr">---------- Forwarded message ---------<br>From: Warehouse '
        "&lt;wh@x.example&gt;<br></div><div>Call Bob 555-0133.</div></div></div>"
    )
    assert extract_new_text(_message(html=html)).text == "See below."


def test_outlook_web_forward_header_cuts_what_was_forwarded() -> None:
    html = (
        '<div>FYI.</div><div id="divRplyFwdMsg"><b>From:</b> a<br><b>Subject:</b> FW: x'
        "</div><div>Driver Tom, +44 7700 900123</div>"
    )
    assert extract_new_text(_message(html=html)).text == "FYI."


def test_the_attachment_list_under_a_helpdesk_comment_is_not_comment_text() -> None:
    text = (
        "##- Please type your reply above this line -##\n\nYour request (4821) has been "
        "updated.\n\nPriya (Best Jackets)\n\nApr 3, 2024, 16:45 GMT+1\n\nRefund done.\n\n"
        "Attachment(s)\nlabel.pdf\n"
    )
    assert extract_from_text(text) == "Refund done."
