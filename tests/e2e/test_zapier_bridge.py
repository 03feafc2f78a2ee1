"""The Zapier bridge (``journeyhub.connectors.zapier``): signed action envelopes to a local
catch hook over real HTTP, error classification, and the inbound token check and parsing."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import msgspec
import pytest
import pytest_asyncio
from journeyhub.connectors import zapier
from journeyhub.errors import (
    EndpointGone,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    RetryableError,
    VendorUnreachable,
    WebhookRejected,
)
from journeyhub.testing.sandbox import Fault, Faults, SandboxServer
from journeyhub.vendor_http import VendorHttp
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + "c2VjcmV0LW9mLWFub3RoZXItY29ubmVjdGlvbg=="


class CatchHook:
    """A stand-in for a Zapier catch hook that checks signatures with ``standardwebhooks``."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.received: list[tuple[dict[str, str], dict[str, Any], bool]] = []

        @post("/hooks/catch/{account:int}/{token:str}", status_code=200)
        async def catch(
            request: Request[Any, Any, Any], account: FromPath[int], token: FromPath[str]
        ) -> Response[Any]:
            injected = await self.faults.apply()
            if injected is not None:
                return injected
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                Webhook(SECRET).verify(body, headers)
                ok = True
            except WebhookVerificationError:
                ok = False
            self.received.append((headers, msgspec.json.decode(body), ok))
            return Response(
                {"attempt": "a1", "id": "zap-run-1", "request_id": "a1", "status": "success"}
            )

        self.server = SandboxServer(Litestar([catch]))

    def url(self, token: str = "abc1234") -> str:
        return f"{self.server.url}/hooks/catch/1234567/{token}/"


@pytest.fixture(scope="module")
def hook() -> Iterator[CatchHook]:
    catch = CatchHook()
    with catch.server:
        yield catch


@pytest.fixture
def catch(hook: CatchHook) -> CatchHook:
    hook.received.clear()
    hook.faults.clear()
    return hook


@pytest_asyncio.fixture
async def http() -> AsyncIterator[VendorHttp]:
    async with VendorHttp() as client:
        yield client


# --- out ---------------------------------------------------------------------------------------


async def test_send_action_posts_a_signed_versioned_envelope(catch, http):
    msg_id = zapier.action_id("dlv_1", "create_client")
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    response = await zapier.send_action(
        http,
        catch.url(),
        SECRET,
        msg_id,
        "create_client",
        {"email": "ada@example.com"},
        5,
        occurred_at=when,
    )
    assert response.status_code == 200
    assert zapier.zapier_request_id(response) == "zap-run-1"
    [(headers, envelope, signature_ok)] = catch.received
    assert signature_ok, "the standardwebhooks library must accept our signature"
    assert envelope == {
        "action": "create_client",
        "version": 1,
        "id": msg_id,
        "occurred_at": "2026-03-01T12:00:00Z",
        "data": {"email": "ada@example.com"},
    }
    assert headers["webhook-id"] == msg_id
    assert headers["x-journeyhub-action"] == "create_client"
    assert headers["content-type"] == "application/json"


async def test_a_retry_carries_the_same_id_and_body(catch, http):
    msg_id = zapier.action_id("dlv_2", "create_project")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    for _ in range(2):
        await zapier.send_action(
            http, catch.url(), SECRET, msg_id, "create_project", {"x": 1}, 5, occurred_at=when
        )
    first, second = catch.received
    assert first[1] == second[1] and first[0]["webhook-id"] == second[0]["webhook-id"]
    assert zapier.action_id("dlv_2", "create_project") == msg_id
    assert zapier.action_id("dlv_2", "create_client") != msg_id


async def test_a_signature_with_another_secret_is_refused_by_the_receiver(catch, http):
    await zapier.send_action(http, catch.url(), OTHER, "msg_x", "create_client", {}, 5)
    assert catch.received[0][2] is False


