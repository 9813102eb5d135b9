"""The seller console's routes: the admin API's actions as server-rendered pages.

No rule is written twice: every page calls the functions the JSON routes call
(:mod:`ingest.admin_api`), checks access with the same :class:`~ingest.admin_api.ShopAccess`
and validates with the same request models, so a 422's field errors become the form's
field messages and a refusal (403, 409, 429...) becomes a message on the page.

Sessions and CSRF: :mod:`ingest.console.session`. Every form post carries the session's
CSRF token (403 page otherwise); posts must also come from this origin when the browser
says where they come from (``Origin``). Pages are ``no-store``, referred only to this
site (an activation token is in the URL) and framed by nobody.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from ingest.activation import ActivationError, check_activation
from ingest.admin_api import (
    MAX_BODY_BYTES,
    Access,
    NewShop,
    NewUser,
    ShopAccess,
    activate_link,
    add_shop_user,
    change_shop_settings,
    new_api_token,
    onboard_shop,
    remove_shop_user,
    resend_activation_of,
    resend_for_link,
    send_sign_in_link,
    shop_summary,
    shops_page,
    simulation_status,
    start_simulation,
)
from ingest.admin_auth import AuthError, Principal, authenticate
from ingest.admin_state import AdminState, Refused
from ingest.console.session import (
    COOKIE_NAME,
    CSRF_FIELD,
    Session,
    csrf_ok,
    csrf_token,
    issue_operator_session,
    issue_sign_in_link,
    issue_user_session,
    verify_session,
    verify_sign_in_link,
)
from ingest.roles import Action, is_allowed, refusal_reason
from ingest.settings_change import FieldError, InvalidRequest, settings_document
from shared.events import DestinationKind, ShopUser, UserRole, UserStatus
from shared.region_time import region_time_zone

HERE = Path(__file__).parent
PREFIX = "/console"
# The set-up guides, served from the repository's docs/ (where ``console_guides_url`` is
# empty; an image, which holds no docs, links to where they are published).
GUIDES = HERE.resolve().parents[2] / "docs"
GUIDE_OF = {
    DestinationKind.MAILBOX: "setup-mailbox",
    DestinationKind.SALESFORCE: "setup-salesforce",
    DestinationKind.ZENDESK: "setup-zendesk",
    DestinationKind.GORGIAS: "setup-gorgias",
    DestinationKind.OTHER_HELPDESK: "setup-mailbox",
}
KIND_NAMES = {
    DestinationKind.MAILBOX: "Mailbox",
    DestinationKind.SALESFORCE: "Salesforce",
    DestinationKind.ZENDESK: "Zendesk",
    DestinationKind.GORGIAS: "Gorgias",
    DestinationKind.OTHER_HELPDESK: "Other helpdesk",
}
ROLE_NAMES = {
    UserRole.MAIN_ACCOUNT: "Main account",
    UserRole.ADMINISTRATOR: "Administrator",
    UserRole.CS_AGENT: "Customer-service agent",
}
STEP_NAMES = {
    "webhook_accepted": "Buyer message sent",
    "digest_sent": "Digest delivered",
    "reply_received": "Reply received",
    "delivered_to_chat": "Delivered to the buyer",
}
# What a page says after a redirect (a code in the URL, never text from it).
DONE = {
    "saved": "Settings saved.",
    "added": "User added: the activation email is on its way.",
    "resent": "A new activation link was sent; the previous one no longer works.",
    "removed": "User removed.",
    "onboarded": "Shop onboarded: its main account got an activation email.",
    "signed_out": "You are signed out.",
}
SIGN_IN_LINK_TTL_MS = 30 * 60_000
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    # Not "no-referrer": browsers then send "Origin: null" on the console's own posts.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
MAX_FORM_BYTES = MAX_BODY_BYTES  # the admin API's body cap: a form is a few fields


# --- plumbing ------------------------------------------------------------------------


def _signed_out(request: Request) -> dict[str, int]:
    """Signed-out session ids on this replica, until they would expire anyway; another
    replica honours a replayed signed-out cookie until its expiry (the browser dropped it)."""
    found: dict[str, int] = request.app.state.console_signed_out
    return found


def _admin(request: Request) -> AdminState:
    state: AdminState = request.app.state.admin
    return state


def _page(
    request: Request,
    name: str,
    status: int = 200,
    session: Session | None = None,
    **context: Any,
) -> HTMLResponse:
    admin = _admin(request)
    body = templates.get_template(name).render(
        prefix=PREFIX,
        marketplace=admin.cfg.marketplace_name,
        session=session,
        principal=session.principal if session else None,
        csrf=csrf_token(session, admin.keys) if session else "",
        csrf_field=CSRF_FIELD,
        done=DONE.get(request.query_params.get("done", ""), ""),
        sign_in_link_minutes=SIGN_IN_LINK_TTL_MS // 60_000,
        sign_in_links_per_hour=admin.cfg.send_limit_activation_per_recipient_hour,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _secure(request: Request) -> bool:
    """Secure cookies over https, and always outside development mode."""
    return request.url.scheme == "https" or not _admin(request).cfg.dev_mode


def _signed_in(request: Request, token: str, to: str) -> RedirectResponse:
    admin = _admin(request)
    response = _redirect(to)
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=admin.cfg.console_session_ttl_hours * 3600,
        path=PREFIX,
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )
    return response


def _session(request: Request) -> Session | None:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    admin = _admin(request)
    try:
        session = verify_session(
            token, admin.keys, admin.operator_token, admin.directory.user, admin.clock()
        )
    except AuthError:
        return None
    return None if session.session_id in _signed_out(request) else session


def _local(path: str) -> str:
    """``path`` when it is a console page of this site, else the console's start."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith(PREFIX + "/") or "\\" in path:
        return PREFIX + "/"
    return path


