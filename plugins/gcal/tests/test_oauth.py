"""OAuth2: refresh when needed (and only then), rotation, revocation, token endpoint errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from journeyhub.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentError,
    ReauthRequired,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.testing.sandbox import Fault
from journeyhub_gcal import refresh_access_token
from journeyhub_gcal.config import GcalConfig
from journeyhub_gcal.sandbox import CLIENT_SECRET, REFRESH_TOKEN


async def authenticate(registry, connection, credentials, http) -> Any:
    return await registry.call(
        "gcal",
        "journeyhub_authenticate",
        connection=connection,
        credentials=credentials,
        http=http,
        refused=False,
    )


async def test_refreshes_when_there_is_no_access_token(
    registry, connection, credentials, http, sandbox
):
    before = time.time()
    fresh = await authenticate(registry, connection, credentials, http)
    assert sandbox.token_calls == 1
    assert fresh["access_token"] in sandbox.access_tokens
    assert before + 3500 < fresh["expires_at"] < time.time() + 3600
    # Everything else is kept, the refresh token included (Google sent none back).
    assert fresh["refresh_token"] == REFRESH_TOKEN
    assert fresh["channel_token"] == credentials["channel_token"]


async def test_refreshes_an_expired_token_and_one_expiring_within_two_minutes(
    registry, connection, credentials, http, sandbox
):
    expired = {**credentials, "access_token": "ya29.old", "expires_at": time.time() - 5}
    assert (await authenticate(registry, connection, expired, http))["access_token"] != "ya29.old"
    soon = {**credentials, "access_token": "ya29.old", "expires_at": time.time() + 100}
    assert (await authenticate(registry, connection, soon, http))["access_token"] != "ya29.old"
    assert sandbox.token_calls == 2


async def test_a_fresh_token_is_left_alone(registry, connection, credentials, http, sandbox):
    fresh = {**credentials, "access_token": "ya29.good", "expires_at": time.time() + 1800}
    assert await authenticate(registry, connection, fresh, http) is None
    assert sandbox.token_calls == 0


async def test_a_rotated_refresh_token_is_kept(registry, connection, credentials, http, sandbox):
    sandbox.rotate_refresh_tokens = True
    fresh = await authenticate(registry, connection, credentials, http)
    assert fresh["refresh_token"] != REFRESH_TOKEN
    assert fresh["refresh_token"] in sandbox.refresh_tokens
    # The new refresh token works for the next refresh.
    sandbox.rotate_refresh_tokens = False
    sandbox.revoke_refresh_token(REFRESH_TOKEN)
    again = await authenticate(registry, connection, {**fresh, "expires_at": 0}, http)
    assert again["refresh_token"] == fresh["refresh_token"]
    assert again["access_token"] != fresh["access_token"]


async def test_a_revoked_refresh_token_needs_a_person(
    registry, connection, credentials, http, sandbox
):
    sandbox.revoke_refresh_token()
    with pytest.raises(ReauthRequired) as caught:
        await authenticate(registry, connection, credentials, http)
    assert sandbox.token_calls == 1  # not retried: retrying cannot help
    assert "invalid_grant" in str(caught.value)
    assert "reconnect" in str(caught.value)
    for secret in (REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in str(caught.value)


async def test_a_wrong_client_secret_needs_a_person(registry, connection, credentials, http):
    with pytest.raises(ReauthRequired) as caught:
        await authenticate(registry, connection, {**credentials, "client_secret": "nope"}, http)
    assert caught.value.vendor_status == 401
    assert "invalid_client" in str(caught.value)
    assert "nope" not in str(caught.value)


async def test_token_endpoint_outages_are_retried(registry, connection, credentials, http, sandbox):
    sandbox.faults.plan(Fault(status=503))
    with pytest.raises(RetryableError) as caught:
        await authenticate(registry, connection, credentials, http)
    assert not isinstance(caught.value, PermanentError)
    # Nothing listens there: the kernel's VendorUnreachable (retryable), as it is.
    unreachable = GcalConfig(token_url="http://127.0.0.1:9/token", timeout_seconds=1)
    with pytest.raises(VendorUnreachable) as caught:
        await refresh_access_token(http, unreachable, credentials)
    for secret in (REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in str(caught.value)


async def test_a_token_endpoint_that_does_not_answer_in_time_is_an_unknown_outcome(
    credentials, http, sandbox
):
    sandbox.faults.plan(Fault(delay=0.8))
    slow = GcalConfig(token_url=sandbox.token_url, timeout_seconds=0.3)
    with pytest.raises(OutcomeUnknown, match="timed out") as caught:
        await refresh_access_token(http, slow, credentials)
    assert isinstance(caught.value, RetryableError)
    for secret in (REFRESH_TOKEN, CLIENT_SECRET):
        assert secret not in str(caught.value)
    await asyncio.sleep(0.6)  # the abandoned call is over at the sandbox before its reset


async def test_a_token_google_refused_is_refreshed_even_before_its_expiry(
    registry, connection, fresh, http, sandbox, push, new_event
):
    # Google refuses an access token early (revoked, clock skew): the push says AuthExpired,
    # and the kernel's next authenticate refreshes although expires_at is an hour away.
    sandbox.expire_access_tokens()
    with pytest.raises(AuthExpired):
        await push(new_event())
    assert fresh["expires_at"] > time.time() + 3000
    renewed = await authenticate(registry, connection, fresh, http)
    assert renewed is not None and renewed["access_token"] != fresh["access_token"]
    result = await push(new_event(), credentials=renewed)
    assert result.status == "delivered"


async def test_the_sandbox_token_ttl_is_what_the_expiry_says(
    registry, connection, credentials, http, sandbox, push, new_event
):
    sandbox.access_token_ttl = 600
    fresh = await authenticate(registry, connection, credentials, http)
    assert fresh["expires_at"] < time.time() + 601
    sandbox.advance(601)  # the token is now past its life at Google
    with pytest.raises(AuthExpired) as caught:
        await push(new_event(), credentials=fresh)
    assert caught.value.vendor_status == 401
    assert fresh["access_token"] not in str(caught.value)
