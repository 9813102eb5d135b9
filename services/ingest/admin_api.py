"""The admin API: shops, users and roles, notification settings, activation, simulation.

Mounted on the ingest app with ``app.include_router(build_admin_router(cfg))``; the
router's lifespan starts the shared :class:`~ingest.admin_state.AdminState` (it replays
``admin.users`` and ``shop.settings`` before the first request, see
:mod:`ingest.admin_feeds`) and puts it on ``app.state``, where the ``admin_state``
dependency finds it.

Each route is a module-level function; what it needs comes in through ``Depends``:
the caller (:func:`caller`, HMAC-signed bearer tokens verified without a lookup and
revoked through the in-memory user directory, or the platform operator's token; why:
:mod:`ingest.admin_auth` and docs/admin-api.md), the role check for the shop in the
path (:class:`ShopAccess`), and the request body as a pydantic model (:class:`JsonBody`).
Dependencies run in that order, so a stranger learns nothing from a body's errors.
:class:`AdminRoute` turns :class:`Refused` and :class:`InvalidRequest` into the JSON
error bodies and counts every answer. A request is validated completely before the
first write, so a bad request writes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar
from urllib.parse import urlencode

import httpx
import orjson
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import Counter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from ingest.activation import (
    ActivationError,
    activate,
    check_activation,
    invite,
    new_nonce,
    reinvite,
)
from ingest.admin_auth import AuthError, Principal, authenticate, issue_api_token
from ingest.admin_directory import user_key
from ingest.admin_notices import sign_in_notice
from ingest.admin_state import AdminState, Refused, settings_record, user_record
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
from shared.events import (
    ChatContent,
    ChatEvent,
    ChatEventKind,
    NoticeKind,
    ShopSettings,
    ShopUser,
    UserRole,
    UserStatus,
)
from shared.logging import now_ms
from shared.notice_texts import simulation_text
from shared.send_limits import MailSend, send_of
from shared.tokens import shop_id_fits_reply_tokens
from shared.topics import ADMIN_USERS, CHAT_EVENTS, DAY_MS, MAIL_NOTICES

__all__ = ["Refused", "build_admin_router"]

ADMIN_REQUESTS = Counter(
    "bridge_admin_requests_total",
    "Admin API requests by action and HTTP status.",
    ["action", "status"],
)
MAX_BODY_BYTES = 64 * 1024
SIMULATED_BUYER = "Simulated buyer"


# --- answers ------------------------------------------------------------------------


def _error(status: int, reason: str, **extra: Any) -> JSONResponse:
    retry = extra.get("retry_after_s")
    headers = {"Retry-After": str(retry)} if isinstance(retry, int) else None
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


class AdminRoute(APIRoute):
    """A route whose refusals (raised by it or by its dependencies) become JSON error
    bodies, and whose every answer is counted under its name as the action."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        action = self.name

        async def answer(request: Request) -> Response:
            try:
                response = await handler(request)
            except Refused as exc:
                response = _error(exc.status, exc.reason, **exc.extra)
            except InvalidRequest as exc:
                response = _error(
                    exc.status,
                    str(exc),
                    fields=[{"field": e.field, "reason": e.reason} for e in exc.errors],
                )
            ADMIN_REQUESTS.labels(action, str(response.status_code)).inc()
            return response

        return answer


# --- dependencies -------------------------------------------------------------------


def admin_state(request: Request) -> AdminState:
    """The process's :class:`AdminState`, put on ``app.state`` by the router's lifespan."""
    state: AdminState = request.app.state.admin
    return state


Admin = Annotated[AdminState, Depends(admin_state)]


def caller(request: Request, admin: Admin) -> Principal:
    """Who is calling, from the bearer token (401 with the reason when no one valid)."""
    try:
        return authenticate(
            request.headers.get("authorization"),
            admin.keys,
            admin.operator_token,
            admin.directory.user,
            admin.clock(),
        )
    except AuthError as exc:
        raise Refused(401, exc.reason) from None


