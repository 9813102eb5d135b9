"""A local mail sink: an aiosmtpd server that keeps every delivered mail and shows it over HTTP.

``GET /`` lists mails, ``/messages`` as JSON (both newest first, one page of ``limit``
mails numbered below ``before``), ``/messages/{n}/raw`` the bytes,
``/messages/{n}/html`` the rendered HTML part, ``/messages/{n}`` one mail with a reply form.
``POST /messages/{n}/reply`` answers a digest as a mail client would (Gmail by default; see
:mod:`devstack.reply_styles`), as one of the activated users of the digest's shop, and sends it
to the digest's Reply-To through the bridge's inbound SMTP, so a person can try the whole
loop from a browser; with Kafka known it waits for the parser's verdict and says whether
the buyer gets the reply (the reply front's 250 only means "queued"). ``/sink/faults`` makes
the sink answer 451 (temporary) or 550 (permanent) for outage tests.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parseaddr
from functools import cached_property
from typing import Annotated, Any

import aiosmtplib
from aiokafka import ConsumerRecord
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Form, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from devstack.reply_styles import ReplyStyle, build_reply
from devstack.reply_styles import gmail_style_reply as gmail_style_reply  # the chaos run's
from devstack.shop_users import ShopUsers
from devstack.topic_reader import wait_for_record
from reply_parser.smtp_replies import QUEUED
from shared.codec import DecodeError, decode
from shared.events import InboundResult, ReplyClass
from shared.key_ring import KeyRing
from shared.tokens import TokenError, verify_token
from shared.topics import MAIL_INBOUND_RESULTS

# A listing page holds at most this many mails: one page costs the sink's event loop (which
# also answers SMTP) the same however many mails are stored.
PAGE_MAX = 500
PAGE_DEFAULT = 100


@dataclass(frozen=True)
class MailSummary:
    """What a listing shows of one mail, read from its header block once, on arrival."""

    subject: str
    message_id: str
    reply_to: str
    notice: str  # X-Bridge-Notice: the kind of a notice mail, empty for a digest

    @classmethod
    def of(cls, raw: bytes) -> MailSummary:
        # The header block only: the bodies (HTML, pictures) are parsed when first shown.
        headers = BytesHeaderParser(policy=policy.default).parsebytes(raw)
        return cls(
            str(headers.get("Subject", "")),
            str(headers.get("Message-ID", "")),
            str(headers.get("Reply-To", "")),
            str(headers.get("X-Bridge-Notice", "")),
        )


@dataclass
class StoredMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    received_at: float = field(default_factory=time.time)  # when the sink answered 250

    @cached_property
    def summary(self) -> MailSummary:
        return MailSummary.of(self.raw)

    @cached_property
    def message(self) -> EmailMessage:
        """The whole mail, parsed on first use and kept (a listing never needs it)."""
        msg = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SinkState:
    mails: list[StoredMail] = field(default_factory=list)
    temp_fail: bool = False
    perm_fail: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # Mail numbers by Message-ID: a second number under one id is a duplicate delivery.
    numbers_by_message_id: dict[str, list[int]] = field(default_factory=dict)

    def store(self, mail: StoredMail) -> int:
        """Keep a delivered mail and index it; returns its number."""
        n = len(self.mails)
        self.mails.append(mail)
        if message_id := mail.summary.message_id:
            self.numbers_by_message_id.setdefault(message_id, []).append(n)
        self.arrived.set()
        return n

    def duplicates(self) -> dict[str, list[int]]:
        """Message-IDs delivered more than once, with the numbers of their copies."""
        return {mid: ns for mid, ns in self.numbers_by_message_id.items() if len(ns) > 1}

    def page(self, limit: int, before: int | None) -> list[int]:
        """Mail numbers of one listing page: newest first, below ``before`` when given."""
        top = len(self.mails) if before is None else max(0, min(before, len(self.mails)))
        return list(range(top - 1, max(top - limit, 0) - 1, -1))


class SinkHandler:
    def __init__(self, state: SinkState) -> None:
        self.state = state

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.state.perm_fail:
            return "550 5.7.1 Sink refuses this mail (fault injection)"
        if self.state.temp_fail:
            return "451 4.3.0 Sink temporarily unavailable (fault injection)"
        self.state.store(
            StoredMail(
                envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""
            )
        )
        return "250 2.0.0 Stored"


async def start_sink_smtp(state: SinkState, host: str, port: int) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(
            SinkHandler(state), ident="bridge mail sink", data_size_limit=60 * 1024 * 1024
        ),
        host=host,
        port=port,
    )


class FaultsIn(BaseModel):
    temp_fail: bool = False
    perm_fail: bool = False


class ReplyIn(BaseModel):
    text: str = Field(min_length=1)
    from_address: str = Field("", description="an activated user of the mail's shop")
    style: ReplyStyle = ReplyStyle.GMAIL


# How long a reply's page waits for the parser's verdict (authentication, classification).
VERDICT_WAIT_S = 20.0
# The reply front's 250 names the queued mail: its wording has one home, smtp_replies.
_QUEUED_AS = re.compile(re.escape(QUEUED.text).replace(re.escape("{mail_id}"), r"(\S+)"))


@dataclass(frozen=True)
class ReplyAccess:
    """What the sink needs to answer a digest as one of its shop's users and to tell what
    the bridge made of the answer; every part is optional (a sink alone knows none)."""

    users: ShopUsers | None = None
    token_keys: KeyRing | None = None
    kafka_bootstrap: str | None = None

    def shop_of(self, mail: StoredMail) -> str | None:
        """The shop whose conversation a digest's reply address belongs to."""
        found = conversation_of(mail.summary.reply_to, self.token_keys)
        return found[0] if found else None


