"""A connector for a vendor reached through its Zapier app: its actions and fields, and
little else.

A bridge connector pushes journey events as signed action envelopes to the catch hooks of the
user's Zaps, one per action, in the order the config's ``ACTIONS`` names them, and takes the
Zaps' POSTs back as webhooks (see :mod:`journeyhub.connectors.zapier` for the wire format).
What differs between vendors is given to :class:`ZapierBridge`: the config schema (its
``ACTIONS``), the default field mappings, ``payloads`` (the data of each action for one event)
and ``drafts`` (triggers from one Zap POST). The instance is the plugin: point the entry
point at it.

A bridge's actions create or update the client and its project at the vendor, so it pushes only
the events that may set those fields (:func:`journeyhub.model.sets_client_fields`): a later
event's snapshot of the client would undo a change the studio made at the vendor.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from journeyhub.connectors.zapier import (
    ZapierConfig,
    ZapierCredentials,
    ZapierInbound,
    action_id,
    parse_inbound,
    send_action,
    verify_zapier,
    zapier_request_id,
)
from journeyhub.errors import PermanentError, WebhookRejected
from journeyhub.hookspecs import hookimpl
from journeyhub.model import (
    FIELD_SETTING_EVENTS,
    Connection,
    ConnectorInfo,
    DeliveryTask,
    FieldMapping,
    JourneyEvent,
    PushResult,
    RateLimit,
    StoredWebhook,
    TriggerDraft,
    WebhookReceipt,
    stable_id,
    utcnow,
)
from journeyhub.vendor_http import VendorHttp

Payloads = Callable[[JourneyEvent, dict[str, Any]], dict[str, dict[str, Any]]]
Drafts = Callable[[ZapierInbound, Any], list[TriggerDraft] | None]
# Zapier: about 30 requests/s per catch hook and 10,000 per 5 minutes per Zapier user, shared
# with the user's other Zaps; 5/s leaves room.
ZAPIER_RATE = RateLimit(requests=5, per_seconds=1)


class ZapierBridge:
    def __init__(
        self,
        *,
        vendor: str,
        display_name: str,
        config_schema: type[ZapierConfig],
        default_field_mappings: tuple[FieldMapping, ...],
        push_event_types: tuple[str, ...],
        payloads: Payloads,
        webhook_event_types: tuple[str, ...],
        drafts: Drafts,
        versioned: Collection[str] = (),
        docs_url: str | None = None,
    ) -> None:
        if others := sorted(set(push_event_types) - FIELD_SETTING_EVENTS):
            raise ValueError(
                f"{vendor}: a Zapier bridge pushes only {sorted(FIELD_SETTING_EVENTS)}, the "
                f"events that may set a client's fields; not {others}"
            )
        self.info = ConnectorInfo(
            vendor=vendor,
            display_name=display_name,
            capabilities=frozenset({"push", "webhook"}),
            auth_kind="shared_secret",
            config_schema=config_schema,
            credentials_schema=ZapierCredentials,
            rate_limit=ZAPIER_RATE,
            webhook_event_types=webhook_event_types,
            push_event_types=push_event_types,
            default_field_mappings=default_field_mappings,
            docs_url=docs_url,
        )
        self.payloads = payloads
        self.drafts = drafts
        self.versioned = frozenset(versioned)

    @hookimpl
    def journeyhub_connector(self) -> ConnectorInfo:
        return self.info

    @hookimpl
    async def journeyhub_push(
        self,
        task: DeliveryTask,
        config: ZapierConfig,
        creds: ZapierCredentials,
        idempotency_key: str,
        http: VendorHttp,
    ) -> PushResult:
        event = task.event
        if event is None or event.type not in self.info.push_event_types:
            kinds = ", ".join(self.info.push_event_types)
            return PushResult(status="skipped", detail=f"only {kinds} go to {self.info.vendor}")
        targets = [
            (action, url) for action in config.ACTIONS if (url := config.catch_hook_url(action))
        ]
        if not targets:
            raise PermanentError(
                f"no catch_hook_urls are configured for this {self.info.vendor} connection "
                f"({', '.join(config.ACTIONS)})"
            )
        payloads = self.payloads(event, task.mapped)
        run_ids: dict[str, str] = {}
        status = None
        for action, url in targets:  # in order: a client before its project
            response = await send_action(
                http,
                url,
                creds.secret,
                action_id(idempotency_key, action),
                action,
                payloads[action],
                config.timeout_seconds,
                occurred_at=event.occurred_at,
            )
            status = response.status_code
            run_ids[f"zapier_{action}"] = zapier_request_id(response) or ""
        skipped = [action for action in config.ACTIONS if not config.catch_hook_url(action)]
        return PushResult(
            vendor_status=status,
            external_ids=run_ids,
            detail=f"no catch hook for {', '.join(skipped)}: not sent" if skipped else None,
        )

    @hookimpl
    def journeyhub_verify_webhook(
        self,
        credentials: Mapping[str, Any],
        headers: Mapping[str, str],
        body: bytes,
        query: Mapping[str, str],
    ) -> WebhookReceipt:
        # The raw mapping, not ``creds``: verification must refuse, never fail, whatever is stored.
        return verify_zapier(credentials, headers, query, body, versioned=self.versioned)

    @hookimpl
    def journeyhub_handle_webhook(
        self, config: ZapierConfig, webhook: StoredWebhook
    ) -> list[TriggerDraft] | None:
        try:
            parsed = parse_inbound(
                webhook.body,
                webhook.headers.get("content-type", ""),
                webhook.event_type,
                versioned=self.versioned,
            )
        except WebhookRejected as exc:  # verified at the gateway, so only a corrupted store
            raise PermanentError(
                f"the stored {self.info.vendor} webhook cannot be read: {exc}"
            ) from None
        return self.drafts(parsed, config)

    @hookimpl
    async def journeyhub_check_connection(
        self,
        connection: Connection,
        config: ZapierConfig,
        creds: ZapierCredentials,
        http: VendorHttp,
    ) -> str:
        """Send a ``ping`` envelope to each catch hook (the Zaps' Filter on ``action`` stops it)."""
        if not any(config.catch_hook_url(action) for action in config.ACTIONS):
            return f"inbound only: no catch hook configured for {', '.join(config.ACTIONS)}"
        answers = []
        for action in config.ACTIONS:
            url = config.catch_hook_url(action)
            if url is None:
                answers.append(f"{action}: no catch hook configured")
                continue
            msg_id = stable_id("ping", connection.id, action, utcnow().isoformat())
            response = await send_action(
                http,
                url,
                creds.secret,
                msg_id,
                "ping",
                {"for_action": action},
                config.timeout_seconds,
            )
            answers.append(f"{action}: Zapier answered {response.status_code}")
        return "; ".join(answers)