def _sign_in_first(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect(f"{PREFIX}/sign-in?{urlencode({'next': here})}")


def _same_origin(request: Request) -> bool:
    """No ``Origin`` (an older browser), or this site's host: a post from another site is
    refused even before its CSRF token is looked at."""
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host", "")


async def _form(request: Request, session: Session | None) -> dict[str, str] | Response:
    """The posted form's fields (URL-encoded, at most :data:`MAX_FORM_BYTES`), or the page
    refusing it: 403 when the origin or the CSRF token is wrong, 413, 415."""
    if not _same_origin(request):
        return _forbidden(request, session, "this form was sent from another site")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return _page(request, "error.html", 415, session, title="Cannot read this form",
                     reason="send the form as application/x-www-form-urlencoded")  # fmt: skip
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _page(request, "error.html", 413, session, title="Form too large",
                         reason=f"a form may hold at most {MAX_FORM_BYTES} bytes")  # fmt: skip
    fields = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if session is not None and not csrf_ok(session, _admin(request).keys, fields.get(CSRF_FIELD)):
        return _forbidden(
            request,
            session,
            "this form expired or was not sent from this page: go back, reload and try again",
        )
    return fields


def _forbidden(request: Request, session: Session | None, reason: str) -> HTMLResponse:
    return _page(request, "error.html", 403, session, title="Not allowed", reason=reason)


def _refused(request: Request, session: Session | None, exc: Refused) -> HTMLResponse:
    titles = {403: "Not allowed", 404: "Not found", 503: "Try again later"}
    return _page(
        request,
        "error.html",
        exc.status,
        session,
        title=titles.get(exc.status, "Cannot do that"),
        reason=exc.reason,
    )


def _shop(request: Request, session: Session, shop_id: str, action: Action) -> Access:
    return ShopAccess(action)(shop_id, session.principal, _admin(request))


@dataclass(frozen=True)
class ShopPage:
    """A signed-in request allowed an action on a shop, with its posted form ({} for a GET)."""

    session: Session
    shop: Access
    fields: dict[str, str]


async def _shop_page(
    request: Request, shop_id: str, action: Action, *, form: bool = False
) -> ShopPage | Response:
    """The session, its access to ``shop_id`` for ``action`` and the posted form, or the
    page to answer instead: sign in first, the form refused (origin, CSRF, size), or the
    access refused with its reason."""
    session = _session(request)
    if session is None:
        return _sign_in_first(request)
    fields: dict[str, str] = {}
    if form:
        posted = await _form(request, session)
        if isinstance(posted, Response):
            return posted
        fields = posted
    try:
        shop = _shop(request, session, shop_id, action)
    except Refused as exc:
        return _refused(request, session, exc)
    return ShopPage(session, shop, fields)


def _field_errors(exc: InvalidRequest) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in exc.errors:
        found.setdefault(error.field, error.reason)
    return found


def _model_errors(model: type[NewShop] | type[NewUser], exc: ValidationError) -> dict[str, str]:
    return _field_errors(InvalidRequest(model.field_errors(exc)))


def _user_row(user: ShopUser, now_ms: int) -> dict[str, Any]:
    if user.status == UserStatus.ACTIVE:
        status = "active"
    elif now_ms >= user.activation_expires_at_ms:
        status = "link expired"
    else:
        status = "invited"
    return {
        "email": user.email,
        "role": ROLE_NAMES.get(UserRole(user.role), user.role)
        if user.role in set(UserRole)
        else user.role,
        "is_main": user.role == UserRole.MAIN_ACCOUNT,
        "status": status,
        "pending": user.status != UserStatus.ACTIVE,
        "expires": _when(user.activation_expires_at_ms),
    }


def _duration(ms: int) -> str:
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:g} second{'s' if seconds != 1 else ''}"
    return f"{seconds / 60:g} minute{'s' if seconds != 60 else ''}"


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000)) if ms else ""


