"""Signature blocks without a ``-- `` delimiter: a sign-off, the signer's name, then contacts.

Sellers end a reply with a sign-off ("Thanks,", "Belle journée,", "Terima kasih,") and their
first name, and their mail client appends a block: full name, job title, company, phone, web
address, street address, opening hours, a legal notice. The buyer gets the message up to and
including the sign-off and the name; the block after it is written for business contacts, not
for a marketplace chat (whose policies forbid off-platform contact details anyway).

Pure. The rule is structural, so it holds in any language whose sign-offs are listed:

1. the last *sign-off line* (a listed phrase alone on a short line, optionally followed on the
   same line by a name), then
2. an optional *name line* (one to four name-like words, or a short CJK/Thai name), then
3. a *contact block*: everything that is left, kept only if it has no prose sentence a buyer
   should read and at least one line of contact evidence (phone, address, URL, e-mail, hours,
   title, company form, legal notice).

Without a sign-off, a last paragraph that opens with a name and carries at least two contact
lines is cut after the name. A short reply whose last line is a name keeps it: with nothing
after the name there is no block to cut. HTML bodies mark signatures themselves; html_text
brackets those with :data:`SIGNATURE_START`/:data:`SIGNATURE_END` lines and
:func:`keep_from_signature` keeps the sign-off and name the element may begin with; a block
after the ``-- `` delimiter is treated the same way.
"""

from __future__ import annotations

import re

from .quote_patterns import SIG_DELIMITER_RE

# Private-use characters html_text writes as lines around a client-marked signature element.
SIGNATURE_START = "\ue000"
SIGNATURE_END = "\ue001"
SIGNATURE_MARKS_RE = re.compile("[\ue000\ue001]")

# A sign-off, a name or a contact line is short; longer lines are prose.
MAX_SIGN_OFF_LINE = 60
MAX_NAME_LINE = 40
MAX_CONTACT_LINE = 160
# The sign-off is looked for this many lines from the end; a contact block is at most this long.
SEARCH_WINDOW = 40

# Every pattern below is written lower-case and applied to the lower-cased line: keyword
# alternations with re.IGNORECASE cost an order of magnitude more in ``re``.