@pytest.mark.parametrize(
    ("fault", "error", "retry_after"),
    [
        (Fault(status=429, retry_after=7), RateLimited, 7.0),
        (Fault(status=503), RetryableError, None),
        (Fault(status=404), PermanentError, None),
        (Fault(status=410), EndpointGone, None),  # the Zap is gone: the connection is disabled
    ],
)
async def test_errors_are_classified_and_never_name_the_hook_token(
    catch, http, fault, error, retry_after
):
    catch.faults.plan(fault)
    with pytest.raises(error) as caught:
        await zapier.send_action(http, catch.url("s3cr3tT"), SECRET, "m", "create_client", {}, 5)
    assert type(caught.value) is error
    assert caught.value.vendor_status == fault.status
    assert getattr(caught.value, "retry_after", None) == retry_after
    message = str(caught.value)
    assert "s3cr3tT" not in message and SECRET not in message
    assert "/hooks/catch/1234567/***/" in message and "create_client" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_timeouts_and_refused_connections_are_retryable(catch, http):
    """A catch hook that answers too late may have run the Zap (OutcomeUnknown: the retry
    carries the same id, which the Zap's dedupe step catches); one nobody listens on never got
    the action (VendorUnreachable). Neither message names the hook's token."""
    catch.faults.plan(Fault(delay=0.5))
    with pytest.raises(OutcomeUnknown, match="timed out") as late:
        await zapier.send_action(http, catch.url("s3cr3tT"), SECRET, "m", "create_client", {}, 0.1)
    closed = SandboxServer(Litestar([]))  # a free port nobody listens on
    with pytest.raises(VendorUnreachable, match="could not connect") as refused:
        await zapier.send_action(
            http, f"{closed.url}/hooks/catch/1/s3cr3tT/", SECRET, "m", "a", {}, 2
        )
    assert "s3cr3tT" not in str(late.value) + str(refused.value)


def test_redact_url():
    assert (
        zapier.redact_url("https://hooks.zapier.com/hooks/catch/123456/abcdef/")
        == "https://hooks.zapier.com/hooks/catch/123456/***/"
    )
    assert zapier.redact_url("https://hooks.zapier.com/hooks/catch/123456/abcdef") == (
        "https://hooks.zapier.com/hooks/catch/123456/***/"
    )


# --- config and credentials -----------------------------------------------------------------------


class AcmeConfig(zapier.ZapierConfig, kw_only=True):
    ACTIONS: ClassVar[tuple[str, ...]] = ("create_client", "create_project")
    currency: str = "USD"


def test_config_base_validates_actions_urls_and_timeout():
    config = msgspec.convert(
        {"catch_hook_urls": {"create_client": "https://hooks.zapier.com/hooks/catch/1/a/"}},
        AcmeConfig,
    )
    assert config.catch_hook_url("create_client") == "https://hooks.zapier.com/hooks/catch/1/a/"
    assert config.catch_hook_url("create_project") is None
    for bad in (
        {"catch_hook_urls": {"delete_everything": "https://x/"}},
        {"catch_hook_urls": {"create_client": "ftp://x/"}},
        {"timeout_seconds": 0},
        {"unknown": 1},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, AcmeConfig)


def test_credentials_need_a_standard_webhooks_secret():
    assert msgspec.convert({"secret": SECRET}, zapier.ZapierCredentials).secret == SECRET
    for bad in ({"secret": "hunter2"}, {"secret": ""}, {}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, zapier.ZapierCredentials)


# --- in -------------------------------------------------------------------------------------------

CREDS = {"secret": SECRET}
JSON = {"content-type": "application/json"}


def body(**fields: Any) -> bytes:
    return msgspec.json.encode(fields)


def test_token_in_the_header_or_the_query():
    payload = body(trigger="payment_paid", id="pay_1")
    by_header = zapier.verify_zapier(CREDS, {**JSON, "x-journeyhub-token": SECRET}, {}, payload)
    by_query = zapier.verify_zapier(CREDS, JSON, {"token": SECRET}, payload)
    assert by_header == by_query
    assert by_header.event_id == "payment_paid:pay_1" and by_header.event_type == "payment_paid"


@pytest.mark.parametrize(
    "secret",
    ["whsec_ab+cd/ef", "whsec_abcdef+", "whsec_+abcdef", "whsec_abcd++", "whsec_a+b+c/d=="],
)
def test_an_unencoded_plus_in_the_query_token_still_matches(secret):
    # A "+" anywhere, the last character included, arrives as a space.
    receipt = zapier.verify_zapier(
        {"secret": secret}, JSON, {"token": secret.replace("+", " ")}, body(trigger="t", id="1")
    )
    assert receipt.event_id == "t:1"
    with pytest.raises(WebhookRejected):  # a space where the secret has none still fails
        zapier.verify_zapier(
            {"secret": secret}, JSON, {"token": secret + " "}, body(trigger="t", id="1")
        )