def _nav(session: Session, shop_id: str) -> dict[str, Any]:
    return {"shop_id": shop_id, "is_operator": session.principal.is_operator}


# --- sign-in and sign-out --------------------------------------------------------------


async def start(request: Request) -> Response:
    session = _session(request)
    if session is None:
        return _redirect(f"{PREFIX}/sign-in")
    if session.principal.is_operator:
        return _redirect(f"{PREFIX}/shops")
    return _redirect(f"{PREFIX}/shops/{session.principal.shop_id}/settings")


async def sign_in_page(request: Request) -> Response:
    return _page(
        request,
        "sign_in.html",
        session=_session(request),
        next=_local(request.query_params.get("next", "")),
    )


async def sign_in(request: Request) -> Response:
    fields = await _form(request, None)
    if isinstance(fields, Response):
        return fields
    admin = _admin(request)
    to = _local(fields.get("next", ""))
    token = fields.get("token", "").strip()
    if not token:
        return _page(request, "sign_in.html", 401, next=to, errors={"token": "paste a token"})
    now = admin.clock()
    ttl_ms = admin.cfg.console_session_ttl_hours * 3_600_000
    try:
        principal = authenticate(
            f"Bearer {token}", admin.keys, admin.operator_token, admin.directory.user, now
        )
    except AuthError as exc:
        return _page(
            request, "sign_in.html", 401, next=to, errors={"token": exc.reason.split(":")[0]}
        )
    if principal.is_operator:
        session_token = issue_operator_session(
            admin.operator_token, admin.keys, now_ms=now, ttl_ms=ttl_ms
        )
        return _signed_in(request, session_token, to if to != PREFIX + "/" else f"{PREFIX}/shops")
    user = admin.directory.user(principal.shop_id, principal.email)
    assert user is not None  # authenticate found it
    session_token = issue_user_session(user, admin.keys, now_ms=now, ttl_ms=ttl_ms)
    home = f"{PREFIX}/shops/{user.shop_id}/settings"
    return _signed_in(request, session_token, to if to != PREFIX + "/" else home)


