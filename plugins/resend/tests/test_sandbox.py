"""The sandbox itself, spoken to with raw HTTP: it must behave like Resend for what we use."""

from __future__ import annotations

import asyncio
from typing import Any

from journeyhub_resend.sandbox import ResendSandbox

EMAIL = {
    "from": "Acme <hello@example.com>",
    "to": ["anna@client.test"],
    "subject": "hi",
    "html": "<p>hi</p>",
    "tags": [{"name": "jh_task", "value": "dt_1"}],
}


def auth(sandbox: ResendSandbox, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {sandbox.api_key}", **extra}


async def test_the_third_request_within_a_second_is_refused_with_rate_limit_headers(sandbox, http):
    sandbox.rate_limit = 2
    answers = [await http.get(f"{sandbox.url}/domains", headers=auth(sandbox)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    ok, refused = answers[1], answers[2]
    assert ok.headers["ratelimit-limit"] == "2" and ok.headers["ratelimit-remaining"] == "0"
    assert "ratelimit-reset" in ok.headers
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert refused.headers["ratelimit-reset"] == "1"
    body = refused.json()
    assert body["statusCode"] == 429 and body["name"] == "rate_limit_exceeded"
    assert sandbox.refused_429 == 1
    await asyncio.sleep(1.0)  # the window has moved on
    assert (await http.get(f"{sandbox.url}/domains", headers=auth(sandbox))).status_code == 200


async def test_the_rate_limit_is_per_api_key(sandbox, http):
    sandbox.rate_limit = 1
    sending = next(k for k, v in sandbox.api_keys.items() if v == "sending_access")
    first = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=auth(sandbox))
    other = await http.post(
        f"{sandbox.url}/emails", json=EMAIL, headers={"authorization": f"Bearer {sending}"}
    )
    assert (first.status_code, other.status_code) == (200, 200)


async def test_auth_errors_are_shaped_like_resend(sandbox, http):
    missing = await http.get(f"{sandbox.url}/domains")
    wrong = await http.get(f"{sandbox.url}/domains", headers={"authorization": "Bearer re_nope"})
    sending = next(k for k, v in sandbox.api_keys.items() if v == "sending_access")
    restricted = await http.get(
        f"{sandbox.url}/domains", headers={"authorization": f"Bearer {sending}"}
    )
    assert (missing.status_code, missing.json()["name"]) == (401, "missing_api_key")
    assert (wrong.status_code, wrong.json()["name"]) == (403, "invalid_api_key")
    assert (restricted.status_code, restricted.json()["name"]) == (401, "restricted_api_key")
    assert set(missing.json()) == {"statusCode", "name", "message"}


async def test_idempotency_replays_and_conflicts(sandbox, http):
    url = f"{sandbox.url}/emails"
    first = await http.post(url, json=EMAIL, headers=auth(sandbox, **{"idempotency-key": "k"}))
    again = await http.post(url, json=EMAIL, headers=auth(sandbox, **{"idempotency-key": "k"}))
    other = await http.post(
        url, json={**EMAIL, "subject": "changed"}, headers=auth(sandbox, **{"idempotency-key": "k"})
    )
    assert first.json() == again.json() and again.status_code == 200
    assert (other.status_code, other.json()["name"]) == (409, "invalid_idempotent_request")
    too_long = await http.post(
        url, json=EMAIL, headers=auth(sandbox, **{"idempotency-key": "k" * 257})
    )
    assert (too_long.status_code, too_long.json()["name"]) == (400, "invalid_idempotency_key")
    assert sandbox.accepted == 1 and sandbox.duplicates == 0


async def test_idempotency_keys_expire_after_24_hours(http):
    now = [1_000_000.0]
    with ResendSandbox(rate_limit=100, clock=lambda: now[0]) as sandbox:
        headers = auth(sandbox, **{"idempotency-key": "k"})
        first = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=headers)
        now[0] += 24 * 3600 - 1
        within = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=headers)
        now[0] += 2
        after = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=headers)
        assert first.json() == within.json() != after.json()
        assert sandbox.accepted == 2 and sandbox.duplicates == 1  # the same jh_task, sent twice


async def test_a_batch_over_100_is_422_and_sends_nothing(sandbox, http):
    response = await http.post(
        f"{sandbox.url}/emails/batch", json=[EMAIL] * 101, headers=auth(sandbox)
    )
    assert response.status_code == 422 and response.json()["name"] == "validation_error"
    assert sandbox.emails == []


