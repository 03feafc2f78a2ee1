"""Connecting Google Calendar in a browser: the OAuth 2.0 authorization-code flow with PKCE and
a one-time state (``services/oauth.py``), against the Google sandbox's consent screen and token
endpoint.

In a real headless Chromium: sign in to the dashboard, click Reconnect on a connection that
needs re-authorising, click Allow at the sandbox's consent, land back on the connection with
``needs_reauth`` cleared and the calendar working; a refused consent; a replayed callback and a
reused code. Over plain HTTP: the start route's answers, expired, reused and unknown states.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from journeyhub import signing
from journeyhub.hub import Hub
from journeyhub.model import utcnow
from journeyhub.store.tables import OAuthStateRow
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually
from sqlalchemy import update

from ..conftest import create_connection, event

if TYPE_CHECKING:
    from journeyhub_gcal.sandbox import GcalSandbox

pytestmark = [pytest.mark.plugins, pytest.mark.usefixtures("workers")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def gcal_server() -> Iterator[GcalSandbox]:
    from journeyhub_gcal.sandbox import GcalSandbox

    with GcalSandbox() as sandbox:
        yield sandbox


@pytest.fixture
def gcal(gcal_server: GcalSandbox, hub: Hub) -> GcalSandbox:
    """The sandbox, reset, with the hub's callback registered as the client's redirect URI."""
    gcal_server.reset()
    gcal_server.allow_redirect_uri(hub.settings.effective_public_url + "/oauth/callback")
    return gcal_server


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("JOURNEYHUB_DASHBOARD_SCREENSHOTS")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("oauth-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"oauth screenshots: {folder}")
    return folder


@pytest.fixture
def chromium() -> Path:
    """The Chromium binary; without it, skip (fail under ``CI=true``)."""
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} is missing")
    return CHROMIUM


@pytest_asyncio.fixture
async def browser(chromium: Path, tmp_path: Path) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        context.set_default_timeout(TIMEOUT_MS)
        try:
            yield context
        finally:
            await context.close()


async def needing_reauth(gateway: Gateway, tenant: TenantKeys, gcal: GcalSandbox) -> dict:
    """A calendar connection whose refresh token Google revoked: ``needs_reauth``."""
    connection = await create_connection(
        gateway,
        tenant,
        vendor="gcal",
        name="Studio calendar",
        direction="outbound",
        config=gcal.config(),
        credentials=gcal.credentials(),
    )
    gcal.revoke_refresh_token()
    tried = await try_connection(gateway, tenant, connection["id"])
    assert not tried["ok"] and "invalid_grant" in tried["vendor_answer"]
    assert (await get(gateway, tenant, connection["id"]))["status"] == "needs_reauth"
    return connection


async def get(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> dict:
    answer = await gateway.client.get(f"/v1/connections/{connection_id}", headers=tenant.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


async def try_connection(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> dict:
    path = f"/v1/connections/{connection_id}/test"
    answer = await gateway.client.post(path, headers=tenant.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


async def stored_credentials(hub: Hub, connection_id: str) -> dict[str, Any]:
    found = await hub.store.connections.get_with_credentials(connection_id)
    assert found is not None
    return found[1]


async def sign_in(page: Any, base: str, key: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#api_key", key)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_reconnect_in_the_browser_clears_needs_reauth_and_the_calendar_works(
    gateway: Gateway,
    tenant: TenantKeys,
    hub: Hub,
    gcal: GcalSandbox,
    browser: Any,
    screenshots: Path,
) -> None:
    from playwright.async_api import expect

    connection = await needing_reauth(gateway, tenant, gcal)
    before = await stored_credentials(hub, connection["id"])
    page = await browser.new_page()
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/oauth/callback" in r.url else None)
    base, here = gateway.url, f"{gateway.url}/connections/{connection['id']}"
    await sign_in(page, base, tenant.admin_key)
    await page.goto(here)
    button = page.locator("[data-oauth-connect] button[data-action=oauth-connect]")
    await expect(button).to_have_text("Reconnect Google Calendar")
    await expect(page.locator("[data-oauth-connect]")).to_have_attribute("data-needed", "yes")
    await page.screenshot(path=screenshots / "oauth-reconnect.png", full_page=True)

    # Reconnect: the sandbox's consent screen, for the connection's own OAuth client …
    await button.click()
    await page.wait_for_url(re.compile(re.escape(gcal.auth_url)))
    await expect(page.locator("#client")).to_have_text(before["client_id"])
    await expect(page.locator("#scopes")).to_contain_text("auth/calendar")
    asked = parse_qs(urlsplit(page.url).query)
    assert asked["code_challenge_method"] == ["S256"] and len(asked["code_challenge"][0]) == 43
    assert asked["access_type"] == ["offline"] and asked["prompt"] == ["consent"]
    assert "code_verifier" not in asked
    await page.screenshot(path=screenshots / "oauth-consent.png")

    # … Allow: back on the hub, connected, and on to the connection's page (signed in).
    await page.click("#submit_approve_access")
    await expect(page.locator("#oauth-message")).to_contain_text("Google Calendar is connected")
    await page.screenshot(path=screenshots / "oauth-connected.png")
    await page.wait_for_url(here)
    await expect(page.locator("h1")).to_have_text("Studio calendar")
    await expect(page.locator("[data-oauth-connect]")).to_have_attribute("data-needed", "no")
    await expect(button).to_have_text("Reconnect Google Calendar")
    await expect(page.locator(".conn-detail")).not_to_have_attribute("data-state", "needs_reauth")

    # The tokens are stored, encrypted; the connection is active and works against the sandbox.
    assert (await get(gateway, tenant, connection["id"]))["status"] == "active"
    after = await stored_credentials(hub, connection["id"])
    assert (
        after["refresh_token"] in gcal.refresh_tokens
        and after["refresh_token"] != before["refresh_token"]
    )
    assert after["access_token"] in gcal.access_tokens and after["client_id"] == before["client_id"]
    assert gcal.exchanges == 1
    tried = await try_connection(gateway, tenant, connection["id"])
    assert tried["ok"] and "Sandbox Studio" in tried["vendor_answer"], tried
    sent = await gateway.client.post(
        "/v1/events",
        json=event("ev-oauth-1", client_id="cl_oauth"),
        headers=tenant.headers("ingest"),
    )
    assert sent.status_code == 202, sent.text
    await eventually(lambda: len(gcal.events()) == 1, timeout=20)
    [audited] = await hub.store.audit.list(tenant.id, action="connection.oauth_connected")
    assert audited.actor.startswith("key:") and audited.connection_id == connection["id"]
    assert after["refresh_token"] not in str(audited) and after["access_token"] not in str(audited)

    # A replayed callback URL is refused (its state was used), and changes nothing.
    [callback] = callbacks
    await page.goto(callback)
    await expect(page.locator("#oauth-message")).to_contain_text("already used")
    assert await stored_credentials(hub, connection["id"]) == after
    assert gcal.exchanges == 1

    # The same code with a state the hub did start: Google refuses the reused code, plainly.
    fresh_state = await start_state(gateway, tenant, connection["id"])
    code = parse_qs(urlsplit(callback).query)["code"][0]
    await page.goto(f"{base}/oauth/callback?state={fresh_state}&code={code}")
    message = page.locator("#oauth-message")
    await expect(message).to_contain_text("refused the authorization code (invalid_grant")
    await expect(message).to_contain_text("Nothing was changed")
    await page.screenshot(path=screenshots / "oauth-reused-code.png")
    assert await stored_credentials(hub, connection["id"]) == after
    await expect(page.locator("a[data-action=back]")).to_have_attribute("href", here[len(base) :])


async def test_a_refused_consent_shows_a_clear_page_and_changes_nothing(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal: GcalSandbox, browser: Any
) -> None:
    from playwright.async_api import expect

    connection = await needing_reauth(gateway, tenant, gcal)
    before = await stored_credentials(hub, connection["id"])
    page = await browser.new_page()
    await sign_in(page, gateway.url, tenant.admin_key)
    await page.goto(f"{gateway.url}/connections/{connection['id']}")
    await page.click("[data-oauth-connect] button[data-action=oauth-connect]")
    await page.wait_for_url(re.compile(re.escape(gcal.auth_url)))
    await page.click("#submit_deny_access")
    await expect(page.locator("#oauth-message")).to_have_text(
        "Access was not granted at Google Calendar. Nothing was changed."
    )
    assert page.url.startswith(f"{gateway.url}/oauth/callback?error=access_denied")
    assert gcal.denials == 1 and gcal.exchanges == 0
    assert await stored_credentials(hub, connection["id"]) == before
    assert (await get(gateway, tenant, connection["id"]))["status"] == "needs_reauth"
    assert not await hub.store.audit.list(tenant.id, action="connection.oauth_connected")


async def test_a_read_key_sees_no_connect_button(
    gateway: Gateway, tenant: TenantKeys, gcal: GcalSandbox, browser: Any
) -> None:
    from playwright.async_api import expect

    connection = await needing_reauth(gateway, tenant, gcal)
    page = await browser.new_page()
    await sign_in(page, gateway.url, tenant.read_key)
    await page.goto(f"{gateway.url}/connections/{connection['id']}")
    section = page.locator("[data-oauth-connect]")
    await expect(section).to_contain_text("needs an admin key")
    await expect(section.locator("button")).to_have_count(0)


# --- over plain HTTP ------------------------------------------------------------------------------


async def start_url(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> str:
    path = f"/v1/connections/{connection_id}/oauth/start"
    answer = await gateway.client.get(path, headers={**tenant.headers(), "accept": "text/html"})
    assert answer.status_code == 302, answer.text
    assert answer.headers["cache-control"] == "no-store"
    return answer.headers["location"]


async def start_state(gateway: Gateway, tenant: TenantKeys, connection_id: str) -> str:
    path = f"/v1/connections/{connection_id}/oauth/start"
    headers = {**tenant.headers(), "accept": "application/json"}
    answer = await gateway.client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["redirect_uri"].endswith("/oauth/callback") and body["expires_at"]
    return parse_qs(urlsplit(body["authorization_url"]).query)["state"][0]


async def consent(url: str, decision: str = "allow") -> dict[str, str]:
    """Answer the sandbox's consent page as a person would; the redirect's query."""
    async with httpx.AsyncClient(timeout=10) as client:
        page = await client.get(url)
        assert page.status_code == 200, page.text
        consent_id = re.search(r"name='consent' value='([^']+)'", page.text)
        assert consent_id is not None
        action = url.split("?", 1)[0] + "/decision"
        data = {"consent": consent_id.group(1), "decision": decision}
        answer = await client.post(action, data=data)
    assert answer.status_code == 302, answer.text
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["location"]).query).items()}


async def callback(gateway: Gateway, query: dict[str, str]) -> httpx.Response:
    return await gateway.client.get("/oauth/callback", params=query)


async def test_start_answers_and_refusals(
    gateway: Gateway, tenant: TenantKeys, gcal: GcalSandbox
) -> None:
    connection = await needing_reauth(gateway, tenant, gcal)
    path = f"/v1/connections/{connection['id']}/oauth/start"
    assert (await gateway.client.get(path)).status_code == 401
    assert (await gateway.client.get(path, headers=tenant.headers("read"))).status_code == 403
    url = await start_url(gateway, tenant, connection["id"])
    assert url.startswith(gcal.auth_url + "?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [gcal.credentials()["client_id"]]
    assert query["response_type"] == ["code"] and query["code_challenge_method"] == ["S256"]
    assert gcal.credentials()["client_secret"] not in url
    # A connector that does not connect through OAuth: a 422 that says so.
    other = await create_connection(
        gateway,
        tenant,
        vendor="webhook",
        name="engine",
        direction="outbound",
        config={"url": "http://127.0.0.1:9/hooks"},
        credentials={"secret": signing.new_secret()},
    )
    refused = await gateway.client.get(
        f"/v1/connections/{other['id']}/oauth/start", headers=tenant.headers()
    )
    assert refused.status_code == 422 and "does not connect through OAuth" in refused.text


async def test_a_first_connect_over_http_then_a_reused_state_is_refused(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal: GcalSandbox
) -> None:
    credentials = {k: v for k, v in gcal.credentials().items() if k != "refresh_token"}
    connection = await create_connection(
        gateway, tenant, vendor="gcal", name="new", config=gcal.config(), credentials=credentials
    )
    answer = await consent(await start_url(gateway, tenant, connection["id"]))
    connected = await callback(gateway, answer)
    assert connected.status_code == 200, connected.text
    assert connected.headers["refresh"] == f"1; url=/connections/{connection['id']}"
    stored = await stored_credentials(hub, connection["id"])
    assert stored["refresh_token"] in gcal.refresh_tokens
    replayed = await callback(gateway, answer)
    assert replayed.status_code == 400 and "already used" in replayed.text
    assert gcal.exchanges == 1 and await stored_credentials(hub, connection["id"]) == stored


async def test_an_expired_state_is_refused_and_its_code_never_spent(
    gateway: Gateway, tenant: TenantKeys, hub: Hub, gcal: GcalSandbox
) -> None:
    connection = await needing_reauth(gateway, tenant, gcal)
    before = await stored_credentials(hub, connection["id"])
    answer = await consent(await start_url(gateway, tenant, connection["id"]))
    async with hub.store.session() as s:  # 10 minutes later
        await s.execute(
            update(OAuthStateRow)
            .where(OAuthStateRow.connection_id == connection["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    expired = await callback(gateway, answer)
    assert expired.status_code == 400 and "expired" in expired.text
    assert gcal.exchanges == 0 and await stored_credentials(hub, connection["id"]) == before
    assert (await get(gateway, tenant, connection["id"]))["status"] == "needs_reauth"
    # Used up: the same state is not good later either.
    again = await callback(gateway, answer)
    assert again.status_code == 400 and "already used" in again.text


async def test_an_unknown_or_missing_state_is_refused(gateway: Gateway, gcal: GcalSandbox) -> None:
    unknown = await callback(gateway, {"state": "made-up", "code": "4/0whatever"})
    assert unknown.status_code == 400 and "not one the hub started" in unknown.text
    missing = await callback(gateway, {"code": "4/0whatever"})
    assert missing.status_code == 400 and "no state" in missing.text
    assert gcal.exchanges == 0