def conversation_of(reply_to: str, keys: KeyRing | None) -> tuple[str, str] | None:
    """(shop id, conversation id) a reply address stands for, or None when it is not one of
    ours (a notice, a token these keys do not verify)."""
    if keys is None:
        return None
    address = parseaddr(reply_to)[1]
    try:
        token = verify_token(address.partition("@")[0], keys, now_s=time.time())
    except TokenError:
        return None
    return token.shop_id, token.conversation_id


async def inbound_verdict(
    bootstrap: str, send: Callable[[], Awaitable[str]], timeout_s: float = VERDICT_WAIT_S
) -> tuple[str, InboundResult | None]:
    """Run ``send`` (returns the reply front's 250 text, "Queued as <mail id>"), then wait
    for the parser's :class:`InboundResult` of that mail; (smtp text, result or None)."""
    sent: dict[str, str] = {}

    async def start() -> None:
        sent["smtp"] = await send()
        found = _QUEUED_AS.search(sent["smtp"])
        sent["mail_id"] = found.group(1) if found else ""

    def matches(record: ConsumerRecord) -> bool:
        mail_id = sent.get("mail_id")
        try:
            return bool(mail_id) and decode(InboundResult, record.value).mail_id == mail_id
        except DecodeError:  # not ours to judge: the verdict we wait for is another record
            return False

    record = await wait_for_record(
        bootstrap, MAIL_INBOUND_RESULTS, matches, start, timeout_s=timeout_s
    )
    return sent.get("smtp", ""), decode(InboundResult, record.value) if record else None


def verdict_text(result: InboundResult | None) -> str:
    """One sentence a person reads after pressing Reply."""
    if result is None:
        return (
            "The reply front accepted the mail; the parser gave no verdict within "
            f"{VERDICT_WAIT_S:g} s (see the parser's log)."
        )
    if result.classification == ReplyClass.REPLY:
        return f"Delivered: {result.parts} chat message(s) on their way to the buyer."
    if result.classification == ReplyClass.DEFERRED:
        return f"Not delivered yet, checked again later: {result.reason}"
    return f"Not delivered to the buyer ({result.classification}): {result.reason}"


