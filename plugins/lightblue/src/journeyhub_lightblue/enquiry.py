"""What one journey event sends to Light Blue: its parameters and its deduplicating ``ID``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from journeyhub.errors import PermanentError
from journeyhub.model import JourneyEvent, stable_id

from journeyhub_lightblue.client import ID, KEY, SOURCE, SOURCE_VERSION, TYPE
from journeyhub_lightblue.config import LightBlueConfig

# journey_started: a new enquiry. client_updated: the client's new details, which the studio
# applies to the existing contact from the Inbox. Other events mean nothing to a studio inbox.
PUSH_EVENT_TYPES: tuple[str, ...] = ("journey_started", "client_updated")

# Parameters the connector sets itself; a field mapping must not replace them (a different
# ID or Source would defeat Light Blue's duplicate check).
_RESERVED = {name.lower() for name in (KEY, TYPE, ID, SOURCE, SOURCE_VERSION, "Reference")}

try:
    PLUGIN_VERSION = version("journeyhub-lightblue")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    PLUGIN_VERSION = "0.0.0"


def submission_id(event: JourneyEvent) -> str:
    """The ``ID`` Light Blue deduplicates on (with ``Source``).

    An enquiry is one per client and journey, whichever event id started it, so a retry, a
    replay or a journey engine sending ``journey_started`` twice makes one Inbox item. Each
    client update is its own item, so only a repeat of the same update is refused.
    """
    if event.type == "journey_started":
        return stable_id("jh-enquiry", event.client.id, event.journey_instance_id)
    return stable_id("jh-update", event.client.id, event.id)


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"  # ASSUMED: the API's Boolean format is not published
    if isinstance(value, str | int | float):
        return str(value)
    raise PermanentError(
        f"field mapping target {name!r} holds a {type(value).__name__}: Light Blue parameters "
        "are flat names with text values (use a target without dots)"
    )


def form_fields(event: JourneyEvent, mapped: dict[str, Any], config: LightBlueConfig) -> dict:
    """The POST parameters for ``event`` (without the key and type, which the client adds)."""
    fields: dict[str, str] = {}
    if event.type == "journey_started" and config.shoot_type:
        fields["ShootType"] = config.shoot_type
    for name, value in mapped.items():
        if name.lower() in _RESERVED:
            raise PermanentError(
                f"field mapping target {name!r} is set by the connector and cannot be mapped"
            )
        if value is None or value == "":
            continue
        fields[name] = _text(name, value)
    fields[SOURCE] = config.source
    fields[SOURCE_VERSION] = PLUGIN_VERSION
    fields[ID] = submission_id(event)
    return fields
