"""A local mail sink: an aiosmtpd server that keeps every delivered mail and shows it over HTTP.

``GET /`` lists mails, ``/messages`` as JSON (both newest first, one page of ``limit``
mails numbered below ``before``), ``/messages/{n}/raw`` the bytes,
``/messages/{n}/html`` the rendered HTML part. ``POST /messages/{n}/reply``
answers a digest the way Gmail does (new text on top, the digest quoted below)
and sends it to the digest's Reply-To through the bridge's inbound SMTP, so a
person can try the whole loop from a browser. ``/sink/faults`` makes the sink
answer 451 (temporary) or 550 (permanent) for outage tests.
"""

from __future__ import annotations

import asyncio
import html
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import make_msgid
from functools import cached_property

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Form, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

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
    from_address: str = ""


def gmail_style_reply(original: EmailMessage, text: str, from_address: str) -> EmailMessage:
    """A reply as Gmail writes it: new text, then the original under a gmail_quote."""
    reply = EmailMessage()
    reply["From"] = from_address
    reply["To"] = str(original.get("Reply-To") or original.get("From"))
    reply["Subject"] = "Re: " + str(original.get("Subject", ""))
    reply["Message-ID"] = make_msgid(domain="seller.localhost")
    if original.get("Message-ID"):
        reply["In-Reply-To"] = str(original["Message-ID"])
        reply["References"] = str(original["Message-ID"])
    body = original.get_body(("plain",))
    quoted_text = body.get_content() if body is not None else ""
    quoted = "\n".join("> " + line for line in quoted_text.splitlines())
    when = str(original.get("Date", ""))
    reply.set_content(f"{text}\n\nOn {when} {original.get('From')} wrote:\n{quoted}\n")
    html_body = original.get_body(("html",))
    quoted_html = html_body.get_content() if html_body is not None else html.escape(quoted_text)
    reply.add_alternative(
        f'<div dir="ltr">{html.escape(text).replace(chr(10), "<br>")}</div><br>'
        f'<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On {html.escape(when)} '
        f"{html.escape(str(original.get('From')))} wrote:<br></div>"
        f'<blockquote class="gmail_quote" style="margin:0 0 0 .8ex;border-left:1px #ccc solid;'
        f'padding-left:1ex">{quoted_html}</blockquote></div>',
        subtype="html",
    )
    return reply


def create_sink_web(
    state: SinkState, *, inbound_host: str, inbound_port: int, default_from: str
) -> FastAPI:
    app = FastAPI(title="bridge mail sink")

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
                f"<td><a href='/messages/{n}/html'>html</a> <a href='/messages/{n}/raw'>raw</a>"
                f"<form method='post' action='/messages/{n}/reply-form' style='display:inline'>"
                f"<input name='text' placeholder='reply to the buyer'><button>Reply</button>"
                f"</form></td></tr>"
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

    async def send_reply(n: int, text: str, from_address: str) -> dict[str, str]:
        reply = gmail_style_reply(get(n).message, text, from_address or default_from)
        response = await aiosmtplib.send(
            reply, hostname=inbound_host, port=inbound_port, timeout=30
        )
        return {"to": str(reply["To"]), "smtp": str(response[1])}

    @app.post("/messages/{n}/reply")
    async def reply_json(n: int, body: ReplyIn) -> JSONResponse:
        try:
            return JSONResponse(await send_reply(n, body.text, body.from_address))
        except aiosmtplib.SMTPException as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)

    @app.post("/messages/{n}/reply-form", response_class=HTMLResponse)
    async def reply_form(n: int, text: str = Form(...)) -> str:
        try:
            result = await send_reply(n, text, "")
        except aiosmtplib.SMTPException as exc:
            return f"<p>Reply refused: {html.escape(str(exc))}</p><a href='/'>back</a>"
        return f"<p>Reply sent to {html.escape(result['to'])}.</p><a href='/'>back</a>"

    @app.post("/sink/faults")
    async def faults(body: FaultsIn) -> JSONResponse:
        state.temp_fail, state.perm_fail = body.temp_fail, body.perm_fail
        return JSONResponse(body.model_dump())

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app
