"""What mail clients and helpdesks write around a reply: quote headers, separators, signatures.

Pure data plus compiled regexes (and a predicate where a pattern needs the line lower-cased
first), per language and per client. Every pattern here is applied to
ONE line (or a few joined lines) no longer than ``MAX_HEADER_LINE`` characters, and is either
anchored or free of nested quantifiers, so a 10 MB single line never reaches them and none can
backtrack catastrophically.
"""

from __future__ import annotations

import re

# Quote headers, separators and signatures are short; a longer line is seller text.
MAX_HEADER_LINE = 1000
# A quote header wraps over at most this many lines (Gmail wraps long names/addresses).
MAX_HEADER_WRAP = 3

# --- "On <date>, <name> wrote:" ---------------------------------------------------------------
# The verb clients put in the attribution line, per language (Gmail, Apple Mail, Outlook mobile,
# Thunderbird, Yahoo, Android/Samsung mail...).
WROTE_VERBS: tuple[str, ...] = (
    r"wrote",
    r"writes",  # en
    r"escribió",
    r"escribio",  # es
    r"escreveu",  # pt
    r"a écrit",
    r"a ecrit",
    r"écrit",  # fr
    r"schrieb",
    r"geschrieben",  # de
    r"ha scritto",
    r"scrisse",  # it
    r"schreef",
    r"het volgende geschreven",  # nl
    r"napisał\(a\)",
    r"napisała",
    r"napisał",
    r"pisze",  # pl
    r"yazdı",
    r"şunu yazdı",
    r"şunları yazdı",  # tr
    r"menulis",  # id, ms
    r"เขียนว่า",
    r"เขียน",  # th
    r"đã viết",
    r"viết",  # vi
    r"sumulat",
    r"isinulat",  # fil
    r"のメッセージ",
    r"のメール",
    r"は書きました",
    r"書きました",
    r"さんは書きました",  # ja
    r"님이 작성",
    r"작성",  # ko
    r"写道",
    r"寫道",
    r"来信",
    r"來信",  # zh
    r"كتب",
    r"كتبت",  # ar
    r"написал\(а\)",
    r"написала",
    r"написал",
    r"пишет",  # ru (common in real mail)
    r"написав\(ла\)",
    r"написав",
    r"пише",  # uk
    r"skrev",
    r"kirjoitti",
    r"έγραψε",  # sv/da/no, fi, el
    r"napsal\(a\)",
    r"napsala",
    r"napsal",  # cs
)
_LATIN_VERBS = [v for v in WROTE_VERBS if v[0].isascii() or v[0] in "éšż"]
_OTHER_VERBS = [v for v in WROTE_VERBS if v not in _LATIN_VERBS]
# The verb anywhere in the header (German/Dutch/Arabic/Filipino put it before the name).
# Latin-script verbs need word boundaries ("rewrote" is not "wrote"); CJK/Thai have no spaces.
WROTE_VERB_RE = re.compile(
    r"(?<!\w)(?:"
    + "|".join(sorted(_LATIN_VERBS, key=len, reverse=True))
    + r")(?!\w)"
    + "|(?:"
    + "|".join(sorted(_OTHER_VERBS, key=len, reverse=True))
    + ")",
    re.IGNORECASE,
)
# Yahoo and some webmails flatten "On <date>, <name> <address> wrote:" and the quoted text
# onto one line: the verb and its colon, then more text.
INLINE_ATTRIBUTION_RE = re.compile(
    r"(?:" + "|".join(sorted(_LATIN_VERBS, key=len, reverse=True)) + r")\s*[:：]\s+\S",
    re.IGNORECASE,
)
# A header ends with a colon (ASCII or full-width), possibly after the verb or the address.
HEADER_END_RE = re.compile(r"[:：]\s*$")
# Ends with an address then a colon: the Japanese Gmail form "2024年4月3日(水) 16:19 Bob <b@x.jp>:"
ENDS_WITH_ADDRESS_RE = re.compile(r"@[^\s@]{1,255}[>）)\]]?\s*[:：]\s*$")
# An e-mail address in an attribution: "<a@b.example>", "(a@b.example)", "<mailto:a@b.example>".
ADDRESS_RE = re.compile(r"[<(\[]\s*(?:mailto:)?[^\s<>()@]{1,64}@[^\s<>()@]{1,255}\s*[>)\]]")
# Words that open an attribution line in each language (Gmail, Apple Mail, Outlook...).
HEADER_OPENERS_RE = re.compile(
    r"^\s*(?:On|Am|Le|El|Em|Il giorno|Il|Op|W dniu|Dnia|Pada tanggal|Pada|Vào|Noong|"
    r"เมื่อ|ในวันที่|في|Den|Dne|Στις|Le\s+\S+\s+\d|在|於|\d)",
    re.IGNORECASE,
)
# A real attribution carries a time, a year or an address; "as the courier wrote:" has none.
# An abbreviated weekday with its comma ("On Wed, TikTok Shop wrote:") is a client's date too.
HEADER_EVIDENCE_RE = re.compile(
    r"\d{1,2}[:.]\d{2}|\b(?:19|20)\d{2}\b|(?:19|20)\d{2}\s*[年년/.-]|\d{4}年|@[\w.-]+\.\w|"
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),"
)

