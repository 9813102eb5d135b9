"""One inbound mail -> a decision: deliver these chat parts, or record why not. Pure.

Order matters: parse within limits, then loops and automated mail (classification before
anything else: an out-of-office must never reach a buyer), then sender authorization and
authentication (DKIM/SPF/DMARC under the shop's policy), then extraction, a last look at
the written text for autoresponder phrasing, the content policy and the split.

Besides the decision, the pipeline yields the notices it warrants: ``content_withheld`` to
the seller when something was not shown to the buyer, ``sender_rejected`` to the shop's own
inbox when a reply was refused, ``held_as_automated`` to it when one of the shop's own
registered senders wrote something held back on its wording alone. Their ids derive from
the reply id, so a replayed mail produces the same notices and the mailer sends each once.

Every stage is pure: the DNS answers that authentication needs are looked up at the edge.
The parser runs :func:`screen` (parse, loops, classification, who the author is), then, when
the result says ``needs_auth``, evaluates DKIM/SPF/DMARC through its resolver
(:func:`reply_parser.mail_auth.evaluate`), then :func:`conclude` with that
:class:`~reply_parser.mail_auth.AuthResult`. :func:`decide` is the two stages in one call for
callers that already hold the authentication facts (or none: the sender is then unchecked, as
for a saved mail).

Authentication that met DNS trouble is ``deferred``: the caller checks the mail again later
and passes ``last_attempt`` on its final try, when the mail is refused instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from reply_parser import mail_auth
from reply_parser.bounce_report import Bounce, read_bounce
from reply_parser.classify import classify_body, classify_mail
from reply_parser.content_policy import (
    build_reply_content,
    content_withheld_notice,
    held_as_automated_notice,
    links_removed_notice,
    parse_kinds,
    policy_for,
    sender_rejected_notice,
    text_record_cost,
)
from reply_parser.extract import Extraction, extract_new_text
from reply_parser.mail_policy import FAST_DEFAULT
from reply_parser.mime_limits import Deadline, MimeLimits, check_raw, check_structure
from reply_parser.reply_parser_settings import ReplyParserSettings
from reply_parser.split import split_for_chat
from shared.events import (
    ChatReply,
    InboundEnvelope,
    MailAuthPolicy,
    MailNotice,
    ReplyClass,
    ShopSettings,
)
from shared.text_safety import keep_tabs_and_lines
from shared.tokens import is_reply_domain


@dataclass(frozen=True, slots=True)
class InboundDecision:
    classification: ReplyClass
    reason: str
    reply: ChatReply | None = None
    text: str = ""
    notices: tuple[MailNotice, ...] = ()
    withheld: tuple[str, ...] = ()
    auth: mail_auth.AuthResult | None = None
    extraction: Extraction | None = None
    bounce: Bounce | None = None  # a delivery report about one of our digests
    auth_verdict: mail_auth.Verdict | None = None  # what the shop's policy made of ``auth``
    sender: str = ""  # the From address of a refused reply (for notice budgets)

    @property
    def auth_unchecked(self) -> bool:
        """Refused because DNS never let authentication finish (the last attempt)."""
        return (
            self.classification == ReplyClass.REJECTED
            and self.auth_verdict is not None
            and self.auth_verdict.outcome == "defer"
        )


@dataclass(frozen=True, slots=True)
class OwnIdentity:
    """How to recognise our own mail coming back (loops)."""

    message_id_domain: str
    reply_domain_base: str


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """The knobs of :func:`decide`, read once from the settings (see :func:`config_from`)."""

    image_kinds: frozenset[str] = frozenset({"salesforce"})
    max_image_bytes: int = 10 * 1024 * 1024
    record_budget_bytes: int = 960 * 1024
    auth_policy: MailAuthPolicy = "aligned_pass"
    auth_policy_helpdesk: MailAuthPolicy = "aligned_pass"
    trusted_authserv_ids: frozenset[str] = frozenset()
    limits: MimeLimits = field(default_factory=MimeLimits)
    check_sender: bool = True  # off only for inspection without a shop context
    envelope_known: bool = True  # off when the SMTP envelope is unknown (a saved .eml)


def config_from(cfg: ReplyParserSettings) -> PipelineConfig:
    """Build the pipeline's config from the reply-parser's settings."""
    return PipelineConfig(
        image_kinds=parse_kinds(cfg.inline_images_default_kinds),
        max_image_bytes=cfg.chat_image_max_bytes,
        record_budget_bytes=cfg.reply_record_budget_bytes,
        auth_policy=cfg.inbound_auth_policy,
        auth_policy_helpdesk=cfg.inbound_auth_policy_helpdesk,
        trusted_authserv_ids=parse_kinds(cfg.trusted_authserv_ids),
        limits=MimeLimits(
            cfg.mime_max_depth,
            cfg.mime_max_parts,
            cfg.mime_max_decoded_bytes,
            cfg.parse_time_budget_s,
            max_header_block_bytes=cfg.mime_max_header_block_bytes,
            max_header_bytes=cfg.mime_max_header_bytes,
            max_header_fields=cfg.mime_max_header_fields,
            max_encoded_words=cfg.mime_max_encoded_words,
            max_content_header_bytes=cfg.mime_max_content_header_bytes,
            max_content_params=cfg.mime_max_content_params,
        ),
    )


_PARSER = BytesParser(policy=FAST_DEFAULT)


def parse_mail(raw: bytes) -> EmailMessage:
    msg = _PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def reply_id_for(shop_id: str, conversation_id: str, msg: EmailMessage, raw: bytes) -> str:
    """Stable id of one mail's reply in one conversation: the Message-ID (else the content
    hash) scoped by shop and conversation, so a mail redelivered to a conversation keeps its
    id while the same mail sent to two conversations is two replies (each delivered)."""
    message_id = str(msg.get("Message-ID", "") or "").strip()
    basis = message_id.encode() if message_id else hashlib.sha256(raw).digest()
    scope = f"{len(shop_id)}:{shop_id}:{len(conversation_id)}:{conversation_id}:".encode()
    return hashlib.sha256(scope + basis).hexdigest()[:32]


def from_addresses(msg: EmailMessage) -> list[str]:
    """Every address the From header(s) name, lower-cased (the author is
    :func:`reply_parser.mail_auth.author_address`; this is for looking, e.g. loops)."""
    try:
        pairs = getaddresses([str(v) for v in msg.get_all("From", [])])
    except Exception:  # malformed header: no addresses
        return []
    return [a.strip().lower() for _, a in pairs if a.strip()]


def detect_loop(msg: EmailMessage, own: OwnIdentity) -> str | None:
    """A reason if this mail is our own digest (or a notice of ours) coming back."""
    domain = own.message_id_domain.lower()
    message_id = str(msg.get("Message-ID", "") or "").lower()
    if message_id.rstrip(">").endswith("@" + domain):
        return "our own digest came back (Message-ID)"
    for value in msg.get_all("X-Loop", []) or []:
        if domain in str(value).lower():
            return "X-Loop names this bridge"
    if msg.get("X-Bridge-Digest-Id") or msg.get("X-Bridge-Notice"):
        return "our own mail came back (X-Bridge header)"
    if any(
        is_reply_domain(a.rpartition("@")[2], own.reply_domain_base) for a in from_addresses(msg)
    ):
        return "sent from one of our reply addresses"
    return None


def _held_notices(
    by_content: bool,
    reply_id: str,
    shop: ShopSettings,
    sender: str,
    subject: str,
    reason: str,
    env: InboundEnvelope,
) -> tuple[MailNotice, ...]:
    """The notice for a mail held back as automated on its wording alone (else none)."""
    if not by_content:
        return ()
    notice = held_as_automated_notice(
        reply_id=reply_id,
        shop=shop,
        sender=sender,
        subject=subject,
        reason=reason,
        conversation_id=env.conversation_id,
        now_ms=env.received_at_ms,
    )
    return (notice,) if notice is not None else ()


def authorized_senders(shop: ShopSettings) -> set[str]:
    allowed = {a.strip().lower() for a in shop.authorized_senders if a.strip()}
    if shop.destination_email:
        allowed.add(shop.destination_email.strip().lower())
    return allowed


def sender_authenticated(auth: mail_auth.AuthResult | None) -> bool:
    """The From domain is proven: DMARC passed, or a DKIM signature or the SPF-checked
    envelope domain aligns with it (relaxed), even where the domain publishes no DMARC."""
    if auth is None or not auth.from_domain:
        return False
    return (
        auth.dmarc == mail_auth.PASS
        or any(mail_auth.aligned(d, auth.from_domain, "r") for d in auth.dkim_domains)
        or (
            auth.spf == mail_auth.PASS and mail_auth.aligned(auth.spf_domain, auth.from_domain, "r")
        )
    )


@dataclass(frozen=True, slots=True)
class Screened:
    """A mail past the stages that need no DNS (:func:`screen`), for :func:`conclude`.

    ``needs_auth``: the decision depends on the sender's authentication, so the caller
    evaluates it (:func:`reply_parser.mail_auth.evaluate`) and passes the result on.
    """

    raw: bytes
    msg: EmailMessage
    config: PipelineConfig
    deadline: Deadline  # one time budget for both stages
    reply_id: str
    subject: str
    sender: str
    refusal: str | None  # why the sender is refused before authentication, if it is
    unregistered: bool
    needs_auth: bool


def decide(
    raw: bytes,
    env: InboundEnvelope,
    shop: ShopSettings,
    own: OwnIdentity,
    *,
    config: PipelineConfig | None = None,
    auth: mail_auth.AuthResult | None = None,
    last_attempt: bool = False,
) -> InboundDecision:
    """Classify, authorize, authenticate and extract one inbound mail. Pure.

    *auth* is what the sender's authentication found (DNS looked up by the caller); without
    it the sender is unchecked beyond a trusted ``Authentication-Results`` (inspection of a
    saved mail). The parser runs the stages itself, looking DNS up between them only when
    :attr:`Screened.needs_auth` says the decision depends on it.

    Raises :class:`reply_parser.mime_limits.MailTooComplex` for mail beyond the parsing
    limits (the caller dead-letters it); any other malformed input yields a decision.
    """
    cfg = config or PipelineConfig()
    screened = screen(raw, env, shop, own, config=cfg)
    if isinstance(screened, InboundDecision):
        return screened
    return conclude(screened, env, shop, auth=auth, last_attempt=last_attempt)


def screen(
    raw: bytes,
    env: InboundEnvelope,
    shop: ShopSettings,
    own: OwnIdentity,
    *,
    config: PipelineConfig | None = None,
) -> InboundDecision | Screened:
    """The stages before authentication: parse within limits, loops, automated mail and
    bounces (final decisions), who the author is and whether the shop knows them. Pure.

    Raises :class:`reply_parser.mime_limits.MailTooComplex` like :func:`decide`.
    """
    cfg = config or PipelineConfig()
    deadline = Deadline(cfg.limits.time_budget_s)
    # Active for the whole stage, so long loops inside it check it too.
    with deadline.active():
        return _screen(raw, env, shop, own, cfg, deadline)


def conclude(
    screened: Screened,
    env: InboundEnvelope,
    shop: ShopSettings,
    *,
    auth: mail_auth.AuthResult | None,
    last_attempt: bool = False,
) -> InboundDecision:
    """The stages after :func:`screen`: the shop's authentication policy over *auth*, then
    extraction, content policy and the split. Pure.

    Raises :class:`reply_parser.mime_limits.MailTooComplex` like :func:`decide`.
    """
    with screened.deadline.active():
        return _conclude(screened, env, shop, auth, last_attempt)


def _screen(
    raw: bytes,
    env: InboundEnvelope,
    shop: ShopSettings,
    own: OwnIdentity,
    cfg: PipelineConfig,
    deadline: Deadline,
) -> InboundDecision | Screened:
    check_raw(raw, cfg.limits)
    msg = parse_mail(raw)
    check_structure(msg, cfg.limits)
    deadline.check("classification")

    loop = detect_loop(msg, own)
    if loop:
        return InboundDecision(ReplyClass.LOOP, loop)
    verdict = classify_mail(msg, envelope_sender=env.mail_from if cfg.envelope_known else None)
    if verdict.cls == ReplyClass.BOUNCE:
        bounce = read_bounce(msg, own.message_id_domain)
        if bounce is not None:
            fate = "not delivered" if bounce.permanent else "delayed"
            return InboundDecision(
                verdict.cls,
                f"{verdict.reason}; digest {bounce.digest_id} {fate}: {bounce.reason}",
                bounce=bounce,
            )
    reply_id = reply_id_for(env.shop_id, env.conversation_id, msg, raw)
    subject = str(msg.get("Subject", "") or "")[:300]
    unregistered = False
    try:
        sender = mail_auth.author_address(msg)
        refusal = None
    except mail_auth.AuthorError as exc:  # refused under every policy: who would the sender be?
        sender, refusal = ", ".join(from_addresses(msg))[:300], str(exc)
    if verdict.cls != ReplyClass.REPLY:
        # A stranger's automated mail is not the shop's: dropped without a notice, so
        # strangers can neither write into a notice nor use up the shop's notices.
        own_sender = refusal is None and sender in authorized_senders(shop)
        return InboundDecision(
            verdict.cls,
            verdict.reason,
            sender=sender,
            notices=_held_notices(
                verdict.by_content and own_sender,
                reply_id,
                shop,
                sender,
                subject,
                verdict.reason,
                env,
            ),
        )

    checked = refusal is None and cfg.check_sender
    if checked and sender not in authorized_senders(shop):
        # The address stays out of the reason (logged, on mail.inbound.results).
        refusal = f"the sender is not a registered, activated user of shop {shop.shop_id}"
        unregistered = True
    # A registered sender's reply stands or falls on authentication; an unregistered one's
    # refusal tells the shop only when the sender is proven (and the shop has an inbox).
    needs_auth = (checked and not unregistered) or (unregistered and bool(shop.destination_email))
    return Screened(
        raw, msg, cfg, deadline, reply_id, subject, sender, refusal, unregistered, needs_auth
    )


def _conclude(
    screened: Screened,
    env: InboundEnvelope,
    shop: ShopSettings,
    auth: mail_auth.AuthResult | None,
    last_attempt: bool,
) -> InboundDecision:
    cfg, deadline, msg = screened.config, screened.deadline, screened.msg
    reply_id, subject, sender = screened.reply_id, screened.subject, screened.sender
    refusal, unregistered = screened.refusal, screened.unregistered
    if not screened.needs_auth:
        auth = None
    elif auth is None:  # no DNS answers given: only a trusted Authentication-Results counts
        auth = mail_auth.evaluate(
            screened.raw,
            msg,
            peer_ip=env.peer,
            mail_from=env.mail_from,
            resolver=None,
            trusted_ids=cfg.trusted_authserv_ids,
        )
    verdict_auth = None
    if screened.needs_auth and not unregistered and auth is not None:
        policy = mail_auth.shop_policy(
            shop, mailbox=cfg.auth_policy, helpdesk=cfg.auth_policy_helpdesk
        )
        verdict_auth = mail_auth.auth_verdict(auth, policy)
        if verdict_auth.outcome == "defer" and not last_attempt:
            return InboundDecision(
                ReplyClass.DEFERRED, verdict_auth.reason, auth=auth, auth_verdict=verdict_auth
            )
        if verdict_auth.outcome != "accept":
            refusal = verdict_auth.reason
    if refusal:
        notice = sender_rejected_notice(
            reply_id=reply_id,
            shop=shop,
            sender=sender,
            reason=refusal,
            conversation_id=env.conversation_id,
            now_ms=env.received_at_ms,
            sender_accountable=not unregistered or sender_authenticated(auth),
        )
        return InboundDecision(
            ReplyClass.REJECTED,
            refusal,
            notices=(notice,) if notice else (),
            auth=auth,
            auth_verdict=verdict_auth,
            sender=sender,
        )
    deadline.check("extraction")

    extraction = extract_new_text(msg)
    # Other controls never belong in a chat message.
    text = keep_tabs_and_lines(extraction.text)
    if text != extraction.text:
        extraction = dataclasses.replace(extraction, text=text.strip())
    deadline.check("content policy")
    automated = classify_body(extraction.text, subject)
    if automated is not None:
        # Past authorization: the sender is one of the shop's (or checks are off).
        return InboundDecision(
            automated.cls,
            automated.reason,
            auth=auth,
            extraction=extraction,
            sender=sender,
            notices=_held_notices(True, reply_id, shop, sender, subject, automated.reason, env),
        )
    if len(extraction.text) > cfg.record_budget_bytes:  # chars <= UTF-8 bytes: cannot fit
        return InboundDecision(
            ReplyClass.REJECTED,
            f"reply text too long for chat ({len(extraction.text)} characters)",
            auth=auth,
            extraction=extraction,
        )
    chunks = split_for_chat(extraction.text) if extraction.text.strip() else []
    content_rules = policy_for(
        shop,
        cfg.image_kinds,
        max_image_bytes=cfg.max_image_bytes,
        record_budget_bytes=cfg.record_budget_bytes,
    )
    content = build_reply_content(
        chunks,
        extraction.inline_images,
        extraction.withheld,
        content_rules,
        segments=extraction.segments,
    )
    notices: tuple[MailNotice, ...] = ()
    seller_message_id = str(msg.get("Message-ID", "") or "").strip()
    if content.withheld and sender:
        notices = (
            content_withheld_notice(
                reply_id=reply_id,
                seller=sender,
                seller_message_id=seller_message_id,
                shop_id=env.shop_id,
                conversation_id=env.conversation_id,
                withheld=content.withheld,
                now_ms=env.received_at_ms,
            ),
        )
    if extraction.links_removed and sender:
        notices += (
            links_removed_notice(
                seller=sender,
                seller_message_id=seller_message_id,
                shop_id=env.shop_id,
                conversation_id=env.conversation_id,
                links=extraction.links_removed,
                now_ms=env.received_at_ms,
            ),
        )
    if not content.parts:
        return InboundDecision(
            ReplyClass.REJECTED,
            "no new text found in the reply",
            notices=notices,
            withheld=content.withheld,
            auth=auth,
            extraction=extraction,
        )
    if content_rules.record_budget_bytes < text_record_cost(chunks):
        return InboundDecision(
            ReplyClass.REJECTED,
            f"reply text too long for chat ({len(extraction.text)} characters)",
            notices=notices,
            withheld=content.withheld,
            auth=auth,
            extraction=extraction,
        )
    reply = ChatReply(
        reply_id=reply_id,
        shop_id=env.shop_id,
        conversation_id=env.conversation_id,
        parts=content.parts,
        mail_id=env.mail_id,
        sender=sender,
        received_at_ms=env.received_at_ms,
    )
    return InboundDecision(
        ReplyClass.REPLY,
        "new text extracted",
        reply,
        extraction.text,
        notices=notices,
        withheld=content.withheld,
        auth=auth,
        extraction=extraction,
        auth_verdict=verdict_auth,
    )
