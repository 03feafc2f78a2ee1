"""The connector description, its schemas and default mappings, and our external ids."""

from __future__ import annotations

import msgspec
import pytest
from journeyhub.mapping import apply_mappings, validate_mappings
from journeyhub_tave.client import external_id
from journeyhub_tave.plugin import DEFAULT_FIELD_MAPPINGS, TaveConfig, TaveCredentials


def test_connector_info(registry):
    info = registry.connector("tave")
    assert info.display_name == "Tave (VSCO Workspace)"
    assert info.capabilities == {"push", "pull", "webhook"}
    assert info.auth_kind == "api_key"
    assert info.config_schema is TaveConfig and info.credentials_schema is TaveCredentials
    assert info.rate_limit is not None and info.rate_limit.requests == 5
    assert "journey_started" in info.push_event_types
    assert "payment.created" in info.webhook_event_types
    assert msgspec.convert({}, TaveConfig).api_base == "https://workspace.vsco.co/api/v2"


def test_default_mappings_are_valid_and_map_an_event(new_event):
    validate_mappings(DEFAULT_FIELD_MAPPINGS)
    mapped = apply_mappings(DEFAULT_FIELD_MAPPINGS, new_event(wedding={"date": "2026-06-20"}))
    assert mapped == {
        "contact": {
            "firstName": "Ada",
            "lastName": "Lovelace",
            "email": "ada@example.com",
            "cellPhone": {"formatted": "+1 555 0100"},
        },
        "job": {"eventDate": "2026-06-20", "name": "Ada Lovelace wedding"},
    }


@pytest.mark.parametrize(
    "config",
    [
        {"api_base": "ftp://x"},
        {"page_size": 5},
        {"page_size": 101},
        {"external_service": "A B"},
        {"timeout_seconds": 0},
        {"unknown": 1},
    ],
)
def test_bad_config_is_refused(config):
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(config, TaveConfig)


def test_credentials_schema():
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"api_key": " "}, TaveCredentials)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"api_key": "k", "webhook_token": "short"}, TaveCredentials)


def test_long_ids_fit_an_external_mapping_and_come_back():
    maps = TaveConfig()  # its external_service and external_link_base name our mappings
    long_id = "journey/" + "x" * 120
    mapping = maps.make("journey", long_id)
    assert len(mapping["id"]) <= 64 and mapping["id"] == external_id(long_id)
    assert 12 <= len(mapping["url"]) <= 255
    record = {"externalMappings": [mapping]}
    assert maps.has(record, long_id)
    assert maps.ours(record, "journey") == long_id
    assert maps.ours(record, "client") is None
    assert external_id("short") == "short"