# --- Separators before forwarded / original messages ----------------------------------------
ORIGINAL_MESSAGE_RE = re.compile(
    r"^\s*[-_=*]{2,}\s*(?:"
    r"original message|original e-?mail|reply message|"
    r"mensaje original|mensagem original|message d'origine|message original|"
    r"ursprüngliche nachricht|ursprungliche nachricht|originalnachricht|"
    r"messaggio originale|oorspronkelijk bericht|origineel bericht|"
    r"wiadomość oryginalna|oryginalna wiadomość|orijinal mesaj|özgün ileti|"
    r"pesan asli|mesej asal|ข้อความต้นฉบับ|thư gốc|tin nhắn gốc|orihinal na mensahe|"
    r"元のメッセージ|元のメール|원본 메시지|原始邮件|原始郵件|原始信息|原始訊息|回复的原邮件|"
    r"الرسالة الأصلية|исходное сообщение|originalmeddelande|alkuperäinen viesti"
    r")\s*[-_=*]{2,}\s*$",
    re.IGNORECASE,
)
FORWARD_MARKER_RE = re.compile(
    r"^\s*(?:[-_=*]{2,}\s*)?(?:"
    r"forwarded message|begin forwarded message|forwarded by|"
    r"mensaje reenviado|mensagem encaminhada|message transféré|message transfere|"
    r"début du message réexpédié|weitergeleitete nachricht|anfang der weitergeleiteten nachricht|"
    r"messaggio inoltrato|inizio messaggio inoltrato|doorgestuurd bericht|"
    r"begin doorgestuurd bericht|wiadomość przekazana dalej|przekazana wiadomość|"
    r"iletilen mesaj|iletilmiş ileti|pesan terusan|pesanan dimajukan|"
    r"ข้อความที่ส่งต่อ|thư được chuyển tiếp|tin nhắn được chuyển tiếp|ipinasang mensahe|"
    r"転送されたメッセージ|転送メッセージ|전달된 메시지|转发的邮件|轉寄的郵件|已转发邮件|"
    r"رسالة معاد توجيهها|пересылаемое сообщение|пересланное сообщение"
    r")\s*:?\s*(?:[-_=*]{2,})?\s*$",
    re.IGNORECASE,
)
# Zoho writes its attribution between dashes and without a colon.
DASHED_ATTRIBUTION_RE = re.compile(r"^\s*-{3,}\s+\S.{10,300}\S\s+-{3,}\s*$")
# Outlook's horizontal rule before the header block, mailing-list footers.
UNDERSCORE_RULE_RE = re.compile(r"^\s*_{20,}\s*$")
# A line that is only a rule (left behind after cutting below it).
RULE_ONLY_RE = re.compile(r"^\s*[-_=*~#]{3,}\s*$")

