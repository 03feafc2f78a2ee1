"""Light Blue's answer codes and HTTP failures, classified for the push worker."""

from __future__ import annotations

import asyncio

import pytest
from journeyhub.errors import (
    AuthExpired,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.testing.sandbox import Fault


async def test_bad_parameters_minus_3_is_permanent_and_names_the_problem(
    sandbox, push, new_event, new_task, new_connection
):
    connection = new_connection(sandbox, shoot_type=None)
    task = new_task(new_event(), connection)
    task.mapped = {"FavouriteColour": "blue"}  # no parameter Light Blue knows
    with pytest.raises(PermanentError) as failed:
        await push(task, connection=connection)

    message = str(failed.value)
    assert "-3" in message and "bad parameters" in message and "field mappings" in message
    assert not failed.value.retryable
    assert sandbox.enquiries == []


async def test_https_required_minus_20_is_a_configuration_error(sandbox, push, new_event):
    sandbox.require_https = True
    with pytest.raises(PermanentError) as failed:
        await push(new_event())

    assert "configuration error: api_url must be https" in str(failed.value)
    assert "-20" in str(failed.value)
    assert not isinstance(failed.value, RetryableError)
    assert sandbox.enquiries == []


async def test_a_wrong_key_is_permanent_and_the_key_is_not_in_the_message(sandbox, push, new_event):
    wrong = "lb-wrong-key-9f8e7d6c5b4a"
    with pytest.raises(PermanentError) as failed:
        await push(new_event(), credentials={"api_key": wrong})

    assert not isinstance(failed.value, ReauthRequired | AuthExpired)
    assert "Invalid API key" in str(failed.value)
    assert wrong not in str(failed.value) and sandbox.api_key not in str(failed.value)
    assert sandbox.enquiries == []


async def test_a_500_is_retryable_and_the_retry_makes_one_enquiry(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=500))
    with pytest.raises(RetryableError) as failed:
        await push(new_event())
    assert failed.value.vendor_status == 500
    assert sandbox.enquiries == []

    assert (await push(new_event())).status == "delivered"
    assert len(sandbox.enquiries) == 1


async def test_a_429_is_rate_limited_with_retry_after(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=429, retry_after=7))
    with pytest.raises(RateLimited) as failed:
        await push(new_event())

    assert failed.value.retry_after == 7
    assert sandbox.enquiries == []


async def test_a_503_is_retryable(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=503))
    with pytest.raises(RetryableError):
        await push(new_event())


async def test_a_timeout_is_retryable(sandbox, push, new_event, new_connection):
    sandbox.faults.plan(Fault(delay=0.5))
    with pytest.raises(OutcomeUnknown, match="timed out") as failed:
        await push(new_event(), connection=new_connection(sandbox, timeout_seconds=0.1))
    assert isinstance(failed.value, RetryableError)
    assert sandbox.api_key not in str(failed.value)


async def test_a_lost_answer_then_the_retry_is_already_delivered(
    sandbox, push, new_event, new_connection
):
    # The slow answer is abandoned after Light Blue stored the enquiry: the retry gets -4.
    sandbox.faults.plan(Fault(delay=0.4, status=None))
    with pytest.raises(OutcomeUnknown):  # sent, no answer: Light Blue may have stored it
        await push(new_event(), connection=new_connection(sandbox, timeout_seconds=0.1))
    for _ in range(100):  # Light Blue finishes the abandoned request
        if sandbox.enquiries:
            break
        await asyncio.sleep(0.02)
    again = await push(new_event())

    assert again.status == "already_delivered"
    assert len(sandbox.enquiries) == 1


async def test_an_answer_without_a_status_code_is_retryable(sandbox, push, new_event):
    sandbox.faults.plan(Fault(status=200, body={"maintenance": True}))
    with pytest.raises(RetryableError, match="without a Light Blue status code"):
        await push(new_event())


async def test_a_refused_connection_is_retryable(push, new_event, new_connection, sandbox):
    from journeyhub.bus.embedded import free_port

    nowhere = new_connection(sandbox, api_url=f"http://127.0.0.1:{free_port()}/api.php")
    with pytest.raises(VendorUnreachable, match="could not connect") as failed:  # never sent
        await push(new_event(), connection=nowhere)
    assert isinstance(failed.value, RetryableError)
    assert sandbox.api_key not in str(failed.value)
