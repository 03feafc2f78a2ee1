"""OAuth is journeyhub_gcal's (delegated, not copied); the connection check asks Google for the
calendar and loads the enquiry form; the config schema says what is wrong."""

from __future__ import annotations

import time

import msgspec
import pytest
from journeyhub.configs import config_as
from journeyhub.errors import PermanentError, ReauthRequired, RetryableError
from journeyhub.testing.sandbox import Fault
from journeyhub_gcal import GcalCredentials
from journeyhub_studioninja.config import StudioNinjaConfig


async def test_authenticate_refreshes_through_google_only_when_needed(hook, sandbox):
    fresh = await hook("journeyhub_authenticate", refused=False)
    assert sandbox.google.token_calls == 1
    assert fresh["access_token"].startswith("ya29.") and fresh["expires_at"] > time.time() + 3000
    assert fresh["refresh_token"] == sandbox.credentials()["refresh_token"]
    # Still good: nothing to do. Refused by Google (a 401): refreshed whatever its expiry.
    assert await hook("journeyhub_authenticate", credentials=fresh, refused=False) is None
    again = await hook("journeyhub_authenticate", credentials=fresh, refused=True)
    assert sandbox.google.token_calls == 2 and again["access_token"] != fresh["access_token"]


async def test_a_revoked_grant_needs_a_person(hook, sandbox, credentials):
    sandbox.google.revoke_refresh_token()
    with pytest.raises(ReauthRequired) as refused:
        await hook("journeyhub_authenticate", refused=False)
    assert credentials["client_secret"] not in str(refused.value)
    assert credentials["refresh_token"] not in str(refused.value)


async def test_the_check_reads_the_calendar_and_the_form(hook, sandbox, new_connection):
    said = await hook("journeyhub_check_connection")
    assert said == (
        "Google Calendar answered 200: calendar 'Sandbox Studio'; the enquiry form answered 200"
    )
    assert sandbox.forms.requests["GET 200"] == 1
    assert sandbox.submissions == []  # a check sends no enquiry
    no_form = new_connection(sandbox.config(enquiry_form_url=None))
    assert (await hook("journeyhub_check_connection", connection=no_form)).endswith(
        "no enquiry form configured (no push)"
    )
    gone = new_connection(
        sandbox.config(enquiry_form_url=sandbox.forms.url + "/contactform/parser/a/b")
    )
    with pytest.raises(PermanentError, match="no such form"):
        await hook("journeyhub_check_connection", connection=gone)
    unknown = new_connection(sandbox.config(calendar_id="nobody@example.com"))
    with pytest.raises(PermanentError) as missing:
        await hook("journeyhub_check_connection", connection=unknown)
    assert missing.value.vendor_status == 404
    sandbox.faults.plan(Fault(status=502))  # the form's server
    with pytest.raises(RetryableError, match="502"):
        await hook("journeyhub_check_connection")


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({}, "calendar_id"),
        ({"calendar_id": " "}, "calendar_id must not be empty"),
        ({"calendar_id": "c", "enquiry_form_url": "http://example.com/f"}, "must be https"),
        ({"calendar_id": "c", "title_patterns": {"SHOT": "x"}}, "unknown label"),
        ({"calendar_id": "c", "title_patterns": {"SHOOT": "("}}, "does not compile"),
        ({"calendar_id": "c", "job_id_pattern": r"job \d+"}, "needs a group"),
        ({"calendar_id": "c", "page_size": 0}, "page_size"),
        ({"calendar_id": "c", "bogus": 1}, "bogus"),
    ],
)
def test_the_config_schema_names_what_is_wrong(config, problem):
    with pytest.raises(msgspec.ValidationError, match=problem):
        msgspec.convert(config, StudioNinjaConfig)


def test_the_config_builds_gcal_settings_and_reuses_gcal_credentials(new_connection, sandbox):
    connection = new_connection(sandbox.config(page_size=7, time_zone="Europe/London"))
    config = config_as(connection, StudioNinjaConfig)
    gcal = config.gcal()
    assert (gcal.calendar_id, gcal.page_size, gcal.time_zone) == (
        sandbox.calendar_id,
        7,
        "Europe/London",
    )
    assert gcal.api_base == sandbox.google.api_base
    msgspec.convert(sandbox.credentials(), GcalCredentials)  # the same credentials schema