# --- Outlook-style header blocks (From:/Sent:/To:/Subject:) --------------------------------------
FROM_KEYS = (
    "From",
    "De",
    "Von",
    "Da",
    "Van",
    "Od",
    "Kimden",
    "Gönderen",
    "Dari",
    "Từ",
    "Mula kay",
    "Mula",
    "差出人",
    "送信者",
    "发件人",
    "寄件者",
    "寄件人",
    "보낸 사람",
    "보낸사람",
    "من",
    "От",
    "จาก",
    "Från",
    "Fra",
    "Lähettäjä",
    "Feladó",
    "Από",
    "Daripada",
    "Від",
    "Odesílatel",
)
OTHER_KEYS = (
    "Sent",
    "Date",
    "To",
    "Subject",
    "Cc",
    "Bcc",
    "Reply-To",
    "Enviado",
    "Enviada",
    "Enviado el",
    "Fecha",
    "Para",
    "Asunto",
    "CC",
    "Assunto",
    "Data",
    "Envoyé",
    "Date",
    "À",
    "A",
    "Objet",
    "Cc",
    "Gesendet",
    "Datum",
    "An",
    "Betreff",
    "Inviato",
    "Oggetto",
    "Verzonden",
    "Aan",
    "Onderwerp",
    "Verstuurd",
    "Wysłano",
    "Wysłane",
    "Do",
    "Temat",
    "DW",
    "Gönderildi",
    "Tarih",
    "Kime",
    "Konu",
    "Bilgi",
    "Dikirim",
    "Terkirim",
    "Tanggal",
    "Kepada",
    "Subjek",
    "Perihal",
    "Dihantar",
    "Tarikh",
    "Đã gửi",
    "Ngày",
    "Tới",
    "Đến",
    "Chủ đề",
    "Ipinadala",
    "Petsa",
    "Para kay",
    "Paksa",
    "送信日時",
    "送信日",
    "宛先",
    "件名",
    "日付",
    "发送时间",
    "發送時間",
    "日期",
    "时间",
    "收件人",
    "收件者",
    "主题",
    "主旨",
    "抄送",
    "副本",
    "보낸 날짜",
    "날짜",
    "받는 사람",
    "제목",
    "참조",
    "تاريخ",
    "التاريخ",
    "تم الإرسال",
    "إلى",
    "الموضوع",
    "Отправлено",
    "Дата",
    "Кому",
    "Тема",
    "ส่ง",
    "วันที่",
    "ถึง",
    "เรื่อง",
    "Skickat",
    "Till",
    "Ämne",
    "Sendt",
    "Til",
    "Emne",
    "Lähetetty",
    "Vastaanottaja",
    "Aihe",
    "Kopia",
    "Kopie",
    "Kopi",
    "Dato",
    "Odesláno",
    "Komu",
    "Předmět",
    "Надіслано",
    "Відправлено",
    "Копія",
    "Копия",
    "寄件日期",
    "傳送時間",
    "傳送日期",
    "Ngày gửi",
    "สำเนา",
    "Tembusan",
    "Salinan",
    "Sent at",
    "Date sent",
)


def _key_alt(keys: tuple[str, ...]) -> str:
    return "|".join(re.escape(k) for k in sorted(set(keys), key=len, reverse=True))


# "From: x", "*From:* x", "**De :** x" (French puts a space before the colon).
FROM_LINE_RE = re.compile(rf"^\s*[*>]*\s*\**(?:{_key_alt(FROM_KEYS)})\s?\**\s?[:：]\**\s*\S")
HEADER_KEY_LINE_RE = re.compile(
    rf"^\s*[*>]*\s*\**(?:{_key_alt(OTHER_KEYS + FROM_KEYS)})\s?\**\s?[:：]\**(?:\s|$)"
)
SUBJECT_LINE_RE = re.compile(
    r"^\s*\**(?:Subject|Asunto|Assunto|Objet|Betreff|Oggetto|Onderwerp|Temat|Konu|Subjek|Perihal|"
    r"Chủ đề|Paksa|件名|主题|主旨|제목|الموضوع|Тема|เรื่อง|Ämne|Emne|Aihe|Předmět)"
    r"\s?\**\s?[:：]\**\s*(?P<value>.*)$",
    re.IGNORECASE,
)
# Subject prefixes that mean "this is a forward" (so the forwarded content is what was sent).
FORWARD_SUBJECT_RE = re.compile(
    r"^\s*(?:fwd?|fw|wg|tr|rv|enc|i|doorst|pd|ilt|İLT|fwd|转发|轉寄|전달|trs|vs|vb)\s*[:：]",
    re.IGNORECASE,
)
# How many lines after "From:" the rest of the block may sit (wrapped To:/Cc: lists).
HEADER_BLOCK_WINDOW = 8

