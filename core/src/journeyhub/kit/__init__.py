"""The connector kit: what a connector imports to be written in few lines.

- The hook marker and the models a connector returns (:mod:`journeyhub.model`).
- Config and credentials: declare ``config_schema`` / ``credentials_schema`` Structs in
  ``ConnectorInfo`` and take ``config`` and ``creds`` in a hook: the kernel decodes them once
  (``Config`` is a base that refuses unknown keys).
- ``task.mapped``: the connection's field mappings applied to the event by the kernel, always.
- :func:`send`: one vendor call with its answer classified (timeouts, Retry-After, the
  vendor's message, ``OutcomeUnknown`` when the request went out and no answer came).
- :class:`ZapierBridge`: a connector for a vendor reached through Zapier, from its field list.
- :mod:`journeyhub.kit.records`: writing by vendor id with the hub's id map (``known``).
- Tests: ``journeyhub.testing.connector`` (fixtures, loaded by pytest for every connector) and
  ``journeyhub.testing.contract.ConnectorContract`` (the suite every connector passes).
"""

from __future__ import annotations

import msgspec

from journeyhub.errors import (
    AuthExpired,
    ConnectorError,
    EndpointGone,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
    VendorUnreachable,
    WebhookRejected,
)
from journeyhub.hookspecs import hookimpl
from journeyhub.kit.http import send, vendor_message
from journeyhub.kit.zapier import ZapierBridge
from journeyhub.model import (
    Connection,
    ConnectorInfo,
    DeliveryTask,
    FieldMapping,
    JourneyEvent,
    Known,
    OAuthClient,
    PullPage,
    PushResult,
    RateLimit,
    StoredWebhook,
    SyncedRecord,
    TriggerDraft,
    TriggerType,
    WebhookReceipt,
    sets_client_fields,
)
from journeyhub.vendor_http import VendorHttp, VendorResponse


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of a connector's config or credentials schema: keyword fields, unknown keys
    refused (a typo in a saved config is a 422 naming the key, not a silent default)."""


def check_url(name: str, value: str) -> None:
    """A ``ValueError`` naming the field when ``value`` is not an http(s) URL."""
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{name} must start with https://")


def check_timeout(name: str, value: float, most: float = 60) -> None:
    if not 0 < value <= most:
        raise ValueError(f"{name} must be in (0, {most:g}]")


__all__ = [
    "AuthExpired",
    "Config",
    "Connection",
    "ConnectorError",
    "ConnectorInfo",
    "DeliveryTask",
    "EndpointGone",
    "FieldMapping",
    "JourneyEvent",
    "Known",
    "OAuthClient",
    "OutcomeUnknown",
    "PermanentError",
    "PullPage",
    "PushResult",
    "RateLimit",
    "RateLimited",
    "ReauthRequired",
    "RetryableError",
    "StoredWebhook",
    "SyncedRecord",
    "TriggerDraft",
    "TriggerType",
    "VendorHttp",
    "VendorResponse",
    "VendorUnreachable",
    "WebhookReceipt",
    "WebhookRejected",
    "ZapierBridge",
    "check_timeout",
    "check_url",
    "hookimpl",
    "send",
    "sets_client_fields",
    "vendor_message",
]
