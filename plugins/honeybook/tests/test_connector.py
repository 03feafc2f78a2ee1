"""The connector description, its schemas and default mappings, and amount parsing."""

from __future__ import annotations

import msgspec
import pytest
from journeyhub.connectors.zapier import ZapierCredentials
from journeyhub.mapping import validate_mappings
from journeyhub_honeybook.plugin import DEFAULT_FIELD_MAPPINGS, HoneyBookConfig
from journeyhub_honeybook.sandbox import SECRET
from journeyhub_honeybook.values import minor_units


def test_connector_info(registry):
    info = registry.connector("honeybook")
    assert info.display_name == "HoneyBook (via Zapier)"
    assert info.capabilities == {"push", "webhook"} and info.auth_kind == "shared_secret"
    assert info.config_schema is HoneyBookConfig and info.credentials_schema is ZapierCredentials
    assert info.push_event_types == ("journey_started",)
    assert info.webhook_event_types == ("client_created", "project_booked", "payment_paid")
    validate_mappings(DEFAULT_FIELD_MAPPINGS)
    assert msgspec.convert({"secret": SECRET}, ZapierCredentials).secret == SECRET


@pytest.mark.parametrize(
    "config",
    [
        {"catch_hook_urls": {"update_client": "https://hooks.zapier.com/hooks/catch/1/a/"}},
        {"catch_hook_urls": {"create_client": "hooks.zapier.com/x"}},
        {"currency": "usd"},
        {"timeout_seconds": 100},
        {"api_base": "https://x"},
    ],
)
def test_bad_config_is_refused(config):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(config, HoneyBookConfig)


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("$1,500.00", "USD", 150000),
        ("1500", "USD", 150000),
        ("12.345", "USD", 1235),
        ("(25.50)", "USD", -2550),
        ("-25.5", "USD", -2550),
        ("USD 1,000", "USD", 100000),
        ("A$300.10", "AUD", 30010),
        ("¥5,000", "JPY", 5000),
        ("1,500.00 CAD", "CAD", 150000),
        (1500, "USD", 150000),
        (12.5, "USD", 1250),
    ],
)
def test_minor_units(text, currency, minor):
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize("text", ["", "lots", "1e5", "1.500,00", "(5", "1,50", "$", None, True])
def test_not_amounts(text):
    with pytest.raises(ValueError):
        minor_units(text, "USD")