Caller = Annotated[Principal, Depends(caller)]


def operator(principal: Caller) -> Principal:
    if not principal.is_operator:
        raise Refused(403, "only the platform operator onboards shops")
    return principal


@dataclass(frozen=True, slots=True)
class Access:
    """A caller allowed an action on an onboarded shop, with the shop's users."""

    principal: Principal
    shop_id: str
    users: list[ShopUser]


class ShopAccess:
    """Dependency: the caller may take ``action`` on the shop in the path (403 if not),
    and the shop is onboarded (404 if not)."""

    def __init__(self, action: Action) -> None:
        self.action = action

    def __call__(self, shop_id: str, principal: Caller, admin: Admin) -> Access:
        if not principal.is_operator:
            if principal.shop_id != shop_id:
                raise Refused(403, f"this token is for shop {principal.shop_id}, not {shop_id}")
            if not is_allowed(principal.role, self.action):
                raise Refused(403, refusal_reason(principal.role, self.action))
        return Access(principal, shop_id, admin.require_shop(shop_id))


def access(action: Action) -> Any:
    return Depends(ShopAccess(action))


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 415 for another content type, 413 over the size cap,
    400 when it is not a JSON object."""
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


class AdminRequest(BaseModel):
    """A request body: exact JSON types, no unknown fields. A field's ``description`` is the
    reason given when its value has the wrong type or is missing; a validator's
    ``ValueError`` text is the reason for a value of the right type that is not allowed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def field_errors(cls, exc: ValidationError) -> list[FieldError]:
        known: list[FieldError] = []
        unknown: list[FieldError] = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                unknown.append(FieldError(name, "unknown field"))
            elif error["type"] == "value_error":
                known.append(FieldError(name, str(error["ctx"]["error"])))
            else:
                field = cls.model_fields.get(name)
                reason = field.description if field and field.description else error["msg"]
                known.append(FieldError(name, reason))
        return known + sorted(unknown, key=lambda e: e.field)


M = TypeVar("M", bound=AdminRequest)