# --- Signatures ----------------------------------------------------------------------------------
SIG_DELIMITER_RE = re.compile(r"^--\s*$")
# Mobile / app signatures, full-line, with an optional trailing link Outlook adds.
_LINK_TAIL = r"(?:\s*[<(\[]\s*https?://[^\s>)\]]{1,300}\s*[>)\]])?"
MOBILE_SIGNATURE_RE = re.compile(
    r"^\s*(?:"
    r"sent from my(?:\s+[\w'’.-]+){1,4}|"
    r"sent from (?:mail|outlook|yahoo mail|aol|my mobile)(?:\s+[\w'’.-]+){0,5}|"
    r"sent from (?:proton ?mail|gmail|zoho mail|icloud|spark|blue ?mail|samsung (?:email|mail)|"
    r"edison mail|airmail|aqua ?mail|fairemail|k-9 mail)(?:\s+[\w'’.-]+){0,4}|"
    r"sent (?:via|with|using)(?:\s+[\w'’.-]+){1,5}|sent on the go|"
    r"get outlook for (?:ios|android|mac|windows)|"
    r"enviado desde mi(?:\s+[\w'’.-]+){1,4}|enviado desde(?:\s+[\w'’.-]+){1,4}|"
    r"enviado do meu(?:\s+[\w'’.-]+){1,4}|enviado de meu(?:\s+[\w'’.-]+){1,4}|"
    r"enviado do(?:\s+[\w'’.-]+){1,4}|"
    r"envoyé de mon(?:\s+[\w'’.-]+){1,4}|envoyé depuis(?:\s+[\w'’.-]+){1,5}|"
    r"von meinem(?:\s+[\w'’.-]+){1,4}\s+gesendet|gesendet von(?:\s+[\w'’.-]+){1,4}|"
    r"inviato da(?:\s+[\w'’.-]+){1,4}|inviato dal mio(?:\s+[\w'’.-]+){1,4}|"
    r"verzonden (?:vanaf|met) (?:mijn )?(?:[\w'’.-]+\s?){1,4}|"
    r"verstuurd vanaf (?:mijn )?(?:[\w'’.-]+\s?){1,4}|"
    r"wysłane z(?:\s+[\w'’.-]+){1,4}|wysłano z(?:\s+[\w'’.-]+){1,4}|"
    r"[\w'’. -]{1,40}(?:dan|den) gönderildi|"
    r"dikirim dari(?:\s+[\w'’.-]+){1,4}|dihantar dari(?:\s+[\w'’.-]+){1,4}|"
    r"ส่งจาก.{1,40}|được gửi từ.{1,40}|gửi từ.{1,40}của tôi|"
    r"ipinadala mula sa.{1,40}|"
    r".{1,20}から送信|"
    r"내\s?.{1,20}에서 보냄|.{1,20}에서 보냄|"
    r"发自我的.{1,20}|从我的.{1,20}发送|從我的.{1,20}傳送|寄自我的.{1,20}|"
    r"أرسلت من.{1,30}|أُرسلت من.{1,30}|تم الإرسال من.{1,30}|"
    r"отправлено с.{1,30}"
    r")" + _LINK_TAIL + r"\s*[.!]?\s*$",
    re.IGNORECASE,
)
# "-Abhishek Kona", "- Jane": a dash-name sign-off alone on the last paragraph.
DASH_NAME_SIGNATURE_RE = re.compile(
    r"^\s*-{1,2}\s?[^\W\d_][\w.'’-]*(?:\s+[^\W\d_][\w.'’-]*){0,3}\s*$"
)

