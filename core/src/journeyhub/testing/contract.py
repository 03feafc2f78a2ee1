"""The connector contract kit: one pytest base class that every connector's tests subclass.

A connector proves, against its own sandbox over real HTTP and through the kernel's plugin
registry (the way the workers and the gateway call it), that it:

- loads through its entry point and describes itself truthfully (vendor, capabilities that match
  the hooks it implements, msgspec schemas that refuse bad config with an error naming the field);
- makes one effect at the vendor when the same task is pushed twice (``push``);
- accepts a good webhook and rejects a wrong signature or token with ``WebhookRejected``, never
  another exception (``webhook``);
- pages through ``pull`` and resumes from its cursor (``pull``);
- classifies 429 as ``RateLimited`` with ``retry_after`` and 5xx as ``RetryableError``;
- lets no credential reach a log line or an error message.

Usage (the subclass supplies a ``sandbox`` fixture, or inherits one from its conftest)::

    from journeyhub.testing.contract import ConnectorContract, WebhookRequest

    class TestAcmeContract(ConnectorContract):
        vendor = "acme"
        bad_config = {"base_url": "ftp://acme.example"}

        @pytest.fixture
        def sandbox(self):
            with AcmeSandbox() as running:
                yield running

        def make_connection(self, sandbox):
            return self.connection({"base_url": sandbox.url})

        def make_credentials(self, sandbox):
            return {"api_key": sandbox.api_key}

        def count_effects(self, sandbox):
            return len(sandbox.contacts)

Tests of a capability the connector lacks are skipped, saying so; a hook the subclass must
supply for a capability the connector has fails with a message naming it. See
``docs/writing-a-connector.md``.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar

import msgspec
import pytest
import pytest_asyncio
import structlog
from litestar import Litestar, Request, Response, post

from journeyhub import logs
from journeyhub.errors import (
    AuthExpired,
    ConnectorError,
    OutcomeUnknown,
    RateLimited,
    RetryableError,
    WebhookRejected,
)
from journeyhub.mapping import apply_mappings, merge_defaults
from journeyhub.model import (
    EVENT_TYPES,
    KERNEL_CONFIG_KEYS,
    TRIGGER_TYPES,
    Connection,
    ConnectorInfo,
    DeliveryTask,
    JourneyEvent,
    Known,
    PullPage,
    client_of,
)
from journeyhub.plugins import (
    DEFAULT_PLUGINS,
    ENTRY_POINT_GROUP,
    PluginRegistry,
    get_plugin_manager,
)
from journeyhub.testing.sandbox import Fault, Faults, SandboxServer
from journeyhub.vendor_http import VendorHttp, VendorResponse

CAPABILITY_HOOKS: dict[str, tuple[str, ...]] = {
    "push": ("journeyhub_push",),
    "pull": ("journeyhub_pull",),
    "webhook": ("journeyhub_verify_webhook", "journeyhub_handle_webhook"),
}
REJECTIONS = ("bad_signature", "stale", "missing_signature", "bad_token", "bad_body")
JUNK = (b"", b"\xff\xfe{not json", b"[1, 2]", b'{"id": 1, "type": null}', b"null")
RETRY_AFTER = 7.0  # what the injected 429 asks for
_CLIENTS = ("Ada Lovelace", "Grace Hopper", "Mary Somerville", "Emmy Noether", "Lise Meitner")


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound webhook as it arrives at ``POST /webhooks/<vendor>/<connection id>``."""

    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)


IMPATIENT_TIMEOUT = 0.25


class ImpatientHttp(VendorHttp):
    """The kernel's client with every call's timeout cut short, whatever the connector asks:
    a sandbox answer delayed past it is a request sent and never answered."""

    async def request(self, method: str, url: str, **kwargs: Any) -> Any:
        kwargs["timeout"] = IMPATIENT_TIMEOUT
        return await super().request(method, url, **kwargs)