# --- sign-offs, per language (matched on the whole stripped line) ----------------------------
SIGN_OFFS: tuple[str, ...] = (
    # en
    "thanks",
    "thank you",
    "thanks again",
    "thanks so much",
    "thank you so much",
    "many thanks",
    "thanks a lot",
    "thx",
    "ty",
    "cheers",
    "regards",
    "best regards",
    "kind regards",
    "warm regards",
    "warmest regards",
    "with regards",
    "best wishes",
    "all the best",
    "best",
    "sincerely",
    "yours sincerely",
    "sincerely yours",
    "yours truly",
    "yours faithfully",
    "respectfully",
    "take care",
    "have a nice day",
    "have a great day",
    "have a good day",
    "have a great weekend",
    "talk soon",
    "speak soon",
    "thanks and regards",
    "thanks & regards",
    "many thanks and best regards",
    "best regards and thanks",
    "with thanks",
    "with best regards",
    "kindest regards",
    "br",
    "rgds",
    "tia",
    "thank you and have a nice day",
    # de
    "danke",
    "vielen dank",
    "danke schön",
    "dankeschön",
    "herzlichen dank",
    "besten dank",
    "mit freundlichen grüßen",
    "mit freundlichen grüssen",
    "freundliche grüße",
    "freundliche grüsse",
    "viele grüße",
    "viele grüsse",
    "beste grüße",
    "beste grüsse",
    "liebe grüße",
    "liebe grüsse",
    "herzliche grüße",
    "herzliche grüsse",
    "schöne grüße",
    "schöne grüsse",
    "gruß",
    "gruss",
    "grüße",
    "grüsse",
    "lg",
    "vg",
    "mfg",
    "schönen tag noch",
    "einen schönen tag",
    "mit besten grüßen",
    "mit besten grüssen",
    # fr
    "merci",
    "merci beaucoup",
    "merci encore",
    "cordialement",
    "bien cordialement",
    "très cordialement",
    "bien à vous",
    "bien à toi",
    "salutations",
    "sincères salutations",
    "meilleures salutations",
    "bonne journée",
    "belle journée",
    "excellente journée",
    "bonne soirée",
    "belle soirée",
    "bonne fin de journée",
    "à bientôt",
    "amicalement",
    "bien amicalement",
    "respectueusement",
    # es
    "gracias",
    "muchas gracias",
    "mil gracias",
    "saludos",
    "un saludo",
    "saludos cordiales",
    "un cordial saludo",
    "cordialmente",
    "atentamente",
    "atte",
    "un abrazo",
    "que tengas un buen día",
    "que tenga un buen día",
    "buen día",
    "feliz día",
    # pt
    "obrigado",
    "obrigada",
    "muito obrigado",
    "muito obrigada",
    "atenciosamente",
    "cumprimentos",
    "com os melhores cumprimentos",
    "abraços",
    "abraço",
    "att",
    "grato",
    "grata",
    "tenha um bom dia",
    "bom dia",
    "um abraço",
    # it
    "grazie",
    "grazie mille",
    "grazie ancora",
    "cordiali saluti",
    "distinti saluti",
    "saluti",
    "un saluto",
    "buona giornata",
    "buona serata",
    "a presto",
    "cordialità",
    # nl
    "bedankt",
    "dank je",
    "dank je wel",
    "dank u",
    "dank u wel",
    "hartelijk dank",
    "met vriendelijke groet",
    "met vriendelijke groeten",
    "vriendelijke groet",
    "vriendelijke groeten",
    "groet",
    "groeten",
    "groetjes",
    "hartelijke groet",
    "hartelijke groeten",
    "mvg",
    "fijne dag",
    # sv, no, da
    "tack",
    "tack så mycket",
    "med vänliga hälsningar",
    "vänliga hälsningar",
    "hälsningar",
    "mvh",
    "vh",
    "ha en bra dag",
    "takk",
    "tusen takk",
    "med vennlig hilsen",
    "vennlig hilsen",
    "hilsen",
    "mange takk",
    "tak",
    "mange tak",
    "med venlig hilsen",
    "venlig hilsen",
    "de bedste hilsner",
    "bedste hilsner",
    "god dag",
    # pl, cs
    "dziękuję",
    "dzięki",
    "pozdrawiam",
    "pozdrawiam serdecznie",
    "serdecznie pozdrawiam",
    "z poważaniem",
    "z wyrazami szacunku",
    "miłego dnia",
    "pozdrowienia",
    "děkuji",
    "díky",
    "s pozdravem",
    "s přátelským pozdravem",
    "hezký den",
    "zdraví",
    # ru, uk
    "спасибо",
    "большое спасибо",
    "с уважением",
    "всего доброго",
    "всего хорошего",
    "хорошего дня",
    "с наилучшими пожеланиями",
    "дякую",
    "щиро дякую",
    "з повагою",
    "гарного дня",
    "всього найкращого",
    # tr
    "teşekkürler",
    "teşekkür ederim",
    "saygılarımla",
    "iyi günler",
    "selamlar",
    # vi
    "cảm ơn",
    "cám ơn",
    "xin cảm ơn",
    "cảm ơn bạn",
    "cảm ơn anh chị",
    "trân trọng",
    "thân ái",
    "chúc một ngày tốt lành",
    "chúc bạn một ngày tốt lành",
    # th
    "ขอบคุณ",
    "ขอบคุณครับ",
    "ขอบคุณค่ะ",
    "ขอบคุณมาก",
    "ขอบคุณมากครับ",
    "ขอบคุณมากค่ะ",
    "ด้วยความเคารพ",
    "ขอแสดงความนับถือ",
    # id, ms, fil
    "terima kasih",
    "terima kasih banyak",
    "salam",
    "salam hangat",
    "hormat kami",
    "hormat saya",
    "regards",
    "wassalam",
    "semoga harimu menyenangkan",
    "salam sejahtera",
    "yang benar",
    "salamat",
    "maraming salamat",
    # ja
    "よろしくお願いします",
    "よろしくお願いいたします",
    "よろしくお願い致します",
    "宜しくお願いします",
    "宜しくお願いいたします",
    "ありがとうございます",
    "ありがとうございました",
    "以上、よろしくお願いいたします",
    "敬具",
    # ko
    "감사합니다",
    "고맙습니다",
    "감사드립니다",
    "좋은 하루 되세요",
    "수고하세요",
    # zh
    "谢谢",
    "謝謝",
    "多谢",
    "多謝",
    "此致",
    "此致敬礼",
    "敬礼",
    "祝好",
    "顺祝商祺",
    "順祝商祺",
    "谢谢您",
    "謝謝您",
    "祝您生活愉快",
    "祝您愉快",
    # ar
    "شكرا",
    "شكراً",
    "مع التحية",
    "مع خالص التحية",
    "تحياتي",
)
_PHRASES = "|".join(re.escape(s) for s in sorted(set(SIGN_OFFS), key=len, reverse=True))
# After the phrase: punctuation, an emoji or two, an optional "!" run.
_TAIL = r"[\s,.!;:…~\-–—、，。！]*(?:[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]\s*){0,3}"
SIGN_OFF_RE = re.compile(rf"^\s*(?:{_PHRASES}){_TAIL}$")
# A sign-off with the name on the same line: "Thanks, Jane", "Cheers - Tom", "Saludos, Ana".
SIGN_OFF_WITH_NAME_RE = re.compile(
    rf"^\s*(?:{_PHRASES})\s*[,!.\-–—]\s*(?P<name>[^\W\d_][\w.'’-]*(?:\s+[^\W\d_][\w.'’-]*){{0,2}})"
    r"\s*[.!]?\s*$",
)

