"""Incidents by email: a connection with an ``operations_address`` takes them, and each notice
becomes a plain email there (the delivery itself: ``tests/e2e/test_incidents.py``)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub.model import DeliveryTask, IncidentNotice, PushResult
from journeyhub_resend import plugin
from journeyhub_resend.compose import compose
from journeyhub_resend.config import ResendConfig

SENDER = {"from_address": "Hub <hub@example.com>"}


def notice_task(**changes: object) -> DeliveryTask:
    moment = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
    notice = IncidentNotice(
        type="incident.resolved",
        id="inc_1",
        tenant_id="ten_1",
        kind="breaker_open",
        connection_id="con_1",
        status="resolved",
        revision=2,
        started_at=moment,
        updated_at=moment,
        resolved_at=moment,
        summary="the tave connection's circuit breaker is open <b>",
        details={"failures": 5},
    )
    return DeliveryTask(
        id="dlv_1",
        tenant_id="ten_1",
        connection_id="con_ops",
        vendor="resend",
        kind="incident",
        order_key="incident:inc_1",
        sequence=2,
        incident=msgspec.structs.replace(notice, **changes),
    )


def test_only_a_connection_with_an_operations_address_takes_incidents() -> None:
    with_address = ResendConfig(**SENDER, operations_address="oncall@example.com")
    assert plugin.journeyhub_takes_incidents(with_address) is True
    assert plugin.journeyhub_takes_incidents(ResendConfig(**SENDER)) is False
    assert plugin.journeyhub_takes_incidents(ResendConfig(operations_address="a@b.co")) is False
    with pytest.raises(ValueError, match="operations_address"):
        ResendConfig(**SENDER, operations_address="not an address")


def test_a_notice_is_a_plain_email_to_the_operations_address() -> None:
    config = ResendConfig(**SENDER, operations_address="oncall@example.com")
    email = compose(notice_task(), config, frozenset())
    assert isinstance(email, dict)
    assert email["to"] == ["oncall@example.com"] and email["from"] == SENDER["from_address"]
    assert email["subject"] == "[journeyhub] Resolved: breaker_open on con_1"
    assert "inc_1" in email["text"] and "failures: 5" in email["text"]
    assert "<b>" not in email["html"] and "&lt;b&gt;" in email["html"]
    skipped = compose(notice_task(), ResendConfig(**SENDER), frozenset())
    assert isinstance(skipped, PushResult) and skipped.status == "skipped"
