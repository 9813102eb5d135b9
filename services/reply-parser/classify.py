"""Classify an inbound mail before extraction: a seller's reply, or automated mail to drop.

Automated mail is the main source of harm in email gateways (design.md): out-of-office answers
and helpdesk auto-replies posted into a conversation, and loops between auto-responders. The
checks below are header-first (RFC 3834 and the de-facto headers), then the sender, then a
localized subject. ``X-Auto-Response-Suppress`` on an inbound mail is a request *to us* not to
auto-answer; it does not make the mail itself automated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from shared.events import ReplyClass


@dataclass(frozen=True)
class Classification:
    """The class of an inbound mail and a short reason a human can act on."""

    cls: ReplyClass
    reason: str
    # Held back on wording alone (subject or body), not on headers or the sender: a guess,
    # so the shop is told (see content_policy.held_as_automated_notice).
    by_content: bool = False


# Our own outbound mail carries this header; seeing it inbound means a loop.
OWN_LOOP_HEADER = "X-Loop"
_BOUNCE_SENDERS = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon)@", re.I)
_NO_REPLY_SENDERS = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply-[\w.-]+|bounces?|"
    r"no[-_.]?respon[ds]e?|mailer|daemon|"
    r"auto[-_.]?(?:reply|responder|confirm)|autoresponder)(?:[+-][^@]*)?@",
    re.I,
)
_AUTO_SUBJECT = re.compile(
    r"^\s*(?:"
    r"auto(?:matic)?[ -]?(?:reply|response|answer|antwort)|autoreply|autoresponse|auto:|"
    r"out of (?:the )?office|ooo\b|away from (?:the )?office|"
    r"on (?:vacation|holiday|leave)|vacation reply|holiday (?:notice|reply)|"
    r"i am (?:currently )?out of|"
    r"respuesta automática|respuesta automatica|fuera de la oficina|ausente|"
    r"resposta automática|resposta automatica|fora do escritório|ausência|ausente|"
    r"réponse automatique|reponse automatique|absence du bureau|absent du bureau|hors du bureau|"
    r"automatische antwort|abwesenheitsnotiz|abwesend|abwesenheit|nicht im büro|"
    r"risposta automatica|fuori ufficio|fuori sede|"
    r"automatisch antwoord|afwezig|niet op kantoor|afwezigheidsmelding|"
    r"automatyczna odpowiedź|automatyczna odpowiedz|odpowiedź automatyczna|poza biurem|nieobecność|"
    r"otomatik yanıt|otomatik cevap|otomatik yanit|ofis dışında|ofis disinda|"
    r"balasan otomatis|tidak di kantor|di luar kantor|"
    r"balasan automatik|jawapan automatik|di luar pejabat|"
    r"ตอบกลับอัตโนมัติ|การตอบกลับอัตโนมัติ|ไม่อยู่ที่สำนักงาน|"
    r"trả lời tự động|thư trả lời tự động|vắng mặt|"
    r"awtomatikong tugon|awtomatikong sagot|wala sa opisina|"
    r"自動応答|自動返信|不在|"
    r"자동 회신|자동 응답|자동회신|자동응답|부재중|부재 중|"
    r"自动回复|自動回覆|自動回復|自动答复|自動答覆|不在办公室|休假|"
    r"رد تلقائي|الرد التلقائي|رد آلي|خارج المكتب|"
    r"автоматический ответ|автоответ|нет на месте"
    r")",
    re.I,
)
# Unambiguous phrases that mark automation anywhere in a subject (lower-case, searched in the
# lower-cased subject) (helpdesks prefix or suffix
# them around the original subject: "[Request received] Re: …", "Re: … - Ticket Received").
_AUTO_SUBJECT_ANYWHERE = re.compile(
    r"(?:automatic reply|auto-?reply|autoreply|out of (?:the )?office|"
    r"\[?request received\]?|ticket (?:received|created|opened)|"
    r"(?:case|ticket|request)\s*(?:#|no\.?|number)?\s*[\w-]{1,20}\s*(?:has been|was) "
    r"(?:created|received|opened|logged)|"
    r"we(?:'ve| have)? received your (?:request|message|email|e-mail|inquiry|enquiry)|"
    r"thank(?:s| you) for (?:contacting|reaching out|"
    r"your (?:email|e-mail|message|request|inquiry|enquiry))|"
    r"auto(?:matic)?[- ]?acknowledge?ment|"
    r"respuesta automática|resposta automática|réponse automatique|automatische antwort|"
    r"risposta automatica|automatisch antwoord|automatyczna odpowiedź|otomatik yanıt|"
    r"balasan otomatis|balasan automatik|ตอบกลับอัตโนมัติ|trả lời tự động|awtomatikong tugon|"
    r"自動応答|自動返信|자동 회신|자동 응답|自动回复|自動回覆|رد تلقائي|"
    # Zendesk's "[Request received]" as its locales write it
    r"\[(?:anfrage|demande|solicitud|solicitação|richiesta|verzoek|aanvraag|zgłoszenie|"
    r"förfrågan|forespørsel|henvendelse|požadavek|запрос|запит|yêu cầu|permintaan|permohonan)"
    r"\s+(?:erhalten|eingegangen|reçue|recibida|recebida|ricevuta|ontvangen|otrzymane|mottagen|"
    r"mottatt|modtaget|přijat|получен|отримано|đã được nhận|đã nhận|diterima)\]|"
    r"【?(?:受付完了|お問い合わせを受け付けました)】?|\[(?:已收到请求|已收到請求|요청 접수됨)\])",
)
# Helpdesk acknowledgements and autoresponder bodies: phrases a person writing to a buyer
# does not open with. Checked on the extracted text's opening only (see classify_body).
_AUTO_BODY = re.compile(
    r"(?:this is an? (?:automated|automatic|auto-generated|automatically generated) "
    r"(?:response|reply|message|e-?mail|notification|acknowledge?ment)|"
    r"(?:your|a) (?:support )?(?:case|ticket|request)"
    r"\s*(?:#|no\.?|number|id)?\s*:?\s*\(?#?[\w-]{1,20}\)?\s*"
    r"(?:has been|was|is) (?:created|received|opened|logged)|"
    # "We've received your message and will get back to you within 24 hours": an
    # acknowledgement says it received something AND promises a later answer.
    r"received your (?:request|message|e-?mail|inquiry|enquiry|ticket)\b[^\n]{0,80}?"
    r"(?:will (?:get back|respond|reply|be in touch|contact you|answer)|"
    r"within \d+ (?:business |working )?(?:hours?|days?))|"
    r"(?:please )?do not reply (?:directly )?to this (?:e-?mail|message)|"
    r"i (?:am|'m) (?:currently )?(?:out of (?:the )?office|away|on (?:vacation|holiday|leave))|"
    r"estoy fuera de la oficina|je suis absent|ich bin (?:bis|derzeit|zurzeit|vom)[^.\n]{0,40}"
    r"(?:abwesend|nicht im büro|im urlaub)|sono fuori ufficio|estou fora do escritório)",
    re.I,
)
# Out-of-office and self-declared automatic messages in the marketplace languages: one is
# enough.
_AUTO_BODY_LOCALIZED = (
    # en
    r"(?:this|it) is an? (?:automated|automatic|auto-generated) (?:message|reply|response|e-?mail)",
    r"i(?: am|'m) (?:currently )?(?:out of (?:the )?office|on (?:annual |parental )?leave)",
    # de
    r"dies ist eine automatische? (?:nachricht|antwort|e-?mail|benachrichtigung)",
    r"(?:diese|das ist eine) (?:e-?mail|nachricht) wurde automatisch "
    r"(?:erstellt|versendet|generiert)",
    r"ich bin (?:bis|vom|derzeit|zurzeit|momentan)[^.\n]{0,40}(?:abwesend|nicht im büro|im urlaub|"
    r"außer haus)",
    # fr
    r"ceci est (?:un message|une réponse|un e-?mail|un courriel) automatique",
    r"je suis (?:actuellement )?absente? (?:du bureau )?(?:jusqu|du|à partir)",
    # es
    r"(?:este|esto) es un (?:mensaje|correo|e-?mail) automático|esta es una respuesta automática",
    r"estoy fuera de la oficina|estaré fuera de la oficina",
    # pt
    r"esta é uma (?:mensagem|resposta) automática|este é um (?:e-?mail|email) automático",
    r"estou fora do escritório|estarei fora do escritório|estou de férias até",
    # it
    r"questo è un messaggio (?:generato )?automatico|questa è una risposta automatica",
    r"sono fuori ufficio|sarò fuori ufficio|sono in ferie fino",
    # nl
    r"dit is een automatisch (?:gegenereerd )?(?:bericht|antwoord)",
    r"ik ben (?:afwezig|niet op kantoor|met vakantie) (?:tot|van)",
    # sv, no, da
    r"detta är ett automatiskt (?:meddelande|svar)|jag är (?:inte på kontoret|ledig|på semester)"
    r" (?:till|från|t\.?o\.?m)",
    r"dette er en automatisk (?:melding|besked|e-?mail|svar)",
    # pl, cs
    r"(?:to jest|ta wiadomość jest) automatyczn[ai] (?:wiadomość|odpowiedź|wygenerowana)",
    r"jestem poza biurem|przebywam na urlopie",
    r"toto je automatick[áý] (?:zpráva|odpověď|e-?mail)|jsem mimo kancelář",
    # ru, uk
    r"это (?:автоматическое|автоматически сгенерированное) (?:сообщение|письмо)|"
    r"я нахожусь в отпуске|меня нет в офисе",
    r"це автоматичне (?:повідомлення|листування|лист)|я перебуваю у відпустці",
    # vi, th, id, ms
    r"đây là (?:email|thư|tin nhắn) (?:trả lời )?tự động|tôi đang (?:vắng mặt|nghỉ phép)",
    r"(?:อีเมล|ข้อความ)นี้(?:เป็น|คือ)(?:การตอบกลับ|ข้อความ)?อัตโนมัติ|ไม่อยู่ที่สำนักงาน",
    r"ini (?:adalah )?(?:pesan|email|e-mel|mesej|balasan) (?:otomatis|automatik)",
    r"saya (?:sedang )?(?:cuti|tidak berada di kantor|berada di luar pejabat|di luar kantor)",
    # ja, ko, zh
    r"(?:この|本)メールは(?:システムより)?自動(?:送信|返信|配信)",
    r"不在にしております|休暇を取って(?:おります|います)",
    r"(?:이 메일은|본 메일은) (?:자동으로 )?(?:발송|발신)|"
    r"자동 (?:발송|회신|응답) (?:메일|메시지)입니다|"
    r"부재중입니다",
    r"(?:此|本)(?:邮件|郵件|信件)(?:为|為|是)系统自动(?:发送|發送|回复|回覆|生成)|"
    r"(?:这|這)是一封自动(?:回复|回覆)|我(?:目前)?(?:不在办公室|不在辦公室|正在休假)",
)


@dataclass(frozen=True)
class _Signal:
    """A lower-case pattern and its gate: words one of which every match contains."""

    gate: tuple[str, ...]
    pattern: re.Pattern[str]

    def search(self, lowered: str) -> re.Match[str] | None:
        """Search *lowered* (the text, lower-cased: the patterns are written lower-case)."""
        if not any(map(lowered.__contains__, self.gate)):
            return None
        return self.pattern.search(lowered)


_SELF_DECLARED = _Signal(
    (
        "auto",
        "автомат",
        "otomatis",
        "tự động",
        "อัตโนมัติ",
        "自動",
        "自动",
        "자동",
        "부재",
        "case",
        "ticket",
        "request",
        "received your",
        "do not reply",
        "i am",
        "i'm",
        "oficina",
        "absent",
        "ich bin",
        "ufficio",
        "escritório",
        "férias",
        "ferie",
        "afwezig",
        "kantoor",
        "vakantie",
        "kontoret",
        "ledig",
        "semester",
        "biurem",
        "urlopie",
        "kancelář",
        "отпуск",
        "офис",
        "відпуст",
        "vắng",
        "nghỉ phép",
        "สำนักงาน",
        "cuti",
        "kantor",
        "pejabat",
        "不在",
        "休暇",
        "办公室",
        "辦公室",
        "休假",
    ),
    re.compile(_AUTO_BODY.pattern + "|" + "|".join(_AUTO_BODY_LOCALIZED)),
)
# Acknowledgement signals: any TWO of these mark a helpdesk auto-response. Each comes with
# its gate: words one of which every alternative of the pattern contains, checked as plain
# substrings of the lower-cased text first (a pattern of a hundred alternatives is slow to
# search; most replies pass no gate). tests/unit/test_classify.py checks
# that known acknowledgement phrases still pass their gates.
# Thanks for contacting.
_THANKS_FOR_CONTACTING = _Signal(
    (
        "thanks for",
        "thank you for",
        "vielen dank für",
        "merci de nous",
        "merci pour",
        "gracias por",
        "obrigad",
        "grazie per",
        "bedankt voor",
        "dziękujemy za",
        "tack för",
        "takk for",
        "спасибо за",
        "дякуємо за",
        "đã liên hệ",
        "ขอบคุณที่ติดต่อ",
        "menghubungi",
        "お問い合わせ",
        "문의",
        "感谢您的",
        "感謝您的",
    ),
    re.compile(
        r"thank(?:s| you) for (?:contacting|reaching out|getting in touch|your (?:e-?mail|message|"
        r"request|inquiry|enquiry))|vielen dank für ihre (?:nachricht|anfrage|e-?mail)|"
        r"merci de nous avoir contactés?|merci pour votre (?:message|demande|e-?mail)|"
        r"gracias por (?:contactarnos|contactar con|ponerte en contacto|ponerse en contacto|"
        r"su mensaje|tu mensaje)|"
        r"obrigad[oa] por (?:entrar em contato|nos contatar|sua mensagem|contactar)|"
        r"grazie per (?:averci contattat[oi]|la tua richiesta|il tuo messaggio|la sua richiesta)|"
        r"bedankt voor (?:uw|je) (?:bericht|e-?mail|aanvraag)|dziękujemy za (?:kontakt|wiadomość)|"
        r"tack för (?:ditt|ert) (?:meddelande|mejl)|takk for (?:din|henvendelsen)|"
        r"спасибо за (?:обращение|ваше письмо)|дякуємо за (?:звернення|ваш лист)|"
        r"cảm ơn (?:bạn|quý khách) đã liên hệ|ขอบคุณที่ติดต่อ|terima kasih (?:telah|sudah|kerana) "
        r"menghubungi|お問い合わせ(?:いただき)?(?:、)?(?:誠に)?ありがとうございます|"
        r"문의(?:해)? 주셔서 감사합니다|"
        r"感谢您的(?:来信|联系|咨询|邮件)|感謝您的(?:來信|聯繫|聯絡|詢問)"
    ),
)
# A case or ticket number stated.
_TICKET_NUMBER = _Signal(
    (
        "case",
        "ticket",
        "request",
        "reference",
        "support",
        "nummer",
        "numéro",
        "número",
        "numero",
        "numer",
        "номер",
        "mã ",
        "หมายเลข",
        "nomor",
        "nombor",
        "番号",
        "번호",
        "工单",
        "工單",
        "案件",
    ),
    re.compile(
        r"(?:your|the) (?:case|ticket|request|reference|support) (?:number|no\.?|id|#)\s*(?:is|:)|"
        r"ihre (?:ticket|fall|vorgangs|anfrage)nummer|votre numéro de (?:ticket|dossier|demande)|"
        r"(?:su|tu) número de (?:caso|ticket|solicitud)|(?:o )?número do (?:seu )?(?:caso|ticket|"
        r"chamado|protocolo)|il (?:tuo|suo) numero di (?:ticket|richiesta)|numero (?:del )?ticket|"
        r"uw ticketnummer|numer (?:zgłoszenia|sprawy)|номер (?:обращения|заявки)|"
        r"mã (?:yêu cầu|phiếu hỗ trợ|ticket)|หมายเลข(?:เคส|คำขอ|ตั๋ว)|nomor (?:tiket|kasus)|"
        r"nombor tiket|受付番号|お問い合わせ番号|접수 ?번호|工单号|工單號|案件編號|"
        r"(?:case|ticket) #?\d{4,}"
    ),
)
# A promise of a later answer within a time (a reply verb near the delay: "ships within
# 3 days" is a seller's answer, "will respond within 24 hours" an acknowledgement).
_ANSWER_WITHIN = _Signal(
    (
        "respond",
        "reply",
        "get back",
        "be in touch",
        "contact",
        "answer",
        "melden",
        "antwort",
        "beantwort",
        "kontaktier",
        "répond",
        "recontact",
        "reviendr",
        "responder",
        "contestar",
        "pondremos",
        "retornar",
        "entraremos",
        "rispond",
        "ricontatt",
        "reageren",
        "antwoord",
        "odpowiemy",
        "skontaktujemy",
        "ответим",
        "свяжемся",
        "відповімо",
        "зв",
        "phản hồi",
        "liên hệ",
        "trả lời",
        "ติดต่อกลับ",
        "ตอบกลับ",
        "membalas",
        "menghubungi",
        "merespons",
        "balas",
        "連絡",
        "返信",
        "回答",
        "답변",
        "회신",
        "연락",
        "回复",
        "回覆",
        "答复",
        "答覆",
        "联系",
        "聯繫",
        "聯絡",
    ),
    re.compile(
        r"(?:respond|reply|get back to you|be in touch|contact you|answer)[^.\n]{0,40}"
        r"(?:within|in) (?:the next )?\d+|"
        r"(?:melden|antworten|beantworten|kontaktieren)[^.\n]{0,40}innerhalb von \d+|"
        r"innerhalb von \d+ (?:stunden|werktagen)[^.\n]{0,40}(?:melden|antworten|beantworten)|"
        r"(?:répondrons|répondre|recontacterons|reviendrons)[^.\n]{0,40}(?:dans les|sous) \d+|"
        r"(?:responderemos|contestaremos|pondremos en contacto|responderá)[^.\n]{0,40}\d+ "
        r"(?:horas|días)|(?:responderemos|retornaremos|entraremos em contato)[^.\n]{0,40}\d+ "
        r"(?:horas|dias)|(?:risponderemo|ricontatteremo|risponderà)[^.\n]{0,40}\d+ ore|"
        r"(?:reageren|antwoorden|contact opnemen)[^.\n]{0,40}\d+ (?:uur|werkdagen)|"
        r"binnen \d+ (?:uur|werkdagen)[^.\n]{0,40}(?:reageren|antwoord|contact)|"
        r"(?:odpowiemy|skontaktujemy)[^.\n]{0,40}\d+ (?:godzin|dni)|"
        r"(?:ответим|свяжемся)[^.\n]{0,40}\d+ (?:час|рабоч)|"
        r"(?:відповімо|зв'яжемося|зв’яжемося)[^.\n]{0,40}\d+ (?:годин|днів)|"
        r"(?:phản hồi|liên hệ|trả lời)[^.\n]{0,40}trong vòng \d+|"
        r"trong vòng \d+ (?:giờ|ngày)[^.\n]{0,30}(?:phản hồi|liên hệ|trả lời)|"
        r"(?:ติดต่อกลับ|ตอบกลับ)ภายใน ?\d+|"
        r"(?:membalas|menghubungi|merespons|balas)[^.\n]{0,40}dalam (?:waktu|masa) \d+ jam|"
        r"\d+(?:時間|営業日)以内に(?:ご)?(?:連絡|返信|回答)|\d+시간 이내(?:에)? (?:답변|회신|연락)|"
        r"\d+ ?(?:小时|小時)(?:内|內)(?:回复|回覆|答复|答覆|联系|聯繫|聯絡)"
    ),
)
# Received, and a person will follow.
_RECEIVED_AND_FOLLOWING = _Signal(
    (
        "received",
        "member of our",
        "one of our",
        "erhalten",
        "reçu",
        "recibido",
        "recebemos",
        "ricevut",
        "ontvangen",
        "otrzymaliśmy",
        "получили",
        "menerima",
        "nhận được",
        "ได้รับ",
        "已收到",
        "접수",
        "受け付け",
        "受付",
    ),
    re.compile(
        r"(?:we(?:'ve| have)? received|this (?:e-?mail|message) confirms (?:that )?we received) "
        r"your (?:request|message|e-?mail|inquiry|enquiry)|"
        r"a member of our (?:team|support team|staff)|"
        r"one of our (?:agents|team members|representatives) will|"
        r"wir haben ihre (?:nachricht|anfrage|e-?mail) erhalten|nous avons (?:bien )?reçu votre "
        r"(?:message|demande|e-?mail)|hemos recibido (?:su|tu) (?:mensaje|solicitud|correo)|"
        r"recebemos (?:sua|a sua) (?:mensagem|solicitação)|"
        r"abbiamo ricevuto (?:la tua|la sua|il tuo)|"
        r"we hebben (?:uw|je) (?:bericht|aanvraag|e-?mail) ontvangen|"
        r"otrzymaliśmy (?:twoją|państwa)|"
        r"мы получили ваше|kami telah menerima|chúng tôi đã nhận được|เราได้รับ|"
        r"我们已收到您的|我們已收到您的|접수되었습니다|受け付けました|受付いたしました"
    ),
)
_ACK_SIGNALS = (_THANKS_FOR_CONTACTING, _TICKET_NUMBER, _ANSWER_WITHIN, _RECEIVED_AND_FOLLOWING)
# Helpdesk case subjects: "Case 00098765: …", "[Case #00098765]", "Ticket 4821 -", localized.
_CASE_SUBJECT = re.compile(
    r"(?:^|\[)\s*(?:case|ticket|request|caso|chamado|fall|dossier|demande|richiesta|zgłoszenie|"
    r"обращение|yêu cầu|เคส|kasus|tiket|案件|工单|工單|문의)\s*(?:#|no\.?|nr\.?|№)?\s*"
    r"\d{4,12}\s*[:\]\-–]",
)
# The body window the checks above read.
BODY_WINDOW = 800
_DELIVERY_FAILURE_SUBJECT = re.compile(
    r"^\s*(?:undeliver(?:ed|able)|delivery status notification|"
    r"(?:mail )?delivery (?:has )?failed|returned mail|failure notice|"
    r"mail delivery (?:failed|failure|subsystem)|non[- ]?delivery|"
    r"message (?:not delivered|delivery failure)|delivery failure|unzustellbar|"
    r"non recapitabile|non remis|no se puede entregar|não entregue)",
    re.I,
)
# Exchange stamps this on mail its own agents generated (rules, OOF, journaling); a person's
# reply never carries it.
_EXCHANGE_GENERATED = "X-MS-Exchange-Generated-Message-Source"
_AUTO_VALUE_FALSE = ("no", "false", "0", "off", "none")


def classify_body(text: str, subject: str = "") -> Classification | None:
    """An auto-reply verdict when the newly written text reads as an autoresponder's, else None.

    Only the opening ``BODY_WINDOW`` characters are examined: an acknowledgement states itself
    first. One self-declaring phrase is enough ("This is an automated response", "I am out of
    the office"); otherwise two different acknowledgement signals must appear ("Thank you for
    contacting …", "Your case number is …", "… will respond within 24 hours", a helpdesk case
    subject): a seller answering a buyer rarely writes two of them.
    """
    lowered = text[:BODY_WINDOW].lower()
    match = _SELF_DECLARED.search(lowered)
    if match is not None:
        return Classification(
            ReplyClass.AUTO_REPLY, f"automated body text: {match.group(0)[:60]}", by_content=True
        )
    signals = [m.group(0) for signal in _ACK_SIGNALS if (m := signal.search(lowered))]
    case_subject = _CASE_SUBJECT.search(subject[:300].lower())
    if case_subject is not None:
        signals.append(case_subject.group(0))
    if len(signals) >= 2:
        return Classification(
            ReplyClass.AUTO_REPLY,
            "acknowledgement wording: " + "; ".join(s[:40] for s in signals[:3]),
            by_content=True,
        )
    return None


def classify_mail(
    msg: Message, own_loop_value: str | None = None, *, envelope_sender: str | None = None
) -> Classification:
    """Classify *msg* as reply, auto_reply, bounce or loop. Never raises.

    *own_loop_value* is the ``X-Loop`` value our mailer stamps on outbound mail; when given,
    only that value counts as a loop, otherwise any ``X-Loop`` does. *envelope_sender* is the
    SMTP ``MAIL FROM`` when known: an empty one (the null reverse-path) is what DSNs and
    RFC 3834 auto-responders use, never a person's reply.
    """
    try:
        return _classify(msg, own_loop_value, envelope_sender)
    except Exception:  # noqa: BLE001 - a malformed header must not crash the parser loop
        return Classification(ReplyClass.REJECTED, "unreadable headers")


def _header(msg: Message, name: str) -> str:
    value = msg.get(name)
    return str(value).strip() if value is not None else ""


def _token(value: str) -> str:
    """The first token of a header value, without RFC 5322 comments or parameters."""
    value = re.sub(r"\([^)]*\)", " ", value)
    return value.split(";")[0].strip().strip('"').lower()


def _classify(
    msg: Message, own_loop_value: str | None, envelope_sender: str | None
) -> Classification:
    content_type = msg.get_content_type()
    if content_type == "multipart/report":
        report_type = str(msg.get_param("report-type") or "").lower()
        if report_type == "disposition-notification":
            return Classification(
                ReplyClass.AUTO_REPLY,
                "read receipt (multipart/report; report-type=disposition-notification)",
            )
        return Classification(
            ReplyClass.BOUNCE, f"multipart/report; report-type={report_type or '?'}"
        )
    if content_type == "message/delivery-status":
        return Classification(ReplyClass.BOUNCE, "message/delivery-status body")

    sender = ""
    for _name, address in getaddresses([_header(msg, "From"), _header(msg, "Sender")]):
        if address:
            sender = address
            break
    if _BOUNCE_SENDERS.match(sender):
        return Classification(ReplyClass.BOUNCE, f"sender {sender}")
    return_path = _header(msg, "Return-Path")
    if envelope_sender is not None and envelope_sender.strip("<> ") == "":
        return Classification(
            ReplyClass.BOUNCE if _looks_like_dsn(msg) else ReplyClass.AUTO_REPLY,
            "null return path (MAIL FROM:<>)",
        )
    if return_path.replace(" ", "") == "<>":
        return Classification(
            ReplyClass.BOUNCE if _looks_like_dsn(msg) else ReplyClass.AUTO_REPLY,
            "null return path (Return-Path: <>)",
        )
    if _BOUNCE_SENDERS.match(return_path.strip("<> ")):
        return Classification(ReplyClass.BOUNCE, f"return path {return_path}")

    # Exchange stamps this on mail an inbox rule produced (out-of-office, rule replies).
    if _header(msg, "X-MS-Exchange-Inbox-Rules-Loop"):
        return Classification(
            ReplyClass.AUTO_REPLY,
            "X-MS-Exchange-Inbox-Rules-Loop present (sent by an Exchange inbox rule)",
        )

    auto_submitted = _header(msg, "Auto-Submitted")
    # Some gateways add comments ("no (forwarded)") or odd casing: only the keyword counts.
    if auto_submitted and _token(auto_submitted) not in ("no", ""):
        return Classification(ReplyClass.AUTO_REPLY, f"Auto-Submitted: {auto_submitted[:60]}")
    generated = _header(msg, _EXCHANGE_GENERATED)
    if generated:
        return Classification(ReplyClass.AUTO_REPLY, f"{_EXCHANGE_GENERATED}: {generated[:60]}")
    for name in (
        "X-Autoreply",
        "X-Autorespond",
        "X-Autoresponder",
        "X-Auto-Reply",
        "X-Autoresponse",
        "X-Auto-Response",
        "X-Vacation",
    ):
        value = _header(msg, name)
        if value and _token(value) not in _AUTO_VALUE_FALSE:
            return Classification(ReplyClass.AUTO_REPLY, f"{name}: {value[:60]}")
    for name in ("Precedence", "X-Precedence"):
        precedence = _token(_header(msg, name))
        if precedence in ("bulk", "junk", "auto_reply", "auto-reply", "list"):
            return Classification(ReplyClass.AUTO_REPLY, f"{name}: {precedence}")
    if _header(msg, "X-Failed-Recipients"):
        return Classification(ReplyClass.BOUNCE, "X-Failed-Recipients present")
    # After the automation headers: an auto-responder that also sets X-Loop is an auto-reply;
    # X-Loop alone means a system is echoing mail back (our own is caught before this).
    loop = _header(msg, OWN_LOOP_HEADER)
    if loop and (own_loop_value is None or loop.lower() == own_loop_value.lower()):
        return Classification(ReplyClass.LOOP, f"X-Loop: {loop[:80]}")
    if _token(_header(msg, "X-Autogenerated")) == "reply":
        return Classification(ReplyClass.AUTO_REPLY, "X-Autogenerated: Reply")
    if "autoresponder" in _header(msg, "X-POST-MessageClass").lower():
        return Classification(ReplyClass.AUTO_REPLY, "X-POST-MessageClass: Autoresponder")
    if _header(msg, "List-Id"):
        return Classification(ReplyClass.AUTO_REPLY, "mailing-list mail (List-Id)")
    if _header(msg, "List-Unsubscribe") and (
        _header(msg, "List-Unsubscribe-Post") or _header(msg, "Feedback-ID")
    ):
        return Classification(ReplyClass.AUTO_REPLY, "bulk mail (List-Unsubscribe)")

    # Reasons name the phrase that matched, never the subject: a reason reaches logs and
    # notices, and the rest of the subject is the sender's to write.
    subject = _header(msg, "Subject")[:300]
    if failure := _DELIVERY_FAILURE_SUBJECT.match(subject):
        return Classification(ReplyClass.BOUNCE, f"delivery failure subject ({_phrase(failure)})")
    if auto := _AUTO_SUBJECT.match(_strip_reply_prefix(subject)):
        return Classification(
            ReplyClass.AUTO_REPLY, f"auto-reply subject ({_phrase(auto)})", by_content=True
        )
    found = _AUTO_SUBJECT_ANYWHERE.search(subject.lower())
    if found:
        return Classification(
            ReplyClass.AUTO_REPLY, f"auto-reply subject ({_phrase(found)})", by_content=True
        )
    if _NO_REPLY_SENDERS.match(sender):
        return Classification(ReplyClass.AUTO_REPLY, f"no-reply sender {sender}")
    return Classification(ReplyClass.REPLY, "no automation markers")


def _phrase(match: re.Match[str]) -> str:
    """The phrase a subject pattern matched, lower-case on one line."""
    return '"' + " ".join(match.group(0).lower().split())[:60] + '"'


def _looks_like_dsn(msg: Message) -> bool:
    if msg.get_content_type() in ("multipart/report", "message/delivery-status"):
        return True
    return bool(_header(msg, "X-Failed-Recipients")) or bool(
        _DELIVERY_FAILURE_SUBJECT.match(_header(msg, "Subject")[:300])
    )


def _strip_reply_prefix(subject: str) -> str:
    # "Re: Automatic reply: …" is still an auto-reply; "[Ticket #1] Out of office" too.
    return re.sub(
        r"^(?:\s*(?:re|aw|sv|antw|rif|r|res|odp|ynt)\s*:\s*|\s*\[[^\]]{0,60}\]\s*)*",
        "",
        subject,
        flags=re.I,
    )