# A closing sentence that opens with a sign-off phrase ("Thanks again for your patience!").
CLOSING_RE = re.compile(rf"^(?:{_PHRASES})[\s,]")

# --- name lines ----------------------------------------------------------------------------------
# One to four words of letters (initials, hyphens, apostrophes allowed), or 1-6 CJK/Thai
# characters; optionally a short role in parentheses ("Jane (Best Jackets)").
_WORD = r"[^\W\d_][\w.'’-]*"
NAME_LINE_RE = re.compile(
    rf"^\s*(?:-{{1,2}}\s?)?(?:{_WORD}(?:\s+{_WORD}){{0,3}}|[\u0E00-\u0E7F\u3040-\u30FF"
    rf"\u3400-\u9FFF\uAC00-\uD7AF]{{1,8}}(?:\s+[\u0E00-\u0E7F\u3040-\u30FF\u3400-\u9FFF"
    rf"\uAC00-\uD7AF]{{1,8}})?)(?:\s*\([^()\n]{{1,40}}\))?\s*$"
)

# --- contact evidence ----------------------------------------------------------------------------
PHONE_RE = re.compile(
    r"(?:\+|\b00)\d[\d\s().\-/]{6,}\d|\(?\b0\d{1,4}\)?[\s.\-/]?\d{2,4}[\s.\-/]?\d{2,4}(?:[\s.\-]\d{2,4})?\b"
    r"|\b\d{3}[\s.\-]\d{3}[\s.\-]\d{4}\b"
)
_CONTACT_WORDS = (
    # phone, fax, mobile, mail, web labels
    r"tel|tél|phone|telephone|téléphone|telefon|telefone|teléfono|telefono|telefoon|"
    r"mobile|mobil|mob|móvil|movil|cell|cellulare|celular|handy|gsm|hp|fax|whatsapp|wechat|"
    r"line id|skype|e-?mail|mail|web|website|site|www|điện thoại|sđt|โทร|電話|电话|手机|手機|"
    r"携帯|전화|휴대폰|телефон|тел|моб|"
    # addresses and hours
    r"address|adresse|dirección|direccion|endereço|indirizzo|adres|adresa|địa chỉ|ที่อยู่|"
    r"alamat|住所|地址|주소|адрес|opening hours|business hours|office hours|hours|"
    r"öffnungszeiten|horaires|horario|horário|orari|openingstijden|öppettider|åpningstider|"
    r"åbningstider|godziny otwarcia|otevírací doba|часы работы|giờ làm việc|เวลาทำการ|"
    r"jam operasional|jam kerja|waktu operasi|営業時間|营业时间|營業時間|영업시간|"
    r"mon|monday|mo|lun|lundi|lunes|montag|maandag|"
    # legal and company registration
    r"vat|ust-?id|tva|iva|nip|kvk|btw|siret|siren|rcs|hrb|abn|ein|ico|ičo|dič|cnpj|npwp|"
    r"company no|registered|reg\. no|registration|đt"
)
CONTACT_LABEL_RE = re.compile(rf"^\s*[*_]*(?:{_CONTACT_WORDS})\b\.?\s*[:：.|]")
URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|shop|store|"
    r"co|io|de|fr|es|it|nl|pl|cz|se|no|dk|ru|ua|vn|th|id|my|jp|kr|cn|tw|hk|sg|"
    r"uk|us|eu|com\.\w\w|co\.\w\w)\b(?:/\S*)?"
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
STREET_RE = re.compile(
    r"\b\d{1,5}[a-z]?,?\s+[^\W\d_][\w.'’-]*\s+(?:street|st\.?|avenue|ave\.?|road|rd\.?|"
    r"boulevard|blvd|lane|ln|drive|dr\.?|way|suite|floor)\b|"
    r"\b(?:straße|strasse|str\.|weg|allee|platz|gasse|rue|avenue|boulevard|chemin|calle|avenida|"
    r"rua|via|viale|piazza|corso|straat|laan|plein|gatan|vägen|gate|veien|vej|ulica|ul\.|"
    r"ulice|улица|ул\.|вулиця|вул\.|jalan|jl\.|đường|ถนน|lot|unit|building|tower|"
    r"丁目|番地|号|路|街|道|区|區|市|县|縣|省|동|로|길)(?!\w)|"
    r"\b\d{4,5}\s+[^\W\d_]{3,}|\b[a-z]{1,2}\d[a-z\d]?\s*\d[a-z]{2}\b|"
    r"\b\d{3}-\d{4}\b|〒\s?\d{3}-?\d{4}",
)
HOURS_RE = re.compile(
    r"\b\d{1,2}(?:[:.h]\d{2})?\s*(?:am|pm|h)?\s*[-–—~to]{1,3}\s*\d{1,2}(?:[:.h]\d{2})?\s*"
    r"(?:am|pm|h)?\b"
)
TITLE_RE = re.compile(
    r"\b(?:manager|director|head of|founder|co-?founder|owner|ceo|coo|cto|cfo|president|"
    r"officer|specialist|executive|assistant|coordinator|representative|agent|advisor|"
    r"customer (?:service|support|care|success)|support|team|sales|supervisor|"
    r"geschäftsführer(?:in)?|inhaber(?:in)?|kundenservice|kundendienst|leiter(?:in)?|"
    r"vertrieb|service client|responsable|gérant(?:e)?|directeur|directrice|conseill(?:er|ère)|"
    r"gerente|director(?:a)?|atención al cliente|servicio al cliente|atendimento|diretor(?:a)?|"
    r"responsabile|assistenza clienti|titolare|amministratore|klantenservice|eigenaar|"
    r"kundtjänst|kundeservice|kierownik|właściciel|obsługa klienta|dział|vedoucí|jednatel|"
    r"zákaznick|менеджер|директор|служба поддержки|відділ|керівник|quản lý|giám đốc|"
    r"chăm sóc khách hàng|ผู้จัดการ|ฝ่ายบริการลูกค้า|pemilik|layanan pelanggan|pengurus|"
    r"khidmat pelanggan|担当|代表取締役|店長|カスタマーサポート|经理|經理|客服|总监|總監|"
    r"店主|매니저|대표|고객센터|팀장)",
)
COMPANY_RE = re.compile(
    r"\b(?:ltd|limited|llc|l\.l\.c\.|inc|corp|co\.,? ltd|gmbh|ug|ag|kg|ohg|e\.k\.|sarl|sas|"
    r"s\.a\.s?|s\.l\.|s\.r\.l\.|srl|spa|s\.p\.a\.|b\.v\.|bv|n\.v\.|ab|as|a/s|aps|sp\. z o\.o\.|"
    r"s\.r\.o\.|ооо|тов|pte|sdn\.? bhd|bhd|pt|cv|tbk|jsc|co\.)(?:\W|$)|"
    r"株式会社|有限会社|有限公司|股份有限公司|주식회사|บริษัท|công ty",
)
# A company form closing the line ("Chaquetas del Sur S.L.", "Kurtki Nowak sp. z o.o.").
COMPANY_END_RE = re.compile(
    r"\b(?:ltd|limited|llc|inc|corp|gmbh|ag|sarl|sas|s\.a\.|s\.l\.|s\.r\.l\.|srl|s\.p\.a\.|"
    r"b\.v\.|bv|sp\. z o\.o\.|s\.r\.o\.|pte\.? ltd|sdn\.? bhd|co\., ltd|tbk)\.?\s*$",
)
LEGAL_RE = re.compile(
    r"confidential|intended (?:solely )?for the|intended recipient|privileged|disclaimer|"
    r"vertraulich|empfänger|confidentiel|destinataire|confidencial|destinatario|riservat|"
    r"vertrouwelijk|geadresseerde|konfidentiell|fortrolig|poufn|adresat|důvěrn|конфиденциал|"
    r"адресат|bảo mật|ความลับ|rahasia|sulit|機密|机密|保密|기밀|"
    r"please consider the environment|think before you print|"
    r"registered (?:office|in)|handelsregister|amtsgericht|registergericht|"
    r"registro delle imprese|kamer van koophandel|registro mercantil",
)
SOCIAL_RE = re.compile(
    r"^\s*(?:facebook|instagram|twitter|x|linkedin|tiktok|youtube|pinterest|line|zalo|"
    r"shopee|lazada|tokopedia)(?:\s*[|/•·]\s*\w+)*\s*[:|]?"
)
# A P.S. is written to the reader: a block holding one is never a signature.
POSTSCRIPT_RE = re.compile(r"^\s*(?:p\.?\s?s\.?|n\.?\s?b\.?)\s*[:.\-]", re.I)
# A line that ends a sentence with a question mark is addressed to the reader.
_QUESTION_RE = re.compile(r"[?？]\s*$")
_SENTENCE_END_RE = re.compile(r"[.!?。！？]\s*$")


