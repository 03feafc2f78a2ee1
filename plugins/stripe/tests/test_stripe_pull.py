"""Catch-up through GET /v1/events, and the connection test, against the sandbox."""

from __future__ import annotations

import json
from itertools import cycle

import pytest
from journeyhub.errors import (
    AuthExpired,
    OutcomeUnknown,
    RateLimited,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.testing.sandbox import Fault
from journeyhub_stripe import plugin
from journeyhub_stripe.mapping import API_VERSION, EVENT_TYPES
from journeyhub_stripe.sandbox import (
    charge,
    checkout_session,
    dispute,
    invoice,
    invoice_payment,
    payment_intent,
    refund,
)

FACTORIES = {
    "payment_intent.succeeded": lambda i: payment_intent(1000 + i, metadata={"n": str(i)}),
    "checkout.session.completed": lambda i: checkout_session(2000 + i),
    "payment_intent.payment_failed": lambda i: payment_intent(3000 + i, failed=True),
    "invoice.payment_failed": lambda i: invoice(4000 + i, paid=False),
    "invoice.paid": lambda i: invoice(5000 + i, off_stripe=True),
    "charge.refunded": lambda i: charge(6000 + i, amount_refunded=6000 + i),
    "refund.created": lambda i: refund(7000 + i),
    "checkout.session.async_payment_succeeded": lambda i: checkout_session(8000 + i),
    "checkout.session.async_payment_failed": lambda i: checkout_session(
        9000 + i, payment_status="unpaid"
    ),
    "payment_intent.canceled": lambda i: payment_intent(10_000 + i, canceled="abandoned"),
    "charge.dispute.created": lambda i: dispute(11_000 + i),
    "charge.dispute.updated": lambda i: dispute(12_000 + i, status="under_review"),
    "charge.dispute.closed": lambda i: dispute(13_000 + i, status="won"),
    "charge.refund.updated": lambda i: refund(14_000 + i, status="failed"),
    "customer.created": lambda i: {"id": f"cus_{i}", "object": "customer"},  # not mapped
}


async def pull(kit, sandbox, call, cursor, **creds):
    return await call(
        "journeyhub_pull",
        connection=kit.connection(sandbox.url),
        credentials=kit.credentials(**creds),
        cursor=cursor,
    )


async def test_first_sync_takes_the_newest_event_as_cursor_and_replays_nothing(kit, sandbox, call):
    empty = await pull(kit, sandbox, call, None)
    assert (empty.next_cursor, empty.triggers, empty.has_more) == (None, [], False)

    sandbox.emit("invoice.paid", invoice())
    newest = sandbox.emit("payment_intent.succeeded", payment_intent())
    sandbox.emit("customer.created", {"id": "cus_1", "object": "customer"})  # not ours
    page = await pull(kit, sandbox, call, None)
    assert page.next_cursor == newest["id"]
    assert (page.triggers, page.records, page.has_more) == ([], [], False)
    query = sandbox.requests[-1].query
    assert ("limit", "1") in query


async def test_250_events_are_walked_oldest_first_each_mapped_event_once(kit, sandbox, call):
    baseline = sandbox.emit("invoice.paid", invoice())
    cursor = (await pull(kit, sandbox, call, None)).next_cursor
    assert cursor == baseline["id"]

    emitted = []
    for i, event_type in zip(range(250), cycle(FACTORIES), strict=False):
        emitted.append(sandbox.emit(event_type, FACTORIES[event_type](i)))
    expected = [e["id"] for e in emitted if e["type"] in EVENT_TYPES]
    assert len(expected) > 200  # so the walk needs three pages of 100

    seen, pages = [], []
    while True:
        page = await pull(kit, sandbox, call, cursor)
        pages.append(len(page.triggers))
        seen.extend(d.source_event_id for d in page.triggers)
        assert page.next_cursor == (page.triggers[-1].source_event_id if page.triggers else cursor)
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert seen == expected  # exactly once each, oldest first, unmapped types left out
    assert pages == [100, 100, len(expected) - 200]

    again = await pull(kit, sandbox, call, cursor)  # nothing new: the cursor stays
    assert (again.triggers, again.next_cursor, again.has_more) == ([], cursor, False)
    later = sandbox.emit("charge.refunded", charge(amount_refunded=5))
    resumed = await pull(kit, sandbox, call, cursor)
    assert [d.source_event_id for d in resumed.triggers] == [later["id"]]

    request = sandbox.requests[-1]
    assert request.authorized
    assert {r.version for r in sandbox.requests} == {API_VERSION}  # pinned on every call
    assert ("limit", "100") in request.query and ("ending_before", cursor) in request.query
    assert sorted(v for k, v in request.query if k == "types[]") == sorted(EVENT_TYPES)


def handle(kit, event):
    body = json.dumps(event, indent=2).encode()
    return plugin.journeyhub_handle_webhook(webhook=kit.stored(body, event["id"], event["type"]))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
async def test_pulled_event_gives_the_same_draft_as_its_webhook(kit, sandbox, call, event_type):
    cursor = sandbox.emit("customer.created", {"id": "cus_0", "object": "customer"})["id"]
    event = sandbox.emit(event_type, FACTORIES[event_type](1))
    [pulled] = (await pull(kit, sandbox, call, cursor)).triggers
    [pushed] = handle(kit, event)
    assert pulled == pushed


async def test_one_invoice_payment_is_one_payment_received_by_pull_and_by_webhook(
    kit, sandbox, call
):
    cursor = sandbox.emit("customer.created", {"id": "cus_0", "object": "customer"})["id"]
    bill = invoice(120_000, customer="cus_couple")
    intent = payment_intent(120_000, customer="cus_couple")
    # What Stripe raises when a PaymentIntent pays an invoice.
    events = [
        sandbox.emit("payment_intent.succeeded", intent),
        sandbox.emit("invoice_payment.paid", invoice_payment(bill["id"], intent["id"], 120_000)),
        sandbox.emit("invoice.paid", bill),
    ]
    pulled = (await pull(kit, sandbox, call, cursor)).triggers
    pushed = [draft for event in events for draft in handle(kit, event) or []]
    assert pulled == pushed
    [draft] = pulled
    assert (draft.type, draft.data["amount"]) == ("payment_received", 120_000)
    assert draft.data["payment_intent"] == intent["id"]


async def test_429_is_rate_limited_with_retry_after(kit, sandbox, call):
    cursor = sandbox.emit("invoice.paid", invoice())["id"]
    sandbox.faults.plan(Fault(status=429, retry_after=2))
    with pytest.raises(RateLimited) as exc:
        await pull(kit, sandbox, call, cursor)
    assert exc.value.retry_after == 2.0
    assert "rate_limit" in str(exc.value)  # Stripe's error code is kept
    assert (await pull(kit, sandbox, call, cursor)).next_cursor == cursor  # then it recovers


async def test_500_is_retryable(kit, sandbox, call):
    cursor = sandbox.emit("invoice.paid", invoice())["id"]
    sandbox.faults.plan(Fault(status=500))
    with pytest.raises(RetryableError) as exc:
        await pull(kit, sandbox, call, cursor)
    assert type(exc.value) is RetryableError
    assert exc.value.vendor_status == 500


async def test_timeout_is_retryable(kit, sandbox, call):
    sandbox.faults.plan(Fault(delay=1.0))
    with pytest.raises(OutcomeUnknown, match="timed out") as exc:
        await call(
            "journeyhub_pull",
            connection=kit.connection(sandbox.url, timeout_seconds=0.2),
            credentials=kit.credentials(),
            cursor=None,
        )
    assert isinstance(exc.value, RetryableError)
    assert kit.api_key not in str(exc.value)


async def test_an_unreachable_api_is_retryable(kit, call):
    from journeyhub.bus.embedded import free_port

    with pytest.raises(VendorUnreachable) as exc:
        await call(
            "journeyhub_pull",
            connection=kit.connection(f"http://127.0.0.1:{free_port()}"),
            credentials=kit.credentials(),
            cursor=None,
        )
    assert isinstance(exc.value, RetryableError)
    assert kit.api_key not in str(exc.value)


async def test_wrong_key_never_shows_the_key(kit, sandbox, call):
    wrong = "sk_test_51WrongKeyWrongKeyWrongKey9876"
    with pytest.raises(AuthExpired) as exc:
        await pull(kit, sandbox, call, None, api_key=wrong)
    message = str(exc.value)
    assert exc.value.vendor_status == 401
    assert wrong not in message and "9876" not in message and kit.api_key not in message
    assert "Invalid API Key" not in message  # Stripe's text echoes the masked key: dropped


async def test_a_cursor_stripe_no_longer_has_restarts_from_the_newest(kit, sandbox, call):
    newest = sandbox.emit("invoice.paid", invoice())
    page = await pull(kit, sandbox, call, "evt_expiredLongAgo000000000")
    assert (page.next_cursor, page.triggers) == (newest["id"], [])


async def test_without_api_key_pull_is_a_quiet_no_op(kit, sandbox, call):
    page = await pull(kit, sandbox, call, "evt_keep", api_key=None)
    assert (page.next_cursor, page.triggers, page.has_more) == ("evt_keep", [], False)
    assert sandbox.requests == []


async def test_check_connection(kit, sandbox, call):
    async def check(**creds):
        return await call(
            "journeyhub_check_connection",
            connection=kit.connection(sandbox.url),
            credentials=kit.credentials(**creds),
        )

    assert "none in the last 30 days" in await check()
    event = sandbox.emit("invoice.paid", invoice())
    answer = await check()
    assert answer.startswith("Stripe answered 200") and event["id"] in answer
    assert "test mode" in answer
    assert "only webhooks" in await check(api_key=None)
    with pytest.raises(AuthExpired) as exc:
        await check(api_key="rk_test_revokedKey1234")
    assert "rk_test_revokedKey1234" not in str(exc.value)
