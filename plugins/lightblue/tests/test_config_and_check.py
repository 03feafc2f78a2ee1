"""The connector's description, config validation and the connection check."""

from __future__ import annotations

import msgspec
import pytest
from journeyhub.errors import PermanentError
from journeyhub.mapping import validate_mappings
from journeyhub_lightblue.config import LightBlueConfig, LightBlueCredentials


def test_the_connector_describes_a_push_only_form_key_vendor(registry):
    info = registry.connector("lightblue")

    assert info.display_name == "Light Blue"
    assert info.capabilities == frozenset({"push"})
    assert info.auth_kind == "form_key"
    assert set(info.push_event_types) == {"journey_started", "client_updated"}
    assert info.webhook_event_types == ()
    assert info.rate_limit is not None and info.rate_limit.requests <= 1
    validate_mappings(info.default_field_mappings)  # the kernel would accept them
    defaults = {m.target: m for m in info.default_field_mappings}
    assert defaults["ShootDate"].transform == "date:%d/%m/%Y"
    assert defaults["ContactNameFirst"].transform == "first_name"


def test_defaults_point_at_the_real_api():
    config = msgspec.convert({}, LightBlueConfig)

    assert config.api_url == "https://online.lightbluesoftware.com/api.php"
    assert (config.source, config.shoot_type) == ("journeyhub", "Wedding")


@pytest.mark.parametrize(
    "config, problem",
    [
        ({"api_url": "http://online.lightbluesoftware.com/api.php"}, "api_url must be https"),
        ({"api_url": "ftp://online.lightbluesoftware.com/api.php"}, "api_url must be an https"),
        ({"api_url": "online.lightbluesoftware.com/api.php"}, "api_url must be an https"),
        ({"source": " "}, "source must not be empty"),
        ({"source": "a\nb"}, "source must be one line"),
        ({"shoot_type": ""}, "shoot_type must not be empty"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 120}, "timeout_seconds"),
        ({"api_key": "x"}, "unknown field `api_key`"),
    ],
)
def test_bad_config_is_refused_naming_the_field(config, problem):
    with pytest.raises(msgspec.ValidationError, match=problem):
        msgspec.convert(config, LightBlueConfig)


def test_http_is_accepted_for_a_local_sandbox_only():
    local = msgspec.convert({"api_url": "http://127.0.0.1:8765/api.php"}, LightBlueConfig)
    assert local.api_url.startswith("http://127.0.0.1")


@pytest.mark.parametrize("key", ["", "  ", "two words"])
def test_bad_credentials_are_refused(key):
    with pytest.raises(msgspec.ValidationError, match="api_key"):
        msgspec.convert({"api_key": key}, LightBlueCredentials)


async def test_a_stored_config_that_no_longer_validates_fails_permanently(
    push, new_event, new_connection, sandbox
):
    with pytest.raises(PermanentError, match="invalid lightblue connection config"):
        await push(new_event(), connection=new_connection(sandbox, timeout_seconds=-1))
    assert sandbox.requests == []


async def test_missing_credentials_fail_permanently(push, new_event, sandbox):
    # The kernel decodes the credentials into LightBlueCredentials before the hook runs.
    with pytest.raises(PermanentError, match=r"invalid lightblue connection credentials.*api_key"):
        await push(new_event(), credentials={})


async def test_check_connection_confirms_the_key_without_sending_an_enquiry(check, sandbox):
    said = await check()

    assert "Light Blue answered 0" in said and "key is valid" in said
    assert [c.path for c in sandbox.requests] == ["/apiCheck.php"]
    assert sandbox.enquiries == []


async def test_check_connection_with_a_wrong_key_raises_without_the_key(check, sandbox):
    wrong = "lb-not-the-key-123456"
    with pytest.raises(PermanentError) as failed:
        await check(credentials={"api_key": wrong})

    assert "refused" in str(failed.value)
    assert wrong not in str(failed.value)
    assert sandbox.enquiries == []


async def test_check_connection_over_http_when_https_is_required(check, sandbox):
    sandbox.require_https = True
    with pytest.raises(PermanentError, match="configuration error: api_url must be https"):
        await check()