def is_sign_off(line: str) -> bool:
    """A listed sign-off alone on a short line ("Thanks,", "Mit freundlichen Grüßen")."""
    return len(line) <= MAX_SIGN_OFF_LINE and bool(SIGN_OFF_RE.match(line.lower()))


def is_closing_line(line: str) -> bool:
    """A sign-off, or a short closing sentence that opens with one and ends with "," or "!"
    ("Thanks for your patience!", "Best wishes to you all,"): what comes before a name."""
    if is_sign_off(line):
        return True
    stripped = line.strip()
    return (
        len(stripped) <= MAX_SIGN_OFF_LINE
        and stripped[-1:] in (",", "!", "！")
        and bool(CLOSING_RE.match(stripped.lower()))
        and not contact_evidence(stripped)
    )


def is_sign_off_with_name(line: str) -> bool:
    """A sign-off and a name on one line ("Thanks, Jane", "Saludos, Ana")."""
    return len(line) <= MAX_SIGN_OFF_LINE and bool(SIGN_OFF_WITH_NAME_RE.match(line.lower()))


# Between a name and a role on one line: "Jane Doe, Sales Manager", "Jane | Best Jackets".
_ROLE_SEPARATOR_RE = re.compile(r"\s*[,|–—]\s*|\s+-\s+")
# Lower-case words that belong in names ("Sanne de Vries", "Ahmad bin Ali").
NAME_PARTICLES = frozenset(
    "de da di do dos das del della van von der den ter le la du bin binti al el y e".split()
)