@pytest.mark.parametrize(
    ("creds", "headers", "query", "reason"),
    [
        (CREDS, JSON, {}, "missing_signature"),
        (CREDS, {**JSON, "x-journeyhub-token": ""}, {}, "missing_signature"),
        (CREDS, {**JSON, "x-journeyhub-token": OTHER}, {}, "bad_token"),
        (CREDS, JSON, {"token": SECRET[:-1]}, "bad_token"),
        ({}, {**JSON, "x-journeyhub-token": SECRET}, {}, "bad_token"),
        ({"secret": 42}, {**JSON, "x-journeyhub-token": "42"}, {}, "bad_token"),
    ],
)
def test_token_rejections(creds, headers, query, reason):
    with pytest.raises(WebhookRejected) as caught:
        zapier.verify_zapier(creds, headers, query, body(trigger="t", id="1"))
    assert caught.value.reason == reason
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"{",
        body(id="1"),
        body(trigger="", id="1"),
        body(trigger="   "),
        b"\xff\xfe",
    ],
)
def test_bad_bodies(payload):
    with pytest.raises(WebhookRejected) as caught:
        zapier.verify_zapier(CREDS, {**JSON, "x-journeyhub-token": SECRET}, {}, payload)
    assert caught.value.reason == "bad_body"


def test_garbage_never_raises_anything_but_a_rejection():
    rng = random.Random(11)
    auth = {"x-journeyhub-token": SECRET}
    for _ in range(500):
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        for content_type in ("application/json", "application/x-www-form-urlencoded", ""):
            with contextlib.suppress(WebhookRejected):  # anything else fails the test
                zapier.verify_zapier(CREDS, {**auth, "content-type": content_type}, {}, payload)


def test_trigger_from_type_or_the_url_and_names_normalised():
    auth = {**JSON, "x-journeyhub-token": SECRET}
    assert zapier.verify_zapier(CREDS, auth, {}, body(type="New Payment Paid", id=7)).event_id == (
        "new_payment_paid:7"
    )
    from_url = zapier.verify_zapier(CREDS, auth, {"trigger": "clientCreated"}, body(id="c1"))
    assert from_url.event_type == "client_created" and from_url.event_id == "client_created:c1"


def test_form_bodies_and_field_names_are_normalised():
    inbound = zapier.parse_inbound(
        b"Trigger=payment_paid&ID=p9&Client+Email=ada%40example.com&amountPaid=1%2C500.00",
        "application/x-www-form-urlencoded",
    )
    assert inbound.trigger == "payment_paid" and inbound.record_id == "p9"
    assert inbound.fields["client_email"] == "ada@example.com"
    assert zapier.pick(inbound.fields, "amount", "amount_paid") == "1,500.00"


def test_without_an_id_the_event_id_is_a_hash_of_the_body():
    one = zapier.parse_inbound(body(trigger="t", email="a@x"), "application/json")
    again = zapier.parse_inbound(body(trigger="t", email="a@x"), "application/json")
    other = zapier.parse_inbound(body(trigger="t", email="b@x"), "application/json")
    assert one.event_id == again.event_id != other.event_id
    assert one.event_id.startswith("t:sha256:") and one.record_id is None


def test_versioned_triggers_tell_updates_of_one_record_apart():
    def event_id(**fields: Any) -> str:
        return zapier.parse_inbound(body(**fields), "", versioned={"updated_contact"}).event_id

    assert event_id(trigger="updated_contact", id="c1", updated_at="2026-03-01T10:00:00Z") == (
        "updated_contact:c1@2026-03-01T10:00:00Z"
    )
    first = event_id(trigger="updated_contact", id="c1", email="a@x")
    assert first.startswith("updated_contact:c1@sha256:")
    assert first == event_id(trigger="updated_contact", id="c1", email="a@x")
    assert first != event_id(trigger="updated_contact", id="c1", email="b@x")
    assert event_id(trigger="new_contact", id="c1", email="b@x") == "new_contact:c1"


