"""One client's story: ``GET /v1/clients/{id}/timeline``, ``GET /v1/clients?q=`` and the
dashboard's client pages, over the hub as it runs.

A client's journey events go in over the API and reach Tave's sandbox (a contact, its vendor
id); Tave refuses a later one for good (a dead letter); an inbound webhook names the client by
email only (a trigger, its client found through Tave's record). The timeline shows each of
those with its ids, newest first, page by page; another tenant sees none of it; erasing the
client empties it. In headless Chromium: search by email, open the client, replay its dead
letter from its timeline.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from journeyhub import signing
from journeyhub.hub import Hub
from journeyhub.testing.fixtures import Gateway, TenantKeys, eventually, make_tenant
from journeyhub.testing.sandbox import Fault

from ..conftest import create_connection, event
from .test_dashboard import browser, chromium, screenshots, sign_in  # noqa: F401 - fixtures

if TYPE_CHECKING:
    from journeyhub_tave.sandbox import TaveSandbox

pytestmark = [pytest.mark.usefixtures("workers"), pytest.mark.plugins]  # Tave

REFUSAL = "Wedding date is not valid"


@pytest.fixture
def tave(tave_sandbox: TaveSandbox) -> TaveSandbox:
    tave_sandbox.reset()
    return tave_sandbox


def person(tag: str) -> dict[str, str]:
    return {
        "id": f"cl_story_{tag}",
        "name": f"Imogen Featherstonehaugh {tag}",
        "email": f"imogen.{tag}@example.com",
        "phone": "+44 20 7946 0101",
    }


async def send(gateway: Gateway, tenant: TenantKeys, body: Any) -> None:
    answer = await gateway.client.post("/v1/events", json=body, headers=tenant.headers("ingest"))
    assert answer.status_code == 202, answer.text


async def story(
    hub: Hub, gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox, tag: str
) -> dict[str, Any]:
    """The client's events delivered to Tave, one refused for good, a payment webhook: what
    the hub did, as ids."""
    client = person(tag)
    crm = await create_connection(
        gateway,
        tenant,
        vendor="tave",
        name="Studio CRM",
        direction="outbound",
        config={"api_base": tave.api_base},
        credentials={"api_key": tave.api_key},
    )
    token = signing.new_token()
    engine = await create_connection(
        gateway,
        tenant,
        vendor="webhook",
        name="Payments",
        direction="inbound",
        credentials={"secret": signing.new_secret(), "token": token},
    )
    started, updated = f"{tag}-started", f"{tag}-updated"
    other = event(f"{tag}-other", client_id=f"cl_other_{tag}")
    await send(gateway, tenant, [event(started, client_id=client["id"], client=client), other])
    # Both events wholly delivered (contact, job and its contact) before Tave's refusal is
    # planned, so that it meets the later event and not a call still in flight.
    await eventually(lambda: _delivered(hub, tenant, {started, other["id"]}), timeout=20)

    tave.faults.plan(Fault(status=422, body={"type": "validation", "title": REFUSAL}))
    changed = {"date": "2027-05-01"}  # a change: Tave is called, and refuses it
    await send(
        gateway,
        tenant,
        event(updated, "client_updated", client_id=client["id"], client=client, wedding=changed),
    )
    [dead] = await eventually(lambda: hub.store.deliveries.list_dead(tenant.id), timeout=20)
    assert dead.client_id == client["id"], dead

    hook = engine["webhook_url"].removeprefix(str(gateway.client.base_url))
    payment = {"id": f"{tag}-pay", "type": "payment_received", "client_email": client["email"]}
    answer = await gateway.client.post(
        hook, content=json.dumps(payment), headers={"x-journeyhub-token": token}
    )
    assert answer.status_code == 200, answer.text
    [trigger] = await eventually(
        lambda: hub.store.triggers.list(tenant.id, connection_id=engine["id"]), timeout=20
    )
    assert trigger.client_id == client["id"]  # found by email, through Tave's record
    return {
        "client": client,
        "crm": crm["id"],
        "engine": engine["id"],
        "started": started,
        "updated": updated,
        "dead": dead.id,
        "trigger": trigger.id,
    }


async def _delivered(hub: Hub, tenant: TenantKeys, source_ids: set[str]) -> bool:
    done = await hub.store.deliveries.list(tenant.id, status="delivered")
    return source_ids <= {d.source_id for d in done}


async def timeline(
    gateway: Gateway, tenant: TenantKeys, client_id: str, **params: Any
) -> dict[str, Any]:
    answer = await gateway.client.get(
        f"/v1/clients/{quote(client_id, safe='')}/timeline",
        params=params,
        headers=tenant.headers("read"),
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def entries_of(page: dict[str, Any], kind: str, **ids: str) -> list[dict[str, Any]]:
    return [
        e
        for e in page["entries"]
        if e["kind"] == kind and all(e["ids"].get(k) == v for k, v in ids.items())
    ]


async def test_a_clients_timeline_tells_what_the_hub_did_page_by_page(
    hub: Hub, gateway: Gateway, tenant: TenantKeys, tave: TaveSandbox
) -> None:
    told = await story(hub, gateway, tenant, tave, "api")
    client = told["client"]
    page = await eventually(
        lambda: _with_trigger(gateway, tenant, client["id"], told["trigger"]), timeout=20
    )

    assert page["client"]["name"] == client["name"] and page["client"]["email"] == client["email"]
    assert set(page["entries"][0]) == {
        "kind",
        "at",
        "connection",
        "connector",
        "outcome",
        "ids",
        "summary",
    }
    # Journey events received, from the journey engine (no connection).
    for event_id in (told["started"], told["updated"]):
        [received] = entries_of(page, "event", event=event_id)
        assert received["outcome"] == "received" and received["connection"] is None
    # The delivery at Tave with Tave's record ids; the refused one, dead.
    delivered = entries_of(page, "delivery", source=told["started"])
    assert [d["outcome"] for d in delivered] == ["delivered"]
    assert delivered[0]["connection"] == told["crm"] and delivered[0]["connector"] == "tave"
    vendor_ids = {k: v for k, v in delivered[0]["ids"].items() if k.startswith("vendor.")}
    assert vendor_ids and str(tave.contacts[0]["id"]) in json.dumps(page)
    refused = entries_of(page, "delivery", source=told["updated"])
    assert refused and refused[0]["outcome"] == "dead" and REFUSAL in refused[0]["summary"]
    # The dead letter, with what a replay needs.
    [dead] = entries_of(page, "dead_letter", dead_letter=told["dead"])
    assert dead["outcome"] == "dead" and dead["ids"]["source"] == told["updated"]
    assert dead["connection"] == told["crm"]
    # The trigger and where it came from.
    [trigger] = entries_of(page, "trigger", trigger=told["trigger"])
    assert trigger["connection"] == told["engine"] and trigger["connector"] == "webhook"
    assert trigger["ids"]["source_event"] == "api-pay" and trigger["outcome"] == "emitted"
    # The client's records at the vendors: Tave's contact.
    assert {r["connector"] for r in page["records"]} == {"tave"}
    assert str(tave.contacts[0]["id"]) in {r["vendor_id"] for r in page["records"]}
    # Nothing of the other client.
    assert "api-other" not in json.dumps(page)

    # Newest first, and in pages of 2 that add up to the whole, none twice.
    stamps = [e["at"] for e in page["entries"]]
    assert stamps == sorted(stamps, reverse=True)
    assert page["next"] is None
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"before": cursor} if cursor else {})}
        part = await timeline(gateway, tenant, client["id"], **params)
        assert len(part["entries"]) <= 2
        paged.extend(part["entries"])
        cursor = part["next"]
        if cursor is None:
            break
    assert paged == page["entries"]
    bad = await gateway.client.get(
        f"/v1/clients/{client['id']}/timeline",
        params={"before": "not-a-cursor"},
        headers=tenant.headers("read"),
    )
    assert bad.status_code == 422 and "before" in bad.text

    # Found by email, by a word of the name, by the id's start; by nobody else.
    for query in (client["email"].upper(), "featherstone", "Imogen Feather", "cl_story_a"):
        found = await gateway.client.get(
            "/v1/clients", params={"q": query}, headers=tenant.headers("read")
        )
        assert found.status_code == 200 and client["id"] in [c["id"] for c in found.json()]

    # Another tenant sees nothing of it, whatever it asks.
    stranger = await make_tenant(hub, "stranger")
    theirs = await timeline(gateway, stranger, client["id"])
    assert theirs["entries"] == [] and theirs["records"] == [] and theirs["next"] is None
    assert theirs["client"] == {
        "id": client["id"],
        "name": None,
        "email": None,
        "first_seen_at": None,
        "last_seen_at": None,
    }
    for query in (client["email"], client["id"]):
        found = await gateway.client.get(
            "/v1/clients", params={"q": query}, headers=stranger.headers("read")
        )
        assert found.status_code == 200 and found.json() == []

    # Erasing the client empties its timeline and the search.
    erased = await gateway.client.delete(f"/v1/clients/{client['id']}", headers=tenant.headers())
    assert erased.status_code == 200, erased.text
    assert erased.json()["tables"]["clients"] >= 2  # its directory row and its terms
    after = await timeline(gateway, tenant, client["id"])
    assert after["entries"] == [] and after["records"] == [] and after["client"]["name"] is None
    found = await gateway.client.get(
        "/v1/clients", params={"q": client["email"]}, headers=tenant.headers("read")
    )
    assert found.json() == []


async def _with_trigger(
    gateway: Gateway, tenant: TenantKeys, client_id: str, trigger_id: str
) -> dict[str, Any] | None:
    page = await timeline(gateway, tenant, client_id, limit=200)
    return page if entries_of(page, "trigger", trigger=trigger_id) else None


async def test_search_by_email_open_the_timeline_and_replay_its_dead_letter(
    hub: Hub,
    gateway: Gateway,
    tenant: TenantKeys,
    tave: TaveSandbox,
    browser: Any,  # noqa: F811 - the fixture
    screenshots: Any,  # noqa: F811 - the fixture
) -> None:
    from playwright.async_api import expect

    told = await story(hub, gateway, tenant, tave, "web")
    client = told["client"]
    page = await browser.new_page()
    base = gateway.url
    await sign_in(page, base, tenant.admin_key)

    # The header's search box, by email: the matching clients.
    await page.fill(".client-search input[name=q]", client["email"])
    await page.press(".client-search input[name=q]", "Enter")
    await page.wait_for_load_state()
    row = page.locator(f"tr[data-client='{client['id']}']")
    await expect(row).to_contain_text(client["name"])
    await expect(page.locator(".clients-table tbody tr")).to_have_count(1)
    await page.screenshot(path=screenshots / "client-search.png", full_page=True)

    # The client's timeline: its events, deliveries, the trigger and the dead letter.
    await row.locator("a.client-link").click()
    await expect(page.locator("h1")).to_have_text(client["name"])
    dead_row = page.locator(f"tr[data-dead-letter='{told['dead']}']")
    await expect(dead_row).to_have_attribute("data-outcome", "dead")
    await expect(dead_row).to_contain_text(REFUSAL)
    await expect(page.locator("tr[data-kind=trigger]")).to_contain_text("Payments")
    await expect(page.locator("tr[data-kind=event]")).to_have_count(2)
    await expect(page.locator("tr[data-kind=delivery][data-outcome=delivered]")).to_have_count(1)
    await page.screenshot(path=screenshots / "client-timeline.png", full_page=True)

    # Replay from the timeline: back on the client's page, the dead letter replayed …
    await dead_row.locator("button[data-action=replay]").click()
    await expect(page.locator(".flash-ok")).to_contain_text("Replayed")
    assert page.url == f"{base}/clients/{quote(client['id'], safe='')}"
    await expect(dead_row).to_have_attribute("data-outcome", "replayed")

    # … and once Tave has it, the refused event's delivery shows as delivered.
    async def delivered_again() -> bool:
        await page.reload()
        found = page.locator(
            f"tr[data-kind=delivery][data-outcome=delivered]:has-text('{told['updated']}')"
        )
        return await found.count() > 0

    await eventually(delivered_again, timeout=20, interval=0.5)
    await page.screenshot(path=screenshots / "client-replayed.png", full_page=True)
    audit = await hub.store.audit.list(tenant.id, action="dead_letter.replayed")
    assert len(audit) == 1