def create_sink_web(
    state: SinkState,
    *,
    inbound_host: str,
    inbound_port: int,
    default_from: str,
    access: ReplyAccess | None = None,
) -> FastAPI:
    """The sink's pages and JSON. A reply is sent as the user picked among the activated
    users of the mail's shop (``access.users``); ``default_from`` only where the sink
    cannot tell the shop or its users."""
    app = FastAPI(title="bridge mail sink")
    access = access or ReplyAccess()

    def get(n: int) -> StoredMail:
        if not 0 <= n < len(state.mails):
            raise HTTPException(404, f"no mail number {n}")
        return state.mails[n]

    limit_query = Query(PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="mails per page")
    before_query = Query(None, ge=0, description="only mails numbered below this one")

    @app.get("/", response_class=HTMLResponse)
    async def index(limit: int = limit_query, before: int | None = before_query) -> str:
        numbers = state.page(limit, before)
        rows = []
        for n in numbers:
            mail = state.mails[n]
            rows.append(
                f"<tr><td>{n}</td><td>{html.escape(', '.join(mail.rcpt_tos))}</td>"
                f"<td>{html.escape(mail.summary.subject)}</td>"
                f"<td><a href='/messages/{n}'>open and reply</a> "
                f"<a href='/messages/{n}/html'>html</a> <a href='/messages/{n}/raw'>raw</a>"
                "</td></tr>"
            )
        older = (
            f"<p><a href='/?limit={limit}&amp;before={numbers[-1]}'>older mail</a></p>"
            if numbers and numbers[-1] > 0
            else ""
        )
        return (
            "<!doctype html><meta charset='utf-8'><title>Mail sink</title>"
            f"<h1>Delivered mail ({len(state.mails)}, newest first)</h1>"
            "<table border=1 cellpadding=4><tr><th>#</th><th>To</th>"
            f"<th>Subject</th><th></th></tr>{''.join(rows)}</table>{older}"
        )

    @app.get("/messages")
    async def list_messages(
        limit: int = limit_query, before: int | None = before_query
    ) -> JSONResponse:
        out = []
        for n in state.page(limit, before):
            mail = state.mails[n]
            out.append(
                {
                    "n": n,
                    "mail_from": mail.mail_from,
                    "rcpt_tos": mail.rcpt_tos,
                    "subject": mail.summary.subject,
                    "message_id": mail.summary.message_id,
                    "reply_to": mail.summary.reply_to,
                    "notice": mail.summary.notice,
                    "received_at": mail.received_at,
                }
            )
        return JSONResponse(out)

    @app.get("/messages/{n}/raw")
    async def raw(n: int) -> Response:
        return PlainTextResponse(get(n).raw.decode("utf-8", "replace"))

    @app.get("/messages/{n}/html", response_class=HTMLResponse)
    async def rendered(n: int) -> str:
        body = get(n).message.get_body(("html", "plain"))
        if body is None:
            return "<p>(no body)</p>"
        content = body.get_content()
        if body.get_content_subtype() == "html":
            return content
        return f"<pre>{html.escape(content)}</pre>"

    async def senders(mail: StoredMail) -> tuple[str, ...]:
        """Who may answer ``mail``: its shop's activated users, else the default sender."""
        shop = access.shop_of(mail)
        users = await access.users.activated(shop) if access.users and shop else ()
        return tuple(u.email for u in users) or (default_from,)

    async def send_reply(n: int, text: str, from_address: str, style: ReplyStyle) -> dict[str, Any]:
        mail = get(n)
        sender = from_address or (await senders(mail))[0]
        reply = build_reply(style, mail.message, text, sender)

        async def send() -> str:
            response = await aiosmtplib.send(
                reply, hostname=inbound_host, port=inbound_port, timeout=30
            )
            return str(response[1])

        out: dict[str, Any] = {"to": str(reply["To"]), "from": sender, "style": style}
        if access.kafka_bootstrap is None:
            out["smtp"] = await send()
            return out
        out["smtp"], result = await inbound_verdict(access.kafka_bootstrap, send)
        out["verdict"] = (
            None
            if result is None
            else {
                "classification": result.classification,
                "reason": result.reason,
                "parts": result.parts,
            }
        )
        out["summary"] = verdict_text(result)
        return out

    @app.post("/messages/{n}/reply")
    async def reply_json(n: int, body: ReplyIn) -> JSONResponse:
        """Send a reply; with Kafka known, the answer also holds the parser's verdict (the
        reply front's 250 only says the mail was queued, not that the buyer gets it)."""
        try:
            return JSONResponse(await send_reply(n, body.text, body.from_address, body.style))
        except aiosmtplib.SMTPException as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)

    @app.get("/messages/{n}", response_class=HTMLResponse)
    async def mail_page(n: int) -> str:
        mail = get(n)
        options = "".join(f"<option>{html.escape(a)}</option>" for a in await senders(mail))
        styles = "".join(f"<option value='{s}'>{s.label}</option>" for s in ReplyStyle)
        return (
            "<!doctype html><html lang='en'><meta charset='utf-8'>"
            f"<title>Mail {n}</title><p><a href='/'>all mail</a></p>"
            f"<h1>{html.escape(mail.summary.subject)}</h1>"
            f"<p>To {html.escape(', '.join(mail.rcpt_tos))}</p>"
            f"<form method='post' action='/messages/{n}/reply-form'>"
            f"<p><label>Answer as <select name='from_address'>{options}</select></label> "
            f"<label>written by <select name='style'>{styles}</select></label></p>"
            "<p><textarea name='text' rows='4' cols='60' required "
            "aria-label='reply to the buyer'></textarea></p><button>Reply</button></form>"
            f"<iframe sandbox='' src='/messages/{n}/html' title='the mail' "
            "style='width:100%;height:70vh;border:1px solid #ccc'></iframe></html>"
        )

    @app.post("/messages/{n}/reply-form", response_class=HTMLResponse)
    async def reply_form(
        n: int,
        text: str = Form(...),
        from_address: str = Form(""),
        style: Annotated[ReplyStyle, Form()] = ReplyStyle.GMAIL,
    ) -> str:
        back = f"<p><a href='/messages/{n}'>back to the mail</a> <a href='/'>all mail</a></p>"
        try:
            result = await send_reply(n, text, from_address, style)
        except aiosmtplib.SMTPException as exc:
            return f"<p>Reply refused by the reply front: {html.escape(str(exc))}</p>{back}"
        said = result.get("summary") or "Queued by the reply front (no verdict watched here)."
        return (
            f"<p>Reply from {html.escape(result['from'])} to {html.escape(result['to'])}: "
            f"<strong>{html.escape(said)}</strong></p>{back}"
        )

    @app.post("/sink/faults")
    async def faults(body: FaultsIn) -> JSONResponse:
        state.temp_fail, state.perm_fail = body.temp_fail, body.perm_fail
        return JSONResponse(body.model_dump())

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app