async def test_strict_and_permissive_batches(sandbox, http):
    bad: dict[str, Any] = {**EMAIL, "to": ["not-an-address"]}
    batch = [EMAIL, bad, {**EMAIL, "to": ["b@client.test"]}]
    strict = await http.post(f"{sandbox.url}/emails/batch", json=batch, headers=auth(sandbox))
    assert strict.status_code == 422 and sandbox.emails == []
    permissive = await http.post(
        f"{sandbox.url}/emails/batch",
        json=batch,
        headers=auth(sandbox, **{"x-batch-validation": "permissive"}),
    )
    body = permissive.json()
    assert permissive.status_code == 200
    assert len(body["data"]) == 2 and [e["index"] for e in body["errors"]] == [1]
    assert [e["to"] for e in sandbox.emails] == [["anna@client.test"], ["b@client.test"]]


async def test_validation_errors(sandbox, http):
    url = f"{sandbox.url}/emails"
    cases = [
        ({k: v for k, v in EMAIL.items() if k != "to"}, 422, "missing_required_field"),
        ({**EMAIL, "from": "nobody"}, 422, "validation_error"),
        ({**EMAIL, "tags": [{"name": "client id", "value": "x"}]}, 422, "validation_error"),
        ({**EMAIL, "from": "a@elsewhere.test"}, 403, "validation_error"),
    ]
    for payload, status, name in cases:
        response = await http.post(url, json=payload, headers=auth(sandbox))
        assert (response.status_code, response.json()["name"]) == (status, name), payload
    assert sandbox.emails == []


async def test_get_email_and_unknown_paths(sandbox, http):
    sent = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=auth(sandbox))
    email_id = sent.json()["id"]
    got = await http.get(f"{sandbox.url}/emails/{email_id}", headers=auth(sandbox))
    assert got.status_code == 200
    assert got.json()["object"] == "email" and got.json()["last_event"] == "sent"
    sandbox.emit("email.delivered", email_id)
    got = await http.get(f"{sandbox.url}/emails/{email_id}", headers=auth(sandbox))
    assert got.json()["last_event"] == "delivered"
    missing = await http.get(f"{sandbox.url}/emails/nope", headers=auth(sandbox))
    assert (missing.status_code, missing.json()["name"]) == (404, "not_found")
    nowhere = await http.get(f"{sandbox.url}/audiences", headers=auth(sandbox))
    assert (nowhere.status_code, nowhere.json()["name"]) == (404, "not_found")


async def test_requests_are_held_to_the_sdks_structure(sandbox, http):
    url = f"{sandbox.url}/emails"
    cases = [
        ({**EMAIL, "replyTo": "a@b.test"}, 422, "validation_error"),  # the node name, not the API's
        ({**EMAIL, "headers": {"X-Count": 1}}, 422, "validation_error"),
        ({**EMAIL, "attachments": [{"filename": "a.pdf"}]}, 422, "invalid_attachment"),
        (
            {**EMAIL, "attachments": [{"filename": "a.pdf", "content": "@@"}]},
            422,
            "invalid_attachment",
        ),
        ({**EMAIL, "scheduled_at": "next tuesday-ish"}, 422, "validation_error"),
    ]
    for payload, status, name in cases:
        response = await http.post(url, json=payload, headers=auth(sandbox))
        assert (response.status_code, response.json()["name"]) == (status, name), payload
    batch = [{**EMAIL, "attachments": [{"path": "https://files.example.com/a.pdf"}]}]
    response = await http.post(f"{sandbox.url}/emails/batch", json=batch, headers=auth(sandbox))
    assert (response.status_code, response.json()["name"]) == (422, "validation_error")
    assert sandbox.emails == []


async def test_a_revoked_key_is_refused_as_resend_documents(sandbox, http):
    sandbox.revoked.add(sandbox.api_key)
    sent = await http.post(f"{sandbox.url}/emails", json=EMAIL, headers=auth(sandbox))
    listed = await http.get(f"{sandbox.url}/domains", headers=auth(sandbox))
    assert (sent.status_code, sent.json()["name"]) == (401, "validation_error")
    assert (listed.status_code, listed.json()["message"]) == (400, "API key is invalid")