async def sign_out(request: Request) -> Response:
    session = _session(request)
    fields = await _form(request, session)
    if isinstance(fields, Response):
        return fields
    if session is not None:
        now = _admin(request).clock()
        signed_out = _signed_out(request)
        for sid in [s for s, exp in signed_out.items() if exp <= now]:
            del signed_out[sid]
        signed_out[session.session_id] = session.expires_at_ms
    response = _redirect(f"{PREFIX}/sign-in?done=signed_out")
    response.delete_cookie(COOKIE_NAME, path=PREFIX, httponly=True, secure=_secure(request))
    return response


def _console_link(admin: AdminState, path: str) -> str:
    """A console address for an email: the console's base is that of the activation links
    (``BRIDGE_ACTIVATION_LINK_BASE``), never the Host a request claims."""
    return admin.cfg.activation_link_base.rsplit("/", 1)[0] + path


async def email_sign_in_link(request: Request) -> Response:
    """Mail an activated user a sign-in link; the same answer whoever the address is."""
    fields = await _form(request, None)
    if isinstance(fields, Response):
        return fields
    admin = _admin(request)
    shop_id, email = fields.get("shop_id", "").strip(), fields.get("email", "").strip().lower()
    user = admin.directory.user(shop_id, email) if shop_id and email else None
    if user is not None:
        token = issue_sign_in_link(
            user, admin.keys, now_ms=admin.clock(), ttl_ms=SIGN_IN_LINK_TTL_MS
        )
        try:
            await send_sign_in_link(
                admin,
                shop_id,
                email,
                token=token,
                link_base=_console_link(admin, "/sign-in/link"),
                ttl_ms=SIGN_IN_LINK_TTL_MS,
            )
        except Refused:
            pass  # over a send limit or the event store down: the same answer, no mail
    return _page(request, "sign_in.html", next=PREFIX + "/", sent=True)


async def sign_in_link_page(request: Request) -> Response:
    # A button, not a sign-in on GET: mail scanners fetch links.
    return _page(request, "sign_in_link.html", token=request.query_params.get("token", ""))


async def sign_in_with_link(request: Request) -> Response:
    fields = await _form(request, None)
    if isinstance(fields, Response):
        return fields
    admin = _admin(request)
    now = admin.clock()
    try:
        principal = verify_sign_in_link(
            fields.get("token", ""), admin.keys, admin.directory.user, now
        )
    except AuthError:
        return _page(request, "sign_in_link.html", 410, token="", broken=True)
    user = admin.directory.user(principal.shop_id, principal.email)
    assert user is not None  # verify_sign_in_link found it
    session_token = issue_user_session(
        user, admin.keys, now_ms=now, ttl_ms=admin.cfg.console_session_ttl_hours * 3_600_000
    )
    return _signed_in(request, session_token, f"{PREFIX}/shops/{user.shop_id}/settings")


# --- activation (the link in the email) --------------------------------------------------


def _activation_state(admin: AdminState, token: str) -> tuple[str, str, ShopUser | None]:
    """(state, reason, user): ``valid`` or an :class:`ActivationError` code, in words."""
    try:
        user = check_activation(token, admin.keys, admin.directory.user, admin.clock())
    except ActivationError as exc:
        return exc.code, exc.reason, exc.user
    return "valid", "", user


async def activation_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    state, reason, user = _activation_state(_admin(request), token)
    return _page(
        request,
        "activate.html",
        session=_session(request),
        state=state,
        reason=reason,
        token=token,
        user=user,
        role=ROLE_NAMES.get(UserRole(user.role)) if user and user.role in set(UserRole) else "",
        expires=_when(user.activation_expires_at_ms) if user else "",
    )