def is_name_line(line: str) -> bool:
    """One to four name-like words (or a short CJK/Thai/Hangul name), nothing else.

    No word starts lower-case (particles aside) and the line does not end like a sentence,
    so "Your order ships Monday." is not a name.
    """
    if len(line) > MAX_NAME_LINE or not NAME_LINE_RE.match(line) or is_sign_off(line):
        return False
    return _name_words(line)


def is_signer_line(line: str) -> bool:
    """The line under a sign-off naming the signer: a name, or a name with a role after a
    comma, bar or dash ("Jane Doe, Sales Manager", "Jane | Best Jackets")."""
    if is_name_line(line):
        return True
    head, sep, tail = _split_role(line)
    return (
        bool(sep)
        and len(tail) <= MAX_NAME_LINE
        and is_name_line(head)
        and not strong_evidence(tail)
    )


def _split_role(line: str) -> tuple[str, str, str]:
    match = _ROLE_SEPARATOR_RE.search(line)
    if match is None:
        return line, "", ""
    return line[: match.start()], match.group(0), line[match.end() :]


def _name_words(line: str) -> bool:
    words = line.strip().lstrip("-").split()
    if any(w[0].islower() and w not in NAME_PARTICLES for w in words):
        return False
    last = words[-1] if words else ""
    return not (last.endswith((".", "!", "?")) and len(last.rstrip(".!?")) > 1)


