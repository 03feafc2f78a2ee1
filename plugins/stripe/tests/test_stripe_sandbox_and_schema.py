"""The sandbox answers as Stripe does for the subset we use; the schemas refuse bad input
without repeating secrets; the plugin loads through its entry point."""

from __future__ import annotations

import base64

import msgspec
import pytest
from journeyhub.plugins import get_plugin_manager
from journeyhub.testing.sandbox import Fault
from journeyhub_stripe.mapping import EVENT_TYPES
from journeyhub_stripe.sandbox import invoice
from journeyhub_stripe.schemas import StripeConfig, StripeCredentials


async def get(sandbox, http, path, params=(), key=None, headers=None):
    auth = {"authorization": f"Bearer {key or sandbox.api_key}"}
    return await http.get(f"{sandbox.url}{path}", params=list(params), headers=headers or auth)


async def test_list_shape_order_and_cursors(sandbox, http):
    ids = [
        sandbox.emit("invoice.paid", invoice(), created=1_700_000_000 + i)["id"] for i in range(5)
    ]
    body = (await get(sandbox, http, "/v1/events", [("limit", "2")])).json()
    assert body["object"] == "list" and body["url"] == "/v1/events"
    assert [e["id"] for e in body["data"]] == [ids[4], ids[3]] and body["has_more"] is True
    event = body["data"][0]
    assert event["object"] == "event" and event["livemode"] is False
    assert event["id"].startswith("evt_") and event["data"]["object"]["object"] == "invoice"
    assert {"api_version", "created", "type", "pending_webhooks", "request"} <= set(event)

    older = (await get(sandbox, http, "/v1/events", [("starting_after", ids[3])])).json()
    assert [e["id"] for e in older["data"]] == [ids[2], ids[1], ids[0]]
    newer = await get(sandbox, http, "/v1/events", [("ending_before", ids[0]), ("limit", "2")])
    assert [e["id"] for e in newer.json()["data"]] == [ids[2], ids[1]]  # just newer, newest first
    assert newer.json()["has_more"] is True
    one = await get(sandbox, http, f"/v1/events/{ids[2]}")
    assert one.json()["id"] == ids[2]


async def test_type_filters(sandbox, http):
    sandbox.emit("invoice.paid", invoice())
    sandbox.emit("invoice.payment_failed", invoice(paid=False))
    sandbox.emit("charge.refunded", {"id": "ch_1", "object": "charge"})
    wildcard = (await get(sandbox, http, "/v1/events", [("type", "invoice.*")])).json()
    assert {e["type"] for e in wildcard["data"]} == {"invoice.paid", "invoice.payment_failed"}
    for key in ("types[]", "types[0]"):  # curl style and stripe-python's indexed style
        listed = (await get(sandbox, http, "/v1/events", [(key, "charge.refunded")])).json()
        assert [e["type"] for e in listed["data"]] == ["charge.refunded"]


