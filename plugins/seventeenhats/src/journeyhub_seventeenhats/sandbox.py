"""A fake of the user's 17hats Zaps, for tests, benchmarks and the demo.

:class:`SeventeenHatsSandbox` runs a :class:`~journeyhub.testing.zapier_sandbox.FakeZapier`
with one catch hook, ``upsert_contact``. Verified, first-seen envelopes are applied as the
Zap's steps would: 17hats "Find Contact" by primary email (create if not found), then "Update
Contact" with the envelope's fields. The trigger builders give what the trigger Zaps POST to
journeyhub ("17hats New/Updated Contact → Webhooks by Zapier POST", README field names).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Literal

import httpx
from journeyhub.testing.sandbox import Faults
from journeyhub.testing.zapier_sandbox import CaughtRequest, FakeZapier

from journeyhub_seventeenhats.plugin import ACTION

SECRET = "whsec_" + "MTdoYXRzLXNhbmRib3gtc2VjcmV0LTAwMDE="  # sandbox only
# What its Zaps send as the connection's token: sandbox only.
TOKEN = "hats-sandbox-zap-token-0001-not-a-signing-key"  # noqa: S105
_CONTACT_FIELDS = (
    "first_name",
    "last_name",
    "type",
    "primary_email",
    "primary_phone",
    "notes",
    "is_company",
)


class SeventeenHatsSandbox:
    def __init__(self, secret: str = SECRET, *, port: int | None = None) -> None:
        self.secret = secret
        self.token = TOKEN  # the connection's token, which its Zaps send (never the secret)
        self.zapier = FakeZapier(secret, on_action=self._apply, port=port)
        self.hook_url = ""
        self.contacts: dict[str, dict[str, Any]] = {}  # by lower-case primary email
        self.created = 0
        self.updated = 0
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    # lifecycle
    @property
    def url(self) -> str:
        return self.zapier.url

    @property
    def faults(self) -> Faults:
        return self.zapier.faults

    def start(self) -> SeventeenHatsSandbox:
        self.zapier.start()
        self.hook_url = self.zapier.catch_hook(ACTION)
        return self

    def stop(self) -> None:
        self.zapier.stop()

    def __enter__(self) -> SeventeenHatsSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        self.zapier.reset()
        with self._lock:
            self.contacts.clear()
            self.created = self.updated = 0

    def config(self, **extra: Any) -> dict[str, Any]:
        """A connection config whose catch hook is this sandbox's."""
        return {"catch_hook_urls": {ACTION: self.hook_url}, **extra}

    # what the action Zap received and did
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
        data = envelope.get("data") or {}
        if envelope.get("action") != ACTION or not data.get("primary_email"):
            return  # the Zap's Filter; and Find Contact needs an email
        email = str(data["primary_email"]).lower()
        with self._lock:
            contact = self.contacts.get(email)
            if contact is None:  # Find Contact, "create if not found"
                contact = {"id": str(next(self._ids))}
                self.contacts[email] = contact
                self.created += 1
            else:
                self.updated += 1
            # Update Contact: Zapier leaves a field alone when its mapped value is empty
            contact.update({k: data[k] for k in _CONTACT_FIELDS if data.get(k) not in (None, "")})

    # what the trigger Zaps POST to journeyhub
    @staticmethod
    def new_contact(
        contact_id: str = "1001",
        *,
        first_name: str = "Ada",
        last_name: str = "Lovelace",
        email: str = "ada@example.com",
        phone: str = "555-0100",
        contact_type: str = "Lead",
    ) -> dict[str, Any]:
        return {
            "trigger": "new_contact",
            "id": contact_id,
            "first_name": first_name,
            "last_name": last_name,
            "primary_email": email,
            "primary_phone": phone,
            "type": contact_type,
        }

    @staticmethod
    def updated_contact(
        contact_id: str = "1001", *, updated_at: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        data = {**SeventeenHatsSandbox.new_contact(contact_id), **fields}
        data["trigger"] = "updated_contact"
        if updated_at is not None:
            data["updated_at"] = updated_at
        return data

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
        "17hats (Zapier)",
        SeventeenHatsSandbox,
        config=lambda sb: sb.config(),
        credentials=lambda sb: {"secret": sb.secret, "token": sb.token},
        secrets=(SECRET, TOKEN),
    )