def test_long_ids_are_hashed_to_a_short_stable_key():
    long = zapier.parse_inbound(body(trigger="t", id="x" * 500), "").event_id
    assert len(long) <= zapier.MAX_EVENT_ID and long.startswith("zap_")
    assert long == zapier.parse_inbound(body(trigger="t", id="x" * 500), "").event_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:30:00Z", datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
        ("2026-03-01T12:30:00+02:00", datetime(2026, 3, 1, 10, 30, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
        ("03/01/2026", datetime(2026, 3, 1, tzinfo=UTC)),
        ("Mar 1, 2026", datetime(2026, 3, 1, tzinfo=UTC)),
        ("March 1, 2026", datetime(2026, 3, 1, tzinfo=UTC)),
        ("1772368200", datetime(2026, 3, 1, 12, 30, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_when(text, expected):
    parsed = zapier.parse_when(text)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset() is not None


# --- the kit's bridge -----------------------------------------------------------------------------


def _bridge(push_event_types: tuple[str, ...]) -> Any:
    from journeyhub.kit import ZapierBridge

    return ZapierBridge(
        vendor="acme",
        display_name="Acme (via Zapier)",
        config_schema=zapier.ZapierConfig,
        default_field_mappings=(),
        push_event_types=push_event_types,
        payloads=lambda event, mapped: {},
        webhook_event_types=(),
        drafts=lambda inbound, config: None,
    )


def test_a_bridge_pushes_only_the_events_that_set_a_clients_fields():
    """A bridge's actions create or update the client and its project: an event carrying a
    snapshot (a completed step, the journey's end) must not be able to reach them."""
    from journeyhub.model import EVENT_TYPES, FIELD_SETTING_EVENTS

    kept = _bridge(("journey_started", "client_updated"))
    assert kept.info.push_event_types == ("journey_started", "client_updated")
    for kind in sorted(set(EVENT_TYPES) - FIELD_SETTING_EVENTS):
        with pytest.raises(ValueError, match=kind):
            _bridge(("journey_started", kind))


# --- end to end, through the real gateway, bus and workers (HoneyBook's use of the bridge) --------


@pytest.mark.plugins  # HoneyBook
async def test_a_zap_post_becomes_one_trigger_through_the_gateway(
    gateway, tenant, hub, workers, watch_triggers
):
    from journeyhub.testing.fixtures import eventually
    from journeyhub.testing.zapier_sandbox import FakeZapier
    from journeyhub_honeybook.sandbox import HoneyBookSandbox

    from ..conftest import create_connection

    connection = await create_connection(
        gateway,
        tenant,
        vendor="honeybook",
        name="hb in",
        direction="inbound",
        credentials={"secret": SECRET},
    )
    url = connection["webhook_url"]
    data = HoneyBookSandbox.payment_paid("hb_pay_e2e")
    async with httpx.AsyncClient() as client:
        refused = await FakeZapier.post(client, url, data, token=OTHER)
        first = await FakeZapier.post(client, url, data, token=SECRET)
        again = await FakeZapier.post(client, url, data, token=SECRET, auth_in="query")
    assert refused.status_code == 401 and refused.json()["reason"] == "bad_token"
    assert first.status_code == 200 and first.json()["duplicate"] is False
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert first.json()["event_id"] == "payment_paid:hb_pay_e2e"
    [trigger] = await eventually(lambda: watch_triggers.received)
    assert trigger["type"] == "payment_received" and trigger["vendor"] == "honeybook"
    assert trigger["source_event_id"] == "honeybook:payment:hb_pay_e2e"
    assert trigger["data"]["amount"] == 150000


@pytest.mark.plugins  # HoneyBook
async def test_a_journey_start_reaches_both_honeybook_zaps(gateway, tenant, hub, workers):
    from journeyhub.testing.fixtures import eventually
    from journeyhub_honeybook.sandbox import HoneyBookSandbox

    from ..conftest import create_connection, event

    with HoneyBookSandbox(SECRET) as zaps:
        await create_connection(
            gateway,
            tenant,
            vendor="honeybook",
            name="hb out",
            direction="outbound",
            config=zaps.config(),
            credentials={"secret": SECRET},
        )
        answer = await gateway.client.post(
            "/v1/events", json=event("ev-hb-1", client_id="cl_hb"), headers=tenant.headers("ingest")
        )
        assert answer.status_code == 202, answer.text
        actions = await eventually(lambda: len(zaps.actions) == 2 and zaps.actions, timeout=20)
        assert [a["action"] for a in actions] == ["create_client", "create_project"]
        assert actions[0]["data"]["email"] == "cl_hb@example.com"
        assert not zaps.rejected and list(zaps.clients) == ["cl_hb@example.com"]
