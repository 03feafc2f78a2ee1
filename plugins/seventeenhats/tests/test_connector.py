"""The connector description, its schemas and default mappings."""

from __future__ import annotations

import msgspec
import pytest
from journeyhub.connectors.zapier import ZapierCredentials
from journeyhub.mapping import apply_mappings, validate_mappings
from journeyhub_seventeenhats.plugin import DEFAULT_FIELD_MAPPINGS, SeventeenHatsConfig
from journeyhub_seventeenhats.sandbox import SECRET


def test_connector_info(registry):
    info = registry.connector("seventeenhats")
    assert info.display_name == "17hats (via Zapier)"
    assert info.capabilities == {"push", "webhook"} and info.auth_kind == "shared_secret"
    assert info.config_schema is SeventeenHatsConfig
    assert info.credentials_schema is ZapierCredentials
    assert info.push_event_types == ("journey_started", "client_updated")
    assert info.webhook_event_types == ("new_contact", "updated_contact")
    assert msgspec.convert({"secret": SECRET}, ZapierCredentials).secret == SECRET


def test_default_mappings(new_event):
    validate_mappings(DEFAULT_FIELD_MAPPINGS)
    mapped = apply_mappings(
        DEFAULT_FIELD_MAPPINGS, new_event(wedding=None, data={"contact_type": "Lead"})
    )
    assert mapped == {
        "contact": {
            "first_name": "Ada",
            "last_name": "Lovelace",
            "primary_email": "ada@example.com",
            "primary_phone": "+1 555 0100",
            "type": "Lead",
        }
    }


@pytest.mark.parametrize(
    "config",
    [
        {"catch_hook_urls": {"create_contact": "https://hooks.zapier.com/hooks/catch/1/a/"}},
        {"catch_hook_urls": {"upsert_contact": "nope"}},
        {"currency": "USD"},
    ],
)
def test_bad_config_is_refused(config):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(config, SeventeenHatsConfig)
