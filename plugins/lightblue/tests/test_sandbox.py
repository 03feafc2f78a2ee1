"""The sandbox behaves as Light Blue's pages describe, checked with plain form POSTs."""

from __future__ import annotations

from datetime import date

import pytest
from journeyhub_lightblue.sandbox import parse_date


async def post(http, sandbox, **form):
    response = await http.post(sandbox.api_url, data=form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


async def test_the_answer_is_a_text_status_code(http, sandbox):
    ok = await post(
        http,
        sandbox,
        key=sandbox.api_key,
        type="contact form",
        ContactEmail="a@example.com",
        ID="1",
        Source="s",
    )
    again = await post(
        http,
        sandbox,
        key=sandbox.api_key,
        type="contact form",
        ContactEmail="b@example.com",
        ID="1",
        Source="s",
    )
    other_source = await post(
        http,
        sandbox,
        key=sandbox.api_key,
        type="contact form",
        ContactEmail="b@example.com",
        ID="1",
        Source="t",
    )

    assert ok == "0"
    assert again.split("\r")[0] == "-4"
    assert other_source == "0"  # the same ID from another Source does not clash
    assert [e.fields["ContactEmail"] for e in sandbox.enquiries] == [
        "a@example.com",
        "b@example.com",
    ]


async def test_without_an_id_nothing_is_deduplicated(http, sandbox):
    for _ in range(2):
        assert (
            await post(http, sandbox, key=sandbox.api_key, type="contact form", Message="hi") == "0"
        )
    assert len(sandbox.enquiries) == 2


async def test_key_and_type_may_be_capitalised_as_light_blues_plugins_send_them(http, sandbox):
    text = await post(http, sandbox, Key=sandbox.api_key, Type="contact form", Message="hi")
    assert text == "0"


@pytest.mark.parametrize(
    "form",
    [
        {"type": "invoice", "Message": "hi"},
        {"type": "contact form", "Nonsense": "x"},
        {"type": "contact form", "Source": "s", "ID": "2"},
    ],
)
async def test_bad_parameters_are_minus_3(http, sandbox, form):
    text = await post(http, sandbox, key=sandbox.api_key, **form)
    assert text.split("\r")[0] == "-3"
    assert sandbox.enquiries == []


async def test_dates_follow_date_format_and_bad_ones_are_ignored(http, sandbox):
    await post(
        http,
        sandbox,
        key=sandbox.api_key,
        type="contact form",
        ShootDate="2026-06-20",
        Message="iso",
    )
    await post(
        http,
        sandbox,
        key=sandbox.api_key,
        type="contact form",
        ShootDate="06/20/2026",
        DateFormat="mm/dd/yyyy",
    )

    iso, us = sandbox.enquiries
    assert iso.ignored == {"ShootDate": "2026-06-20"} and "ShootDate" not in iso.fields
    assert us.dates == {"ShootDate": date(2026, 6, 20)}


def test_parse_date_formats():
    assert parse_date("20/06/2026", "dd/mm/yyyy") == date(2026, 6, 20)
    assert parse_date("2/6/2026", "d/m/yyyy") == date(2026, 6, 2)
    assert parse_date("2/6/2026", "dd/mm/yyyy") is None
    assert parse_date("2026/6/2", "yyyy/m/d") == date(2026, 6, 2)
    assert parse_date("31/02/2026", "dd/mm/yyyy") is None
    assert parse_date("20/06/2026", "dd.mm.yyyy") is None


async def test_plain_http_is_refused_when_https_is_required(http, sandbox):
    sandbox.require_https = True
    text = await post(http, sandbox, key=sandbox.api_key, type="contact form", Message="hi")
    assert text.split("\r")[0] == "-20"
    assert sandbox.enquiries == []


async def test_api_check(http, sandbox):
    good = await http.post(f"{sandbox.url}/apiCheck.php", data={"Key": sandbox.api_key})
    bad = await http.post(f"{sandbox.url}/apiCheck.php", data={"Key": "nope"})

    assert good.text.split("\r")[0] == "0"
    assert bad.text.split("\r")[0] not in ("0", "")
    assert sandbox.enquiries == []
