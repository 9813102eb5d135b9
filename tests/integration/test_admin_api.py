"""The admin API over real parts: Tansu, the running services, the mail sink and the sandbox.

The admin router is part of the ingest app built with ``create_app`` and served
on a free loopback port in the test loop; activation emails travel the real mail
path (mail.notices -> mailer -> SMTP sink) and settings reach the other services
through the compacted shop.settings topic.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import pytest_asyncio

from devstack.broker import free_port
from devstack.stack import serve_in_loop
from ingest.app import create_app
from ingest.ingest_settings import IngestSettings
from shared.codec import decode
from shared.compacted_topic import replay_topic
from shared.events import AuditEvent
from shared.logging import now_ms
from shared.settings_view import ShopSettingsView
from shared.topics import ADMIN_AUDIT
from tests.conftest import SETTINGS_APPLY_S, WINDOW_S, Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration
T = TypeVar("T")
HOUR_MS = 3_600_000
OPERATOR = "test-operator-token"


@dataclass
class Clock:
    """Real time plus an offset the tests move forward (never back)."""

    offset_ms: int = 0

    def __call__(self) -> int:
        return now_ms() + self.offset_ms


@dataclass
class Admin:
    url: str
    http: httpx.AsyncClient
    stack: Stack
    clock: Clock
    settings: IngestSettings
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who] if who != 'operator' else OPERATOR}"}

    async def call(
        self, method: str, path: str, who: str = "operator", body: Any = None
    ) -> httpx.Response:
        return await self.http.request(method, self.url + path, headers=self.auth(who), json=body)

    async def activation_token(self, email: str, after: int = 0) -> str:
        """The token from the newest activation email the sink got for ``email``."""

        def find() -> str | None:
            mails = [
                m.message
                for m in self.stack.platforms.sink.mails[after:]
                if email in m.rcpt_tos and m.message["X-Bridge-Notice"] == "activation"
            ]
            if not mails:
                return None
            text = mails[-1].get_body(("plain",)).get_content()
            found = re.search(r"\?token=(\S+)", text)
            return httpx.URL("http://x/?token=" + found.group(1)).params["token"] if found else None

        return await eventually(find)

    async def activate(self, email: str, after: int = 0) -> str:
        token = await self.activation_token(email, after)
        resp = await self.http.post(f"{self.url}/admin/activate", json={"token": token})
        assert resp.status_code == 200, resp.text
        self.tokens[email] = resp.json()["api_token"]
        return self.tokens[email]

    async def onboard(self, tag: str) -> tuple[str, str]:
        shop = str(7_100_000_000_000_000_000 + uuid.uuid4().int % 10**18)  # numeric, like TikTok's
        main = f"main-{shop}@shop.test"
        resp = await self.call(
            "POST",
            "/admin/shops",
            body={"shop_id": shop, "main_account_email": main, "shop_name": f"Shop {tag}"},
        )
        assert resp.status_code == 201, resp.text
        await self.activate(main)
        resp = await self.call(
            "PATCH", f"/admin/shops/{shop}/settings", main, {"alerts_enabled": True}
        )  # a new shop's alerts start off
        assert resp.status_code == 200, resp.text
        await asyncio.sleep(SETTINGS_APPLY_S)  # the consolidator's settings view has it
        return shop, main

    async def add_user(self, shop: str, by: str, role: str, *, activate: bool = True) -> str:
        email = f"{role}-{uuid.uuid4().hex[:6]}@shop.test"
        mark = len(self.stack.platforms.sink.mails)
        resp = await self.call(
            "POST", f"/admin/shops/{shop}/users", by, {"email": email, "role": role}
        )
        assert resp.status_code == 201, resp.text
        if activate:
            await self.activate(email, mark)
        return email


@asynccontextmanager
async def serve_admin(stack: Stack, **extra: object) -> AsyncIterator[Admin]:
    """An ingest app (webhooks, admin API, console) in this loop, on the session's stack;
    ``extra`` overrides its settings."""
    port = free_port()
    cfg = IngestSettings(
        **{  # type: ignore[arg-type]
            "KAFKA_BOOTSTRAP": stack.env["KAFKA_BOOTSTRAP"],
            "platform_base_url": stack.sandbox_url,
            "window_mailbox_s": WINDOW_S,
            "window_helpdesk_s": WINDOW_S,
            "admin_operator_token": OPERATOR,
            "activation_link_base": f"http://127.0.0.1:{port}/console/activate",
            **extra,
        }
    )
    clock = Clock()
    app = create_app(cfg, admin_clock=clock)
    server, task = await serve_in_loop(app, port)
    http = httpx.AsyncClient(timeout=10.0)
    try:
        yield Admin(f"http://127.0.0.1:{port}", http, stack, clock, cfg)
    finally:
        await http.aclose()
        server.should_exit = True
        await task


@pytest_asyncio.fixture(scope="session")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    async with serve_admin(stack) as served:
        yield served


# --- roles ---------------------------------------------------------------------

ROLES = ("main_account", "administrator", "cs_agent")
MANAGER_ONLY = {"change_settings", "add_user", "remove_user", "resend_activation", "run_simulation"}


async def test_every_role_against_every_action_over_http(admin: Admin) -> None:
    shop, main = await admin.onboard("matrix")
    who = {
        "main_account": main,
        "administrator": await admin.add_user(shop, main, "administrator"),
        "cs_agent": await admin.add_user(shop, main, "cs_agent"),
    }
    sim = (await admin.call("POST", f"/admin/shops/{shop}/simulations", main)).json()
    seen: dict[tuple[str, str], int] = {}
    for role in ROLES:
        caller = who[role]
        target = await admin.add_user(shop, main, "cs_agent", activate=False)
        actions: dict[str, tuple[str, str, Any]] = {
            "read_settings": ("GET", f"/admin/shops/{shop}/settings", None),
            "change_settings": ("PATCH", f"/admin/shops/{shop}/settings", {"alerts_enabled": True}),
            "list_users": ("GET", f"/admin/shops/{shop}/users", None),
            "add_user": (
                "POST",
                f"/admin/shops/{shop}/users",
                {"email": f"new-{uuid.uuid4().hex[:6]}@shop.test", "role": "cs_agent"},
            ),
            "resend_activation": ("POST", f"/admin/shops/{shop}/users/{target}/activation", None),
            "remove_user": ("DELETE", f"/admin/shops/{shop}/users/{target}", None),
            "run_simulation": ("POST", f"/admin/shops/{shop}/simulations", None),
            "read_simulation": (
                "GET",
                f"/admin/shops/{shop}/simulations/{sim['simulation_id']}",
                None,
            ),
        }
        for action, (method, path, body) in actions.items():
            resp = await admin.call(method, path, caller, body)
            seen[(role, action)] = resp.status_code
            if role == "cs_agent" and action in MANAGER_ONLY:
                assert resp.status_code == 403, (role, action, resp.text)
                assert "only the shop's main account and administrators" in resp.json()["error"]
            else:
                assert 200 <= resp.status_code < 300, (role, action, resp.text)
    assert len(seen) == 3 * 8
    # a token of one shop opens nothing in another
    other, _ = await admin.onboard("other")
    resp = await admin.call("GET", f"/admin/shops/{other}/settings", main)
    assert resp.status_code == 403 and "not " + other in resp.json()["error"]
    no_auth = await admin.http.get(f"{admin.url}/admin/shops/{shop}/settings")
    assert no_auth.status_code == 401 and "Authorization" in no_auth.json()["error"]


# --- activation ------------------------------------------------------------------


async def test_activation_link_expires_after_120_hours_and_can_be_resent(admin: Admin) -> None:
    shop, main = await admin.onboard("expiry")
    mark = len(admin.stack.platforms.sink.mails)
    late = await admin.add_user(shop, main, "cs_agent", activate=False)
    ontime = await admin.add_user(shop, main, "administrator", activate=False)
    late_token = await admin.activation_token(late, mark)
    ontime_token = await admin.activation_token(ontime, mark)

    admin.clock.offset_ms += 120 * HOUR_MS - 5_000  # 5 s before the deadline
    resp = await admin.http.post(f"{admin.url}/admin/activate", json={"token": ontime_token})
    assert resp.status_code == 200, resp.text
    admin.clock.offset_ms += 5_000  # exactly 120 h after the invitation (or later)
    resp = await admin.http.post(f"{admin.url}/admin/activate", json={"token": late_token})
    assert resp.status_code == 410, resp.text
    assert resp.json()["code"] == "expired" and "120 hours" in resp.json()["error"]
    assert resp.json()["resend"]["path"] == "/admin/activation/resend"

    reused = await admin.http.post(f"{admin.url}/admin/activate", json={"token": ontime_token})
    assert reused.status_code == 409 and reused.json()["code"] == "used"

    mark = len(admin.stack.platforms.sink.mails)
    resp = await admin.http.post(f"{admin.url}/admin/activation/resend", json={"token": late_token})
    assert resp.status_code == 202, resp.text
    fresh = await admin.activation_token(late, mark)
    assert fresh != late_token
    old = await admin.http.post(f"{admin.url}/admin/activate", json={"token": late_token})
    assert old.status_code == 410 and old.json()["code"] == "superseded"
    ok = await admin.http.post(f"{admin.url}/admin/activate", json={"token": fresh})
    assert ok.status_code == 200 and ok.json()["user"]["status"] == "active"


# --- settings ---------------------------------------------------------------------


async def test_settings_change_reaches_consolidator_and_mailer_within_seconds(admin: Admin) -> None:
    shop, main = await admin.onboard("propagate")
    agent = await admin.add_user(shop, main, "cs_agent")
    view = ShopSettingsView(admin.settings)
    await view.start()
    try:
        await eventually(lambda: agent in view.get(shop).authorized_senders, timeout_s=10)
        started = time.monotonic()
        resp = await admin.call(
            "PATCH",
            f"/admin/shops/{shop}/settings",
            main,
            {
                "destination_email": agent,
                "destination_kind": "zendesk",
                "region": "gb",
                "time_zone": "Asia/Tokyo",
            },
        )
        assert resp.status_code == 200, resp.text
        # What the API reports is what the stack's consolidator applies (its window is
        # WINDOW_S for both kinds): not the 5 minutes a helpdesk gets by default.
        assert resp.json()["digest_window_minutes"] * 60 == pytest.approx(WINDOW_S)
        assert resp.json()["time_zone"] == "Asia/Tokyo"
        await eventually(lambda: view.get(shop).destination_email == agent, timeout_s=5)
        seen_s = time.monotonic() - started
        got = view.get(shop)
        assert (got.destination_kind, got.region, got.time_zone) == ("zendesk", "gb", "Asia/Tokyo")
        assert set(got.authorized_senders) == {main, agent}
    finally:
        await view.stop()
    print(f"settings visible to a ShopSettingsView {seen_s * 1000:.0f} ms after the PATCH")
    assert seen_s < 5
    # the consolidator and the mailer act on it: the next digest goes to the agent's inbox
    conv = str(5_000_000_000_000_000 + uuid.uuid4().int % 10**15)
    said = time.monotonic()
    await admin.stack.buyer_says(shop, conv, "Is it waterproof?", buyer_name="Eve")
    digest = (await eventually(lambda: admin.stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    assert time.monotonic() - said >= resp.json()["digest_window_minutes"] * 60
    assert digest["To"] == agent
    assert "@chat-seller-gb." in str(digest["Reply-To"])
    # message times in the zone the shop set, named
    text = digest.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert re.search(r"Eve \(\d\d \w{3} \d{4}, \d\d:\d\d GMT\+9, Asia/Tokyo\):", text), text


async def test_custom_inbox_must_be_an_activated_customer_service_user(admin: Admin) -> None:
    shop, main = await admin.onboard("inbox")
    pending_agent = await admin.add_user(shop, main, "cs_agent", activate=False)
    for email, words in (
        ("nobody@shop.test", "add it as a user"),
        (pending_agent, "not activated yet"),
    ):
        resp = await admin.call(
            "PATCH", f"/admin/shops/{shop}/settings", main, {"destination_email": email}
        )
        assert resp.status_code == 422, resp.text
        assert resp.json()["fields"][0]["field"] == "destination_email"
        assert words in resp.json()["fields"][0]["reason"]
    resp = await admin.call("GET", f"/admin/shops/{shop}/settings", main)
    assert resp.json()["destination_email"] == main
    assert resp.json()["destination_is_main_account"] is True


async def test_an_activated_administrator_can_be_the_destination_inbox(admin: Admin) -> None:
    """The marketplace lets administrators handle customer service too (#17 point 6)."""
    shop, main = await admin.onboard("admin-inbox")
    administrator = await admin.add_user(shop, main, "administrator")
    resp = await admin.call(
        "PATCH", f"/admin/shops/{shop}/settings", main, {"destination_email": administrator}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["destination_email"] == administrator
    assert resp.json()["destination_is_main_account"] is False


async def test_bad_requests_get_field_level_4xx_and_write_nothing(admin: Admin) -> None:
    shop, main = await admin.onboard("bad")
    before = (await admin.call("GET", f"/admin/shops/{shop}/settings", main)).json()
    resp = await admin.call(
        "PATCH",
        f"/admin/shops/{shop}/settings",
        main,
        {
            "alerts_enabled": False,  # valid, but the request as a whole is not
            "destination_kind": "fax",
            "region": "U S",
            "time_zone": "Mars/Olympus",
            "colour": "red",
        },
    )
    assert resp.status_code == 422
    fields = {f["field"] for f in resp.json()["fields"]}
    assert fields == {"destination_kind", "region", "time_zone", "colour"}
    after = (await admin.call("GET", f"/admin/shops/{shop}/settings", main)).json()
    assert after == before  # alerts_enabled was not applied on its own

    cases = [
        (
            "POST",
            f"/admin/shops/{shop}/users",
            {"email": "not-an-email", "role": "cs_agent"},
            422,
            "email",
        ),
        (
            "POST",
            f"/admin/shops/{shop}/users",
            {"email": "x@shop.test", "role": "main_account"},
            422,
            "role",
        ),
        ("POST", f"/admin/shops/{shop}/users", {"email": main, "role": "cs_agent"}, 409, None),
        ("POST", "/admin/shops", {"shop_id": "a b", "main_account_email": "@"}, 422, "shop_id"),
        ("PATCH", f"/admin/shops/{shop}/settings", ["alerts_enabled"], 400, None),
        ("DELETE", f"/admin/shops/{shop}/users/{main}", None, 422, "email"),
        ("GET", "/admin/shops/no-such-shop/settings", None, 404, None),
    ]
    for method, path, body, status, field_name in cases:
        resp = await admin.call(
            method,
            path,
            "operator" if "shops/no-such" in path or path == "/admin/shops" else main,
            body,
        )
        assert resp.status_code == status, (path, body, resp.text)
        assert resp.json()["error"]
        if field_name:
            assert field_name in {f["field"] for f in resp.json()["fields"]}, resp.text
    users = (await admin.call("GET", f"/admin/shops/{shop}/users", main)).json()["users"]
    assert [u["email"] for u in users] == [main]
    garbage = await admin.http.post(f"{admin.url}/admin/activate", json={"token": "x.y.z.w"})
    assert garbage.status_code == 400 and garbage.json()["code"] == "invalid"


async def test_every_change_is_an_audit_event_with_before_and_after(admin: Admin) -> None:
    shop, main = await admin.onboard("audit")
    resp = await admin.call(
        "PATCH", f"/admin/shops/{shop}/settings", main, {"alerts_enabled": False}
    )
    assert resp.status_code == 200
    events: list[AuditEvent] = []
    await replay_topic(
        admin.settings.kafka_bootstrap,
        ADMIN_AUDIT.name,
        lambda rec: events.append(decode(AuditEvent, rec.value)),
    )
    mine = [e for e in events if e.shop_id == shop]
    assert [e.action for e in mine] == [
        "create_shop",
        "activate_user",
        "change_settings",
        "change_settings",
    ]  # alerts turned on, then off
    assert orjson.loads(mine[0].after)["settings"]["alerts_enabled"] is False
    change = mine[-1]
    assert change.actor == main and change.at_ms > 0
    assert orjson.loads(change.before)["alerts_enabled"] is True
    assert orjson.loads(change.after)["alerts_enabled"] is False


# --- simulation ---------------------------------------------------------------------


async def simulation_status(admin: Admin, shop: str, who: str, sim: str) -> dict[str, Any]:
    resp = await admin.call("GET", f"/admin/shops/{shop}/simulations/{sim}", who)
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_simulated_conversation_goes_round_trip_and_reports_each_step(admin: Admin) -> None:
    shop, main = await admin.onboard("simulate")
    resp = await admin.call("POST", f"/admin/shops/{shop}/simulations", main)
    assert resp.status_code == 202, resp.text
    sim = resp.json()["simulation_id"]
    status = await simulation_status(admin, shop, main, sim)
    assert status["steps"][2]["state"] == "not_reached"

    digest = (await eventually(lambda: admin.stack.mails_for(sim), timeout_s=WINDOW_S + 20))[0]
    assert digest["To"] == main
    digest_step = await eventually(
        lambda: _step(simulation_status(admin, shop, main, sim), "digest_sent", "ok")
    )
    assert main in digest_step["detail"]
    n = admin.stack.sink_number(digest["Message-ID"])
    answer = "Simulated answer: set-up works 🎉"
    resp = await admin.http.post(
        f"{admin.stack.sink_url}/messages/{n}/reply", json={"text": answer, "from_address": main}
    )
    assert resp.status_code == 200, resp.text

    async def all_ok() -> dict[str, Any] | None:
        status = await simulation_status(admin, shop, main, sim)
        return status if status["status"] == "ok" else None

    final = await eventually(all_ok, timeout_s=30)
    assert [s["step"] for s in final["steps"]] == [
        "webhook_accepted",
        "digest_sent",
        "reply_received",
        "delivered_to_chat",
    ]
    received = await admin.stack.buyer_view(sim)
    assert [r["content"]["content"] for r in received] == [answer]


async def test_simulation_reply_from_an_unregistered_sender_fails_with_the_reason(
    admin: Admin,
) -> None:
    shop, main = await admin.onboard("simfail")
    sim = (await admin.call("POST", f"/admin/shops/{shop}/simulations", main)).json()[
        "simulation_id"
    ]
    digest = (await eventually(lambda: admin.stack.mails_for(sim), timeout_s=WINDOW_S + 20))[0]
    n = admin.stack.sink_number(digest["Message-ID"])
    resp = await admin.http.post(
        f"{admin.stack.sink_url}/messages/{n}/reply",
        json={"text": "hello", "from_address": "stranger@else.test"},
    )
    assert resp.status_code == 200, resp.text
    try:
        step = await eventually(
            lambda: _step(simulation_status(admin, shop, main, sim), "reply_received", "failed")
        )
    except AssertionError:
        raise AssertionError(await simulation_status(admin, shop, main, sim)) from None
    # The address stays out of the published reason (it is logged and kept on a topic).
    assert "the sender is not a registered, activated user" in step["detail"]
    assert "stranger@else.test" not in step["detail"]
    status = await simulation_status(admin, shop, main, sim)
    assert status["status"] == "failed" and status["reason"] == step["detail"]
    assert status["steps"][3]["state"] == "not_reached"


async def _step(status: Awaitable[dict[str, Any]], name: str, state: str) -> dict[str, Any] | None:
    found = next(s for s in (await status)["steps"] if s["step"] == name)
    return found if found["state"] == state else None