class JsonBody(Generic[M]):
    """Dependency: the body as ``model`` (422 listing every bad field, by name)."""

    def __init__(self, model: type[M]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> M:
        data = await json_object(request)
        try:
            return self.model.model_validate(data)
        except ValidationError as exc:
            raise InvalidRequest(self.model.field_errors(exc)) from None


def _email_address(value: str) -> str:
    try:
        return normalize_email(value, "")
    except InvalidRequest as exc:
        raise ValueError(exc.errors[0].reason) from None


# An address, lower-cased (normalize_email's rule); the reason names the field it is in.
EmailAddress = Annotated[
    str, AfterValidator(_email_address), Field(description="expected an email address string")
]


class NewShop(AdminRequest):
    ID_REASON: ClassVar[str] = "expected 1-64 ASCII letters, digits, '-' or '_'"

    shop_id: str = Field(description=ID_REASON)
    main_account_email: EmailAddress
    region: str = Field("us", description="expected a region code such as 'us' or 'gb'")
    shop_name: str = Field(
        "", max_length=200, description="expected text of at most 200 characters"
    )

    @field_validator("shop_id")
    @classmethod
    def _shop_id(cls, value: str) -> str:
        if not is_id(value):  # as webhooks take shop ids
            raise ValueError(cls.ID_REASON)
        if not shop_id_fits_reply_tokens(value):
            raise ValueError(
                "too long to fit in the shop's reply addresses (64 characters): "
                "use the platform's numeric shop id or at most 11 characters"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not REGION_RE.match(value):
            raise ValueError("expected a region code such as 'us' or 'gb'")
        return value


class NewUser(AdminRequest):
    ROLE_REASON: ClassVar[str] = (
        "expected 'administrator' or 'cs_agent' (a shop has one "
        "main account, set when it is onboarded)"
    )

    email: EmailAddress
    role: str = Field(description=ROLE_REASON)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in {r.value for r in ASSIGNABLE_ROLES}:
            raise ValueError(cls.ROLE_REASON)
        return value


async def activation_token_of(request: Request) -> str:
    """The token from an activation link, posted by its page's form or as JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip()
    if ctype == "application/x-www-form-urlencoded":
        form = await request.form()
        token = form.get("token")
    else:
        token = (await json_object(request)).get("token")
    if not isinstance(token, str) or not token:
        raise InvalidRequest(
            [FieldError("token", "the token from the activation link is required")], status=400
        )
    return token


# --- shops ----------------------------------------------------------------------------


async def create_shop(
    principal: Annotated[Principal, Depends(operator)],
    new: Annotated[NewShop, Depends(JsonBody(NewShop))],
    admin: Admin,
) -> Response:
    user, shop_settings = await onboard_shop(admin, principal, new)
    return JSONResponse(
        {
            "shop_id": new.shop_id,
            "main_account": user_document(user),
            "settings": settings_document(shop_settings, [user], admin.window_policy),
        },
        status_code=201,
    )


async def onboard_shop(
    admin: AdminState, principal: Principal, new: NewShop
) -> tuple[ShopUser, ShopSettings]:
    """Onboard a shop (the operator's act): its main account, invited, and its settings."""
    if admin.directory.shop_exists(new.shop_id):
        raise Refused(409, f"shop {new.shop_id} is already onboarded")
    now = admin.clock()
    user = invite(
        new.shop_id,
        new.main_account_email,
        UserRole.MAIN_ACCOUNT,
        invited_by="operator",
        now_ms=now,
        nonce=new_nonce(),
    )
    shop_settings = initial_settings(
        new.shop_id,
        new.main_account_email,
        shop_name=new.shop_name,
        region=new.region,
        now_ms=now,
        actor="operator",
    )
    notice, notice_id = await admin.notice_record(user, new.shop_name)
    await admin.write_counted(
        notice_id,
        user_record(user),
        settings_record(shop_settings),
        notice,
        admin.audit(
            principal.name,
            new.shop_id,
            "create_shop",
            new.shop_id,
            None,
            {"main_account": user, "settings": shop_settings},
        ),
    )
    admin.directory.put_user(user)
    admin.directory.put_settings(shop_settings)
    return user, shop_settings


async def list_shops(
    _: Annotated[Principal, Depends(operator)],
    admin: Admin,
    after: str = "",
    limit: int = 100,
) -> Response:
    """Onboarded shops in id order, ``limit`` (1-500) a page after the id ``after``."""
    page = shops_page(admin, after=after, limit=limit)
    return JSONResponse(
        {
            "shops": [shop_summary(admin, shop_id) for shop_id in page],
            "next_after": page[-1] if len(page) == limit else None,
        }
    )


def shops_page(admin: AdminState, *, after: str = "", limit: int = 100) -> list[str]:
    if not 1 <= limit <= 500:
        raise InvalidRequest([FieldError("limit", "expected a number from 1 to 500")], status=422)
    return admin.directory.shop_ids(after, limit)


def shop_summary(admin: AdminState, shop_id: str) -> dict[str, Any]:
    """What the operator sees of a shop at a glance."""
    users = admin.directory.users_of(shop_id)
    settings = admin.current_settings(shop_id)
    main = next((u for u in users if u.role == UserRole.MAIN_ACCOUNT), None)
    return {
        "shop_id": shop_id,
        "shop_name": settings.shop_name,
        "alerts_enabled": settings.alerts_enabled,
        "destination_email": settings.destination_email,
        "destination_kind": settings.destination_kind,
        "region": settings.region,
        "main_account": user_document(main) if main else None,
        "users": len(users),
        "active_users": sum(u.status == UserStatus.ACTIVE for u in users),
    }


# --- settings -------------------------------------------------------------------------


async def read_settings(
    shop: Annotated[Access, access(Action.READ_SETTINGS)], admin: Admin
) -> Response:
    return JSONResponse(
        settings_document(admin.current_settings(shop.shop_id), shop.users, admin.window_policy)
    )


async def change_settings(
    shop: Annotated[Access, access(Action.CHANGE_SETTINGS)],
    change: Annotated[dict[str, Any], Depends(json_object)],
    admin: Admin,
) -> Response:
    after = await change_shop_settings(admin, shop, change)
    return JSONResponse(settings_document(after, shop.users, admin.window_policy))


async def change_shop_settings(
    admin: AdminState, shop: Access, change: dict[str, Any]
) -> ShopSettings:
    """Validate ``change`` whole (:class:`InvalidRequest` listing every bad field), write it."""
    before = admin.current_settings(shop.shop_id)
    after = apply_settings_change(
        before, change, shop.users, now_ms=admin.clock(), actor=shop.principal.name
    )
    await admin.write(
        settings_record(after),
        admin.audit(
            shop.principal.name, shop.shop_id, "change_settings", shop.shop_id, before, after
        ),
    )
    admin.directory.put_settings(after)
    return after


# --- users ----------------------------------------------------------------------------


async def list_users(shop: Annotated[Access, access(Action.LIST_USERS)]) -> Response:
    return JSONResponse({"users": [user_document(u) for u in shop.users]})


async def add_user(
    shop: Annotated[Access, access(Action.ADD_USER)],
    new: Annotated[NewUser, Depends(JsonBody(NewUser))],
    admin: Admin,
) -> Response:
    return JSONResponse(user_document(await add_shop_user(admin, shop, new)), status_code=201)


async def add_shop_user(admin: AdminState, shop: Access, new: NewUser) -> ShopUser:
    """Invite a user (409 when already one); the activation email counts against the limits."""
    if any(u.email == new.email for u in shop.users):
        raise Refused(409, f"{new.email} is already a user of shop {shop.shop_id}")
    user = invite(
        shop.shop_id,
        new.email,
        new.role,
        invited_by=shop.principal.name,
        now_ms=admin.clock(),
        nonce=new_nonce(),
    )
    notice, notice_id = await admin.notice_record(
        user, admin.current_settings(shop.shop_id).shop_name
    )
    await admin.write_counted(
        notice_id,
        user_record(user),
        notice,
        admin.audit(shop.principal.name, shop.shop_id, "add_user", new.email, None, user),
    )
    admin.directory.put_user(user)
    return user


async def remove_user(
    shop: Annotated[Access, access(Action.REMOVE_USER)], email: str, admin: Admin
) -> Response:
    await remove_shop_user(admin, shop, email)
    return Response(status_code=204)


async def remove_shop_user(admin: AdminState, shop: Access, email: str) -> None:
    """Remove a user: never the main account, never the current destination inbox."""
    shop_id, actor = shop.shop_id, shop.principal.name
    email = email.strip().lower()
    user = next((u for u in shop.users if u.email == email), None)
    if user is None:
        raise Refused(404, f"{email} is not a user of shop {shop_id}")
    if user.role == UserRole.MAIN_ACCOUNT:
        raise Refused(
            422,
            "the main account cannot be removed",
            fields=[{"field": "email", "reason": "main account"}],
        )
    if admin.current_settings(shop_id).destination_email == email:
        raise Refused(
            422,
            f"{email} receives this shop's digests: change the destination inbox first",
            fields=[{"field": "email", "reason": "destination inbox"}],
        )
    remaining = [u for u in shop.users if u.email != email]
    after = admin.with_senders(shop_id, remaining, actor)
    await admin.write(
        (ADMIN_USERS.name, user_key(shop_id, email), None),
        settings_record(after),
        admin.audit(actor, shop_id, "remove_user", email, user, None),
    )
    admin.directory.drop_user(shop_id, email, at_ms=admin.clock())
    admin.directory.put_settings(after)


async def resend_activation(
    shop: Annotated[Access, access(Action.RESEND_ACTIVATION)], email: str, admin: Admin
) -> Response:
    user = admin.directory.user(shop.shop_id, email)
    if user is None:
        raise Refused(404, f"{email} is not a user of shop {shop.shop_id}")
    return JSONResponse(
        user_document(await resend_activation_of(admin, user, shop.principal.name)),
        status_code=202,
    )


async def resend_activation_of(admin: AdminState, user: ShopUser, actor: str) -> ShopUser:
    """A fresh activation link for a pending user (the old one stops working)."""
    if user.status == UserStatus.ACTIVE:
        raise Refused(409, f"{user.email} is already active")
    fresh = reinvite(user, invited_by=actor, now_ms=admin.clock(), nonce=new_nonce())
    notice, notice_id = await admin.notice_record(
        fresh, admin.current_settings(user.shop_id).shop_name
    )
    await admin.write_counted(
        notice_id,
        user_record(fresh),
        notice,
        admin.audit(actor, user.shop_id, "resend_activation", user.email, user, fresh),
    )
    admin.directory.put_user(fresh)
    return fresh


# --- activation (the link in the email; no bearer token) -------------------------------


async def activation_page(request: Request) -> Response:
    # Links in emails sent before the console existed: its activation page explains the
    # link's state in words. A GET never activates (mail scanners fetch links).
    return RedirectResponse(
        f"/console/activate?{urlencode({'token': request.query_params.get('token', '')})}",
        status_code=303,
    )


async def activate_user(
    token: Annotated[str, Depends(activation_token_of)], admin: Admin
) -> Response:
    try:
        active = await activate_link(admin, token)
    except ActivationError as exc:
        extra: dict[str, Any] = {"code": exc.code}
        if exc.can_resend:
            extra["resend"] = {
                "method": "POST",
                "path": "/admin/activation/resend",
                "body": {"token": token},
            }
        raise Refused(exc.status, exc.reason, **extra) from None
    api_token, expires_at_ms = new_api_token(admin, active)
    return JSONResponse(
        {
            "user": user_document(active),
            "api_token": api_token,
            "api_token_expires_at_ms": expires_at_ms,
        }
    )


def new_api_token(admin: AdminState, user: ShopUser) -> tuple[str, int]:
    """A fresh API token for an activated user, and when it expires (ms). Earlier tokens
    stay valid until they expire; re-inviting or removing the user ends them all."""
    now = admin.clock()
    expires_at_ms = now + admin.cfg.admin_token_ttl_days * DAY_MS
    token = issue_api_token(user, admin.keys, now_ms=now, ttl_ms=expires_at_ms - now)
    return token, expires_at_ms


async def activate_link(admin: AdminState, token: str) -> ShopUser:
    """Activate the user of an activation link (:class:`ActivationError` says why not);
    the shop's authorized senders gain the address."""
    now = admin.clock()
    user = check_activation(token, admin.keys, admin.directory.user, now)
    active = activate(user, now)
    users = [
        active if u.email == active.email else u for u in admin.directory.users_of(user.shop_id)
    ]
    after = admin.with_senders(user.shop_id, users, active.email)
    await admin.write(
        user_record(active),
        settings_record(after),
        admin.audit(active.email, user.shop_id, "activate_user", user.email, user, active),
    )
    admin.directory.put_user(active)
    admin.directory.put_settings(after)
    return active


async def resend_expired(
    token: Annotated[str, Depends(activation_token_of)], admin: Admin
) -> Response:
    return JSONResponse(user_document(await resend_for_link(admin, token)), status_code=202)


async def resend_for_link(admin: AdminState, token: str) -> ShopUser:
    """A fresh link for an expired one that is still the newest, to the address on record."""
    try:
        check_activation(token, admin.keys, admin.directory.user, admin.clock())
    except ActivationError as exc:
        if exc.code == "superseded":
            # Only the newest link may ask for another: an old link from a mailbox
            # must not be a way to make us send mail.
            raise Refused(409, exc.reason, code=exc.code) from None
        if not exc.can_resend or exc.user is None:
            raise Refused(exc.status, exc.reason, code=exc.code) from None
        # The fresh link goes to the address on record, never to one the caller names.
        return await resend_activation_of(admin, exc.user, exc.user.email)
    raise Refused(409, "this activation link is still valid: use it to activate")


async def send_sign_in_link(
    admin: AdminState, shop_id: str, email: str, *, token: str, link_base: str, ttl_ms: int
) -> None:
    """Mail an activated user the console sign-in link ``token``; counted against the send
    limits (429 when over one). Nothing for an address that is not an activated user."""
    user = admin.directory.user(shop_id, email)
    if user is None or user.status != UserStatus.ACTIVE:
        return
    now = admin.clock()
    notice = sign_in_notice(
        user,
        token,
        link_base=link_base,
        marketplace_name=admin.cfg.marketplace_name,
        shop_name=admin.current_settings(shop_id).shop_name,
        now_ms=now,
        expires_at_ms=now + ttl_ms,
        notice_id=f"sign-in-{new_nonce()}",
    )
    await admin.count_send(send_of(notice))
    await admin.write_counted(notice.notice_id, (MAIL_NOTICES.name, shop_id, encode(notice)))


# --- simulation -----------------------------------------------------------------------


async def run_simulation(
    shop: Annotated[Access, access(Action.RUN_SIMULATION)], admin: Admin
) -> Response:
    return JSONResponse(await start_simulation(admin, shop), status_code=202)


async def start_simulation(admin: AdminState, shop: Access) -> dict[str, Any]:
    """Start a simulated conversation (alerts must be on; counted against the limits)."""
    settings = admin.current_settings(shop.shop_id)
    if not settings.alerts_enabled:
        raise Refused(
            409,
            "unread message email alerts are off for this shop: turn them on to simulate",
            fields=[{"field": "alerts_enabled", "reason": "off"}],
        )
    sim_id = new_simulation_id()
    started = admin.clock()
    send_id = f"simulation-{sim_id}"
    await admin.count_send(
        MailSend(send_id, NoticeKind.SIMULATION, shop.shop_id, settings.destination_email, started)
    )
    try:
        return await _start_simulation(admin, shop.principal, settings, sim_id, started)
    except Refused:
        admin.sends.forget(send_id)
        raise


async def _start_simulation(
    admin: AdminState, principal: Principal, shop: ShopSettings, sim_id: str, started: int
) -> dict[str, Any]:
    cfg, shop_id = admin.cfg, shop.shop_id
    trace = admin.traces.trace(shop_id, sim_id)
    trace.started_at_ms = started
    text = simulation_text(cfg.marketplace_name)
    if cfg.simulation_mode == "direct":
        event = ChatEvent(
            kind=ChatEventKind.BUYER_MESSAGE,
            shop_id=shop_id,
            conversation_id=sim_id,
            message_id=f"{sim_id}-1",
            sent_at_ms=trace.started_at_ms,
            buyer_id="sim-buyer",
            buyer_name=SIMULATED_BUYER,
            content=ChatContent(text=text),
            received_at_ms=trace.started_at_ms,
        )
        await admin.write((CHAT_EVENTS.name, event.conversation_key, encode(event)))
    else:
        try:
            resp = await admin.http.post(
                f"{cfg.platform_base_url}/sandbox/buyer_messages",
                json={
                    "shop_id": shop_id,
                    "conversation_id": sim_id,
                    "text": text,
                    "buyer_name": SIMULATED_BUYER,
                    "buyer_id": "sim-buyer",
                },
            )
            if resp.status_code >= 300:
                trace.start_error = (
                    f"the sandbox platform refused the simulated buyer "
                    f"message: HTTP {resp.status_code} {resp.text[:200]}"
                )
        except httpx.HTTPError as exc:
            trace.start_error = f"the sandbox platform is unreachable: {exc!r}"
        if trace.start_error:
            raise Refused(502, trace.start_error, simulation_id=sim_id)
    # The audit record is what other replicas count this simulation's digest by.
    await admin.write(
        admin.audit(
            principal.name,
            shop_id,
            "run_simulation",
            sim_id,
            None,
            {
                "simulation_id": sim_id,
                "mode": cfg.simulation_mode,
                "destination_email": shop.destination_email,
            },
        )
    )
    return {
        "simulation_id": sim_id,
        "status_url": f"/admin/shops/{shop_id}/simulations/{sim_id}",
        "destination_email": shop.destination_email,
        "digest_due_in_s": admin.window_policy.for_shop(shop).quiet_ms / 1000,
    }


async def read_simulation(
    shop: Annotated[Access, access(Action.READ_SIMULATION)], simulation_id: str, admin: Admin
) -> Response:
    return JSONResponse(simulation_status(admin, shop, simulation_id))


def simulation_status(admin: AdminState, shop: Access, simulation_id: str) -> dict[str, Any]:
    """Each step's state and the first failure's reason (404 for an unknown simulation)."""
    trace = admin.traces.get(simulation_id) if is_simulation(simulation_id) else None
    if trace is None or trace.shop_id != shop.shop_id:
        raise Refused(
            404,
            f"no simulation {simulation_id} for shop {shop.shop_id} (status is "
            "kept for recent simulations since this service started)",
        )
    settings = admin.current_settings(shop.shop_id)
    steps = simulation_steps(
        trace, settings, now_ms=admin.clock(), windows=admin.window_policy.for_shop(settings)
    )
    failed = next((s for s in steps if s.state == "failed"), None)
    overall = "failed" if failed else "ok" if all(s.state == "ok" for s in steps) else "in_progress"
    return {
        "simulation_id": simulation_id,
        "status": overall,
        "reason": failed.detail if failed else "",
        "steps": [s.as_dict() for s in steps],
    }


# --- the router -----------------------------------------------------------------------

ROUTES: list[tuple[str, str, Callable[..., Awaitable[Response]], str]] = [
    # (method, path, handler, action: the metric label)
    ("GET", "/shops", list_shops, "list_shops"),
    ("POST", "/shops", create_shop, "create_shop"),
    ("GET", "/shops/{shop_id}/settings", read_settings, "read_settings"),
    ("PATCH", "/shops/{shop_id}/settings", change_settings, "change_settings"),
    ("GET", "/shops/{shop_id}/users", list_users, "list_users"),
    ("POST", "/shops/{shop_id}/users", add_user, "add_user"),
    ("DELETE", "/shops/{shop_id}/users/{email}", remove_user, "remove_user"),
    ("POST", "/shops/{shop_id}/users/{email}/activation", resend_activation, "resend_activation"),
    ("GET", "/activate", activation_page, "activation_page"),
    ("POST", "/activate", activate_user, "activate"),
    ("POST", "/activation/resend", resend_expired, "resend_expired_activation"),
    ("POST", "/shops/{shop_id}/simulations", run_simulation, "run_simulation"),
    ("GET", "/shops/{shop_id}/simulations/{simulation_id}", read_simulation, "read_simulation"),
]


def build_admin_router(
    settings: IngestSettings,
    get_producer: Callable[[], AIOKafkaProducer] | None = None,
    *,
    clock: Callable[[], int] = now_ms,
) -> APIRouter:
    """The admin routes under ``/admin``; ``get_producer`` shares the app's producer
    (else the router starts its own), ``clock`` (ms) is injectable for tests."""
    state = AdminState(settings, get_producer, clock=clock)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        app.state.admin = state
        try:
            yield
        finally:
            await state.stop()

    router = APIRouter(prefix="/admin", lifespan=lifespan, route_class=AdminRoute)
    for method, path, handler, action in ROUTES:
        router.add_api_route(path, handler, methods=[method], name=action)
    return router


def user_document(user: ShopUser) -> dict[str, Any]:
    return {
        "shop_id": user.shop_id,
        "email": user.email,
        "role": user.role,
        "status": user.status,
        "invited_at_ms": user.invited_at_ms,
        "activation_expires_at_ms": (
            user.activation_expires_at_ms if user.status == UserStatus.PENDING else None
        ),
        "activated_at_ms": user.activated_at_ms or None,
    }
