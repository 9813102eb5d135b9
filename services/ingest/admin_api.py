"""The admin API: shops, users and roles, notification settings, activation, simulation.

Mounted on the ingest app with ``app.include_router(build_admin_router(cfg))``;
the router's own lifespan replays ``admin.users`` and ``shop.settings`` before
the first request (see :mod:`ingest.admin_feeds`).

Authentication: HMAC-signed bearer tokens issued at activation, verified without
a lookup, revoked through the in-memory user directory; the platform operator
onboards shops with its own token. Why: see :mod:`ingest.admin_auth` and
docs/admin-api.md.

Durability without a database: every change is a whole-state record on a
compacted topic (``admin.users`` keyed ``shop:email``, ``shop.settings`` keyed by
shop), written with acks=all, and the request gets 2xx only after Kafka
acknowledged it. Every change is also an :class:`AuditEvent` on ``admin.audit``.
A request is validated completely before the first write, so a bad request
writes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import Counter

from ingest.activation import (
    ActivationError,
    activate,
    activation_token,
    check_activation,
    invite,
    new_nonce,
    reinvite,
)
from ingest.admin_auth import AuthError, Principal, authenticate, issue_api_token
from ingest.admin_directory import AdminDirectory, authorized_senders, main_account, user_key
from ingest.admin_feeds import AdminFeeds, SimulationTraces, simulation_send
from ingest.admin_notices import activation_notice
from ingest.admin_signing import parse_signing_keys
from ingest.ingest_settings import IngestSettings
from ingest.roles import ASSIGNABLE_ROLES, Action, is_allowed, refusal_reason
from ingest.settings_change import (
    REGION_RE,
    FieldError,
    InvalidRequest,
    apply_settings_change,
    initial_settings,
    normalize_email,
    settings_document,
)
from ingest.simulation import is_simulation, new_simulation_id, simulation_steps
from shared.chat_platform.payload_fields import is_id
from shared.codec import encode
from shared.errors import BridgeError
from shared.events import (
    AuditEvent,
    ChatContent,
    ChatEvent,
    ChatEventKind,
    NoticeKind,
    ShopSettings,
    ShopUser,
    UserRole,
    UserStatus,
)
from shared.kafka import start_producer
from shared.logging import now_ms
from shared.notice_texts import simulation_text
from shared.notification_window import WindowPolicy
from shared.send_limits import MailSend, SendWindow, limits_from, send_of
from shared.sent_mail_log import SentMailLog, notice_send
from shared.tokens import shop_id_fits_reply_tokens
from shared.topics import ADMIN_AUDIT, ADMIN_USERS, CHAT_EVENTS, MAIL_NOTICES, SHOP_SETTINGS

log = logging.getLogger("ingest.admin")
ADMIN_REQUESTS = Counter("bridge_admin_requests_total",
                         "Admin API requests by action and HTTP status.", ["action", "status"])
MAX_BODY_BYTES = 64 * 1024
SIMULATED_BUYER = "Simulated buyer"


class Refused(BridgeError):
    """A request refused with an HTTP status and a reason (and optional extra fields)."""

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    retry = extra.get("retry_after_s")
    headers = {"Retry-After": str(retry)} if isinstance(retry, int) else None
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


def _json(value: object | None) -> str:
    return "null" if value is None else orjson.dumps(value).decode()


def build_admin_router(settings: IngestSettings,
                       get_producer: Callable[[], AIOKafkaProducer] | None = None, *,
                       clock: Callable[[], int] = now_ms) -> APIRouter:
    """The admin routes under ``/admin``; ``get_producer`` shares the app's producer
    (else the router starts its own), ``clock`` (ms) is injectable for tests."""
    cfg = settings
    keys = parse_signing_keys(cfg.admin_token_keys.get_secret_value())
    window_policy = WindowPolicy.from_settings(cfg)
    operator_token = cfg.admin_operator_token.get_secret_value()
    directory = AdminDirectory()
    traces = SimulationTraces()
    feeds = AdminFeeds(cfg, directory, traces)
    # What every replica sent lately (mail.notices, simulations on admin.audit): the
    # rate limits count it, so they hold however many ingest replicas answer.
    sends = SendWindow(limits_from(cfg))
    sent_log = SentMailLog(cfg.kafka_bootstrap, sends,
                           {MAIL_NOTICES.name: notice_send, ADMIN_AUDIT.name: simulation_send},
                           clock=clock, client_id="ingest-sent-mail")
    own: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if get_producer is None:
            own["producer"] = await start_producer(cfg)
        own["http"] = httpx.AsyncClient(timeout=5.0)
        await feeds.start()
        try:
            await sent_log.start()
            yield
        finally:
            await sent_log.stop()
            await feeds.stop()
            await own["http"].aclose()
            if "producer" in own:
                await own["producer"].stop()

    router = APIRouter(prefix="/admin", lifespan=lifespan)

    def producer() -> AIOKafkaProducer:
        return get_producer() if get_producer is not None else own["producer"]

    # --- request plumbing -----------------------------------------------------

    def caller(request: Request) -> Principal:
        try:
            return authenticate(request.headers.get("authorization"), keys, operator_token,
                                directory.user, clock())
        except AuthError as exc:
            raise Refused(401, exc.reason) from None

    def authorize(principal: Principal, shop_id: str, action: Action) -> None:
        if principal.is_operator:
            return
        if principal.shop_id != shop_id:
            raise Refused(403, f"this token is for shop {principal.shop_id}, not {shop_id}")
        if not is_allowed(principal.role, action):
            raise Refused(403, refusal_reason(principal.role, action))

    def require_shop(shop_id: str) -> list[ShopUser]:
        users = directory.users_of(shop_id)
        if main_account(users) is None:
            raise Refused(404, f"shop {shop_id} is not onboarded")
        return users

    def current_settings(shop_id: str) -> ShopSettings:
        found = directory.settings(shop_id)
        if found is not None:
            return found
        main = main_account(directory.users_of(shop_id))
        return initial_settings(shop_id, main.email if main else "",
                                shop_name="", region="us", now_ms=0, actor="")

    async def body_of(request: Request) -> dict[str, Any]:
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype != "application/json":
            raise Refused(415, f"content-type {ctype!r} not supported; send application/json")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise Refused(413, f"body over {MAX_BODY_BYTES} bytes")
        try:
            data = orjson.loads(raw or b"{}")
        except orjson.JSONDecodeError as exc:
            raise Refused(400, f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise Refused(400, "body: expected a JSON object")
        return data

    async def write(*records: tuple[str, str, bytes | None]) -> None:
        """Write records in order, each acknowledged by Kafka before the next."""
        try:
            for topic, key, value in records:
                await producer().send_and_wait(topic, value, key=key.encode())
        except KafkaError as exc:
            log.warning("kafka unavailable; admin change refused",
                        extra={"error": exc.__class__.__name__})
            raise Refused(503, "the event store is unavailable; retry later",
                          retry_after_s=5) from None

    def audit(principal: Principal | str, shop_id: str, action: str, target: str,
              before: object | None, after: object | None) -> tuple[str, str, bytes]:
        actor = principal if isinstance(principal, str) else principal.name
        event = AuditEvent(audit_id=uuid.uuid4().hex, shop_id=shop_id, actor=actor,
                           action=action, target=target, before=_json(before),
                           after=_json(after), at_ms=clock())
        return ADMIN_AUDIT.name, shop_id, encode(event)

    def user_record(user: ShopUser) -> tuple[str, str, bytes]:
        return ADMIN_USERS.name, user_key(user.shop_id, user.email), encode(user)

    def settings_record(s: ShopSettings) -> tuple[str, str, bytes]:
        return SHOP_SETTINGS.name, s.shop_id, encode(s)

    def notice_record(user: ShopUser, shop_name: str) -> tuple[tuple[str, str, bytes], str]:
        """The activation notice's record and id, counted against the send limits (429
        when over one); write it with :func:`write_counted`."""
        notice = activation_notice(user, activation_token(user, keys),
                                   link_base=cfg.activation_link_base,
                                   marketplace_name=cfg.marketplace_name,
                                   shop_name=shop_name, now_ms=clock())
        count_send(send_of(notice))
        return (MAIL_NOTICES.name, user.shop_id, encode(notice)), notice.notice_id

    def count_send(send: MailSend) -> None:
        """Refuse a send over a limit, else count it now: a concurrent request on this
        replica sees it before the write returns (other replicas, once it is on the log)."""
        over = sends.admit(send)
        if over is not None:
            log.warning("mail refused: over a send limit",
                        extra={"shop_id": send.shop_id, "kind": send.kind, "limit": over.label})
            raise Refused(429, over.reason, code="rate_limited", limit=over.as_dict(),
                          retry_after_s=over.retry_after_s)

    async def write_counted(send_id: str, *records: tuple[str, str, bytes | None]) -> None:
        """:func:`write` for records holding a counted send: uncounted if not written."""
        try:
            await write(*records)
        except Refused:
            sends.forget(send_id)
            raise

    def with_senders(shop_id: str, users: list[ShopUser], actor: str) -> ShopSettings:
        return replace(current_settings(shop_id), authorized_senders=authorized_senders(users),
                       updated_at_ms=clock(), updated_by=actor)

    def route(action: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Turn :class:`Refused`/:class:`InvalidRequest` into 4xx/5xx bodies and count."""

        def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
            async def endpoint(request: Request) -> Response:
                try:
                    response: Response = await handler(request, **request.path_params)
                except Refused as exc:
                    response = _error(exc.status, exc.reason, **exc.extra)
                except InvalidRequest as exc:
                    response = _error(exc.status, str(exc), fields=[
                        {"field": e.field, "reason": e.reason} for e in exc.errors])
                ADMIN_REQUESTS.labels(action, str(response.status_code)).inc()
                return response

            endpoint.__name__ = handler.__name__
            return endpoint

        return wrap

    # --- shops ----------------------------------------------------------------

    @route("create_shop")
    async def create_shop(request: Request) -> Response:
        principal = caller(request)
        if not principal.is_operator:
            raise Refused(403, "only the platform operator onboards shops")
        body = await body_of(request)
        errors: list[FieldError] = []
        shop_id = body.get("shop_id")
        if not isinstance(shop_id, str) or not is_id(shop_id):  # as webhooks take shop ids
            errors.append(FieldError("shop_id", "expected 1-64 ASCII letters, digits, '-' or "
                                                "'_'"))
        elif not shop_id_fits_reply_tokens(shop_id):
            errors.append(FieldError(
                "shop_id", "too long to fit in the shop's reply addresses (64 characters): "
                           "use the platform's numeric shop id or at most 11 characters"))
        email = ""
        try:
            email = normalize_email(body.get("main_account_email"), "main_account_email")
        except InvalidRequest as exc:
            errors.extend(exc.errors)
        region = body.get("region", "us")
        if not isinstance(region, str) or not REGION_RE.match(region):
            errors.append(FieldError("region", "expected a region code such as 'us' or 'gb'"))
        shop_name = body.get("shop_name", "")
        if not isinstance(shop_name, str) or len(shop_name) > 200:
            errors.append(FieldError("shop_name", "expected text of at most 200 characters"))
        unknown = set(body) - {"shop_id", "main_account_email", "region", "shop_name"}
        errors.extend(FieldError(f, "unknown field") for f in sorted(unknown))
        if errors:
            raise InvalidRequest(errors)
        assert isinstance(shop_id, str)
        if directory.shop_exists(shop_id):
            raise Refused(409, f"shop {shop_id} is already onboarded")
        now = clock()
        user = invite(shop_id, email, UserRole.MAIN_ACCOUNT, invited_by="operator", now_ms=now,
                      nonce=new_nonce())
        shop_settings = initial_settings(shop_id, email, shop_name=str(shop_name),
                                         region=str(region), now_ms=now, actor="operator")
        notice, notice_id = notice_record(user, str(shop_name))
        await write_counted(notice_id, user_record(user), settings_record(shop_settings), notice,
                            audit(principal, shop_id, "create_shop", shop_id, None,
                                  {"main_account": user, "settings": shop_settings}))
        directory.put_user(user)
        directory.put_settings(shop_settings)
        return JSONResponse({"shop_id": shop_id, "main_account": _user_doc(user),
                             "settings": settings_document(shop_settings, [user], window_policy)},
                            status_code=201)

    # --- settings -------------------------------------------------------------

    @route("read_settings")
    async def read_settings(request: Request, shop_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.READ_SETTINGS)
        users = require_shop(shop_id)
        return JSONResponse(settings_document(current_settings(shop_id), users, window_policy))

    @route("change_settings")
    async def change_settings(request: Request, shop_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.CHANGE_SETTINGS)
        users = require_shop(shop_id)
        body = await body_of(request)
        before = current_settings(shop_id)
        after = apply_settings_change(before, body, users, now_ms=clock(), actor=principal.name)
        await write(settings_record(after),
                    audit(principal, shop_id, "change_settings", shop_id, before, after))
        directory.put_settings(after)
        return JSONResponse(settings_document(after, users, window_policy))

    # --- users ----------------------------------------------------------------

    @route("list_users")
    async def list_users(request: Request, shop_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.LIST_USERS)
        users = require_shop(shop_id)
        return JSONResponse({"users": [_user_doc(u) for u in users]})

    @route("add_user")
    async def add_user(request: Request, shop_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.ADD_USER)
        users = require_shop(shop_id)
        body = await body_of(request)
        errors: list[FieldError] = []
        email = ""
        try:
            email = normalize_email(body.get("email"), "email")
        except InvalidRequest as exc:
            errors.extend(exc.errors)
        role = body.get("role")
        if not isinstance(role, str) or role not in {r.value for r in ASSIGNABLE_ROLES}:
            errors.append(FieldError("role", "expected 'administrator' or 'cs_agent' (a shop "
                                     "has one main account, set when it is onboarded)"))
        errors.extend(FieldError(f, "unknown field") for f in sorted(set(body) - {"email", "role"}))
        if errors:
            raise InvalidRequest(errors)
        if any(u.email == email for u in users):
            raise Refused(409, f"{email} is already a user of shop {shop_id}")
        user = invite(shop_id, email, str(role), invited_by=principal.name, now_ms=clock(),
                      nonce=new_nonce())
        shop_name = current_settings(shop_id).shop_name
        notice, notice_id = notice_record(user, shop_name)
        await write_counted(notice_id, user_record(user), notice,
                            audit(principal, shop_id, "add_user", email, None, user))
        directory.put_user(user)
        return JSONResponse(_user_doc(user), status_code=201)

    @route("remove_user")
    async def remove_user(request: Request, shop_id: str, email: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.REMOVE_USER)
        users = require_shop(shop_id)
        email = email.strip().lower()
        user = next((u for u in users if u.email == email), None)
        if user is None:
            raise Refused(404, f"{email} is not a user of shop {shop_id}")
        if user.role == UserRole.MAIN_ACCOUNT:
            raise Refused(422, "the main account cannot be removed",
                          fields=[{"field": "email", "reason": "main account"}])
        current = current_settings(shop_id)
        if current.destination_email == email:
            raise Refused(422, f"{email} receives this shop's digests: change the destination "
                          "inbox first", fields=[{"field": "email", "reason": "destination inbox"}])
        remaining = [u for u in users if u.email != email]
        after = with_senders(shop_id, remaining, principal.name)
        await write((ADMIN_USERS.name, user_key(shop_id, email), None), settings_record(after),
                    audit(principal, shop_id, "remove_user", email, user, None))
        directory.drop_user(shop_id, email)
        directory.put_settings(after)
        return Response(status_code=204)

    @route("resend_activation")
    async def resend_activation(request: Request, shop_id: str, email: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.RESEND_ACTIVATION)
        require_shop(shop_id)
        user = directory.user(shop_id, email)
        if user is None:
            raise Refused(404, f"{email} is not a user of shop {shop_id}")
        return await _resend(user, principal.name)

    async def _resend(user: ShopUser, actor: str) -> Response:
        if user.status == UserStatus.ACTIVE:
            raise Refused(409, f"{user.email} is already active")
        fresh = reinvite(user, invited_by=actor, now_ms=clock(), nonce=new_nonce())
        notice, notice_id = notice_record(fresh, current_settings(user.shop_id).shop_name)
        await write_counted(notice_id, user_record(fresh), notice,
                            audit(actor, user.shop_id, "resend_activation", user.email, user,
                                  fresh))
        directory.put_user(fresh)
        return JSONResponse(_user_doc(fresh), status_code=202)

    # --- activation (the link in the email; no bearer token) -------------------

    async def activation_page(request: Request) -> Response:
        token = request.query_params.get("token", "")
        # A page with a button, not an activation on GET: mail scanners and link
        # previews fetch links, and must not use up a single-use link.
        return HTMLResponse(
            "<!doctype html><meta charset='utf-8'><title>Activate your account</title>"
            "<h1>Activate your account</h1><form method='post' action='activate'>"
            f"<input type='hidden' name='token' value='{_attr(token)}'>"
            "<button>Activate</button></form>")

    async def token_from(request: Request) -> str:
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype == "application/x-www-form-urlencoded":
            form = await request.form()
            token = form.get("token")
        else:
            token = (await body_of(request)).get("token")
        if not isinstance(token, str) or not token:
            raise InvalidRequest([FieldError("token", "the token from the activation link is "
                                             "required")], status=400)
        return token

    @route("activate")
    async def activate_user(request: Request) -> Response:
        token = await token_from(request)
        now = clock()
        try:
            user = check_activation(token, keys, directory.user, now)
        except ActivationError as exc:
            extra: dict[str, Any] = {"code": exc.code}
            if exc.can_resend:
                extra["resend"] = {"method": "POST", "path": "/admin/activation/resend",
                                   "body": {"token": token}}
            raise Refused(exc.status, exc.reason, **extra) from None
        active = activate(user, now)
        users = [active if u.email == active.email else u for u in directory.users_of(user.shop_id)]
        after = with_senders(user.shop_id, users, active.email)
        await write(user_record(active), settings_record(after),
                    audit(active.email, user.shop_id, "activate_user", user.email, user, active))
        directory.put_user(active)
        directory.put_settings(after)
        api_token = issue_api_token(active, keys, now_ms=now,
                                    ttl_ms=cfg.admin_token_ttl_days * 86_400_000)
        return JSONResponse({"user": _user_doc(active), "api_token": api_token,
                             "api_token_expires_at_ms":
                                 now + cfg.admin_token_ttl_days * 86_400_000})

    @route("resend_expired_activation")
    async def resend_expired(request: Request) -> Response:
        token = await token_from(request)
        try:
            check_activation(token, keys, directory.user, clock())
        except ActivationError as exc:
            if exc.code == "superseded":
                # Only the newest link may ask for another: an old link from a mailbox
                # must not be a way to make us send mail.
                raise Refused(409, exc.reason, code=exc.code) from None
            if not exc.can_resend or exc.user is None:
                raise Refused(exc.status, exc.reason, code=exc.code) from None
            # The fresh link goes to the address on record, never to one the caller names.
            return await _resend(exc.user, exc.user.email)
        raise Refused(409, "this activation link is still valid: use it to activate")

    # --- simulation -----------------------------------------------------------

    @route("run_simulation")
    async def run_simulation(request: Request, shop_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.RUN_SIMULATION)
        require_shop(shop_id)
        shop = current_settings(shop_id)
        if not shop.alerts_enabled:
            raise Refused(409, "unread message email alerts are off for this shop: turn them on "
                          "to simulate", fields=[{"field": "alerts_enabled", "reason": "off"}])
        sim_id = new_simulation_id()
        started = clock()
        send_id = f"simulation-{sim_id}"
        count_send(MailSend(send_id, NoticeKind.SIMULATION, shop_id, shop.destination_email,
                            started))
        try:
            return await start_simulation(principal, shop, sim_id, started)
        except Refused:
            sends.forget(send_id)
            raise

    async def start_simulation(principal: Principal, shop: ShopSettings, sim_id: str,
                               started: int) -> Response:
        shop_id = shop.shop_id
        trace = traces.trace(shop_id, sim_id)
        trace.started_at_ms = started
        text = simulation_text(cfg.marketplace_name)
        if cfg.simulation_mode == "direct":
            event = ChatEvent(kind=ChatEventKind.BUYER_MESSAGE, shop_id=shop_id,
                              conversation_id=sim_id, message_id=f"{sim_id}-1",
                              sent_at_ms=trace.started_at_ms, buyer_id="sim-buyer",
                              buyer_name=SIMULATED_BUYER, content=ChatContent(text=text),
                              received_at_ms=trace.started_at_ms)
            await write((CHAT_EVENTS.name, event.conversation_key, encode(event)))
        else:
            try:
                resp = await own["http"].post(
                    f"{cfg.platform_base_url}/sandbox/buyer_messages",
                    json={"shop_id": shop_id, "conversation_id": sim_id, "text": text,
                          "buyer_name": SIMULATED_BUYER, "buyer_id": "sim-buyer"})
                if resp.status_code >= 300:
                    trace.start_error = (f"the sandbox platform refused the simulated buyer "
                                         f"message: HTTP {resp.status_code} {resp.text[:200]}")
            except httpx.HTTPError as exc:
                trace.start_error = f"the sandbox platform is unreachable: {exc!r}"
            if trace.start_error:
                raise Refused(502, trace.start_error, simulation_id=sim_id)
        # The audit record is what other replicas count this simulation's digest by.
        await write(audit(principal, shop_id, "run_simulation", sim_id, None,
                          {"simulation_id": sim_id, "mode": cfg.simulation_mode,
                           "destination_email": shop.destination_email}))
        return JSONResponse({"simulation_id": sim_id,
                             "status_url": f"/admin/shops/{shop_id}/simulations/{sim_id}",
                             "destination_email": shop.destination_email,
                             "digest_due_in_s": window_policy.for_shop(shop).quiet_ms / 1000},
                            status_code=202)

    @route("read_simulation")
    async def read_simulation(request: Request, shop_id: str, simulation_id: str) -> Response:
        principal = caller(request)
        authorize(principal, shop_id, Action.READ_SIMULATION)
        require_shop(shop_id)
        trace = traces.get(simulation_id) if is_simulation(simulation_id) else None
        if trace is None or trace.shop_id != shop_id:
            raise Refused(404, f"no simulation {simulation_id} for shop {shop_id} (status is "
                          "kept for recent simulations since this service started)")
        shop = current_settings(shop_id)
        steps = simulation_steps(trace, shop, now_ms=clock(), windows=window_policy.for_shop(shop))
        failed = next((s for s in steps if s.state == "failed"), None)
        overall = ("failed" if failed else "ok" if all(s.state == "ok" for s in steps)
                   else "in_progress")
        return JSONResponse({"simulation_id": simulation_id, "status": overall,
                             "reason": failed.detail if failed else "",
                             "steps": [s.as_dict() for s in steps]})

    router.add_api_route("/shops", create_shop, methods=["POST"])
    router.add_api_route("/shops/{shop_id}/settings", read_settings, methods=["GET"])
    router.add_api_route("/shops/{shop_id}/settings", change_settings, methods=["PATCH"])
    router.add_api_route("/shops/{shop_id}/users", list_users, methods=["GET"])
    router.add_api_route("/shops/{shop_id}/users", add_user, methods=["POST"])
    router.add_api_route("/shops/{shop_id}/users/{email}", remove_user, methods=["DELETE"])
    router.add_api_route("/shops/{shop_id}/users/{email}/activation", resend_activation,
                         methods=["POST"])
    router.add_api_route("/activate", activation_page, methods=["GET"])
    router.add_api_route("/activate", activate_user, methods=["POST"])
    router.add_api_route("/activation/resend", resend_expired, methods=["POST"])
    router.add_api_route("/shops/{shop_id}/simulations", run_simulation, methods=["POST"])
    router.add_api_route("/shops/{shop_id}/simulations/{simulation_id}", read_simulation,
                         methods=["GET"])
    return router


def _user_doc(user: ShopUser) -> dict[str, Any]:
    return {"shop_id": user.shop_id, "email": user.email, "role": user.role,
            "status": user.status, "invited_at_ms": user.invited_at_ms,
            "activation_expires_at_ms": (user.activation_expires_at_ms
                                         if user.status == UserStatus.PENDING else None),
            "activated_at_ms": user.activated_at_ms or None}


def _attr(value: str) -> str:
    return (value.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&quot;")
            .replace("<", "&lt;"))
