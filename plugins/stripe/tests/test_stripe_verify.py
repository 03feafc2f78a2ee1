"""Webhook verification: Stripe's scheme, rotation, tolerance, and junk never escaping as
anything but WebhookRejected. Signatures come from stripe-python (``stripe_signature``)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from journeyhub.errors import WebhookRejected
from journeyhub_stripe import plugin
from journeyhub_stripe.sandbox import StripeSandbox, payment_intent

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = json.dumps(
    {"id": "evt_1Abc", "object": "event", "type": "payment_intent.succeeded"}
).encode()


def verify(kit, headers, body=BODY, now=NOW, creds=None, **config):
    return plugin.journeyhub_verify_webhook(
        connection=kit.connection(**config),
        credentials=creds or kit.credentials(),
        headers=headers,
        body=body,
        now=now,
    )


def stripe_signature(payload: bytes, secrets: list[str], timestamp: int) -> str:
    """``Stripe-Signature`` as stripe-python computes it, one ``v1`` per secret (as Stripe
    sends during a secret roll)."""
    headers = [
        stripe.WebhookSignature.generate_signature_header(payload.decode(), s, timestamp)
        for s in secrets
    ]
    return ",".join([f"t={timestamp}", *(h.partition(",")[2] for h in headers)])


def sig(payload: bytes, secrets: list[str], t: int = T) -> dict[str, str]:
    try:
        return {"stripe-signature": stripe_signature(payload, secrets, t)}
    except UnicodeDecodeError:  # stripe-python signs text only: the sandbox signs raw bytes
        return {"stripe-signature": StripeSandbox.signature_header(payload, secrets, t)}


def test_valid_signature_names_the_event(kit):
    receipt = verify(kit, sig(BODY, [kit.secret]))
    assert (receipt.event_id, receipt.event_type) == ("evt_1Abc", "payment_intent.succeeded")


def test_the_whole_whsec_string_is_the_key(kit):
    header = stripe.WebhookSignature.generate_signature_header(BODY.decode(), kit.secret, T)
    assert verify(kit, {"stripe-signature": header}).event_id == "evt_1Abc"
    # The key without its "whsec_" prefix is a different key (unlike Svix/Standard Webhooks).
    stripped = sig(BODY, [kit.secret.removeprefix("whsec_")])
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, stripped)
    assert exc.value.reason == "bad_signature"


@pytest.mark.parametrize(
    "headers_for, body",
    [
        (lambda kit: sig(BODY, [kit.secret]), BODY.replace(b"succeeded", b"succeeded ")),
        (lambda kit: sig(BODY, ["whsec_someoneElse"]), BODY),
        # t is part of what is signed: moving it breaks the signature
        (
            lambda kit: {
                "stripe-signature": sig(BODY, [kit.secret])["stripe-signature"].replace(
                    f"t={T}", f"t={T + 1}"
                )
            },
            BODY,
        ),
    ],
    ids=["tampered-body", "wrong-secret", "timestamp-changed"],
)
def test_invalid_signature_is_rejected(kit, headers_for, body):
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, headers_for(kit), body)
    assert exc.value.reason == "bad_signature"


@pytest.mark.parametrize("offset", [-301, 301, -86_400, 10**6])
def test_outside_the_tolerance_is_stale_in_the_past_and_the_future(kit, offset):
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, sig(BODY, [kit.secret], T + offset))
    assert exc.value.reason == "stale"


@pytest.mark.parametrize("offset", [-299, 0, 299])
def test_inside_the_tolerance_is_accepted(kit, offset):
    assert verify(kit, sig(BODY, [kit.secret], T + offset)).event_id == "evt_1Abc"


def test_tolerance_comes_from_the_config(kit):
    headers = sig(BODY, [kit.secret], T - 400)
    assert verify(kit, headers, tolerance_seconds=600).event_id == "evt_1Abc"
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, headers, tolerance_seconds=60)
    assert exc.value.reason == "stale"


def test_a_forged_old_request_is_a_bad_signature_not_stale(kit):
    # As in Stripe's library, the signature is checked before the clock.
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, sig(BODY, ["whsec_forger"], T - 10_000))
    assert exc.value.reason == "bad_signature"


def test_rotation_header_with_two_v1_where_only_the_second_matches(kit):
    headers = sig(BODY, ["whsec_newSecretWeDoNotHaveYet", kit.secret])
    assert headers["stripe-signature"].count("v1=") == 2
    assert verify(kit, headers).event_id == "evt_1Abc"


def test_previous_secret_is_still_accepted_and_only_when_listed(kit):
    signed_with_old = sig(BODY, [kit.old_secret])
    creds = kit.credentials(previous_webhook_secrets=[kit.old_secret])
    assert verify(kit, signed_with_old, creds=creds).event_id == "evt_1Abc"
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, signed_with_old)  # the old secret was dropped
    assert exc.value.reason == "bad_signature"


def test_v0_entries_are_ignored(kit):
    v0_only = sig(BODY, [kit.secret])["stripe-signature"].replace("v1=", "v0=")
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, {"stripe-signature": v0_only})
    assert exc.value.reason == "bad_signature"


@pytest.mark.parametrize("headers", [{}, {"stripe-signature": ""}, {"webhook-signature": "v1,x"}])
def test_missing_header(kit, headers):
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, headers)
    assert exc.value.reason == "missing_signature"


JUNK_HEADERS = [
    "garbage",
    "t=",
    "t=abc,v1=zz",
    "v1=" + "a" * 64,
    f"t={T}",
    f"t={T},v1=",
    f"t={T},v1=" + "g" * 64,
    f"t={T},v1=" + "A" * 64,
    "t=١٢٣,v1=" + "a" * 64,  # non-ASCII digits: int() would take them
    "t=" + "9" * 5000 + ",v1=" + "a" * 64,  # int() would refuse over 4300 digits
    f"t=-{T},v1=" + "a" * 64,
    "=,=,,,=",
    "\x00\x01\x02",
    "t=1,v1=\udcff" + "a" * 63,  # a lone surrogate: compare_digest would raise TypeError
    "t=1," + ",".join(["v1=" + "b" * 64] * 2000),  # too long
    "🙂=🙂,t=🙂",
]


@pytest.mark.parametrize("header", JUNK_HEADERS)
def test_junk_header_is_only_ever_rejected(kit, header):
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, {"stripe-signature": header})
    assert exc.value.reason == "bad_signature"


JUNK_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[]",
    b'"evt_1"',
    b"null",
    b"{",
    b'{"id": 1, "type": "x"}',
    b'{"id": "evt_1"}',
    b'{"id": "evt_1", "type": null}',
    b'{"id": "", "type": "x"}',
    b'{"id": "' + b"e" * 300 + b'", "type": "x"}',
    b"[" * 100_000,
    b'{"a":' * 50_000,
]


@pytest.mark.parametrize("body", JUNK_BODIES, ids=range(len(JUNK_BODIES)))
def test_correctly_signed_junk_body_is_bad_body(kit, body):
    with pytest.raises(WebhookRejected) as exc:
        verify(kit, sig(body, [kit.secret]), body)
    assert exc.value.reason == "bad_body"


def test_random_junk_never_escapes_as_another_exception(kit):
    rng = random.Random(1234)
    reasons = set()
    for _ in range(1500):
        body = rng.randbytes(rng.randint(0, 200))
        raw = rng.choice(
            [
                rng.randbytes(rng.randint(0, 120)).decode("latin-1"),
                "t=" + str(rng.randint(-(10**15), 10**15)) + ",v1=" + rng.randbytes(32).hex(),
                ",".join(rng.choice(["t", "v1", "v0", "", "=", "x"]) + "=" for _ in range(8)),
            ]
        )
        try:
            verify(kit, {"stripe-signature": raw}, body)
        except WebhookRejected as exc:
            reasons.add(exc.reason)
        else:
            raise AssertionError(f"accepted junk: {raw!r}")
    assert reasons <= {"bad_signature", "missing_signature", "stale", "bad_body"}
    assert "bad_signature" in reasons


def test_the_sandbox_signer_is_one_stripe_python_accepts(kit):
    # The demo delivers with the sandbox's own signer: stripe-python must accept what it signs.
    body = json.dumps({"id": "evt_1", "object": "event", "type": "x", "note": "zoë"}).encode()
    header = StripeSandbox.signature_header(body, ["whsec_other", kit.secret], v0_secret="whsec_v0")
    assert stripe.WebhookSignature.verify_header(body, header, kit.secret, tolerance=300)
    event = stripe.Webhook.construct_event(body, header, kit.secret)
    assert (event.id, event.type) == ("evt_1", "x")


async def test_delivery_over_http_as_stripe_sends_it(sandbox, webhook_sender, gateway_stub, kit):
    event = sandbox.emit(
        "payment_intent.succeeded", payment_intent(receipt_email="zoë@example.com")
    )
    response = await sandbox.deliver(event, gateway_stub.url, [kit.secret], webhook_sender)
    assert response.status_code == 200, response.text
    assert response.json() == {"event_id": event["id"], "event_type": "payment_intent.succeeded"}
    headers, body = gateway_stub.received[-1]
    assert headers["user-agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert "v0=" in headers["stripe-signature"]  # test-mode deliveries carry the legacy v0
    assert body.startswith(b"{\n  ")  # pretty-printed, signed over these exact bytes
    assert sandbox.deliveries[-1].status == 200
    # What the gateway accepted, stripe-python accepts too (the same bytes, the same header).
    parsed = stripe.Webhook.construct_event(body, headers["stripe-signature"], kit.secret)
    assert parsed.id == event["id"]


async def test_a_delivery_signed_by_stripe_python_is_accepted(
    sandbox, webhook_sender, gateway_stub, kit
):
    event = sandbox.emit("charge.dispute.created", {"id": "du_1", "object": "dispute"})
    response = await sandbox.deliver(
        event, gateway_stub.url, [kit.secret], webhook_sender, sign=stripe_signature
    )
    assert response.status_code == 200, response.text
    assert response.json()["event_type"] == "charge.dispute.created"


async def test_delivery_during_rotation_and_with_a_wrong_secret(
    sandbox, webhook_sender, gateway_stub, kit
):
    event = sandbox.emit("invoice.paid", {"id": "in_1", "object": "invoice"})
    rolled = await sandbox.deliver(
        event,
        gateway_stub.url,
        ["whsec_brandNew", kit.old_secret],
        webhook_sender,
        sign=stripe_signature,
    )
    assert rolled.status_code == 200
    wrong = await sandbox.deliver(
        event, gateway_stub.url, ["whsec_brandNew"], webhook_sender, sign=stripe_signature
    )
    assert (wrong.status_code, wrong.json()) == (401, {"reason": "bad_signature"})
    stale = await sandbox.deliver(
        event,
        gateway_stub.url,
        [kit.secret],
        webhook_sender,
        timestamp=int((datetime.now(UTC) - timedelta(minutes=10)).timestamp()),
        sign=stripe_signature,
    )
    assert (stale.status_code, stale.json()) == (401, {"reason": "stale"})
