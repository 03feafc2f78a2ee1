"""A fake of Zapier's side of the Zapier bridge (:mod:`journeyhub.connectors.zapier`), shared by
the sandboxes of the Zapier-based connectors.

- **Catch hooks** (``POST /hooks/catch/<account id>/<hook token>/``), as "Webhooks by Zapier →
  Catch Hook" triggers answer: ``200 {"attempt", "id", "request_id", "status": "success"}`` for
  any body. Zapier itself checks no signature; this fake also plays the part of a Zap that
  does, with the ``standardwebhooks`` library: a request with a bad signature is still
  answered 200 (as Zapier would) but lands in :attr:`FakeZapier.rejected`, not in the actions.
  Repeated envelope ids are counted in :attr:`FakeZapier.duplicates` and not applied twice,
  as a Zap with a dedupe step would. ``faults`` inject 429 / 5xx / slow answers.
- **Zaps calling journeyhub**: :meth:`FakeZapier.post` sends what a "Webhooks by Zapier →
  POST" step sends (flat JSON or form data, ``User-Agent: Zapier``, the token as the
  ``x-journeyhub-token`` header or ``?token=``, as ``auth_in`` says).
"""

from __future__ import annotations

import secrets as _secrets
import string
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import msgspec
from litestar import Litestar, Request, Response, post
from litestar.params import FromPath
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from journeyhub.testing.sandbox import Faults, SandboxServer

_TOKEN_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class CaughtRequest:
    hook: str  # the name the hook was created with (its action)
    headers: dict[str, str]
    body: bytes
    envelope: dict[str, Any] | None  # the decoded JSON, when it is a JSON object
    signature_ok: bool
    duplicate: bool


@dataclass
class _Hook:
    name: str
    received: list[CaughtRequest] = field(default_factory=list)


class FakeZapier:
    """Catch hooks that verify and record what journeyhub sends, and Zaps that call back."""

    def __init__(
        self,
        secret: str | None = None,
        *,
        account_id: int = 1234567,
        on_action: Callable[[str, dict[str, Any]], None] | None = None,
        port: int | None = None,
    ) -> None:
        self.secret = secret  # the connection's secret; None: signatures are not checked
        self.account_id = account_id
        self.on_action = on_action  # called once per new, verified envelope (the Zap's steps)
        self.faults = Faults()
        self.duplicates: Counter[str] = Counter()  # envelope id -> repeats after the first
        self._hooks: dict[str, _Hook] = {}  # hook token -> hook
        self._seen: set[str] = set()
        self._log: list[CaughtRequest] = []
        self._lock = threading.Lock()
        self.server = SandboxServer(self._app(), port=port)

    # lifecycle
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> FakeZapier:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> FakeZapier:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget what was received (the hooks stay)."""
        with self._lock:
            self._log.clear()
            self._seen.clear()
            self.duplicates.clear()
            for hook in self._hooks.values():
                hook.received.clear()
        self.faults.clear()

    # catch hooks
    def catch_hook(self, name: str) -> str:
        """A new catch hook for ``name``; its URL is shaped like Zapier's."""
        token = "".join(_secrets.choice(_TOKEN_ALPHABET) for _ in range(7))
        with self._lock:
            self._hooks[token] = _Hook(name)
        return f"{self.url}/hooks/catch/{self.account_id}/{token}/"

    @property
    def received(self) -> list[CaughtRequest]:
        """Every request caught, in arrival order (bad signatures and repeats included)."""
        with self._lock:
            return list(self._log)

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The envelopes the Zaps acted on: verified, first delivery of each id, in order."""
        return [
            r.envelope for r in self.received if r.envelope and r.signature_ok and not r.duplicate
        ]

    @property
    def rejected(self) -> list[CaughtRequest]:
        return [r for r in self.received if not r.signature_ok]

    def _verify(self, headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            return True
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    def _catch(self, hook_token: str, headers: dict[str, str], body: bytes) -> bool:
        """Record one request; False when no hook has this token."""
        try:
            decoded = msgspec.json.decode(body)
        except (msgspec.DecodeError, ValueError):
            decoded = None
        envelope = decoded if isinstance(decoded, dict) else None
        signature_ok = self._verify(headers, body)
        apply = False
        with self._lock:
            hook = self._hooks.get(hook_token)
            if hook is None:
                return False
            envelope_id = str(envelope.get("id")) if envelope else None
            duplicate = envelope_id is not None and envelope_id in self._seen
            if signature_ok and envelope_id is not None:
                if duplicate:
                    self.duplicates[envelope_id] += 1
                else:
                    self._seen.add(envelope_id)
                    apply = True
            caught = CaughtRequest(hook.name, headers, body, envelope, signature_ok, duplicate)
            hook.received.append(caught)
            self._log.append(caught)
        if apply and envelope is not None and self.on_action is not None:
            self.on_action(hook.name, envelope)
        return True

    def _app(self) -> Litestar:
        fake = self

        @post(
            ["/hooks/catch/{account:int}/{token:str}", "/hooks/catch/{account:int}/{token:str}/"],
            status_code=200,
        )
        async def catch(
            request: Request[Any, Any, Any], account: FromPath[int], token: FromPath[str]
        ) -> Response[Any]:
            injected = await fake.faults.apply()
            if injected is not None:
                return injected
            body = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            if account != fake.account_id or not fake._catch(token, headers, body):
                # Assumed shape: Zapier's answer for an unknown or deleted hook is not documented.
                return Response({"status": "error", "message": "hook not found"}, status_code=404)
            attempt = str(uuid.uuid4())
            return Response(
                {
                    "attempt": attempt,
                    "id": str(uuid.uuid4()),
                    "request_id": attempt,
                    "status": "success",
                },
            )

        return Litestar([catch], debug=False)

    # Zaps calling journeyhub
    @staticmethod
    async def post(
        http: httpx.AsyncClient,
        url: str,
        data: dict[str, Any],
        *,
        token: str | None,
        auth_in: Literal["header", "query"] = "header",
        payload_type: Literal["json", "form"] = "json",
        query: dict[str, str] | None = None,
    ) -> httpx.Response:
        """What a "Webhooks by Zapier → POST" step sends: flat data, every value a string
        (Zapier passes mapped fields as text)."""
        flat = {k: "" if v is None else str(v) for k, v in data.items()}
        params = dict(query or {})
        headers = {"user-agent": "Zapier", "accept": "application/json"}
        if token is not None:
            if auth_in == "header":
                headers["x-journeyhub-token"] = token
            else:
                params["token"] = token
        target = f"{url}?{urlencode(params)}" if params else url
        if payload_type == "form":
            headers["content-type"] = "application/x-www-form-urlencoded"
            return await http.post(target, content=urlencode(flat), headers=headers)
        headers["content-type"] = "application/json"
        return await http.post(target, content=msgspec.json.encode(flat), headers=headers)
