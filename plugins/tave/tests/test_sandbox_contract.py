"""The sandbox holds requests to the published VSCO Workspace contract, over real HTTP, and
refuses what the schema refuses with the API's own error answers."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from journeyhub_tave import contract

SPEC = Path("/work/shared/vendor-specs/vsco-workspace-openapi.json")
SCRIPT = Path(__file__).parents[1] / "scripts" / "derive_contract.py"
CONTRACT = contract.shared()


def call(sandbox: Any, method: str, path: str, **sent: Any) -> httpx.Response:
    headers = {"X-API-KEY": sandbox.api_key}
    return httpx.request(method, sandbox.api_base + path, headers=headers, **sent)


def error_shape(answer: httpx.Response, name: str) -> dict[str, Any]:
    """The answer's body, checked against the contract's error schema ``name``."""
    body = answer.json()
    schema = {**load_contract()["errors"][name], "$defs": CONTRACT.defs}
    assert not CONTRACT.problems(schema, body), body
    assert body["status"] == answer.status_code
    return body


def load_contract() -> dict[str, Any]:
    return contract.load()


@pytest.fixture(autouse=True)
def refusals_on_purpose(sandbox: Any) -> Iterator[None]:
    yield
    sandbox.refusals = 0  # these tests send what the contract refuses, on purpose


@pytest.fixture
def person(sandbox: Any) -> dict[str, Any]:
    return sandbox.vendor_create("address-book", kind="person", firstName="Ada", email="a@x.io")


def test_an_update_without_kind_is_refused_as_the_api_refuses_it(sandbox, person):
    answer = call(sandbox, "PUT", f"/address-book/{person['id']}", json={"firstName": "Eve"})

    assert answer.status_code == 400
    body = error_shape(answer, "validationError")
    assert body["type"] == "validation-error" and "kind" in body["detail"]
    assert sandbox.record("address-book", person["id"])["firstName"] == "Ada"
    assert sandbox.refusals == 1  # counted, so the connector's tests would see it


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/address-book/{id}", {"kind": "person", "firstName": 7}, "firstName"),
        ("PUT", "/address-book/{id}", {"kind": "robot"}, "kind"),
        ("PUT", "/job/{job}", {"stage": "won"}, "stage"),
        ("PUT", "/job/{job}", {"eventDate": "20 June"}, "eventDate"),
        ("POST", "/note", {"contentHtml": "<p>x</p>", "externalMappings": []}, "externalMappings"),
        ("POST", "/note", {"jobId": "{job}"}, "contentHtml"),
        ("POST", "/job-contact", {"contactId": "{id}"}, "jobId"),
        ("POST", "/job", {"externalMappings": [{"id": "x", "url": "short"}]}, "externalMappings"),
    ],
)
def test_bodies_the_schema_refuses_are_refused(sandbox, person, method, path, body, field):
    job = sandbox.vendor_create("job", name="J")
    fill = {"{id}": person["id"], "{job}": job["id"]}
    path = path.format(id=person["id"], job=job["id"])
    body = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()}

    answer = call(sandbox, method, path, json=body)

    assert answer.status_code == 400, answer.text
    detail = error_shape(answer, "validationError")["detail"]
    assert any(name.startswith(field) for name in detail), detail


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/job", {"pageSize": "5"}, "pageSize"),
        ("/job", {"sortBy": "eventDate sideways"}, "sortBy"),
        ("/address-book", {"page": "0"}, "page"),
        ("/note", {"includeHidden": "maybe"}, "includeHidden"),
    ],
)
def test_query_parameters_the_schema_refuses_are_refused(sandbox, path, params, field):
    answer = call(sandbox, "GET", path, params=params)
    assert answer.status_code == 400
    assert field in error_shape(answer, "validationError")["detail"]


def test_a_filter_an_operation_lacks_is_not_applied(sandbox):
    sandbox.vendor_create("address-book", kind="person", firstName="A", externalMappings=[])
    answer = call(sandbox, "GET", "/address-book", params={"externalMappingId": "nope"})
    assert answer.status_code == 200 and answer.json()["meta"]["totalItems"] == 1


def test_put_replaces_the_record(sandbox, person):
    whole = {"kind": "person", "firstName": "Eve", "lastName": "Ng"}
    answer = call(sandbox, "PUT", f"/address-book/{person['id']}", json=whole)

    assert answer.status_code == 200
    record = sandbox.record("address-book", person["id"])
    assert (record["firstName"], record["lastName"], record["email"]) == ("Eve", "Ng", None)


def test_missing_records_unknown_operations_and_bad_keys_answer_the_documented_shapes(sandbox):
    gone = call(sandbox, "GET", "/job/01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert gone.status_code == 404 and error_shape(gone, "validationError")["detail"]

    other = call(sandbox, "DELETE", "/address-book/01aaaaaaaaaaaaaaaaaaaaaaaa")
    assert other.status_code == 501
    assert error_shape(other, "unauthorizedError")["type"] == "not-implemented"

    refused = httpx.get(sandbox.api_base + "/job", headers={"X-API-KEY": "wrong"})
    assert refused.status_code == 401 and error_shape(refused, "unauthorizedError")

    sandbox.rate_limit = 1
    call(sandbox, "GET", "/job")
    limited = call(sandbox, "GET", "/job")
    assert limited.status_code == 429 and limited.headers["retry-after"]
    assert error_shape(limited, "tooManyRequestsError")["type"] == "quota-limit"


async def test_what_the_sandbox_answers_has_the_published_shapes(sandbox, push, new_event):
    await push(new_event())
    for path, operation in (
        (f"/job/{sandbox.jobs[0]['id']}", "GET /job/{id}"),
        (f"/address-book/{sandbox.contacts[0]['id']}", "GET /address-book/{id}"),
        ("/job", "GET /job"),
        ("/job-contact", "GET /job-contact"),
        ("/address-book", "GET /address-book"),
    ):
        schema = load_contract()["operations"][operation]["responses"]["200"]
        body = call(sandbox, "GET", path).json()
        assert not CONTRACT.problems({**schema, "$defs": CONTRACT.defs}, body), path


@pytest.mark.skipif(not SPEC.exists(), reason="the vendor's OpenAPI document is not here")
def test_the_contract_is_the_one_derived_from_the_published_document():
    loaded = importlib.util.spec_from_file_location("derive_contract", SCRIPT)
    assert loaded is not None and loaded.loader is not None
    script = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(script)
    assert script.derive(json.loads(SPEC.read_text())) == load_contract()
