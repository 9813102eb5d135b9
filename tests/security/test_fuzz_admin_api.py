"""The standing adversarial suite for the admin API: hypothesis-made bodies, path parameters
and tokens, sent with VALID operator and shop-manager tokens over real HTTP to a running
ingest on the real broker. No answer may be a 5xx; a refusal is JSON that says why.

The admin routes take the raw request and parse bodies by hand (nothing in the app's
OpenAPI describes them), so the requests are generated here rather than from a schema.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from devstack.broker import free_port
from devstack.stack import serve_in_loop
from devstack.topic_reader import records_so_far
from ingest.app import create_app
from ingest.ingest_settings import IngestSettings
from shared.codec import decode
from shared.events import MailNotice
from shared.topics import MAIL_NOTICES
from tests.polling import eventually

pytestmark = pytest.mark.integration
OPERATOR = "fuzz-operator-token"
FUZZ = settings(
    max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@dataclass
class Admin:
    url: str
    http: httpx.AsyncClient
    shop: str  # onboarded, its main account activated
    main: str
    manager_token: str


async def activation_token_for(bootstrap: str, email: str) -> str | None:
    """The token in the activation notice for ``email`` on the real mail.notices topic."""
    for records in (
        await records_so_far(bootstrap, MAIL_NOTICES.name, MAIL_NOTICES.partitions)
    ).values():
        for rec in records:
            notice = decode(MailNotice, rec.value)
            if notice.to_address == email and (found := re.search(r"\?token=(\S+)", notice.text)):
                return httpx.URL("http://x/?token=" + found.group(1)).params["token"]
    return None


@pytest_asyncio.fixture(scope="module")
async def admin(kafka_bootstrap: str) -> AsyncIterator[Admin]:
    port = free_port()
    cfg = IngestSettings(
        **{  # type: ignore[arg-type]
            "KAFKA_BOOTSTRAP": kafka_bootstrap,
            "admin_operator_token": OPERATOR,
            "platform_base_url": f"http://127.0.0.1:{free_port()}",  # nothing listens
            "simulation_mode": "direct",  # a simulation writes chat.events, no platform call
            "activation_link_base": f"http://127.0.0.1:{port}/console/activate",
        }
    )
    server, task = await serve_in_loop(create_app(cfg), port)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            shop = str(7_200_000_000_000_000_000 + uuid.uuid4().int % 10**18)
            main = f"main-{shop}@shop.test"
            resp = await http.post(
                f"{url}/admin/shops",
                json={"shop_id": shop, "main_account_email": main},
                headers={"Authorization": f"Bearer {OPERATOR}"},
            )
            assert resp.status_code == 201, resp.text
            token = await eventually(
                lambda: activation_token_for(kafka_bootstrap, main),
                what="the activation notice on mail.notices",
            )
            resp = await http.post(f"{url}/admin/activate", json={"token": token})
            assert resp.status_code == 200, resp.text
            yield Admin(url, http, shop, main, resp.json()["api_token"])
    finally:
        server.should_exit = True
        await task


# --- what a hostile caller sends -----------------------------------------------------------

NUMBERS = st.one_of(
    st.sampled_from([0, -1, 2**63 - 1, 2**64, 10**400, 1e308]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "²",
            "٣",
            "a b",
            "@",
            "x@y",
            "A@B.C",
            "é@é.é",
            "a" * 300,
            "a" * 65 + "@shop.test",
            "main_account",
            "administrator",
            "cs_agent",
            "mailbox",
            "salesforce",
            "us",
            "gb",
            "x\x00y",
            "\u202e",
            "a\r\nb: c",
            "bat1.1.e30.é",
            "bat1.1.é.é",
            "act1.1.x.y",
            "a.b.c.d",
            "null",
            "{}",
        ]
    ),
    st.text(max_size=40),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)
# A field's value: a string (right type, maybe wrong content) as often as anything else.
VALUES = st.one_of(STRINGS, LEAVES, st.sampled_from([[], {}, ["cs_agent"], {"a": 1}]), JSON)
SHOP_FIELDS = ("shop_id", "main_account_email", "region", "shop_name")
SETTINGS_FIELDS = ("alerts_enabled", "destination_email", "destination_kind", "region", "shop_name")
USER_FIELDS = ("email", "role")
TOKEN_FIELDS = ("token",)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


@st.composite
def bodies(draw: st.DrawFn, fields: tuple[str, ...]) -> tuple[bytes, str]:
    """(body, content type): mostly the route's own fields, each real-looking or hostile."""
    shape = draw(st.sampled_from(["fields", "fields", "fields", "json", "bytes", "deep", "form"]))
    if shape == "fields" and fields:
        keys = draw(st.lists(st.sampled_from(fields), min_size=1, unique=True))
        return _dumps({k: draw(VALUES) for k in keys}), "application/json"
    if shape == "json":
        return _dumps(draw(JSON)), "application/json"
    if shape == "deep":
        depth = draw(st.integers(1, 3000))
        return b'{"token":' * depth + b"1" + b"}" * depth, "application/json"
    if shape == "form":
        return draw(st.binary(max_size=80)), "application/x-www-form-urlencoded"
    return draw(st.binary(max_size=200)), draw(
        st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain", ""])
    )