# --- Helpdesks -----------------------------------------------------------------------------------
# Zendesk: "##- Please type your reply above this line -##" (localized text between the marks).
ZENDESK_MARKER_RE = re.compile(r"^\s*##-.{0,200}-##\s*$")
ZENDESK_UPDATE_RE = re.compile(
    r"^\s*(?:your request \(#?\d+\) has been (?:updated|received)|"
    r"this email is a service from|delivered by zendesk|"
    r"to add additional comments, reply to this email)",
    re.IGNORECASE,
)
ZENDESK_FOOTER_RE = re.compile(
    r"^\s*(?:this (?:e-?mail|message) is a service from|delivered by zendesk|"
    r"\[[A-Z0-9]{4,8}-[A-Z0-9]{4,8}\]\s*$)",
    re.IGNORECASE,
)
ZENDESK_SEPARATOR_RE = re.compile(r"^\s*-{10,}\s*$")
# The attachment list a helpdesk puts under a comment ("Attachment(s)", localized).
HELPDESK_ATTACHMENTS_RE = re.compile(
    r"^\s*(?:attachment\(s\)|attachments?|anhänge?|anhang|pièces? jointes?|pièce\(s\) jointe\(s\)|"
    r"archivos? adjuntos?|archivo\(s\) adjunto\(s\)|anexos?|anexo\(s\)|allegat[oi]|"
    r"bijlage(?:\(n\)|n)?|bilagor|vedlegg|vedhæftede filer|załącznik(?:i|\(i\))?|přílohy?|"
    r"вложени[яе]|вкладення|tệp đính kèm|ไฟล์แนบ|lampiran|添付ファイル|附件|첨부 ?파일)\s*:?\s*$",
    re.IGNORECASE,
)
# Helpdesk "reply above this line" markers (Zendesk, Freshdesk, Help Scout, Gorgias, Front...),
# in the languages they ship: the phrase "above this line" is what every variant shares.
ABOVE_THIS_LINE: tuple[str, ...] = (
    "above this line",
    "oberhalb dieser zeile",
    "über dieser zeile",
    "über dieser linie",
    "au-dessus de cette ligne",
    "au dessus de cette ligne",
    "por encima de esta línea",
    "encima de esta línea",
    "arriba de esta línea",
    "acima desta linha",
    "acima dessa linha",
    "sopra questa riga",
    "sopra questa linea",
    "sopra a questa riga",
    "boven deze regel",
    "boven deze lijn",
    "ovanför denna rad",
    "ovanför den här raden",
    "over denne linje",
    "over denne linjen",
    "ovenfor denne linje",
    "powyżej tej linii",
    "nad tą linią",
    "nad tímto řádkem",
    "nad touto čarou",
    "над этой строкой",
    "выше этой строки",
    "над цим рядком",
    "вище цього рядка",
    "phía trên dòng này",
    "trên dòng này",
    "เหนือบรรทัดนี้",
    "ด้านบนบรรทัดนี้",
    "di atas baris ini",
    "di atas garis ini",
    "この行より上",
    "この行の上",
    "이 줄 위에",
    "이 선 위에",
    "在此行上方",
    "在這行上方",
    "在此行以上",
    "在此線上方",
    "此行上方",
    "此行以上",
    "請在此行上方",
    "请在此行上方",
)
# Searched in the lower-cased line (no IGNORECASE: ten times cheaper in ``re``).
_ABOVE_THIS_LINE_RE = re.compile(
    "|".join(re.escape(p) for p in sorted(ABOVE_THIS_LINE, key=len, reverse=True))
)
# A marker line is short: the phrase, a few words around it, decoration.
MAX_MARKER_LINE = 160
_MARKER_DECORATION = frozenset("-#=*>[(<_~")


# Undecorated English markers, anchored (cheap on every line of a body).
_REPLY_ABOVE_EN_RE = re.compile(
    r"^\s*(?:please\s+)?(?:type|write|reply|respond|enter)\b.{0,40}\babove this line\b", re.I
)