async def activate(request: Request) -> Response:
    fields = await _form(request, None)
    if isinstance(fields, Response):
        return fields
    admin = _admin(request)
    token = fields.get("token", "")
    try:
        active = await activate_link(admin, token)
    except ActivationError as exc:
        return _page(
            request, "activate.html", exc.status, state=exc.code, reason=exc.reason, token=token
        )
    except Refused as exc:
        return _refused(request, None, exc)
    session_token = issue_user_session(
        active,
        admin.keys,
        now_ms=admin.clock(),
        ttl_ms=admin.cfg.console_session_ttl_hours * 3_600_000,
    )
    to = f"{PREFIX}/shops/{active.shop_id}/settings?done=activated"
    return _signed_in(request, session_token, to)


async def resend_link(request: Request) -> Response:
    fields = await _form(request, None)
    if isinstance(fields, Response):
        return fields
    token = fields.get("token", "")
    try:
        fresh = await resend_for_link(_admin(request), token)
    except Refused as exc:
        state, reason, _ = _activation_state(_admin(request), token)
        return _page(
            request,
            "activate.html",
            exc.status,
            state=state,
            reason=reason,
            token=token,
            problem=exc.reason,
        )
    return _page(request, "activate.html", state="resent", reason="", token="", user=fresh)


# --- notification settings -------------------------------------------------------------


def _settings_form(
    request: Request, session: Session, shop: Access, status: int = 200, **extra: Any
) -> HTMLResponse:
    admin = _admin(request)
    current = admin.current_settings(shop.shop_id)
    doc = settings_document(current, shop.users, admin.window_policy)
    kinds = []
    for kind in DestinationKind:
        window = admin.window_policy.for_shop(replace(current, destination_kind=kind.value))
        kinds.append(
            {
                "value": kind.value,
                "name": KIND_NAMES[kind],
                "window": _duration(window.quiet_ms),
                "guide": _guide_url(admin, GUIDE_OF[kind]),
            }
        )
    can_change = is_allowed(session.principal.role, Action.CHANGE_SETTINGS) or (
        session.principal.is_operator
    )
    inboxes = [
        u.email
        for u in shop.users
        if u.status == UserStatus.ACTIVE and u.role != UserRole.MAIN_ACCOUNT
    ]
    main = next((u.email for u in shop.users if u.role == UserRole.MAIN_ACCOUNT), "")
    return _page(
        request,
        "settings.html",
        status,
        session,
        nav=_nav(session, shop.shop_id),
        settings=extra.pop("values", None) or doc,
        doc=doc,
        # The field holds the shop's own zone; empty follows the region (shown in the hint).
        own_time_zone=current.time_zone,
        region_zone=region_time_zone(current.region),
        kinds=kinds,
        main_email=main,
        inboxes=inboxes,
        can_change=can_change,
        read_only_reason=""
        if can_change
        else refusal_reason(session.principal.role, Action.CHANGE_SETTINGS),
        errors=extra.pop("errors", {}),
        activated=request.query_params.get("done") == "activated",
        **extra,
    )


async def settings_page(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.READ_SETTINGS)
    if isinstance(page, Response):
        return page
    session, shop = page.session, page.shop
    return _settings_form(request, session, shop)


def _settings_change(fields: Mapping[str, str]) -> dict[str, Any]:
    """The form as the API's settings change: an unticked box is ``false``; the inbox as
    typed (the API's rule makes an empty one the main account's)."""
    change: dict[str, Any] = {
        "alerts_enabled": fields.get("alerts_enabled") == "on",
        "destination_email": fields.get("destination_email", "").strip(),
    }
    for name in ("destination_kind", "region", "time_zone", "shop_name"):
        if name in fields:
            change[name] = fields[name].strip() if name != "shop_name" else fields[name]
    return change