@dataclass
class Harness:
    """What one contract test works with: the ``contract`` fixture."""

    vendor: str
    registry: PluginRegistry
    sandbox: Any
    connection: Connection
    credentials: dict[str, Any]
    http: VendorHttp

    @property
    def info(self) -> ConnectorInfo:
        return self.registry.connector(self.vendor)

    def implements(self, hook: str) -> bool:
        return self.registry.implements(self.vendor, hook)

    attempts: dict[str, int] = field(default_factory=dict)  # task id -> pushes begun
    known: dict[str, Known] = field(default_factory=dict)  # client id -> the vendor id map

    async def call(self, hook: str, **kwargs: Any) -> Any:
        """Call a vendor hook through the registry, as a worker does."""
        given = {"connection": self.connection, "credentials": self.credentials, "http": self.http}
        return await self.registry.call(self.vendor, hook, **{**given, **kwargs})

    async def push(self, task: DeliveryTask, *, attempt: int | None = None) -> Any:
        """Push as the push worker does: the task's attempt counted (a repeat is attempt 2),
        and the vendor id map of its client kept from what earlier pushes (and failures)
        reported."""
        if attempt is None:
            attempt = self.attempts.get(task.id, 0) + 1
        self.attempts[task.id] = attempt
        client, _ = client_of(task)
        known = self.known.get(client or "", Known())
        try:
            result = await self.call(
                "journeyhub_push",
                task=task,
                idempotency_key=task.idempotency_key,
                suppressed=frozenset(),
                known=Known(records=known.records, attempt=attempt),
            )
        except ConnectorError as exc:
            self.known[client or ""] = known.learn(exc.records)
            raise
        self.known[client or ""] = known.learn(result.records)
        return result

    async def authenticate(self) -> dict[str, Any]:
        """What a worker does before push, pull and check: refresh credentials if needed."""
        if self.implements("journeyhub_authenticate"):
            fresh = await self.call("journeyhub_authenticate", refused=False)
            if fresh is not None:
                self.credentials = dict(fresh)
        return self.credentials


