"""Attribution lines and Outlook header blocks in the marketplace languages end the new text."""

from __future__ import annotations

import pytest

from reply_parser.extract import extract_from_text

ADDR = "TikTok Shop <c-1@chat-seller-us.bridge.example>"
NEW = "Yes, it ships today."

ATTRIBUTIONS = {
    "en": f"On Wed, Apr 3, 2024 at 4:19 PM {ADDR} wrote:",
    "de": f"Am Mi., 3. Apr. 2024 um 16:19 Uhr schrieb {ADDR}:",
    "fr": f"Le mer. 3 avr. 2024 à 16:19, {ADDR} a écrit :",
    "es": "El mié, 3 abr 2024 a las 16:19, TikTok Shop (<c-1@x.example>) escribió:",
    "it": f"Il giorno mer 3 apr 2024 alle ore 16:19 {ADDR} ha scritto:",
    "pt": f"Em qua., 3 de abr. de 2024 às 16:19, {ADDR} escreveu:",
    "nl": f"Op wo 3 apr 2024 om 16:19 schreef {ADDR}:",
    "sv": f"Den ons 3 apr. 2024 kl 16:19 skrev {ADDR}:",
    "no": f"ons. 3. apr. 2024 kl. 16:19 skrev {ADDR}:",
    "da": f"Den ons. 3. apr. 2024 kl. 16.19 skrev {ADDR}:",
    "pl": f"śr., 3 kwi 2024 o 16:19 {ADDR} napisał(a):",
    "cs": f"st 3. 4. 2024 v 16:19 odesílatel {ADDR} napsal:",
    "ru": f"ср, 3 апр. 2024 г. в 16:19, {ADDR}:",
    "uk": f"ср, 3 квіт. 2024 р. о 16:19 {ADDR} пише:",
    "vi": f"Vào Th 4, 3 thg 4, 2024 vào lúc 16:19 {ADDR} đã viết:",
    "th": f"เมื่อ พุธ 3 เม.ย. 2024 เวลา 16:19 {ADDR} เขียนว่า:",
    "id": f"Pada tanggal Rab, 3 Apr 2024 pukul 16.19 {ADDR} menulis:",
    "ms": f"Pada Rab, 3 Apr 2024 pada 4:19 PTG {ADDR} menulis:",
    "ja": f"2024年4月3日(水) 16:19 {ADDR}:",
    "ko": f"2024년 4월 3일 (수) 오후 4:19, {ADDR}님이 작성:",
    "zh": f"{ADDR} 于2024年4月3日周三 16:19写道：",
    "zh-TW": f"{ADDR} 於 2024年4月3日 週三 下午4:19寫道：",
    "date-first": f"2016-03-03 17:21 GMT+01:00 {ADDR}:",
    "mailto": "On Wed, Apr 3, 2024 at 4:19 PM TikTok Shop <mailto:c-1@x.example> wrote:",
    "own-sender": "On Wed, TikTok Shop wrote:",
    "wrapped-2": "On Wed, Apr 3, 2024 at 4:19 PM TikTok Shop <\nc-1@x.example> wrote:",
    "wrapped-3": "On Wed, Apr 3, 2024 at 4:19 PM TikTok Shop\n<c-1@x.example>\nwrote:",
    "wrapped-pl": f"śr., 3 kwi 2024 o 16:19 {ADDR}\nnapisał(a):",
}


@pytest.mark.parametrize("lang", sorted(ATTRIBUTIONS))
@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_attribution_ends_the_new_text(lang: str, quoted: bool) -> None:
    history = "> Is it in stock?\n> Thanks" if quoted else "Is it in stock?\nThanks"
    assert extract_from_text(f"{NEW}\n\n{ATTRIBUTIONS[lang]}\n\n{history}") == NEW