async def save_settings(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.CHANGE_SETTINGS, form=True)
    if isinstance(page, Response):
        return page
    session, shop, fields = page.session, page.shop, page.fields
    main = next((u.email for u in shop.users if u.role == UserRole.MAIN_ACCOUNT), "")
    change = _settings_change(fields)
    try:
        await change_shop_settings(_admin(request), shop, change)
    except InvalidRequest as exc:
        values = {
            **settings_document(
                _admin(request).current_settings(shop_id), shop.users, _admin(request).window_policy
            ),
            **change,
        }
        if not change["destination_email"]:
            values["destination_email"] = main
        return _settings_form(request, session, shop, 422, errors=_field_errors(exc), values=values)
    except Refused as exc:
        return _refused(request, session, exc)
    return _redirect(f"{PREFIX}/shops/{shop_id}/settings?done=saved")


def _guide_url(admin: AdminState, name: str) -> str:
    published = admin.cfg.console_guides_url.rstrip("/")
    return f"{published}/{name}.md" if published else f"{PREFIX}/guides/{name}"


async def guide(request: Request, name: str) -> Response:
    if name not in set(GUIDE_OF.values()) or not (GUIDES / f"{name}.md").is_file():
        return _page(request, "error.html", 404, title="Not found", reason="no such guide")
    text = (GUIDES / f"{name}.md").read_text(encoding="utf-8")
    return _page(request, "guide.html", session=_session(request), text=text)


# --- users -----------------------------------------------------------------------------


def _users_page(
    request: Request, session: Session, shop: Access, status: int = 200, **extra: Any
) -> HTMLResponse:
    now = _admin(request).clock()
    can_manage = session.principal.is_operator or is_allowed(
        session.principal.role, Action.ADD_USER
    )
    return _page(
        request,
        "users.html",
        status,
        session,
        nav=_nav(session, shop.shop_id),
        users=[_user_row(u, now) for u in shop.users],
        can_manage=can_manage,
        read_only_reason=""
        if can_manage
        else refusal_reason(session.principal.role, Action.ADD_USER),
        roles=[(r.value, ROLE_NAMES[r]) for r in (UserRole.ADMINISTRATOR, UserRole.CS_AGENT)],
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        **extra,
    )


async def users_page(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.LIST_USERS)
    if isinstance(page, Response):
        return page
    session, shop = page.session, page.shop
    return _users_page(request, session, shop)


async def user_action(request: Request, shop_id: str, what: str) -> Response:
    """``add``, ``resend`` or ``remove``: the API's action, its refusal shown as a message."""
    session = _session(request)
    if session is None:
        return _sign_in_first(request)
    fields = await _form(request, session)
    if isinstance(fields, Response):
        return fields
    actions = {
        "add": Action.ADD_USER,
        "resend": Action.RESEND_ACTIVATION,
        "remove": Action.REMOVE_USER,
    }
    if what not in actions:
        return _page(request, "error.html", 404, session, title="Not found", reason="no such page")
    action = actions[what]
    admin = _admin(request)
    try:
        shop = _shop(request, session, shop_id, action)
    except Refused as exc:
        return _refused(request, session, exc)
    email = fields.get("email", "").strip()
    try:
        if what == "add":
            try:
                new = NewUser.model_validate({"email": email, "role": fields.get("role", "")})
            except ValidationError as exc:
                errors = _model_errors(NewUser, exc)
                return _users_page(request, session, shop, 422, errors=errors, values=fields)
            await add_shop_user(admin, shop, new)
            return _redirect(f"{PREFIX}/shops/{shop_id}/users?done=added")
        if what == "resend":
            user = admin.directory.user(shop_id, email)
            if user is None:
                raise Refused(404, f"{email} is not a user of shop {shop_id}")
            await resend_activation_of(admin, user, session.principal.name)
            return _redirect(f"{PREFIX}/shops/{shop_id}/users?done=resent")
        await remove_shop_user(admin, shop, email)
        return _redirect(f"{PREFIX}/shops/{shop_id}/users?done=removed")
    except Refused as exc:
        if exc.status in (401, 403, 503):
            return _refused(request, session, exc)
        # A rule of the API (409, 422, 429...): a message beside the list, not a failure.
        return _users_page(request, session, shop, exc.status, problem=exc.reason, values=fields)


# --- API access ------------------------------------------------------------------------