def contact_evidence(line: str) -> bool:
    """Whether *line* reads as part of a contact block rather than as a message."""
    if len(line) > MAX_CONTACT_LINE:
        return bool(LEGAL_RE.search(line[:2000].lower()))
    low = line.lower()
    if (
        CONTACT_LABEL_RE.match(low)
        or EMAIL_RE.search(low)
        or URL_RE.search(low)
        or PHONE_RE.search(low)
        or LEGAL_RE.search(low)
        or SOCIAL_RE.match(low)
        or COMPANY_END_RE.search(low)
    ):
        return True
    # Weaker evidence (a street word, a title, a company form, hours) counts on a line that
    # is not itself a sentence: "the parcel goes via DHL." is not an address.
    if _SENTENCE_END_RE.search(line) and len(line.split()) >= 4:
        return False
    return bool(
        (STREET_RE.search(low) and any(ch.isdigit() for ch in line))
        or TITLE_RE.search(low)
        or COMPANY_RE.search(low)
        or HOURS_RE.search(low)
    )


def strong_evidence(line: str) -> bool:
    """A phone number, address, URL or e-mail: never part of a name line."""
    low = line.lower()
    return bool(
        EMAIL_RE.search(low) or URL_RE.search(low) or PHONE_RE.search(low) or STREET_RE.search(low)
    )


def _reachable(line: str) -> bool:
    """A phone number, e-mail or URL: a way to reach the signer off the platform."""
    low = line.lower()
    return bool(EMAIL_RE.search(low) or URL_RE.search(low) or PHONE_RE.search(low))


def _is_blank(line: str) -> bool:
    return not line.strip()


# A line without contact evidence that reads as a sentence (five words or more, or ending
# like one) is written for the reader.


def _is_prose(line: str) -> bool:
    words = sum(1 for w in line.split() if any(ch.isalpha() for ch in w))
    return words >= 5 or (words >= 2 and bool(_SENTENCE_END_RE.search(line)))


# After a sign-off and a name, up to this many name-like lines (company, team) are a block
# even without contact evidence: "Thanks,\nJane\nBest Jackets".
MAX_BARE_BLOCK = 3


def _is_block(lines: list[str], min_evidence: int = 1) -> bool:
    """Whether non-empty *lines* form a contact block: evidence, and nothing for the buyer."""
    content = [ln for ln in lines if not _is_blank(ln)]
    if not content or len(content) > SEARCH_WINDOW:
        return False
    if (
        min_evidence <= 1
        and len(content) <= MAX_BARE_BLOCK
        and all(is_name_line(ln) for ln in content)
    ):
        return True
    evidence = 0
    for line in content:
        if POSTSCRIPT_RE.match(line) or (
            len(line) <= MAX_CONTACT_LINE and _QUESTION_RE.search(line)
        ):
            return False
        if contact_evidence(line):
            evidence += 1
        elif _is_prose(line):
            return False  # a sentence without contact evidence: written for the reader
    return evidence >= min_evidence


