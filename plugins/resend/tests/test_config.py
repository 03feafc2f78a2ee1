"""The connector's description, schemas and default mappings, as the kernel sees them."""

from __future__ import annotations

import msgspec
import pytest
from journeyhub.mapping import apply_mappings, validate_mappings
from journeyhub.plugins import get_plugin_manager
from journeyhub.signing import new_secret
from journeyhub_resend import plugin
from journeyhub_resend.config import ResendConfig, ResendCredentials


def test_the_plugin_loads_through_its_entry_point():
    registry = get_plugin_manager(only=("resend",))
    assert registry.errors == []
    info = registry.connector("resend")
    assert info.display_name == "Resend" and info.capabilities == {"push", "webhook", "operations"}
    assert (info.rate_limit.requests, info.rate_limit.per_seconds, info.max_batch) == (2, 1, 100)
    assert "email.bounced" in info.webhook_event_types
    assert registry.implements("resend", "journeyhub_push_batch")


def test_default_mappings_are_valid_and_useful(make):
    info = plugin.journeyhub_connector()
    validate_mappings(info.default_field_mappings)
    mapped = apply_mappings(info.default_field_mappings, make.event())
    assert mapped == {
        "to": "anna@client.test",
        "client_name": "Anna Smith",
        "first_name": "Anna",
        "couple": "Anna & Ben",
        "wedding_date": "06 June 2026",
        "venue": "Chateau de Vaux",
    }


def test_a_template_that_does_not_compile_is_refused_naming_it(make):
    raw = make.config("https://api.resend.com")
    raw["templates"]["broken"] = {"subject": "Hi", "html": "<p>{% if client.name %}</p>"}
    with pytest.raises(msgspec.ValidationError, match=r"templates\.broken\.html does not compile"):
        msgspec.convert(raw, ResendConfig)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"from_address": "not an address"}, "from_address"),
        ({"reply_to": "nobody"}, "reply_to"),
        ({"api_base": "ftp://x"}, "api_base"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_config_is_refused(make, change, message):
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({**make.config("https://api.resend.com"), **change}, ResendConfig)


def test_defaults_point_at_resend():
    config = msgspec.convert({"from_address": "hello@example.com"}, ResendConfig)
    assert config.api_base == "https://api.resend.com"
    assert config.tolerance_seconds == 300 and config.templates == {}
    assert msgspec.convert({"from_address": "Studio <a@b.co>"}, ResendConfig).from_address


def test_credentials_are_checked_without_echoing_them():
    good = msgspec.convert(
        {
            "api_key": "re_123456789",
            "webhook_secret": new_secret(),
            "previous_webhook_secrets": [new_secret()],
        },
        ResendCredentials,
    )
    assert len(good.webhook_secrets) == 2
    for bad in (
        {"api_key": "sk_live_secretvalue"},
        {"api_key": "re_123456789", "webhook_secret": "whsec_!!"},
    ):
        with pytest.raises(msgspec.ValidationError) as caught:
            msgspec.convert(bad, ResendCredentials)
        assert "secretvalue" not in str(caught.value) and "whsec_!!" not in str(caught.value)


def test_an_inbound_only_connection_needs_only_the_webhook_secret():
    assert msgspec.convert({}, ResendConfig).from_address is None
    creds = msgspec.convert({"webhook_secret": new_secret()}, ResendCredentials)
    assert creds.api_key is None and len(creds.webhook_secrets) == 1
    with pytest.raises(msgspec.ValidationError, match=r"api_key .*webhook_secret"):
        msgspec.convert({}, ResendCredentials)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"branding": {"accent_color": "red; background: url(x)"}}, "accent_color"),
        ({"branding": {"logo_url": "javascript:alert(1)"}}, "logo_url"),
        ({"language": "xx-YY"}, "language"),
        ({"unsubscribe_url": "http://studio.example.com/u"}, "https"),
        (
            {
                "templates": {
                    "w": {
                        "subject": "s",
                        "html": "h",
                        "translations": {"zz": {"subject": "s", "html": "h"}},
                    }
                }
            },
            "translations",
        ),
        (
            {
                "templates": {
                    "w": {
                        "subject": "s",
                        "html": "h",
                        "translations": {"fr": {"subject": "{{", "html": "h"}},
                    }
                }
            },
            r"templates\.w\.translations\.fr\.subject",
        ),
    ],
)
def test_branding_languages_and_unsubscribe_are_checked(make, change, message):
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert({**make.config("https://api.resend.com"), **change}, ResendConfig)