def is_reply_above_marker(line: str, anywhere: bool = False) -> bool:
    """A helpdesk's "please type your reply above this line" line, in any listed language:
    the phrase ends the line but for decoration and a few characters ("… -##", "… ein. -##").

    Inside a body only decorated lines ("##- … -##", "-- … --") or the English wording are
    looked at, which keeps the check cheap on every line; *anywhere* (the first line of a
    helpdesk notification) takes the bare localized wording too.
    """
    if len(line) > MAX_MARKER_LINE:
        return False
    if not anywhere and line.lstrip()[:1] not in _MARKER_DECORATION:
        return bool(_REPLY_ABOVE_EN_RE.match(line))
    match = _ABOVE_THIS_LINE_RE.search(line.lower())
    return match is not None and len(line[match.end() :].strip(" \t.。!-#=*>])）:")) <= 20


# The helpdesk's line under its marker: "Your request (1234) has been updated…", "Ihre
# Anfrage (1234) wurde aktualisiert…", "Ticket #1234 …": a ticket number in any language.
TICKET_NUMBER_RE = re.compile(r"\(#?\d{1,12}\)|#\d{1,12}\b|\[#\d{1,12}\]|№\s?\d{1,12}")
# The most a helpdesk's boilerplate paragraph under its marker runs to.
HELPDESK_BOILERPLATE_MAX = 400
# A clock time: the "Name, 3 Apr 2024 16:45" line that opens a comment in a thread layout.
THREAD_TIME_RE = re.compile(r"\b\d{1,2}[:.]\d{2}\b")

# --- Invisible leftovers ----------------------------------------------------------------------
# Zero-width characters mail extensions and trackers append; NBSP as a plain space. The
# zero-width joiner stays: it holds emoji sequences (👩‍👩‍👧) together.
INVISIBLE_CHARS = str.maketrans(
    {
        "\u200b": None,
        "\u2060": None,
        "\ufeff": None,
        "\u180e": None,
        "\u00a0": " ",
        "\u2007": " ",
        "\u202f": " ",
    }
)
INVISIBLE_CHARS_RE = re.compile("[\u200b\u2060\ufeff\u180e\u00a0\u2007\u202f]")
# A line holding only tracker glyphs (Streak/Mixmax's "ᐧ"), zero-width marks or spaces.
TRACKER_LINE_RE = re.compile(
    r"^[\s\u200c-\u200f\u2062\u2063\u034f]*[\u1427\u200c-\u200f\u2062\u2063\u034f]"
    r"[\s\u1427\u200c-\u200f\u2062\u2063\u034f]*$"
)
# Image placeholders a text alternative carries for inline pictures:
# Gmail "[image: label.png]", "[image]", Outlook "[cid:image001.png@01DA…]", localized forms.
TEXT_IMAGE_PLACEHOLDER_RE = re.compile(
    r"[ \t]?\[(?:cid:[^\]\s]{1,300}|(?:image|imagen|imagem|immagine|image jointe|bild|afbeelding|"
    r"obraz|obrázek|bilde|billede|изображение|зображення|hình ảnh|รูปภาพ|gambar|画像|图片|"
    r"圖片|이미지|inline image \d*)(?:\s*[:：][^\]\n]{0,300})?)\]",
    re.IGNORECASE,
)
# Salesforce Email-to-Case thread ids: classic "ref:_00D…._500…:ref", the newer
# "ref:!00D….!500…:ref", Lightning "thread::…::".
SALESFORCE_REF_RE = re.compile(
    r"\[?\s*ref:[_!]?[0-9A-Za-z]{5,40}\.?[_!]?[0-9A-Za-z]{0,40}:ref\s*\]?"
)
# A thread id alone on its line: Salesforce writes it below the agent's text, above history.
SALESFORCE_REF_LINE_RE = re.compile(
    r"^\s*\[?\s*ref:[_!]?[0-9A-Za-z]{5,40}\.?[_!]?[0-9A-Za-z]{0,40}:ref\s*\]?\s*$"
)
SALESFORCE_THREAD_RE = re.compile(r"\[?\s*thread::[0-9A-Za-z_\-]{5,80}::\s*\]?")