def _sign_off_cut(lines: list[str], start: int) -> int | None:
    """Where to cut if a sign-off at or after *start* is followed by a contact block."""
    for s in range(len(lines) - 1, start - 1, -1):
        line = lines[s]
        if len(line) > MAX_SIGN_OFF_LINE:
            continue
        with_name = is_sign_off_with_name(line)
        if is_closing_line(line):
            keep = s + 1
            n = s + 1
            while n < len(lines) and _is_blank(lines[n]) and n - s <= 2:
                n += 1
            if n < len(lines) and is_signer_line(lines[n]) and not strong_evidence(lines[n]):
                keep = n + 1
            elif not is_sign_off(line):
                continue  # a closing sentence counts only with the signer's name under it
        elif with_name:
            keep = s + 1
        else:
            continue
        rest = lines[keep:]
        if not any(not _is_blank(ln) for ln in rest):
            return None  # "Thanks,\nJane" and nothing after: nothing to cut
        return keep if _is_block(rest) else None
    return None


def _unsigned_block_cut(lines: list[str]) -> int | None:
    """A last paragraph "Name / title / phone / web" without a sign-off: cut after the name
    when the block has two lines of contact evidence, or a phone number, e-mail or URL (a
    street address alone may be the return address the seller is giving)."""
    end = len(lines)
    while end and _is_blank(lines[end - 1]):
        end -= 1
    # The block may hold blank lines itself; find the first name line after a blank line,
    # above which there is other text, whose following lines are all a contact block.
    for n in range(max(1, end - 12), end - 1):
        if not _is_blank(lines[n - 1]) or not is_name_line(lines[n]) or strong_evidence(lines[n]):
            continue
        if not any(not _is_blank(ln) for ln in lines[:n]):
            return None
        rest = lines[n + 1 : end]
        if _is_block(rest, min_evidence=2) or (
            _is_block(rest) and any(_reachable(ln) for ln in rest)
        ):
            return n + 1
    return None


def strip_signature_block(lines: list[str]) -> list[str]:
    """*lines* without a trailing signature block (sign-off and name kept). Pure."""
    end = len(lines)
    while end and _is_blank(lines[end - 1]):
        end -= 1
    if end < 2:
        return lines
    start = max(0, end - SEARCH_WINDOW)
    cut = _sign_off_cut(lines[:end], start)
    if cut is None:
        cut = _unsigned_block_cut(lines[:end])
    return lines[:cut] if cut is not None else lines


def reduce_marked_signature(before: list[str], signature: list[str]) -> list[str]:
    """The lines of a client-marked signature element the buyer keeps.

    A signature element that begins with a sign-off keeps it and the name after it; one that
    begins with a name keeps the name when the text before it ends with a sign-off ("Thanks,"
    typed above Gmail's signature). Everything else in the element is dropped.
    """
    content = [ln for ln in signature if not _is_blank(ln)]
    if content and SIG_DELIMITER_RE.match(content[0]):
        content = content[1:]  # Thunderbird's element holds the "-- " line itself
    if not content:
        return []
    first = content[0]
    if is_sign_off(first) or is_sign_off_with_name(first):
        kept = [first]
        if (
            is_sign_off(first)
            and len(content) > 1
            and is_signer_line(content[1])
            and not strong_evidence(content[1])
        ):
            kept.append(content[1])
        return kept
    previous = next((ln for ln in reversed(before) if not _is_blank(ln)), "")
    if is_closing_line(previous) and is_signer_line(first) and not strong_evidence(first):
        return [first]
    return []


def keep_from_signature(before: list[str], signature: list[str]) -> list[str]:
    """*before* followed by what the buyer keeps of *signature* (a marked or ``-- `` block).

    A name kept after a sign-off joins it directly ("Thanks,\nJane"), as the seller sees it.
    """
    kept = reduce_marked_signature(before, signature)
    if not kept:
        return before
    out = list(before)
    if not is_sign_off(kept[0]) and not is_sign_off_with_name(kept[0]):
        while out and _is_blank(out[-1]):
            out.pop()
    return out + kept