def path_values(real: str) -> st.SearchStrategy[str]:
    """A real value (so a request gets past the lookup) or a hostile one, URL-quoted."""
    return st.one_of(st.just(real), st.just(real), st.just(real), STRINGS).map(
        lambda v: quote(v, safe="") or "x"
    )


@st.composite
def requests(draw: st.DrawFn, admin: Admin) -> tuple[str, str, tuple[str, ...]]:
    """(method, path, the fields its body takes)."""
    shop = draw(path_values(admin.shop))
    email = draw(path_values(draw(st.sampled_from([admin.main, "nobody@shop.test"]))))
    sim = draw(path_values("sim-0000abcd"))
    token = quote(draw(STRINGS), safe="")
    return draw(
        st.sampled_from(
            [
                ("POST", "/admin/shops", SHOP_FIELDS),
                ("GET", f"/admin/shops/{shop}/settings", ()),
                ("PATCH", f"/admin/shops/{shop}/settings", SETTINGS_FIELDS),
                ("GET", f"/admin/shops/{shop}/users", ()),
                ("POST", f"/admin/shops/{shop}/users", USER_FIELDS),
                ("DELETE", f"/admin/shops/{shop}/users/{email}", ()),
                ("POST", f"/admin/shops/{shop}/users/{email}/activation", ()),
                ("GET", f"/admin/activate?token={token}", ()),
                ("POST", "/admin/activate", TOKEN_FIELDS),
                ("POST", "/admin/activation/resend", TOKEN_FIELDS),
                ("POST", f"/admin/shops/{shop}/simulations", ()),
                ("GET", f"/admin/shops/{shop}/simulations/{sim}", ()),
            ]
        )
    )


def assert_refusal_says_why(resp: httpx.Response) -> None:
    event(f"HTTP {resp.status_code}")
    assert resp.status_code < 500, (resp.status_code, resp.text[:500])
    if resp.status_code >= 400:
        body = resp.json()
        assert isinstance(body, dict) and (body.get("error") or body.get("detail")), body


# --- the tests --------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
async def test_admin_requests_with_hostile_bodies_and_paths_are_never_5xx(
    admin: Admin, data: st.DataObject
) -> None:
    method, path, fields = data.draw(requests(admin), label="request")
    body, ctype = data.draw(bodies(fields), label="body")
    token = data.draw(st.sampled_from([OPERATOR, admin.manager_token]), label="token")
    headers = {"Authorization": f"Bearer {token}"}
    if ctype:
        headers["content-type"] = ctype
    resp = await admin.http.request(
        method, admin.url + path, headers=headers, content=body if method != "GET" else None
    )
    assert_refusal_says_why(resp)


@FUZZ
@given(
    authorization=st.one_of(
        STRINGS.map(lambda t: f"Bearer {t}"),
        STRINGS,
        st.sampled_from(
            [
                "Bearer bat1.1.e30.é",
                "Bearer bat1.1.e30." + "é" * 43,
                "Bearer  ",
                "bearer x.y.z.w",
                "Basic dXNlcjpwYXNz",
            ]
        ),
    )
)
async def test_hostile_authorization_header_is_refused_with_401_never_5xx(
    admin: Admin, authorization: str
) -> None:
    # As bytes on the wire (UTF-8, so the server sees obs-text), minus what HTTP itself
    # forbids in a header value and the client refuses to send (controls, edge spaces).
    value = bytes(b for b in authorization.encode() if b >= 0x20 and b != 0x7F).strip()
    headers = {"Authorization": value or b"x"}
    resp = await admin.http.get(f"{admin.url}/admin/shops/{admin.shop}/settings", headers=headers)
    assert_refusal_says_why(resp)


BODY_ROUTES = [
    ("POST", "/admin/shops", SHOP_FIELDS),
    ("PATCH", "/admin/shops/{shop}/settings", SETTINGS_FIELDS),
    ("POST", "/admin/shops/{shop}/users", USER_FIELDS),
    ("POST", "/admin/activate", TOKEN_FIELDS),
    ("POST", "/admin/activation/resend", TOKEN_FIELDS),
]


@pytest.mark.parametrize(
    ("method", "path", "fields"), BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES]
)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
async def test_each_body_field_with_a_hostile_value_is_refused_never_5xx(
    admin: Admin, method: str, path: str, fields: tuple[str, ...], data: st.DataObject
) -> None:
    """Every route that takes a body, with its own fields holding values of any JSON type."""
    body = data.draw(st.fixed_dictionaries({}, optional={k: VALUES for k in fields}), label="body")
    resp = await admin.http.request(
        method,
        admin.url + path.format(shop=admin.shop),
        headers={"Authorization": f"Bearer {OPERATOR}", "content-type": "application/json"},
        content=_dumps(body),
    )
    assert_refusal_says_why(resp)
