"""The demo's journey engine: it keeps each couple's journey, sends the journey's events to the
hub, and takes the triggers the hub sends back.

As a real engine would, it holds the client and the wedding as it knows them, and every event it
sends carries that state. ``POST /hooks/journeyhub`` is the receiving end of the built-in
``webhook`` connector: each request's Standard Webhooks signature is verified with the
``standardwebhooks`` library, a retry (same ``webhook-id``) is kept once, and each trigger is
applied to the journey it concerns. A trigger that changes the wedding (the studio moved the date
in its CRM) queues a ``client_updated`` for the engine's next run (:meth:`JourneyEngine.run`), so
that every system the hub can update follows the change.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from journeyhub import signing
from journeyhub.model import stable_id
from journeyhub.testing.sandbox import SandboxServer

# The fields a ``wedding_date_changed`` trigger may name for the date (change_detection's
# DATE_FIELDS): each sets the journey's wedding date.
DATE_FIELDS = ("wedding_date", "date", "event_date")


@dataclass
class Journey:
    """One couple's journey as the engine knows it."""

    instance_id: str
    name: str
    client: dict[str, Any]
    wedding: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)


def unwrap(payload: Any) -> Any:
    """The trigger in a webhook body: the Standard Webhooks shape ``{"type", "timestamp",
    "data"}`` carries it as ``data``; a body that is the trigger itself is taken as it is."""
    if isinstance(payload, dict) and "timestamp" in payload and "source_event_id" not in payload:
        inner = payload.get("data")
        return inner if isinstance(inner, dict) else payload
    return payload


def _body(journey: Journey, event_id: str, type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """A journey event carrying ``journey`` as it is now (a copy)."""
    return {
        "id": event_id,
        "type": type_,
        "occurred_at": datetime.now(UTC).isoformat(),
        "journey_instance_id": journey.instance_id,
        "journey_name": journey.name,
        "client": copy.deepcopy(journey.client),
        "wedding": copy.deepcopy(journey.wedding),
        "data": copy.deepcopy(data),
    }


def new_date(trigger: dict[str, Any]) -> str | None:
    """The wedding date a ``wedding_date_changed`` trigger reports, or None."""
    changes = (trigger.get("data") or {}).get("changes") or {}
    for name in DATE_FIELDS:
        change = changes.get(name)
        if isinstance(change, dict) and isinstance(change.get("new"), str) and change["new"]:
            return change["new"][:10]
    return None


class JourneyEngine:
    PATH = "/hooks/journeyhub"

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or signing.new_secret()
        self.received: list[dict[str, Any]] = []  # verified payloads, first delivery of each
        self.sent: list[dict[str, Any]] = []  # events posted to the hub and accepted
        self.rejected = 0
        self.repeats = 0
        self.journeys: dict[str, Journey] = {}  # by client id
        self.pending: list[dict[str, Any]] = []  # events queued for the next run
        self.api: httpx.AsyncClient | None = None  # on the hub's gateway
        self.ingest_key = ""
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        verifier = Webhook(self.secret)

        @post(self.PATH, status_code=200)
        async def receive(request: Request[Any, Any, Any]) -> Response[Any]:
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                payload = unwrap(verifier.verify(body, headers))
            except WebhookVerificationError:
                with self._lock:
                    self.rejected += 1
                return Response({"error": "bad signature"}, status_code=401)
            with self._lock:
                msg_id = headers.get("webhook-id", "")
                if msg_id in self._seen:
                    self.repeats += 1
                else:
                    self._seen.add(msg_id)
                    if isinstance(payload, dict):
                        self._apply(payload)
                    self.received.append(payload)
            return Response({"received": True})

        self.server = SandboxServer(Litestar([receive], openapi_config=None, debug=False))

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url + self.PATH

    def start(self) -> JourneyEngine:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def connect(self, api: httpx.AsyncClient, ingest_key: str) -> None:
        """Where the engine posts its events: the hub's gateway, with an ``ingest`` key."""
        self.api, self.ingest_key = api, ingest_key

    # --- journeys ---------------------------------------------------------------------------------

    def begin(self, journey: Journey) -> None:
        with self._lock:
            self.journeys[journey.client["id"]] = journey

    def journey(self, client_id: str) -> Journey | None:
        """A copy of the journey as the engine knows it now."""
        with self._lock:
            found = self.journeys.get(client_id)
            return copy.deepcopy(found) if found is not None else None

    def event(self, client_id: str, event_id: str, type_: str, **extra: Any) -> dict[str, Any]:
        """A journey event for ``client_id``'s journey, carrying the engine's current state;
        ``extra`` adds to it (``data`` is merged into the journey's data)."""
        with self._lock:
            journey = self.journeys[client_id]
            body = _body(journey, event_id, type_, {**journey.data, **extra.pop("data", {})})
        body.update(extra)
        return body

    async def post(self, body: Any) -> httpx.Response:
        """POST one event (or a list of them) to the hub's ``/v1/events``."""
        if self.api is None:
            raise RuntimeError("the journey engine is not connected to a hub")
        headers = {"authorization": f"Bearer {self.ingest_key}"}
        answer = await self.api.post("/v1/events", json=body, headers=headers)
        if answer.status_code == 202:
            self.sent.extend(body if isinstance(body, list) else [body])
        return answer

    async def run(self) -> tuple[list[dict[str, Any]], httpx.Response | None]:
        """The engine's next run: send the events queued since the last one. What was sent,
        and the hub's answer (None when nothing was queued)."""
        with self._lock:
            queued, self.pending = self.pending, []
        if not queued:
            return [], None
        answer = await self.post(queued)
        if answer.status_code != 202:
            with self._lock:  # kept for another run
                self.pending = queued + self.pending
        return queued, answer

    # --- triggers ---------------------------------------------------------------------------------

    def _apply(self, trigger: dict[str, Any]) -> None:
        """Apply one trigger to its journey (under the lock): a new wedding date changes the
        wedding and queues a ``client_updated`` carrying it."""
        journey = self.journeys.get(str(trigger.get("client_id")))
        if journey is None or trigger.get("type") != "wedding_date_changed":
            return
        date = new_date(trigger)
        if date is None or date == journey.wedding.get("date"):
            return
        journey.wedding["date"] = date
        # One update per trigger: a redelivered trigger (same id) makes the same event id.
        event_id = stable_id("ev_update", str(trigger.get("id")))
        data = {**journey.data, "reason": trigger.get("type")}
        self.pending.append(_body(journey, event_id, "client_updated", data))

    def triggers(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Triggers received (journey events, which carry no ``source_event_id``, left out)."""
        with self._lock:
            found = [p for p in self.received if isinstance(p, dict) and "source_event_id" in p]
        return [p for p in found if type_ is None or p.get("type") == type_]

    def has(self, trigger_id: str) -> bool:
        return any(p.get("id") == trigger_id for p in self.triggers())
