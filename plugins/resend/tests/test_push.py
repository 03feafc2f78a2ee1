"""Outbound: templates rendered and sent through the sandbox over HTTP, batches, errors."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import pytest
from journeyhub.errors import (
    ConnectorError,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    ReauthRequired,
    RetryableError,
    VendorUnreachable,
)
from journeyhub.model import Connection, FieldMapping, Known, PushResult, Step
from journeyhub.plugins import get_plugin_manager
from journeyhub.testing.sandbox import Fault
from journeyhub_resend.sandbox import ResendSandbox

REGISTRY = get_plugin_manager(only=("resend",))  # hooks called as the workers call them


async def hook(name: str, **kwargs: Any) -> Any:
    return await REGISTRY.call("resend", f"journeyhub_{name}", **kwargs)


async def push(task, connection, credentials, http, suppressed=frozenset(), key=None) -> PushResult:
    return await hook(
        "push",
        task=task,
        connection=connection,
        credentials=credentials,
        idempotency_key=key or task.id,
        http=http,
        suppressed=suppressed,
        known=Known(),
    )


async def push_batch(tasks, connection, credentials, http, key, suppressed=frozenset()):
    return await hook(
        "push_batch",
        tasks=tasks,
        connection=connection,
        credentials=credentials,
        idempotency_key=key,
        http=http,
        suppressed=suppressed,
    )


def _with_config(connection: Connection, **changes: Any) -> Connection:
    fields = {f: getattr(connection, f) for f in connection.__struct_fields__}
    return Connection(**{**fields, **changes})


async def test_push_renders_the_template_with_couple_date_venue_and_branding(
    sandbox, connection, credentials, http, task_for
):
    result = await push(task_for(), connection, credentials, http)
    assert result.status == "delivered" and result.vendor_status == 200
    stored = sandbox.email(result.external_ids["email_id"])
    html = stored["html"]
    assert "Anna &amp; Ben: we cannot wait for Saturday, June 6, 2026 at Chateau de Vaux" in html
    assert "(77950 Maincy, France), 120 guests" in html
    assert "Dear Anna," in html
    assert 'src="https://cdn.example.com/lumiere.png"' in html
    assert "#b08d57" in html and "Claire, Lumiere Photography" in html
    assert stored["subject"] == "Welcome, Anna & Ben!"  # the subject is not HTML: no escaping
    assert stored["text"] == "Dear Anna, see you on 06/06/2026."
    assert stored["to"] == ["anna@client.test"]
    assert stored["from"] == "Lumiere Photography <hello@example.com>"
    assert stored["reply_to"] == ["studio@example.com"]
    assert {"name": "client_id", "value": "cli_1"} in stored["tags"]
    assert {"name": "jh_task", "value": "dt_1"} in stored["tags"]


async def test_html_is_autoescaped(sandbox, connection, credentials, http, task_for):
    task = task_for(name="<script>alert(1)</script> Smith", data={"template": "welcome"})
    result = await push(task, connection, credentials, http)
    html = sandbox.email(result.external_ids["email_id"])["html"]
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_a_connection_mapping_overrides_a_default(
    sandbox, connection, credentials, http, make
):
    custom = _with_config(
        connection,
        field_mappings=[FieldMapping(source="data.planner_email", target="to")],
    )
    event = make.event(data={"template": "welcome", "planner_email": "planner@agency.test"})
    result = await push(make.task(event, custom), custom, credentials, http)
    assert sandbox.email(result.external_ids["email_id"])["to"] == ["planner@agency.test"]


async def test_an_email_step_uses_the_step_template(
    sandbox, connection, credentials, http, task_for
):
    step = Step(name="Timeline reminder", type="email", data={"template": "reminder"})
    task = task_for(type="step_completed", step=step, data={"note": "Send us your timeline"})
    result = await push(task, connection, credentials, http)
    stored = sandbox.email(result.external_ids["email_id"])
    assert stored["subject"] == "Timeline reminder for Anna"
    assert stored["html"] == "<p>Send us your timeline</p>"


async def test_inline_subject_and_html_override(sandbox, connection, credentials, http, task_for):
    task = task_for(
        data={"subject": "Hello {{ client.first_name }}", "html": "<b>{{ couple }}</b>"}
    )
    result = await push(task, connection, credentials, http)
    stored = sandbox.email(result.external_ids["email_id"])
    assert (stored["subject"], stored["html"]) == ("Hello Anna", "<b>Anna Smith</b>")


@pytest.mark.parametrize(
    ("event_args", "why"),
    [
        ({"type": "journey_started"}, "journey_started events send no email"),
        ({"type": "step_completed", "step": Step(name="Call", type="task")}, "not an email step"),
    ],
)
async def test_other_events_are_skipped(
    sandbox, connection, credentials, http, task_for, event_args, why
):
    result = await push(task_for(**event_args), connection, credentials, http)
    assert result.status == "skipped" and why in (result.detail or "")
    assert sandbox.requests == 0


async def test_the_same_idempotency_key_twice_sends_one_email(
    sandbox, connection, credentials, http, task_for
):
    task = task_for()
    first = await push(task, connection, credentials, http)
    second = await push(task, connection, credentials, http)
    assert first.external_ids == second.external_ids
    assert (sandbox.requests, sandbox.accepted, sandbox.duplicates) == (2, 1, 0)
    assert len(sandbox.emails) == 1


async def test_the_same_key_with_another_body_is_permanent_and_explained(
    sandbox, connection, credentials, http, task_for
):
    await push(task_for(), connection, credentials, http, key="k1")
    changed = task_for(data={"template": "welcome", "couple": "Anna & Carl"})
    with pytest.raises(PermanentError) as caught:  # a retry would meet the same 409
        await push(changed, connection, credentials, http, key="k1")
    assert caught.value.vendor_status == 409
    assert "invalid_idempotent_request" in caught.value.message
    assert "The first version was sent and this one was not" in caught.value.message
    assert len(sandbox.emails) == 1


async def test_a_concurrent_request_with_the_same_key_is_retried_later(
    sandbox, connection, credentials, http, task_for
):
    sandbox.faults.plan(Fault(delay=0.5))  # the first attempt is still under way at Resend
    task = task_for()
    first, second = await asyncio.gather(
        push(task, connection, credentials, http),
        push(task, connection, credentials, http),
        return_exceptions=True,
    )
    refused = second if isinstance(second, Exception) else first
    assert isinstance(refused, RetryableError) and refused.vendor_status == 409
    assert "concurrent_idempotent_requests" in refused.message
    retried = await push(task, connection, credentials, http)
    assert retried.status == "delivered" and sandbox.accepted == 1


async def test_a_suppressed_recipient_is_not_mailed(
    sandbox, connection, credentials, http, task_for
):
    result = await push(
        task_for(), connection, credentials, http, suppressed=frozenset({"anna@client.test"})
    )
    assert result.status == "skipped"
    assert result.detail is not None and result.detail.startswith("suppressed:")
    assert sandbox.requests == 0 and sandbox.emails == []


async def test_suppression_ignores_case(sandbox, connection, credentials, http, task_for):
    result = await push(
        task_for(email="Anna@Client.TEST"),
        connection,
        credentials,
        http,
        suppressed=frozenset({"anna@client.test"}),
    )
    assert result.status == "skipped" and sandbox.emails == []


async def test_a_batch_of_150_split_by_the_caller_is_delivered_once(
    sandbox, connection, credentials, http, task_for
):
    sandbox.rate_limit = 2  # both calls fit in Resend's default limit
    tasks = [
        task_for(task_id=f"dt_{i}", client_id=f"cli_{i}", email=f"c{i}@client.test")
        for i in range(150)
    ]
    results = []
    for start in (0, 100):
        chunk = tasks[start : start + 100]
        results += await push_batch(chunk, connection, credentials, http, key=f"batch_{start}")
    assert len(results) == 150
    assert [c for c in sandbox.calls] == [("POST", "/emails/batch", 200)] * 2
    assert sandbox.accepted == 150 and sandbox.duplicates == 0
    ids = [r.external_ids["email_id"] for r in results]
    assert len(set(ids)) == 150
    # results are in task order: the 42nd email went to the 42nd task's client
    assert sandbox.email(ids[42])["to"] == ["c42@client.test"]


async def test_a_replayed_batch_sends_nothing_new(sandbox, connection, credentials, http, task_for):
    tasks = [task_for(task_id=f"dt_{i}", email=f"c{i}@client.test") for i in range(3)]
    first = await push_batch(tasks, connection, credentials, http, key="b1")
    again = await push_batch(tasks, connection, credentials, http, key="b1")
    assert [r.external_ids for r in first] == [r.external_ids for r in again]
    assert sandbox.accepted == 3 and sandbox.duplicates == 0


async def test_a_batch_keeps_skipped_and_failed_tasks_in_place(
    sandbox, connection, credentials, http, task_for
):
    tasks = [
        task_for(task_id="dt_a", email="a@client.test"),
        task_for(task_id="dt_b", email="gone@client.test"),
        task_for(task_id="dt_c", email="c@client.test", data={"template": "nope"}),
        task_for(task_id="dt_d", type="client_updated"),
        task_for(task_id="dt_e", email="e@client.test"),
    ]
    results = await push_batch(
        tasks, connection, credentials, http, key="b2", suppressed=frozenset({"gone@client.test"})
    )
    assert len(results) == 5
    assert results[0].status == "delivered" and results[4].status == "delivered"
    assert results[1].status == "skipped" and results[1].detail.startswith("suppressed:")
    assert isinstance(results[2], PermanentError) and "'nope'" in str(results[2])
    assert results[3].status == "skipped"
    assert sorted(e["to"][0] for e in sandbox.emails) == ["a@client.test", "e@client.test"]
    assert sandbox.email(results[4].external_ids["email_id"])["to"] == ["e@client.test"]


async def test_a_batch_email_resend_rejects_fails_alone(
    sandbox, connection, credentials, http, task_for, make
):
    # An unverified sender domain is only known to Resend: the permissive batch reports it
    # per email.
    other = _with_config(
        connection, config=make.config(sandbox.url, from_address="x@unverified.test")
    )
    tasks = [task_for(task_id="dt_1"), task_for(task_id="dt_2")]
    results = await push_batch(tasks, other, credentials, http, key="b3")
    assert all(isinstance(r, PermanentError) and "not verified" in str(r) for r in results)
    assert sandbox.emails == []


async def test_429_is_rate_limited_with_retry_after(
    sandbox, connection, credentials, http, task_for
):
    sandbox.rate_limit = 2
    await push(task_for(task_id="dt_1"), connection, credentials, http)
    await push(task_for(task_id="dt_2"), connection, credentials, http)
    with pytest.raises(RateLimited) as caught:
        await push(task_for(task_id="dt_3"), connection, credentials, http)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 1
    assert "rate_limit_exceeded" in caught.value.message
    sandbox.faults.plan(Fault(status=429, retry_after=7))
    sandbox.rate_limit = 1000
    with pytest.raises(RateLimited) as caught:
        await push(task_for(task_id="dt_4"), connection, credentials, http)
    assert caught.value.retry_after == 7


async def test_500_is_retryable_and_a_retry_then_succeeds(
    sandbox, connection, credentials, http, task_for
):
    sandbox.faults.plan(Fault(status=500))
    task = task_for()
    with pytest.raises(RetryableError) as caught:
        await push(task, connection, credentials, http)
    assert caught.value.vendor_status == 500 and not isinstance(caught.value, RateLimited)
    result = await push(task, connection, credentials, http)
    assert result.status == "delivered" and sandbox.accepted == 1


async def test_a_timeout_is_retryable(sandbox, connection, credentials, http, task_for, make):
    slow = _with_config(connection, config=make.config(sandbox.url, timeout_seconds=0.2))
    sandbox.faults.plan(Fault(delay=0.6))
    task = task_for()
    with pytest.raises(OutcomeUnknown) as caught:  # sent, no answer: Resend may have sent it
        await push(task, slow, credentials, http)
    assert isinstance(caught.value, RetryableError)
    assert "timed out" in caught.value.message
    assert credentials["api_key"] not in caught.value.message
    for _ in range(100):  # Resend finishes the abandoned request
        if sandbox.accepted:
            break
        await asyncio.sleep(0.02)
    retried = await push(task, connection, credentials, http)  # the same Idempotency-Key
    assert retried.status == "delivered" and sandbox.accepted == 1 and sandbox.duplicates == 0


async def test_an_unreachable_api_is_retryable(connection, credentials, http, task_for, make):
    from journeyhub.bus.embedded import free_port

    nowhere = _with_config(connection, config=make.config(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(VendorUnreachable) as caught:  # never sent: a retry is safe
        await push(task_for(), nowhere, credentials, http)
    assert isinstance(caught.value, RetryableError)


async def test_an_unknown_template_is_permanent_and_named(
    sandbox, connection, credentials, http, task_for
):
    with pytest.raises(PermanentError) as caught:
        await push(task_for(data={"template": "thank_you"}), connection, credentials, http)
    assert "'thank_you'" in caught.value.message and "welcome" in caught.value.message
    assert sandbox.requests == 0


async def test_a_template_typo_is_permanent(sandbox, connection, credentials, http, task_for):
    with pytest.raises(PermanentError) as caught:
        await push(task_for(data={"template": "typo"}), connection, credentials, http)
    assert "template 'typo' html" in caught.value.message and "frist_name" in caught.value.message


async def test_no_recipient_is_permanent(sandbox, connection, credentials, http, task_for):
    with pytest.raises(PermanentError, match="no recipient"):
        await push(task_for(email=None), connection, credentials, http)


async def test_an_invalid_key_needs_reauth(sandbox, connection, http, task_for):
    with pytest.raises(ReauthRequired) as caught:
        await push(task_for(), connection, {"api_key": "re_wrong_key_1"}, http)
    assert caught.value.vendor_status == 403


@pytest.mark.parametrize("endpoint", ["push", "check_connection"])
async def test_a_revoked_key_needs_reauth_whatever_resend_calls_it(
    sandbox, connection, credentials, http, task_for, endpoint
):
    # Resend's current reference: a deleted key is a ``validation_error`` "API key is invalid",
    # 401 on the sending endpoints and 400 on the others.
    sandbox.revoked.add(credentials["api_key"])
    with pytest.raises(ReauthRequired) as caught:
        if endpoint == "push":
            await push(task_for(), connection, credentials, http)
        else:
            await hook(
                "check_connection", connection=connection, credentials=credentials, http=http
            )
    assert caught.value.vendor_status == (401 if endpoint == "push" else 400)
    assert credentials["api_key"] not in caught.value.message


async def test_an_inbound_only_connection_sends_nothing_and_says_so(
    sandbox, connection, http, task_for, secret
):
    inbound = _with_config(connection, config={"api_base": sandbox.url})
    creds = {"webhook_secret": secret}
    said = await hook("check_connection", connection=inbound, credentials=creds, http=http)
    assert "sends nothing" in said
    with pytest.raises(ReauthRequired, match="no api_key"):
        await push(task_for(), inbound, creds, http)
    assert sandbox.requests == 0


async def test_no_api_key_in_any_error_message(sandbox, connection, credentials, http, task_for):
    key = credentials["api_key"]
    errors: list[ConnectorError] = []
    faults = [
        Fault(status=500),
        Fault(status=503),
        Fault(status=429, retry_after=1),
        Fault(
            status=422,
            body={"statusCode": 422, "name": "validation_error", "message": f"bad key {key}"},
        ),
    ]
    for fault in faults:
        sandbox.faults.plan(fault)
        with pytest.raises(ConnectorError) as caught:
            await push(task_for(), connection, credentials, http)
        errors.append(caught.value)
    sandbox.rate_limit = 0
    with pytest.raises(RateLimited) as caught:
        await push(task_for(), connection, credentials, http)
    errors.append(caught.value)
    with pytest.raises(ReauthRequired) as caught:
        await push(task_for(), connection, {"api_key": key + "x"}, http)
    errors.append(caught.value)
    assert len(errors) == 6
    for error in errors:
        assert key not in str(error) and key not in repr(error) and key not in error.message
    assert isinstance(errors[3], PermanentError)


async def test_check_connection(sandbox, connection, credentials, http):
    said = await hook("check_connection", connection=connection, credentials=credentials, http=http)
    assert said == "Resend answered 200: 1 domain(s), 1 verified"
    sending_only = {
        "api_key": next(k for k, v in sandbox.api_keys.items() if v == "sending_access")
    }
    said = await hook(
        "check_connection", connection=connection, credentials=sending_only, http=http
    )
    assert "sending access only" in said
    with pytest.raises(ReauthRequired):
        await hook(
            "check_connection",
            connection=connection,
            credentials={"api_key": "re_nope_1234"},
            http=http,
        )


async def test_a_sandbox_with_two_domains(http, make):
    with ResendSandbox(domains=("example.com", "lumiere.test")) as other:
        conn = Connection(
            id="c", tenant_id="t", vendor="resend", name="t", config=make.config(other.url)
        )
        said = await hook(
            "check_connection", connection=conn, credentials={"api_key": other.api_key}, http=http
        )
    assert said.startswith("Resend answered 200: 2 domain(s)")


async def test_an_overlong_idempotency_key_is_hashed_not_refused(
    sandbox, connection, credentials, http, task_for
):
    key = "batch:" + "dt_0123456789," * 30  # > 256 characters
    first = await push(task_for(), connection, credentials, http, key=key)
    again = await push(task_for(), connection, credentials, http, key=key)
    assert first.external_ids == again.external_ids and sandbox.accepted == 1


# --- what a send carries: attachments, scheduling, List-Unsubscribe, language ------------------

PDF = base64.b64encode(b"%PDF-1.4 contract").decode()


async def test_attachments_from_a_url_and_from_base64(
    sandbox, connection, credentials, http, task_for
):
    files = [
        {"path": "https://files.example.com/contract.pdf", "filename": "contract.pdf"},
        {"filename": "invoice.pdf", "content": PDF, "content_type": "application/pdf"},
    ]
    task = task_for(data={"template": "welcome", "attachments": files})
    result = await push(task, connection, credentials, http)
    assert sandbox.email(result.external_ids["email_id"])["attachments"] == files


@pytest.mark.parametrize(
    ("attachment", "why"),
    [
        ({"filename": "a.pdf", "content": "not base64!"}, "not base64"),
        ({"filename": "a.pdf"}, "either path"),
        ({"content": PDF}, "needs a filename"),
        ({"path": "file:///etc/passwd"}, "http(s) URL"),
    ],
)
async def test_a_bad_attachment_is_permanent_before_any_call(
    sandbox, connection, credentials, http, task_for, attachment, why
):
    task = task_for(data={"template": "welcome", "attachments": [attachment]})
    with pytest.raises(PermanentError, match=re.escape(why)):
        await push(task, connection, credentials, http)
    assert sandbox.requests == 0


async def test_a_batch_sends_an_email_with_attachments_alone(
    sandbox, connection, credentials, http, task_for
):
    files = [{"path": "https://files.example.com/contract.pdf"}]
    tasks = [
        task_for(task_id="dt_a", email="a@client.test"),
        task_for(
            task_id="dt_b",
            email="b@client.test",
            data={"template": "welcome", "attachments": files},
        ),
    ]
    results = await push_batch(tasks, connection, credentials, http, key="b_att")
    assert all(r.status == "delivered" for r in results)
    assert sorted(c[1] for c in sandbox.calls) == ["/emails", "/emails/batch"]
    assert sandbox.email(results[1].external_ids["email_id"])["attachments"] == files


async def test_scheduled_at_is_sent_in_utc(sandbox, connection, credentials, http, task_for):
    task = task_for(data={"template": "welcome", "scheduled_at": "2026-06-01T10:00:00+02:00"})
    result = await push(task, connection, credentials, http)
    stored = sandbox.email(result.external_ids["email_id"])
    assert (stored["scheduled_at"], stored["last_event"]) == ("2026-06-01T08:00:00Z", "scheduled")
    with pytest.raises(PermanentError, match="with its offset"):
        await push(
            task_for(data={"template": "welcome", "scheduled_at": "2026-06-01 10:00"}),
            connection,
            credentials,
            http,
        )


async def test_list_unsubscribe_with_one_click_where_a_url_is_configured(
    sandbox, connection, credentials, http, task_for, make
):
    url = "https://studio.example.com/unsubscribe/{{ client.id }}"
    both = _with_config(
        connection,
        config=make.config(
            sandbox.url, unsubscribe_url=url, unsubscribe_mailto="optout@example.com"
        ),
    )
    result = await push(task_for(), both, credentials, http)
    assert sandbox.email(result.external_ids["email_id"])["headers"] == {
        "List-Unsubscribe": "<https://studio.example.com/unsubscribe/cli_1>, "
        "<mailto:optout@example.com?subject=unsubscribe>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    mail_only = _with_config(
        connection, config=make.config(sandbox.url, unsubscribe_mailto="optout@example.com")
    )
    result = await push(task_for(task_id="dt_2"), mail_only, credentials, http)
    assert sandbox.email(result.external_ids["email_id"])["headers"] == {
        "List-Unsubscribe": "<mailto:optout@example.com?subject=unsubscribe>"
    }


FRENCH = {
    "subject": "Bienvenue, {{ couple }} !",
    "html": "<p>{{ wedding.date_long }} ; acompte {{ data.amount | money('EUR') }}</p>",
}


@pytest.mark.parametrize(
    ("language", "subject", "html"),
    [
        ("fr", "Bienvenue, Anna & Ben !", "samedi 6 juin 2026 ; acompte 1\u202f234,50\xa0€"),
        ("fr-CA", "Bienvenue, Anna & Ben !", "samedi 6 juin 2026 ; acompte 1\xa0234,50\xa0€"),
        ("de-CH", "Welcome, Anna & Ben!", "Saturday, June 6, 2026: €1,234.50"),
        ("en-GB", "Welcome, Anna & Ben!", "Saturday, 6 June 2026: €1,234.50"),
        (None, "Welcome, Anna & Ben!", "Saturday, June 6, 2026: €1,234.50"),
    ],
)
async def test_the_clients_language_picks_the_template_and_formats_dates_and_amounts(
    sandbox, connection, credentials, http, make, language, subject, html
):
    templates = {
        "welcome": {
            "subject": "Welcome, {{ couple }}!",
            "html": "<p>{{ wedding.date_long }}: {{ data.amount | money('EUR') }}</p>",
            "translations": {"fr": FRENCH},
        }
    }
    conn = _with_config(connection, config=make.config(sandbox.url, templates=templates))
    event = make.event(data={"template": "welcome", "couple": "Anna & Ben", "amount": 1234.5})
    event.client.language = language
    result = await push(make.task(event, conn), conn, credentials, http)
    stored = sandbox.email(result.external_ids["email_id"])
    assert (stored["subject"], stored["html"]) == (subject, f"<p>{html}</p>")