OUTLOOK_KEYS = {
    "en": ("From", "Sent", "To", "Subject"),
    "de": ("Von", "Gesendet", "An", "Betreff"),
    "fr": ("De ", "Envoyé ", "À ", "Objet "),
    "es": ("De", "Enviado el", "Para", "Asunto"),
    "it": ("Da", "Inviato", "A", "Oggetto"),
    "pt": ("De", "Enviado", "Para", "Assunto"),
    "nl": ("Van", "Verzonden", "Aan", "Onderwerp"),
    "sv": ("Från", "Skickat", "Till", "Ämne"),
    "no": ("Fra", "Sendt", "Til", "Emne"),
    "pl": ("Od", "Wysłane", "Do", "Temat"),
    "cs": ("Od", "Odesláno", "Komu", "Předmět"),
    "ru": ("От", "Отправлено", "Кому", "Тема"),
    "uk": ("Від", "Надіслано", "Кому", "Тема"),
    "vi": ("Từ", "Đã gửi", "Đến", "Chủ đề"),
    "th": ("จาก", "ส่ง", "ถึง", "เรื่อง"),
    "id": ("Dari", "Dikirim", "Kepada", "Perihal"),
    "ms": ("Daripada", "Dihantar", "Kepada", "Subjek"),
    "ja": ("差出人", "送信日時", "宛先", "件名"),
    "ko": ("보낸 사람", "보낸 날짜", "받는 사람", "제목"),
    "zh": ("发件人", "发送时间", "收件人", "主题"),
    "zh-TW": ("寄件者", "寄件日期", "收件者", "主旨"),
}


@pytest.mark.parametrize("lang", sorted(OUTLOOK_KEYS))
@pytest.mark.parametrize(
    "rule", ["________________________________\n", ""], ids=["with-rule", "without-rule"]
)
@pytest.mark.parametrize("bold", [False, True], ids=["plain", "bold"])
def test_outlook_header_block_ends_the_new_text(lang: str, rule: str, bold: bool) -> None:
    def key(name: str) -> str:
        return f"*{name}:*" if bold else f"{name}:"

    f, sent, to, subject = OUTLOOK_KEYS[lang]
    block = (
        f"{rule}{key(f)} {ADDR}\n{key(sent)} 2024-04-03 16:19\n{key(to)} s@shop.example\n"
        f"{key(subject)} A new message\n\nIs it in stock?"
    )
    assert extract_from_text(f"{NEW}\n\n{block}") == NEW


def test_outlook_block_with_the_address_on_its_own_line() -> None:
    block = (
        "From: TikTok Shop\n<mailto:c-1@x.example>\nSent: Wednesday\nTo: s@shop.example\n"
        "Subject: A new message\n\nIs it in stock?"
    )
    assert extract_from_text(f"{NEW}\n\n{block}") == NEW


def test_a_sentence_quoting_someone_is_not_an_attribution() -> None:
    text = "On Monday the courier wrote: parcel delivered to the neighbour.\nSorry!"
    assert extract_from_text(text) == text


@pytest.mark.parametrize(
    "history",
    [
        '------------------ 原始邮件 ------------------\n发件人: "TikTok Shop";\n主题: x\n\n有货吗？',
        "---- 回复的原邮件 ----\n| 发件人 | TikTok Shop<c-1@x.example> |\n\n有货吗？",
        f"---- On Wed, 03 Apr 2024 16:19:00 +0200 {ADDR} wrote ----\n\nIs it in stock?",
        "-------- Original message --------\nFrom: TikTok Shop <c-1@x.example>\nDate: 4/3/24 16:19\n\n"
        "Is it in stock?",
    ],
)
def test_webmail_separators_end_the_new_text(history: str) -> None:
    assert extract_from_text(f"{NEW}\n\n{history}") == NEW


def test_an_attribution_naming_an_address_ends_the_text_even_without_a_blank_line() -> None:
    text = f'{NEW}\n在 2024-04-03 16:19:00，"TikTok Shop" <c-1@x.example> 写道：\n有货吗？'
    assert extract_from_text(text) == NEW
