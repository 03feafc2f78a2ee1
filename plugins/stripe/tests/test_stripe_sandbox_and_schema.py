"""The sandbox answers as Stripe does for the subset we use, checked with stripe-python itself
as its client; its objects have the pinned version's shape; the schemas refuse bad input
without repeating secrets; the plugin loads through its entry point."""

from __future__ import annotations

import base64

import msgspec
import pytest
import stripe
from journeyhub.plugins import get_plugin_manager
from journeyhub.testing.sandbox import Fault
from journeyhub_stripe.mapping import API_VERSION, EVENT_TYPES
from journeyhub_stripe.sandbox import (
    StripeSandbox,
    charge,
    checkout_session,
    dispute,
    invoice,
    invoice_payment,
    payment_intent,
    refund,
)
from journeyhub_stripe.schemas import StripeConfig, StripeCredentials


async def get(sandbox, http, path, params=(), key=None, headers=None, version=API_VERSION):
    sent = {"authorization": f"Bearer {key or sandbox.api_key}", "stripe-version": version}
    sent = headers or {k: v for k, v in sent.items() if v is not None}
    return await http.get(f"{sandbox.url}{path}", params=list(params), headers=sent)


def client(sandbox: StripeSandbox, key: str | None = None) -> stripe.StripeClient:
    """stripe-python's own client, pointed at the sandbox."""
    return stripe.StripeClient(
        key or sandbox.api_key, base_addresses={"api": sandbox.url}, max_network_retries=0
    )


def test_the_pinned_version_is_the_one_stripe_python_pins():
    assert API_VERSION == stripe._api_version._ApiVersion.CURRENT


SHAPES = [
    (payment_intent(), stripe.PaymentIntent),
    (payment_intent(failed=True), stripe.PaymentIntent),
    (payment_intent(canceled="abandoned"), stripe.PaymentIntent),
    (checkout_session(), stripe.checkout.Session),
    (invoice(), stripe.Invoice),
    (invoice(paid=False), stripe.Invoice),
    (invoice_payment("in_1", "pi_1", 100), stripe.InvoicePayment),
    (charge(), stripe.Charge),
    (refund(status="failed", failure_reason="unknown"), stripe.Refund),
    (dispute(), stripe.Dispute),
]


@pytest.mark.parametrize(
    "obj, cls", SHAPES, ids=[f"{c.__name__}{i}" for i, (_, c) in enumerate(SHAPES)]
)
def test_objects_have_only_the_fields_the_pinned_version_declares(obj, cls):
    assert obj["object"] == cls.OBJECT_NAME
    assert set(obj) <= set(cls.__annotations__), set(obj) - set(cls.__annotations__)


def test_an_invoice_names_no_payment_intent_in_the_current_shape():
    assert not {"payment_intent", "charge", "paid", "paid_out_of_band"} & set(invoice())
    assert "payment_intent" not in stripe.Invoice.__annotations__


def test_events_have_the_event_shape_and_the_pinned_version(sandbox):
    event = sandbox.emit("invoice.paid", invoice())
    assert set(event) <= set(stripe.Event.__annotations__)
    assert event["api_version"] == API_VERSION
    parsed = stripe.Event.construct_from(event, "sk_test_x")
    assert isinstance(parsed.data.object, stripe.Invoice)


def test_stripe_python_reads_the_sandbox_as_it_reads_stripe(sandbox):
    ids = [sandbox.emit("invoice.paid", invoice())["id"] for _ in range(5)]
    sandbox.emit("customer.created", {"id": "cus_1", "object": "customer"})
    page = client(sandbox).v1.events.list(params={"limit": 2, "types": ["invoice.paid"]})
    assert [e.id for e in page.data] == [ids[4], ids[3]] and page.has_more
    assert [e.id for e in page.auto_paging_iter()] == ids[::-1]  # starting_after, page by page
    one = client(sandbox).v1.events.retrieve(ids[0])
    assert isinstance(one, stripe.Event) and isinstance(one.data.object, stripe.Invoice)
    request = sandbox.requests[-1]
    assert request.version == API_VERSION  # stripe-python pins its version, as we do


def test_stripe_python_raises_stripes_errors_from_the_sandbox(sandbox):
    with pytest.raises(stripe.AuthenticationError) as auth:
        client(sandbox, "sk_test_wrongwrongwrong4321").v1.events.list()
    assert auth.value.http_status == 401
    with pytest.raises(stripe.InvalidRequestError) as gone:
        client(sandbox).v1.events.list(params={"ending_before": "evt_gone"})
    assert (gone.value.http_status, gone.value.code, gone.value.param) == (
        400,
        "resource_missing",
        "ending_before",
    )
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client(sandbox).v1.events.list(params={"status": "paid"})  # not a List events parameter
    assert unknown.value.param == "status" and "unknown parameter" in str(unknown.value)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client(sandbox).v1.events.retrieve("evt_gone")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    sandbox.faults.plan(Fault(status=429, retry_after=1))
    with pytest.raises(stripe.RateLimitError):
        client(sandbox).v1.events.list()


async def test_stripe_version_is_echoed_checked_and_required(sandbox, http):
    pinned = await get(sandbox, http, "/v1/events")
    assert pinned.status_code == 200 and pinned.headers["stripe-version"] == API_VERSION
    older = await get(sandbox, http, "/v1/events", version="2024-06-20")
    assert older.status_code == 200 and older.headers["stripe-version"] == "2024-06-20"
    for bad in ("2019-2-19", "yesterday", "2999-01-01.future"):
        refused = await get(sandbox, http, "/v1/events", version=bad)
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"] == f"Invalid Stripe API version: {bad}"
    unpinned = await get(sandbox, http, "/v1/events", version=None)
    assert unpinned.status_code == 400 and "Stripe-Version" in unpinned.json()["error"]["message"]


async def test_without_a_version_a_lenient_sandbox_uses_the_accounts(http):
    with StripeSandbox(account_version="2025-03-31.basil", require_version=False) as lenient:
        answer = await get(lenient, http, "/v1/events", version=None)
        assert answer.status_code == 200 and answer.headers["stripe-version"] == "2025-03-31.basil"
        assert lenient.emit("invoice.paid", invoice())["api_version"] == "2025-03-31.basil"


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
        ([("status", "paid")], "status"),
        ([("types", "invoice.paid")], "types"),  # an array, sent as types[] or types[0]
        ([("created[after]", "1")], "created[after]"),
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
    basic_auth = {"authorization": f"Basic {basic}", "stripe-version": API_VERSION}
    ok = await get(sandbox, http, "/v1/events", headers=basic_auth)
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
    assert set(info.webhook_event_types) == set(EVENT_TYPES) and len(EVENT_TYPES) == 14
    assert info.rate_limit is not None and info.rate_limit.requests == 25
    for hook in (
        "journeyhub_pull",
        "journeyhub_verify_webhook",
        "journeyhub_handle_webhook",
        "journeyhub_check_connection",
        "journeyhub_authenticate",
    ):
        assert registry.implements("stripe", hook)