def _api_access_page(
    request: Request, session: Session, shop_id: str, status: int = 200, **extra: Any
) -> HTMLResponse:
    reason = (
        "The platform operator calls the API with the operator token; API tokens belong to "
        "a shop's users."
        if session.principal.is_operator
        else ""
    )
    return _page(
        request,
        "api_access.html",
        status,
        session,
        nav=_nav(session, shop_id),
        read_only_reason=reason,
        ttl_days=_admin(request).cfg.admin_token_ttl_days,
        **extra,
    )


async def api_access_page(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.READ_SETTINGS)
    if isinstance(page, Response):
        return page
    session = page.session
    return _api_access_page(request, session, shop_id)


async def issue_token(request: Request, shop_id: str) -> Response:
    """A new API token for the signed-in user, shown on this answer only (never stored)."""
    page = await _shop_page(request, shop_id, Action.READ_SETTINGS, form=True)
    if isinstance(page, Response):
        return page
    session = page.session
    admin = _admin(request)
    user = admin.directory.user(shop_id, session.principal.email)
    if session.principal.is_operator or user is None or user.status != UserStatus.ACTIVE:
        return _api_access_page(
            request, session, shop_id, 403, problem="Only an activated user of the shop gets one."
        )
    token, expires_at_ms = new_api_token(admin, user)
    return _api_access_page(
        request, session, shop_id, token=token, expires=_when(expires_at_ms), role=user.role
    )


# --- operator ---------------------------------------------------------------------------


def _shops_page(request: Request, session: Session, status: int = 200, **extra: Any) -> Response:
    admin = _admin(request)
    after = request.query_params.get("after", "")
    try:
        page = shops_page(admin, after=after, limit=50)
    except InvalidRequest:
        page = []
    return _page(
        request,
        "shops.html",
        status,
        session,
        shops=[shop_summary(admin, s) for s in page],
        next_after=page[-1] if len(page) == 50 else "",
        errors=extra.pop("errors", {}),
        values=extra.pop("values", {}),
        kind_names={k.value: KIND_NAMES[k] for k in DestinationKind},
        **extra,
    )


def _operator(request: Request) -> Session | Response:
    session = _session(request)
    if session is None:
        return _sign_in_first(request)
    if not session.principal.is_operator:
        return _forbidden(request, session, "only the platform operator lists and onboards shops")
    return session


async def shops(request: Request) -> Response:
    session = _operator(request)
    if isinstance(session, Response):
        return session
    return _shops_page(request, session)


async def onboard(request: Request) -> Response:
    session = _operator(request)
    if isinstance(session, Response):
        return session
    fields = await _form(request, session)
    if isinstance(fields, Response):
        return fields
    data = {
        k: fields[k].strip()
        for k in ("shop_id", "main_account_email", "shop_name", "region")
        if fields.get(k, "").strip()
    }
    try:
        new = NewShop.model_validate(data)
    except ValidationError as exc:
        return _shops_page(request, session, 422, errors=_model_errors(NewShop, exc), values=fields)
    try:
        await onboard_shop(_admin(request), session.principal, new)
    except Refused as exc:
        return _shops_page(request, session, exc.status, problem=exc.reason, values=fields)
    return _redirect(f"{PREFIX}/shops?done=onboarded")


# --- simulation -------------------------------------------------------------------------


async def simulation_start_page(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.READ_SIMULATION)
    if isinstance(page, Response):
        return page
    session, shop = page.session, page.shop
    return _simulation_page(request, session, shop)


def _simulation_page(
    request: Request, session: Session, shop: Access, status: int = 200, **extra: Any
) -> HTMLResponse:
    admin = _admin(request)
    can_run = session.principal.is_operator or is_allowed(
        session.principal.role, Action.RUN_SIMULATION
    )
    return _page(
        request,
        "simulate.html",
        status,
        session,
        nav=_nav(session, shop.shop_id),
        settings=settings_document(
            admin.current_settings(shop.shop_id), shop.users, admin.window_policy
        ),
        can_run=can_run,
        window=_duration(
            admin.window_policy.for_shop(admin.current_settings(shop.shop_id)).quiet_ms
        ),
        read_only_reason=""
        if can_run
        else refusal_reason(session.principal.role, Action.RUN_SIMULATION),
        **extra,
    )