@pytest.mark.parametrize(
    "params, param",
    [
        ([("limit", "0")], "limit"),
        ([("limit", "101")], "limit"),
        ([("limit", "ten")], "limit"),
        ([("ending_before", "evt_nope")], "ending_before"),
        ([("type", "a"), ("types[]", "b")], "types"),
        ([("types[]", f"t{i}") for i in range(21)], "types"),
    ],
)
async def test_bad_requests_are_stripe_shaped_400s(sandbox, http, params, param):
    response = await get(sandbox, http, "/v1/events", params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


async def test_unknown_event_cursor_says_no_such_event(sandbox, http):
    response = await get(sandbox, http, "/v1/events", [("ending_before", "evt_gone")])
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("resource_missing", "No such event: 'evt_gone'")
    missing = await get(sandbox, http, "/v1/events/evt_gone")
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "id"
    unknown_url = await get(sandbox, http, "/v1/nope")
    assert unknown_url.status_code == 404
    assert unknown_url.json()["error"]["message"].startswith("Unrecognized request URL")


async def test_auth(sandbox, http):
    wrong = await get(sandbox, http, "/v1/events", key="sk_test_wrongwrongwrong4321")
    assert wrong.status_code == 401
    message = wrong.json()["error"]["message"]
    assert message.startswith("Invalid API Key provided: sk_test_***") and message.endswith("4321")
    assert "wrongwrong" not in message
    none = await http.get(f"{sandbox.url}/v1/events")
    assert none.status_code == 401 and "did not provide an API key" in none.text
    basic = base64.b64encode(f"{sandbox.api_key}:".encode()).decode()
    ok = await get(sandbox, http, "/v1/events", headers={"authorization": f"Basic {basic}"})
    assert ok.status_code == 200


async def test_faults_answer_with_stripe_errors(sandbox, http):
    sandbox.faults.plan(Fault(status=429, retry_after=3), Fault(status=503))
    limited = await get(sandbox, http, "/v1/events")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["code"] == "rate_limit"
    down = await get(sandbox, http, "/v1/events")
    assert down.status_code == 503 and down.json()["error"]["type"] == "api_error"
    assert (await get(sandbox, http, "/v1/events")).status_code == 200
    assert sandbox.faults.injected == {429: 1, 503: 1}


def test_config_schema():
    assert msgspec.convert({}, StripeConfig).api_base == "https://api.stripe.com"
    assert msgspec.convert({}, StripeConfig).tolerance_seconds == 300
    assert msgspec.convert({"api_base": "http://x/"}, StripeConfig).api_base == "http://x"
    for bad in (
        {"tolerance_seconds": 0},
        {"tolerance_seconds": 7200},
        {"api_base": "ftp://x"},
        {"surprise": 1},
        {"timeout_seconds": 0},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, StripeConfig)


@pytest.mark.parametrize(
    "creds",
    [
        {"webhook_secret": "not-a-whsec-secret-value"},
        {"webhook_secret": "whsec_"},
        {"webhook_secret": "whsec_ok", "previous_webhook_secrets": ["old-secret-value"]},
        {"webhook_secret": "whsec_ok", "api_key": "pk_test_publishableKey"},
        {"webhook_secret": "whsec_ok", "api_key": "some-other-key-value"},
        {"webhook_secret": "whsec_ok", "extra": "x"},
    ],
)
def test_credentials_schema_refuses_without_repeating_values(creds):
    with pytest.raises(msgspec.ValidationError) as exc:
        msgspec.convert(creds, StripeCredentials)
    for value in creds.values():
        for item in value if isinstance(value, list) else [value]:
            if item not in ("whsec_", "whsec_ok", "x"):
                assert item not in str(exc.value)


def test_credentials_schema_accepts_a_restricted_key_and_rotation():
    creds = msgspec.convert(
        {
            "webhook_secret": "whsec_new",
            "previous_webhook_secrets": ["whsec_old"],
            "api_key": "rk_live_restricted",
        },
        StripeCredentials,
    )
    assert creds.webhook_secrets == ["whsec_new", "whsec_old"]
    assert msgspec.convert({"webhook_secret": "whsec_x"}, StripeCredentials).api_key is None


def test_plugin_loads_through_its_entry_point():
    registry = get_plugin_manager(only=("stripe",))
    assert registry.errors == []
    info = registry.connector("stripe")
    assert (info.display_name, info.auth_kind) == ("Stripe", "api_key")
    assert info.capabilities == {"webhook", "pull"}
    assert set(info.webhook_event_types) == set(EVENT_TYPES) and len(EVENT_TYPES) == 7
    assert info.rate_limit is not None and info.rate_limit.requests == 25
    for hook in (
        "journeyhub_pull",
        "journeyhub_verify_webhook",
        "journeyhub_handle_webhook",
        "journeyhub_check_connection",
        "journeyhub_authenticate",
    ):
        assert registry.implements("stripe", hook)
