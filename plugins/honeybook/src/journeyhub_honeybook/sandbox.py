"""A fake of the user's HoneyBook Zaps, for tests, benchmarks and the demo.

:class:`HoneyBookSandbox` runs a :class:`~journeyhub.testing.zapier_sandbox.FakeZapier` with
one catch hook per action. Verified, first-seen envelopes are applied as the Zaps' HoneyBook
steps would: Create Client adds a client (one per email: assumed, HoneyBook does not document
how it treats a second client with the same email), Create Project adds a project. The
trigger builders give what the trigger Zaps POST to journeyhub ("HoneyBook trigger → Webhooks by
Zapier POST" with the README's field names), and :meth:`HoneyBookSandbox.send` POSTs it.
"""

from __future__ import annotations

import threading
from importlib.resources import files
from typing import Any, Literal

import httpx
from journeyhub.testing.sandbox import Faults
from journeyhub.testing.zapier_sandbox import CaughtRequest, FakeZapier

from journeyhub_honeybook.plugin import ACTIONS

SECRET = "whsec_" + "aG9uZXlib29rLXNhbmRib3gtc2VjcmV0LTAx"  # sandbox only
# What its Zaps send as the connection's token: sandbox only.
TOKEN = "hb-sandbox-zap-token-0001-not-a-signing-key"  # noqa: S105


def sample_payments_csv() -> str:
    """A "Payments completed" report in the assumed layout (README), for tests and the demo."""
    return (files("journeyhub_honeybook") / "samples" / "payments_completed.csv").read_text(
        encoding="utf-8"
    )


class HoneyBookSandbox:
    def __init__(self, secret: str = SECRET, *, port: int | None = None) -> None:
        self.secret = secret
        self.token = TOKEN  # the connection's token, which its Zaps send (never the secret)
        self.zapier = FakeZapier(secret, on_action=self._apply, port=port)
        self.hooks: dict[str, str] = {}
        self.clients: dict[str, dict[str, Any]] = {}  # by email, as created in "HoneyBook"
        self.projects: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    # lifecycle
    @property
    def url(self) -> str:
        return self.zapier.url

    @property
    def faults(self) -> Faults:
        return self.zapier.faults

    def start(self) -> HoneyBookSandbox:
        self.zapier.start()
        self.hooks = {action: self.zapier.catch_hook(action) for action in ACTIONS}
        return self

    def stop(self) -> None:
        self.zapier.stop()

    def __enter__(self) -> HoneyBookSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.zapier.reset()
        with self._lock:
            self.clients.clear()
            self.projects.clear()

    def config(self, **extra: Any) -> dict[str, Any]:
        """A connection config whose catch hooks are this sandbox's."""
        return {"catch_hook_urls": dict(self.hooks), **extra}

    # what the action Zaps received and did
    @property
    def actions(self) -> list[dict[str, Any]]:
        return self.zapier.actions

    @property
    def received(self) -> list[CaughtRequest]:
        return self.zapier.received

    @property
    def rejected(self) -> list[CaughtRequest]:
        return self.zapier.rejected

    @property
    def duplicates(self) -> dict[str, int]:
        return dict(self.zapier.duplicates)

    def _apply(self, hook: str, envelope: dict[str, Any]) -> None:
        action, data = envelope.get("action"), envelope.get("data") or {}
        if action != hook:  # the Zap's Filter: "action exactly matches <its action>"
            return
        with self._lock:
            if action == "create_client":
                self.clients.setdefault(str(data.get("email")).lower(), dict(data))
            elif action == "create_project":
                self.projects.append(dict(data))

    # what the trigger Zaps POST to journeyhub
    @staticmethod
    def client_created(
        client_id: str = "hb_client_1",
        *,
        name: str = "Ada Lovelace",
        email: str = "ada@example.com",
        phone: str = "(555) 010-0100",
        created_at: str = "2026-03-01T12:00:00Z",
    ) -> dict[str, Any]:
        return {
            "trigger": "client_created",
            "id": client_id,
            "client_name": name,
            "client_email": email,
            "client_phone": phone,
            "created_at": created_at,
        }

    @staticmethod
    def project_booked(
        project_id: str = "hb_project_1",
        *,
        project_name: str = "Ada & Charles",
        project_type: str = "Wedding",
        project_date: str = "09/12/2026",
        email: str = "ada@example.com",
        name: str = "Ada Lovelace",
        booked_at: str = "2026-03-02T09:30:00Z",
    ) -> dict[str, Any]:
        return {
            "trigger": "project_booked",
            "id": project_id,
            "project_name": project_name,
            "project_type": project_type,
            "project_date": project_date,
            "client_email": email,
            "client_name": name,
            "booked_at": booked_at,
        }

    @staticmethod
    def payment_paid(
        payment_id: str = "hb_payment_1",
        *,
        amount: str = "$1,500.00",
        email: str = "ada@example.com",
        name: str = "Ada Lovelace",
        project_name: str = "Ada & Charles",
        invoice: str = "Invoice #1001",
        method: str = "Credit card",
        paid_at: str = "2026-03-03T15:00:00Z",
    ) -> dict[str, Any]:
        return {
            "trigger": "payment_paid",
            "id": payment_id,
            "amount": amount,
            "client_email": email,
            "client_name": name,
            "project_name": project_name,
            "invoice": invoice,
            "payment_method": method,
            "paid_at": paid_at,
        }

    async def send(
        self,
        http: httpx.AsyncClient,
        url: str,
        data: dict[str, Any],
        *,
        token: str | None = None,
        auth_in: Literal["header", "query"] = "header",
        payload_type: Literal["json", "form"] = "json",
    ) -> httpx.Response:
        """POST ``data`` as the Zap's Webhooks step does, with this sandbox's token."""
        return await FakeZapier.post(
            http,
            url,
            data,
            token=self.token if token is None else token,
            auth_in=auth_in,
            payload_type=payload_type,
        )


def demo() -> Any:
    """Entry point ``journeyhub.sandboxes``: this sandbox as ``journeyhub demo`` runs it."""
    from journeyhub.testing.sandbox import SandboxDemo

    return SandboxDemo(
        "HoneyBook (Zapier)",
        HoneyBookSandbox,
        config=lambda sb: sb.config(),
        credentials=lambda sb: {"secret": sb.secret, "token": sb.token},
        secrets=(SECRET, TOKEN),
    )