class GatewayStandIn:
    """Receives webhooks over HTTP as the gateway does: the plugin's verification, then 200
    with the receipt or 401 with the reason. Any other exception is answered 500 and kept in
    ``unexpected``: that is what the contract forbids."""

    def __init__(self) -> None:
        self.harness: Harness | None = None
        self.unexpected: list[str] = []

        @post("/webhooks/{vendor:str}/{connection_id:str}", status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            assert self.harness is not None
            try:
                receipt = await self.harness.call(
                    "journeyhub_verify_webhook",
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=await request.body(),
                    now=datetime.now(UTC),
                    query=dict(request.query_params),
                )
            except WebhookRejected as exc:
                return Response({"reason": exc.reason, "message": str(exc)}, status_code=401)
            except Exception as exc:
                self.unexpected.append(repr(exc))
                return Response({"error": type(exc).__name__}, status_code=500)
            return Response({"event_id": receipt.event_id, "event_type": receipt.event_type})

        self.server = SandboxServer(Litestar([receive], openapi_config=None))

    def serve(self, harness: Harness) -> GatewayStandIn:
        self.harness, self.unexpected = harness, []
        return self

    async def post(self, request: WebhookRequest) -> VendorResponse:
        assert self.harness is not None
        connection = self.harness.connection
        return await self.harness.http.post(
            f"{self.server.url}/webhooks/{connection.vendor}/{connection.id}",
            content=request.body,
            headers=dict(request.headers),
            params=dict(request.query),
        )


def credential_values(credentials: Any) -> set[str]:
    """Every string in a credentials mapping long enough to be a secret."""
    if isinstance(credentials, Mapping):
        return set().union(*(credential_values(v) for v in credentials.values()))
    if isinstance(credentials, list | tuple):
        return set().union(*(credential_values(v) for v in credentials))
    return {credentials} if isinstance(credentials, str) and len(credentials) >= 8 else set()


@functools.cache
def _describe(vendor: str) -> ConnectorInfo:
    return get_plugin_manager(only=(vendor,)).connector(vendor)


def _schema_error(schema: type, value: dict[str, Any]) -> str | None:
    """The message the kernel would answer 422 with, or None when ``value`` is accepted."""
    try:
        msgspec.convert(value, schema, strict=True)
    except msgspec.ValidationError as exc:
        return str(exc)
    return None


class ConnectorContract:
    """Subclass as ``Test<Vendor>Contract``; supply a ``sandbox`` fixture and the hooks below.

    Class attributes: ``vendor`` (the entry-point name), ``bad_config`` and
    ``bad_credentials`` (field -> a value the schema must refuse, merged into the good
    config/credentials), ``pull_seed_count`` (records to seed: more than one page).
    """

    vendor: ClassVar[str]
    bad_config: ClassVar[dict[str, Any]] = {}
    bad_credentials: ClassVar[dict[str, Any]] = {}
    pull_seed_count: ClassVar[int] = 12

    # --- hooks the subclass supplies ---------------------------------------------------------

    def make_connection(self, sandbox: Any) -> Connection:
        """A connection pointed at the sandbox (``self.connection(config)`` builds one)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_connection()")

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        """Credentials the sandbox accepts."""
        raise NotImplementedError(f"{type(self).__name__} must define make_credentials()")

    def refused_credentials(self, sandbox: Any) -> dict[str, Any] | None:
        """Optional: credentials the sandbox refuses (a revoked key), to check error messages."""
        return None

    def faults(self, sandbox: Any) -> Faults:
        """The sandbox's fault injection: a ``journeyhub.testing.sandbox.Faults`` (or anything
        with its ``plan`` and ``clear``), applied to the calls push and pull make."""
        return sandbox.faults

    def sample_task(self, sandbox: Any, connection: Connection, n: int) -> DeliveryTask:
        """push: the n-th task; tasks with different ``n`` make different effects."""
        return self.task_for(connection, self.journey_event(n))

    def count_effects(self, sandbox: Any) -> int:
        """push: how many effects (records, emails, messages…) the sandbox holds."""
        raise NotImplementedError(f"{type(self).__name__} must define count_effects() (push)")

    def signed_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        """webhook: a request the vendor would send, correctly signed (or with the token)."""
        raise NotImplementedError(f"{type(self).__name__} must define signed_webhook()")

    def unsigned_webhook(self, sandbox: Any, credentials: dict[str, Any]) -> WebhookRequest:
        """webhook: the same request with a wrong signature or token."""
        raise NotImplementedError(f"{type(self).__name__} must define unsigned_webhook()")

    def sign_webhook(
        self, sandbox: Any, credentials: dict[str, Any], body: bytes
    ) -> WebhookRequest | None:
        """webhook, optional: ``body`` signed as the vendor signs, so that junk with a valid
        signature reaches the body's parsing. Not needed where a token, not a signature,
        authenticates the request."""
        return None

    def seed_for_pull(self, sandbox: Any, count: int) -> list[str]:
        """pull: make ``count`` records at the vendor, each newer than the last; return the ids
        pull reports them by, oldest first."""
        raise NotImplementedError(f"{type(self).__name__} must define seed_for_pull() (pull)")

    def pulled_ids(self, page: PullPage) -> list[str]:
        """pull: the ids a page reports (records' ``vendor_id``, triggers' source ids)."""
        return [r.vendor_id for r in page.records] + [t.source_event_id for t in page.triggers]

    # --- helpers for subclasses ----------------------------------------------------------------

    def connection(self, config: dict[str, Any], **fields: Any) -> Connection:
        return Connection(
            id="con_contract",
            tenant_id="ten_contract",
            vendor=self.vendor,
            name="contract",
            config=config,
            **fields,
        )

    def journey_event(
        self, n: int = 1, type: str = "journey_started", **extra: Any
    ) -> JourneyEvent:
        """A journey event of client ``n`` (its own id, name and email)."""
        raw: dict[str, Any] = {
            "id": f"evt_contract_{type}_{n}",
            "type": type,
            "occurred_at": "2026-03-01T12:00:00Z",
            "journey_instance_id": f"ji_contract_{n}",
            "journey_name": "Wedding onboarding",
            "client": {
                "id": f"cl_contract_{n}",
                "name": _CLIENTS[n % len(_CLIENTS)],
                "email": f"client{n}@example.com",
                "phone": f"+44 20 7946 {n:04d}",
            },
            "wedding": {
                "date": "2026-09-12",
                "guest_count": 120,
                "venue": {"name": "Kew Gardens", "address": "Richmond, London"},
            },
            **extra,
        }
        return msgspec.convert(raw, JourneyEvent)

    def task_for(
        self, connection: Connection, event: JourneyEvent, task_id: str | None = None
    ) -> DeliveryTask:
        """A task as the push worker hands it over: ``mapped`` from the plugin's defaults."""
        info = _describe(self.vendor)
        mappings = merge_defaults(info.default_field_mappings, connection.field_mappings)
        return DeliveryTask(
            id=task_id or f"dlv_{event.id}",
            tenant_id=connection.tenant_id,
            connection_id=connection.id,
            vendor=self.vendor,
            kind="event",
            order_key=event.client.id,
            sequence=1,
            event=event,
            mapped=apply_mappings(mappings, event),
        )

    # --- fixtures ------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def contract_registry(cls) -> PluginRegistry:
        return get_plugin_manager(only=(cls.vendor,))

    @pytest_asyncio.fixture
    async def contract_http(self) -> AsyncIterator[VendorHttp]:
        async with VendorHttp(timeout=10) as client:
            yield client

    @pytest.fixture
    def contract(
        self, contract_registry: PluginRegistry, sandbox: Any, contract_http: VendorHttp
    ) -> Iterator[Harness]:
        harness = Harness(
            self.vendor,
            contract_registry,
            sandbox,
            self.make_connection(sandbox),
            self.make_credentials(sandbox),
            contract_http,
        )
        yield harness
        self.faults(sandbox).clear()

    @pytest.fixture(scope="class")
    @classmethod
    def contract_gateway(cls) -> Iterator[GatewayStandIn]:
        gateway = GatewayStandIn()
        with gateway.server:
            yield gateway

    def require(self, harness: Harness, capability: str) -> None:
        if capability not in harness.info.capabilities:
            pytest.skip(f"{self.vendor} has no {capability!r} capability")

    # --- describe ------------------------------------------------------------------------------

    def test_it_loads_through_its_entry_point_and_describes_itself(
        self, contract_registry: PluginRegistry
    ) -> None:
        """The entry point is named after the vendor, loads with no error, and the description
        says the same vendor, with known capabilities and msgspec Struct schemas."""
        assert not contract_registry.errors, contract_registry.errors
        names = {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)} | set(DEFAULT_PLUGINS)
        assert self.vendor in names, f"no {ENTRY_POINT_GROUP!r} entry point named {self.vendor!r}"
        info = contract_registry.connector(self.vendor)
        assert info.vendor == self.vendor and info.display_name.strip()
        known = {*CAPABILITY_HOOKS, "operations"}  # operations: incident notices, by push
        assert info.capabilities and info.capabilities <= known, info.capabilities
        assert "operations" not in info.capabilities or "push" in info.capabilities
        for schema in (info.config_schema, info.credentials_schema):
            assert schema is None or issubclass(schema, msgspec.Struct), schema
        if info.auth_kind != "none":
            assert info.credentials_schema is not None, "credentials need a schema"

    def test_capabilities_match_the_hooks_it_implements(
        self, contract_registry: PluginRegistry
    ) -> None:
        """A capability is claimed exactly when its hooks are implemented; batches and pushed
        event types are consistent with push."""
        info = contract_registry.connector(self.vendor)
        for capability, hooks in CAPABILITY_HOOKS.items():
            for hook in hooks:
                implemented = contract_registry.implements(self.vendor, hook)
                assert implemented == (capability in info.capabilities), (
                    f"{hook} is {'' if implemented else 'not '}implemented but capabilities "
                    f"are {sorted(info.capabilities)}"
                )
        batch = contract_registry.implements(self.vendor, "journeyhub_push_batch")
        assert batch == (info.max_batch > 1), "push_batch and max_batch > 1 go together"
        if "push" in info.capabilities:
            assert info.push_event_types, "push_event_types must say what it takes ('*': all)"
            unknown = set(info.push_event_types) - {"*", *EVENT_TYPES, *TRIGGER_TYPES}
            assert not unknown, f"unknown push_event_types {unknown}"

    def test_its_schemas_accept_the_connection_the_tests_use(self, contract: Harness) -> None:
        """The sandbox connection's config and credentials pass the schemas as the kernel
        validates them when a connection is saved."""
        info = contract.info
        assert contract.connection.vendor == self.vendor
        config = {
            k: v for k, v in contract.connection.config.items() if k not in KERNEL_CONFIG_KEYS
        }
        if info.config_schema is not None:
            assert _schema_error(info.config_schema, config) is None
        if info.credentials_schema is not None:
            assert _schema_error(info.credentials_schema, contract.credentials) is None

    def test_bad_config_is_refused_naming_the_field(self, contract: Harness) -> None:
        """Each ``bad_config`` example, and an unknown key (a typo), is refused with a
        ``msgspec.ValidationError`` whose message names the field."""
        schema = contract.info.config_schema
        if schema is None:
            pytest.skip(f"{self.vendor} has no config schema")
        good = {k: v for k, v in contract.connection.config.items() if k not in KERNEL_CONFIG_KEYS}
        cases = {**self.bad_config, "no_such_setting": True}
        for name, value in cases.items():
            message = _schema_error(schema, {**good, name: value})
            assert message is not None, f"config {name}={value!r} was accepted"
            assert name in message, f"the error for config {name} does not name it: {message}"

    def test_bad_credentials_are_refused_naming_the_field_not_the_value(
        self, contract: Harness
    ) -> None:
        """A missing required credential, each ``bad_credentials`` example and an unknown key
        are refused naming the field, and the message never repeats the value."""
        schema = contract.info.credentials_schema
        if schema is None:
            pytest.skip(f"{self.vendor} has no credentials schema")
        good = contract.credentials
        cases: list[tuple[str, dict[str, Any], Any]] = [
            (f.encode_name, {k: v for k, v in good.items() if k != f.encode_name}, None)
            for f in msgspec.structs.fields(schema)
            if f.required
        ]
        cases += [
            (name, {**good, name: value}, value) for name, value in self.bad_credentials.items()
        ]
        cases.append(("no_such_credential", {**good, "no_such_credential": "x"}, None))
        for name, value, bad in cases:
            message = _schema_error(schema, value)
            assert message is not None, f"credentials with a bad {name} were accepted"
            assert name in message, f"the error for credential {name} does not name it: {message}"
            assert not any(v in message for v in credential_values(bad)), f"it repeats {name}"

    # --- push ----------------------------------------------------------------------------------

    async def _push(self, harness: Harness, n: int, attempt: int | None = None) -> Any:
        return await harness.push(
            self.sample_task(harness.sandbox, harness.connection, n), attempt=attempt
        )

    @pytest.mark.asyncio
    async def test_an_answer_that_comes_too_late_is_outcome_unknown(
        self, contract: Harness
    ) -> None:
        """The vendor takes the request but answers after the client gave up: the push raises
        the kernel's ``OutcomeUnknown`` itself, not wrapped in another error (the push worker
        reads only that class to wait and look up before creating again); and the retry,
        once the vendor has finished, makes no second effect."""
        self.require(contract, "push")
        await contract.authenticate()
        before = self.count_effects(contract.sandbox)
        impatient = ImpatientHttp()
        self.faults(contract.sandbox).plan(Fault(delay=IMPATIENT_TIMEOUT * 4))
        contract.http, patient = impatient, contract.http
        try:
            with pytest.raises(OutcomeUnknown):
                await self._push(contract, 1)
        finally:
            contract.http = patient
            await impatient.aclose()
        await asyncio.sleep(IMPATIENT_TIMEOUT * 5)  # the vendor finishes what it took
        again = await self._push(contract, 1)
        assert again.status in ("delivered", "already_delivered"), again
        once = self.count_effects(contract.sandbox)
        await self._push(contract, 1)
        assert once > before and self.count_effects(contract.sandbox) == once, (
            "the retry after an unknown outcome made a second effect"
        )

    @pytest.mark.asyncio
    async def test_the_same_task_pushed_twice_makes_one_effect(self, contract: Harness) -> None:
        """A redelivered task (same id, same idempotency key) changes nothing at the vendor;
        another task makes another effect (so ``count_effects`` really counts)."""
        self.require(contract, "push")
        await contract.authenticate()
        before = self.count_effects(contract.sandbox)
        first = await self._push(contract, 1)
        once = self.count_effects(contract.sandbox)
        assert first.status == "delivered" and once > before, (first, before, once)
        again = await self._push(contract, 1)
        assert again.status in ("delivered", "already_delivered"), again
        assert self.count_effects(contract.sandbox) == once, "the repeated push made an effect"
        await self._push(contract, 2)
        assert self.count_effects(contract.sandbox) > once, "another task made no effect"

    @pytest.mark.asyncio
    async def test_what_the_hub_knows_is_used_and_what_it_reports_names_the_client(
        self, contract: Harness
    ) -> None:
        """For a connector that takes ``known`` (the vendor id map): every record a push
        reports names its kind, its vendor id and the task's client; and the same task
        offered again as a first attempt, with those records known, makes no second effect
        (a known record is used, not created again). A connector that does not take
        ``known`` has nothing to show here."""
        self.require(contract, "push")
        if not contract.registry.takes(self.vendor, "journeyhub_push", "known"):
            pytest.skip(f"{self.vendor} does not take the vendor id map")
        await contract.authenticate()
        task = self.sample_task(contract.sandbox, contract.connection, 4)
        result = await contract.push(task)
        client, _ = client_of(task)
        for record in result.records:
            assert record.kind and record.vendor_id, record
            assert record.deleted or record.our_id == client, (record, client)
        once = self.count_effects(contract.sandbox)
        again = await contract.push(task, attempt=1)  # known now: no lookup, no create
        assert again.status in ("delivered", "already_delivered", "skipped"), again
        assert self.count_effects(contract.sandbox) == once, "a known record was made again"

    # --- webhook -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_a_signed_webhook_is_accepted_over_http(
        self, contract: Harness, contract_gateway: GatewayStandIn
    ) -> None:
        """The vendor's signed request is answered 200 with an event id, the same id when it
        is delivered again (it is the bus's dedupe key)."""
        self.require(contract, "webhook")
        gateway = contract_gateway.serve(contract)
        request = self.signed_webhook(contract.sandbox, contract.credentials)
        answers = [await gateway.post(request) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        event_id = answers[0].json()["event_id"]
        assert isinstance(event_id, str) and event_id
        assert answers[1].json()["event_id"] == event_id

    @pytest.mark.asyncio
    async def test_a_wrong_signature_or_token_is_rejected_over_http(
        self, contract: Harness, contract_gateway: GatewayStandIn
    ) -> None:
        """A wrong signature or token is a 401 ``WebhookRejected`` (bad_signature or
        bad_token); a request with no headers and no query is a 401 missing_signature."""
        self.require(contract, "webhook")
        gateway = contract_gateway.serve(contract)
        wrong = await gateway.post(self.unsigned_webhook(contract.sandbox, contract.credentials))
        assert wrong.status_code == 401, (wrong.status_code, wrong.text, gateway.unexpected)
        assert wrong.json()["reason"] in ("bad_signature", "bad_token"), wrong.json()
        good = self.signed_webhook(contract.sandbox, contract.credentials)
        bare = await gateway.post(WebhookRequest(body=good.body))
        assert bare.status_code == 401, (bare.status_code, bare.text, gateway.unexpected)
        assert bare.json()["reason"] == "missing_signature", bare.json()

    @pytest.mark.asyncio
    async def test_junk_is_rejected_never_an_error(
        self, contract: Harness, contract_gateway: GatewayStandIn
    ) -> None:
        """Mangled bodies and header values are answered 200 or 401, never 500: verification
        raises ``WebhookRejected`` and nothing else, whatever arrives."""
        self.require(contract, "webhook")
        gateway = contract_gateway.serve(contract)
        good = self.signed_webhook(contract.sandbox, contract.credentials)
        variants = [WebhookRequest(body, good.headers, good.query) for body in JUNK]
        variants += [
            WebhookRequest(good.body, {k: "v1,=,t=x,%%" for k in good.headers}, good.query),
            WebhookRequest(good.body, good.headers, {k: "\u00e9%00" for k in good.query}),
        ]
        for body in JUNK:  # junk with a valid signature, when the subclass can sign
            signed = self.sign_webhook(contract.sandbox, contract.credentials, body)
            variants += [signed] if signed is not None else []
        for variant in variants:
            answer = await gateway.post(variant)
            assert answer.status_code in (200, 401), (variant, answer.text, gateway.unexpected)
            if answer.status_code == 401:
                assert answer.json()["reason"] in REJECTIONS, answer.json()

    # --- pull ----------------------------------------------------------------------------------

    async def _pull_run(
        self, harness: Harness, cursor: str | None
    ) -> tuple[list[list[str]], str | None]:
        """One sync run: pages until ``has_more`` is false; (ids per page, final cursor)."""
        pages: list[list[str]] = []
        for _ in range(100):
            page = await harness.call("journeyhub_pull", cursor=cursor)
            pages.append(self.pulled_ids(page))
            cursor = page.next_cursor
            if not page.has_more:
                return pages, cursor
            assert cursor is not None, "has_more without a next_cursor"
        raise AssertionError("the sync run did not end within 100 pages")

    @pytest.mark.asyncio
    async def test_pull_pages_and_resumes_from_its_cursor(self, contract: Harness) -> None:
        """Records made after a sync come in the next run, over several pages, each once;
        asking for a page again gives the same page; the run's last cursor then gives what is
        newer. Nothing older comes again, except the newest record before the cursor (a
        watermark may be inclusive: the kernel's fingerprints make that re-read a no-op)."""
        self.require(contract, "pull")
        await contract.authenticate()
        before = self.seed_for_pull(contract.sandbox, 3)
        _, cursor = await self._pull_run(contract, None)  # the first sync
        batch = self.seed_for_pull(contract.sandbox, self.pull_seed_count)
        first_page = self.pulled_ids(await contract.call("journeyhub_pull", cursor=cursor))
        pages, end = await self._pull_run(contract, cursor)
        assert pages[0] == first_page, "the same cursor gave another page"
        assert len([p for p in pages if p]) >= 2, (
            f"{self.pull_seed_count} records fit one page: raise pull_seed_count or lower the "
            "connection's page size"
        )
        self._assert_resumed([i for page in pages for i in page], batch, before)
        later = self.seed_for_pull(contract.sandbox, 1)
        pages, _ = await self._pull_run(contract, end)
        self._assert_resumed([i for page in pages for i in page], later, batch)

    @staticmethod
    def _assert_resumed(seen: list[str], new: list[str], older: list[str]) -> None:
        assert len(seen) == len(set(seen)), "a record came twice in one run"
        assert set(new) <= set(seen), f"missed {sorted(set(new) - set(seen))}"
        again = set(seen) - set(new)
        assert again <= set(older[-1:]), f"the run started over: {len(again)} older records"

    # --- errors --------------------------------------------------------------------------------

    async def _operate(self, harness: Harness, operation: str) -> Any:
        if operation == "push":
            return await self._push(harness, 1)
        return await harness.call("journeyhub_pull", cursor=None)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("operation", ["push", "pull"])
    async def test_429_is_rate_limited_with_retry_after(
        self, contract: Harness, operation: str
    ) -> None:
        """A 429 with Retry-After is ``RateLimited`` carrying it; the retry then goes through."""
        self.require(contract, operation)
        await contract.authenticate()
        self.faults(contract.sandbox).plan(Fault(status=429, retry_after=RETRY_AFTER))
        with pytest.raises(RateLimited) as caught:
            await self._operate(contract, operation)
        assert caught.value.retry_after == pytest.approx(RETRY_AFTER)
        await self._operate(contract, operation)

    @pytest.mark.asyncio
    @pytest.mark.parametrize("operation", ["push", "pull"])
    @pytest.mark.parametrize("status", [500, 503])
    async def test_5xx_is_retryable(self, contract: Harness, operation: str, status: int) -> None:
        """A 5xx is a ``RetryableError`` with the vendor's status (not a rate limit, not an
        auth problem); the retry then goes through."""
        self.require(contract, operation)
        await contract.authenticate()
        self.faults(contract.sandbox).plan(Fault(status=status))
        with pytest.raises(RetryableError) as caught:
            await self._operate(contract, operation)
        assert not isinstance(caught.value, RateLimited | AuthExpired), repr(caught.value)
        assert caught.value.vendor_status == status
        await self._operate(contract, operation)

    # --- secrets -------------------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_no_credential_in_a_log_line_or_an_error_message(
        self, contract: Harness, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every hook the connector has, called with good and with refused credentials, under
        429s and 500s, with good and wrong webhook signatures, logged as JSON with hook tracing
        on: no credential value appears in a log line, an error message or an answer (but
        ``authenticate``'s, which is the credentials). The log scrubber's registry of known
        secrets starts empty, so only the connector's care and the kernel's patterns count."""
        harness, sandbox = contract, contract.sandbox
        harness.registry = get_plugin_manager(only=(self.vendor,), trace=True)
        caps = harness.info.capabilities
        monkeypatch.setattr(logs, "secrets_registry", logs.SecretRegistry())
        saved = structlog.get_config()
        logs.configure_logging("json", "debug")
        said: list[str] = []  # every error message and answer

        async def attempt(hook: str, **kwargs: Any) -> None:
            if not harness.implements(hook):
                return
            try:
                answer = await harness.call(hook, **kwargs)
                if hook != "journeyhub_authenticate":
                    said.append(repr(answer))
            except Exception as exc:
                said.extend([str(exc), repr(exc)])

        async def tour() -> None:
            for fault in (None, Fault(status=429, retry_after=1), Fault(status=500)):
                if fault is not None:
                    self.faults(sandbox).plan(fault, fault, fault)
                if "push" in caps:
                    task = self.sample_task(sandbox, harness.connection, 3)
                    await attempt(
                        "journeyhub_push",
                        task=task,
                        idempotency_key=task.id,
                        suppressed=frozenset(),
                        known=Known(),
                    )
                if "pull" in caps:
                    await attempt("journeyhub_pull", cursor=None)
                await attempt("journeyhub_check_connection")
                self.faults(sandbox).clear()

        secrets = credential_values(harness.credentials)
        try:
            await harness.authenticate()
            secrets |= credential_values(harness.credentials)
            await tour()
            if "webhook" in caps:
                for request in (
                    self.signed_webhook(sandbox, harness.credentials),
                    self.unsigned_webhook(sandbox, harness.credentials),
                ):
                    await attempt(
                        "journeyhub_verify_webhook",
                        headers=dict(request.headers),
                        body=request.body,
                        now=datetime.now(UTC),
                        query=dict(request.query),
                    )
            refused = self.refused_credentials(sandbox)
            if refused is not None:
                secrets |= credential_values(refused)
                harness.credentials = refused
                await attempt("journeyhub_authenticate", refused=True)
                await tour()
        finally:
            structlog.configure(**saved)
        captured = capsys.readouterr()
        lines = [
            line
            for line in (captured.err + captured.out).splitlines()
            if line.startswith("{") and '"event"' in line
        ]
        assert any(json.loads(line)["event"] == "hook_call" for line in lines), "nothing logged"
        leaks = sorted(
            {
                f"{s[:4]}… in {where[:160]!r}"
                for s in secrets
                for where in lines + said
                if s in where
            }
        )
        assert not leaks, leaks
