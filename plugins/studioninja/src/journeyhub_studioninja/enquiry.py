"""What a journey sends to Studio Ninja's enquiry form, and how a repeat is kept from it.

The form cannot deduplicate (there is no lookup and no idempotency key), so the only guard is
on our side, in this process: ``LEDGER`` remembers which enquiries it has sent. Within one
process, the same enquiry (one per client and journey) is posted once however often it is
pushed; a concurrent push of the same enquiry is retried later, and then finds it sent. What it cannot cover is
said in the README: a crash between the form's answer and the kernel recording the delivery,
a second process, or an answer lost on the way back (a retry posts again).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.model import JourneyEvent, stable_id

from journeyhub_studioninja.config import StudioNinjaConfig

# A new journey is a new enquiry; the form takes nothing else (no update, no outcome).
PUSH_EVENT_TYPES: tuple[str, ...] = ("journey_started",)

SENDING, SENT = "sending", "sent"


def submission_id(event: JourneyEvent) -> str:
    """One enquiry per client and journey, whichever event id started it."""
    return stable_id("jh-sn-enquiry", event.client.id, event.journey_instance_id)


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise PermanentError(
        f"field mapping target {name!r} holds a {type(value).__name__}: the enquiry form takes "
        "flat field names with text values (use a target without dots)"
    )


def form_fields(
    event: JourneyEvent, mapped: dict[str, Any], config: StudioNinjaConfig
) -> dict[str, str]:
    """The form fields for ``event``: the mapped ones, and our reference when configured."""
    reserved = config.reference_field
    fields: dict[str, str] = {}
    for name, value in mapped.items():
        if reserved is not None and name == reserved:
            raise PermanentError(
                f"field mapping target {name!r} is the reference_field and cannot be mapped"
            )
        if value is None or value == "":
            continue
        fields[name] = _text(name, value)
    if not fields:
        raise PermanentError("the field mappings gave the enquiry form no field to send")
    if reserved is not None:
        fields[reserved] = submission_id(event)
    return fields


class SentLedger:
    """Which enquiries this process has sent or is sending, per connection (bounded)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._state: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def begin(self, connection_id: str, enquiry: str) -> str | None:
        """Claim an enquiry for sending: None when claimed, else its state (sending/sent)."""
        key = (connection_id, enquiry)
        with self._lock:
            state = self._state.get(key)
            if state is not None:
                self._state.move_to_end(key)
                return state
            self._state[key] = SENDING
            while len(self._state) > self.size:
                self._state.popitem(last=False)
        return None

    def sent(self, connection_id: str, enquiry: str) -> None:
        with self._lock:
            self._state[(connection_id, enquiry)] = SENT

    def release(self, connection_id: str, enquiry: str) -> None:
        """The send failed: a later push may post it again."""
        with self._lock:
            self._state.pop((connection_id, enquiry), None)

    def clear(self) -> None:
        with self._lock:
            self._state.clear()


LEDGER = SentLedger()