async def simulation_start(request: Request, shop_id: str) -> Response:
    page = await _shop_page(request, shop_id, Action.RUN_SIMULATION, form=True)
    if isinstance(page, Response):
        return page
    session, shop = page.session, page.shop
    try:
        started = await start_simulation(_admin(request), shop)
    except Refused as exc:
        if exc.status in (401, 403, 404):
            return _refused(request, session, exc)
        return _simulation_page(request, session, shop, exc.status, problem=exc.reason)
    return _redirect(f"{PREFIX}/shops/{shop_id}/simulations/{started['simulation_id']}")


async def simulation_page(request: Request, shop_id: str, simulation_id: str) -> Response:
    session = _session(request)
    wants_json = request.headers.get("accept", "").startswith("application/json")
    if session is None:
        if wants_json:
            return JSONResponse({"error": "sign in again"}, status_code=401)
        return _sign_in_first(request)
    try:
        shop = _shop(request, session, shop_id, Action.READ_SIMULATION)
        status = simulation_status(_admin(request), shop, simulation_id)
    except Refused as exc:
        if wants_json:
            return JSONResponse({"error": exc.reason}, status_code=exc.status)
        return _refused(request, session, exc)
    for step in status["steps"]:
        step["title"] = STEP_NAMES.get(step["step"], step["step"])
        step["when"] = _when(step["at_ms"])
    if wants_json:
        return JSONResponse(status, headers={"Cache-Control": "no-store"})
    return _page(
        request,
        "simulation.html",
        session=session,
        nav=_nav(session, shop_id),
        sim=status,
        settings=settings_document(
            _admin(request).current_settings(shop_id), shop.users, _admin(request).window_policy
        ),
    )


# --- the router ---------------------------------------------------------------------------


def build_console_router() -> APIRouter:
    """The console's pages under ``/console`` (the admin router's lifespan provides the state)."""
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    pages: list[tuple[str, str, Any]] = [
        ("GET", "/", start),
        ("GET", "/sign-in", sign_in_page),
        ("POST", "/sign-in", sign_in),
        ("POST", "/sign-in/email", email_sign_in_link),
        ("GET", "/sign-in/link", sign_in_link_page),
        ("POST", "/sign-in/link", sign_in_with_link),
        ("POST", "/sign-out", sign_out),
        ("GET", "/activate", activation_page),
        ("POST", "/activate", activate),
        ("POST", "/activate/resend", resend_link),
        ("GET", "/guides/{name}", guide),
        ("GET", "/shops", shops),
        ("POST", "/shops", onboard),
        ("GET", "/shops/{shop_id}/settings", settings_page),
        ("POST", "/shops/{shop_id}/settings", save_settings),
        ("GET", "/shops/{shop_id}/users", users_page),
        ("POST", "/shops/{shop_id}/users/{what}", user_action),
        ("GET", "/shops/{shop_id}/api-token", api_access_page),
        ("POST", "/shops/{shop_id}/api-token", issue_token),
        ("GET", "/shops/{shop_id}/simulations", simulation_start_page),
        ("POST", "/shops/{shop_id}/simulations", simulation_start),
        ("GET", "/shops/{shop_id}/simulations/{simulation_id}", simulation_page),
    ]
    for method, path, handler in pages:
        router.add_api_route(path, handler, methods=[method])
    return router


def mount_console(app: Any) -> None:
    """The console's routes and its static files (stylesheet, script) on ``app``."""
    app.state.console_signed_out = {}
    app.include_router(build_console_router())
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")


__all__ = ["Principal", "build_console_router", "mount_console", "FieldError"]
