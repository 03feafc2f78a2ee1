"""The dashboard at ``/``, driven in a real headless Chromium (Debian's ``chromium`` package)
through Playwright: sign in with a tenant key, see a failing connection and the vendor's error,
replay a dead letter and see it delivered. Plus the session and form checks over plain HTTP.

Screenshots go to a temporary directory (printed), or to ``$JOURNEYHUB_DASHBOARD_SCREENSHOTS``.
Without ``/usr/bin/chromium`` the browser tests are skipped, and fail under ``CI=true``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually, make_tenant
from journeyhub.testing.sandbox import Fault

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = pytest.mark.usefixtures("workers")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VENDOR_ERROR = "Email address is not valid"
TIMEOUT_MS = 15_000


@pytest.fixture
def tave(tave_sandbox: TaveSandbox) -> TaveSandbox:
    tave_sandbox.reset()
    return tave_sandbox


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("JOURNEYHUB_DASHBOARD_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("dashboard-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"dashboard screenshots: {folder}")
    return folder


@pytest.fixture
def chromium() -> Path:
    """The Chromium binary; without it, skip (fail under ``CI=true``)."""
    if not CHROMIUM.exists():
        message = (
            f"{CHROMIUM} is missing: the dashboard tests drive a real headless Chromium; "
            "install it with `apt-get install -y chromium`"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest_asyncio.fixture
async def browser(chromium: Path, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh Chromium profile (a persistent context on an empty user-data dir)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(chromium),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            await context.close()


async def tave_connection(gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox) -> dict:
    return await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="Studio CRM",
        direction="outbound",
        config={"api_base": tave.api_base},
        credentials={"api_key": tave.api_key},
    )


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def dead_letter_for(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox, event_id: str
) -> Any:
    """A connection whose vendor refuses ``event_id`` for good (422): one dead letter."""
    body = {
        "type": "validation",
        "title": "Validation Error",
        "detail": VENDOR_ERROR,
        "status": 422,
    }
    tave.faults.plan(Fault(status=422, body=body))
    await send(gateway, tenant, event(event_id, client_id=f"cl_{event_id}"))
    [dead] = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    assert VENDOR_ERROR in dead.error and len(tave.contacts) == 0
    return dead


async def sign_in(page: Any, base: str, key: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def reload_until(page: Any, selector: str, timeout: float = 20.0) -> Any:
    """Reload the (server-rendered) page until ``selector`` is on it."""

    async def shown() -> bool:
        await page.reload()
        return await page.locator(selector).count() > 0

    await eventually(shown, timeout=timeout, interval=0.5)
    return page.locator(selector)


async def test_sign_in_see_the_failure_replay_it_and_see_it_delivered(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    tave: TaveSandbox,
    browser: Any,
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    connection = await tave_connection(gateway, tenant, tave)
    dead = await dead_letter_for(gateway, tenant, hub, tave, "ev-dash-1")
    page = await browser.new_page()
    base = gateway.url

    # Signed out: the dashboard sends you to the sign-in form.
    await page.goto(f"{base}/")
    assert page.url == f"{base}/login"

    # A read key sees everything, but its Replay button is disabled and says why.
    await sign_in(page, base, tenant.read_key)
    assert page.url == f"{base}/"
    dead_row = page.locator(f"tr[data-dead-letter='{dead.id}']")
    await expect(dead_row).to_contain_text(VENDOR_ERROR)
    read_button = dead_row.locator("button[data-action=replay]")
    await expect(read_button).to_be_disabled()
    tip = await dead_row.locator(".tip").get_attribute("title")
    assert tip is not None and "admin key" in tip
    await expect(page.locator(".role")).to_contain_text("read-only")
    await page.screenshot(path=screenshots / "read-key.png", full_page=True)
    await page.click("text=Sign out")
    await expect(page.locator(".flash-ok")).to_contain_text("Signed out")
    await page.goto(f"{base}/")
    assert page.url == f"{base}/login"

    # The admin sees the failing connection, and the dead letter with the vendor's answer.
    await sign_in(page, base, tenant.admin_key)
    await expect(page.locator(".tenant")).to_have_text("test tenant")
    connection_row = page.locator(f"tr[data-connection='{connection['id']}']")
    await expect(connection_row).to_have_attribute("data-state", "failing")
    await expect(connection_row.locator(".badge")).to_have_text("Failing")
    await expect(dead_row).to_contain_text(VENDOR_ERROR)
    await expect(dead_row).to_contain_text("HTTP 422")
    await expect(dead_row).to_contain_text("Journey started")
    failure = page.locator("#failures tr[data-event='ev-dash-1'][data-status='dead']")
    await expect(failure).to_contain_text(VENDOR_ERROR)
    await expect(failure).to_contain_text("422")
    assert tenant.admin_key not in await page.content()
    await page.screenshot(path=screenshots / "failing.png", full_page=True)

    # Replay: back on the dashboard with a message, the dead letter marked replayed …
    await dead_row.locator("button[data-action=replay]").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Replayed Journey started ev-dash-1")
    assert page.url == f"{base}/"
    await expect(dead_row).to_have_attribute("data-replayed", "yes")
    await expect(dead_row.locator("[data-status=replayed]")).to_be_visible()
    await page.screenshot(path=screenshots / "replay-clicked.png", full_page=True)

    # … and, once the push worker has sent it, the delivery shows as delivered.
    delivered = await reload_until(
        page, "#deliveries tr[data-event='ev-dash-1'][data-status='delivered']"
    )
    await expect(delivered).to_contain_text("Delivered")
    await expect(dead_row.locator("[data-after-replay]")).to_have_attribute(
        "data-after-replay", "delivered"
    )
    await expect(dead_row).not_to_contain_text("HTTP 201")  # the error's status, not the success's
    await expect(dead_row).to_contain_text("HTTP 422")
    await expect(connection_row).not_to_have_attribute("data-state", "failing")
    await expect(page.locator(".flash")).to_have_count(0)  # a message is shown once
    assert len(tave.contacts) == 1 and tave.creates("address-book") == 1
    await page.screenshot(path=screenshots / "replayed.png", full_page=True)

    # The connection's own page tells the same story.
    await connection_row.locator("a.conn-name").click()
    await expect(page.locator("h1")).to_have_text("Studio CRM")
    await expect(page.locator(f"tr[data-dead-letter='{dead.id}']")).to_have_attribute(
        "data-replayed", "yes"
    )
    await page.screenshot(path=screenshots / "connection.png", full_page=True)
    audit = await hub.store.audit.list(tenant.id, action="dead_letter.replayed")
    assert len(audit) == 1 and audit[0].actor.startswith("key:")


async def test_a_wrong_key_is_refused_with_a_message(
    gateway: Gateway, browser: Any, screenshots: Path
) -> None:
    from playwright.async_api import expect

    page = await browser.new_page()
    await sign_in(page, gateway.url, "jh_0000_not-a-key")
    assert page.url == f"{gateway.url}/login"
    await expect(page.locator("#login-error")).to_contain_text("not recognised")
    cookies = await browser.cookies()
    assert "jh_session" not in {c["name"] for c in cookies}
    await page.screenshot(path=screenshots / "wrong-key.png")
    await page.goto(f"{gateway.url}/")
    assert page.url == f"{gateway.url}/login"


async def form_token(client: httpx.AsyncClient, path: str = "/") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def signed_in(gateway: Gateway, key: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=gateway.url, timeout=30)
    token = await form_token(client, "/login")
    answer = await client.post("/login", data={"_csrf_token": token, "api_key": key})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    return client


async def test_the_browser_flow_over_http_sign_in_replay_sign_out(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    """What the browser does, with a plain HTTP client and its cookie jar: the sign-in form's
    token, the session, a replay posted with the page's token (refused without it), the
    message after it, and signing out."""
    await tave_connection(gateway, tenant, tave)
    dead = await dead_letter_for(gateway, tenant, hub, tave, "ev-dash-http")
    replay = f"/dead-letters/{dead.id}/replay"

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        sign_in_token = await form_token(client, "/login")
        answer = await client.post(
            "/login", data={"_csrf_token": sign_in_token, "api_key": tenant.admin_key}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        session_cookie = [v for v in answer.headers.get_list("set-cookie") if "jh_session=" in v]
        assert len(session_cookie) == 1 and tenant.admin_key not in session_cookie[0]
        assert "httponly" in session_cookie[0].lower()
        assert "samesite=strict" in session_cookie[0].lower()

        page = await client.get("/")
        assert page.status_code == 200 and f'data-dead-letter="{dead.id}"' in page.text
        assert f'action="{replay}"' in page.text
        token = await form_token(client)
        assert token != sign_in_token  # a new token once signed in

        # Without the form's token: refused, and nothing is replayed.
        refused = await client.post(replay, data={"back": "/"})
        assert refused.status_code == 403 and "form expired" in refused.text
        refused = await client.post(replay, data={"_csrf_token": "forged", "back": "/"})
        assert refused.status_code == 403
        assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is None

        # With the page's token: replayed, back on the dashboard with a message, shown once.
        token = await form_token(client)
        answer = await client.post(replay, data={"_csrf_token": token, "back": "/"})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is not None
        page = await client.get("/")
        assert "Replayed Journey started ev-dash-http" in page.text
        assert "Replayed Journey started" not in (await client.get("/")).text
        await eventually(lambda: len(tave.contacts) == 1, timeout=20)
        [audit] = await hub.store.audit.list(tenant.id, action="dead_letter.replayed")
        assert audit.actor == f"key:{tenant.admin_key.split('_')[1]}"

        # Signing out ends the session; the sign-in page says so.
        answer = await client.post("/logout", data={"_csrf_token": await form_token(client)})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        assert "Signed out." in (await client.get("/login")).text
        answer = await client.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"

        # A made-up session cookie (here with an expiry that is not JSON) is nobody, no error.
        made_up = base64.b64encode(b"0" * 28 + b"additional_authenticated_data={").decode()
        client.cookies.set("jh_session", made_up)
        answer = await client.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"


async def test_sessions_and_forms_are_checked(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, tave: TaveSandbox
) -> None:
    await tave_connection(gateway, tenant, tave)
    dead = await dead_letter_for(gateway, tenant, hub, tave, "ev-dash-forms")
    replay = f"/dead-letters/{dead.id}/replay"

    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as anonymous:
        assert (await anonymous.get("/")).headers["location"] == "/login"
        answer = await anonymous.post(replay, data={"_csrf_token": "x"})
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
        # The login form needs its own token (double submit).
        answer = await anonymous.post("/login", data={"api_key": tenant.admin_key})
        assert answer.status_code == 403 and "jh_session" not in answer.cookies
        # A forged session cookie is nobody.
        anonymous.cookies.set("jh_session", "gAAAAAforged")
        assert (await anonymous.get("/")).headers["location"] == "/login"
        # The API still wants its Bearer key: the dashboard's paths are the only exceptions.
        assert (await anonymous.get("/v1/dlq")).status_code == 401

    client = await signed_in(gateway, tenant.admin_key)
    try:
        session = client.cookies["jh_session"]
        assert tenant.admin_key not in session  # encrypted, not the key itself
        page = await client.get("/")
        assert page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert tenant.admin_key not in page.text
        set_cookie = (await signed_in_headers(gateway, tenant.read_key)).lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie

        # A form without the session's token is refused, and nothing is replayed.
        answer = await client.post(replay, data={"_csrf_token": "not-the-token"})
        assert answer.status_code == 403
        assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is None

        # Another tenant cannot replay (or see) this tenant's dead letter.
        other = await make_tenant(hub, "another studio")
        other_client = await signed_in(gateway, other.admin_key)
        try:
            token = await form_token(other_client)
            answer = await other_client.post(replay, data={"_csrf_token": token})
            assert answer.status_code == 303
            assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is None
            assert dead.id not in (await other_client.get("/")).text
            assert (await other_client.get(f"/connections/{dead.connection_id}")).status_code == 404
        finally:
            await other_client.aclose()

        # A read key cannot replay even with a good token.
        reader = await signed_in(gateway, tenant.read_key)
        try:
            token = await form_token(reader)
            answer = await reader.post(replay, data={"_csrf_token": token})
            assert answer.status_code == 303
            assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is None
            assert "Replaying needs an admin key" in (await reader.get("/")).text
        finally:
            await reader.aclose()

        # "Replay all shown" with the admin's token replays it; a redirect only goes home.
        token = await form_token(client)
        answer = await client.post(
            "/dead-letters/replay",
            data={
                "_csrf_token": token,
                "id": [dead.id, "dlq_unknown"],
                "back": "https://evil.example/",
            },
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        assert (await hub.store.deliveries.get_dead(dead.id, tenant.id)).replayed_at is not None
        await eventually(lambda: len(tave.contacts) == 1, timeout=20)

        # Revoking the key ends the session at the next request.
        key_id = tenant.admin_key.split("_")[1]
        assert await hub.store.tenants.revoke_key(key_id, actor="test")
        answer = await client.get("/")
        assert answer.status_code == 303 and answer.headers["location"] == "/login"
    finally:
        await client.aclose()


async def signed_in_headers(gateway: Gateway, key: str) -> str:
    """The Set-Cookie header of a sign-in (to check the cookie's attributes)."""
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
        token = await form_token(client, "/login")
        answer = await client.post("/login", data={"_csrf_token": token, "api_key": key})
        return "; ".join(v for v in answer.headers.get_list("set-cookie") if "jh_session" in v)


def health(**changes: Any) -> Any:
    """A connection's health with one call that succeeded a minute ago; ``changes`` on top."""
    from datetime import timedelta

    from journeyhub.health import BreakerHealth, ConnectionHealth, LatencyStats, window
    from journeyhub.model import utcnow

    now = utcnow()
    ok = window({"delivered": 1}, 3600)
    closed = BreakerHealth(
        state="closed", failures=0, opened_at=None, reopens_at=None, paused_until=None
    )
    values: dict[str, Any] = {
        "connection_id": "con_1",
        "tenant_id": "ten_1",
        "vendor": "tave",
        "name": "crm",
        "enabled": True,
        "status": "active",
        "connected": True,
        "needs_reauth": False,
        "last_success_at": now - timedelta(minutes=1),
        "last_error_at": None,
        "breaker": closed,
        "last_sync": None,
        "last_hour": ok,
        "last_24h": ok,
        "latency": LatencyStats(window_seconds=86400, samples=1, p50_ms=20.0, p95_ms=20.0),
        "pending_deliveries": 0,
        "dead_letters": 0,
        "checked_at": now,
    }
    values.update(changes)
    return ConnectionHealth(**values)


def test_a_connection_state_is_one_word_with_its_reason() -> None:
    from datetime import timedelta

    from journeyhub.gateway.dashboard import assess
    from journeyhub.health import BreakerHealth, window
    from journeyhub.model import utcnow

    now = utcnow()
    assert assess(health()).key == "healthy"
    mixed = window({"delivered": 3, "dead": 1}, 3600)
    failing = assess(health(last_hour=mixed, last_24h=mixed, last_error_at=now))
    assert failing.key == "failing" and "latest call failed" in failing.reason
    recovered = health(last_hour=mixed, last_24h=mixed, last_error_at=now - timedelta(minutes=5))
    assert assess(recovered).key == "degraded" and "latest ok" in assess(recovered).reason
    assert assess(health(dead_letters=2)).reason == "2 dead letters"
    assert assess(health(needs_reauth=True, status="needs_reauth")).key == "reauth"
    opened = BreakerHealth(
        state="open", failures=5, opened_at=now, reopens_at=now, paused_until=None
    )
    assert assess(health(breaker=opened)).label == "Breaker open"
    assert assess(health(enabled=False)).key == "disabled"
    none = window({}, 3600)
    assert assess(health(last_hour=none, last_24h=none, last_success_at=None)).key == "idle"


def test_times_read_as_time_ago() -> None:
    from datetime import timedelta

    from journeyhub.gateway.dashboard import ago
    from journeyhub.model import utcnow

    now = utcnow()
    assert ago(None, now) == "never"
    assert ago(now - timedelta(seconds=3), now) == "just now"
    assert ago(now - timedelta(seconds=42), now) == "42 s ago"
    assert ago(now - timedelta(minutes=4, seconds=5), now) == "4 min ago"
    assert ago(now - timedelta(hours=5), now) == "5 h ago"
    assert ago(now - timedelta(days=3), now) == "3 d ago"
    assert ago(now + timedelta(minutes=2), now) == "in 2 min"
    assert ago(now + timedelta(seconds=20), now) == "in 20 s"
    assert ago(now + timedelta(seconds=3), now) == "in a moment"
