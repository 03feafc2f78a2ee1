"""The "Payments completed" report → payment_received drafts, deterministic per row."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from journeyhub_honeybook.sandbox import sample_payments_csv

HEADER = "Payment Date,Client Name,Client Email,Project Name,Invoice,Amount\n"


async def test_the_sample_report(hook):
    drafts = await hook("journeyhub_import_csv", text=sample_payments_csv())
    # the Pending row is not money received
    assert [d.source_event_id for d in drafts] == [
        "honeybook:payment:hb_payment_1",
        "honeybook:payment:hb_payment_2",
        "honeybook:payment:hb_payment_3",
    ]
    first, second, refunded = drafts
    assert all(d.type == "payment_received" for d in drafts)
    assert first.client_email == "ada@example.com"
    assert first.occurred_at == datetime(2026, 3, 3, tzinfo=UTC)
    assert first.data["amount"] == 150000 and first.data["currency"] == "USD"
    assert first.data["project_name"] == "Ada & Charles" and first.data["source"] == "csv"
    assert second.data["amount"] == 210000 and second.data["gratuity"] == 10000  # Total Paid
    assert refunded.data["refunded"] == 45000 and refunded.data["project_name"] == (
        "Johnson, Engagement"
    )


async def test_reimport_gives_the_same_source_ids_and_webhook_ids_match(hook, new_stored):
    once = await hook("journeyhub_import_csv", text=sample_payments_csv())
    twice = await hook("journeyhub_import_csv", text=sample_payments_csv())
    assert [msgspec.to_builtins(d) for d in once] == [msgspec.to_builtins(d) for d in twice]
    body = msgspec.json.encode({"trigger": "payment_paid", "id": "hb_payment_1", "amount": "1"})
    [from_zap] = await hook("journeyhub_handle_webhook", webhook=new_stored(body, None))
    assert from_zap.source_event_id == once[0].source_event_id


async def test_rows_without_an_id_are_identified_by_content_and_rank(hook):
    row = '03/03/2026,Ada Lovelace,ada@example.com,Ada & Charles,#1,"$500.00"\n'
    other = '03/04/2026,Ada Lovelace,ada@example.com,Ada & Charles,#2,"$500.00"\n'
    drafts = await hook("journeyhub_import_csv", text=HEADER + row + row + other)
    ids = [d.source_event_id for d in drafts]
    assert len(set(ids)) == 3 and ids[0].startswith("honeybook:csv:")
    # an overlapping export (an extra, older row first) gives the same ids to the same rows
    older = '02/01/2026,Grace Hopper,grace@example.com,G,#0,"$10.00"\n'
    again = await hook("journeyhub_import_csv", text=HEADER + older + row + row + other)
    assert [d.source_event_id for d in again][1:] == ids


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            HEADER + '03/03/2026,Ada,ada@example.com,P,#1,"$5.00"\n03/04/2026,Bo,bo@x,P,#2,lots\n',
            "line 3: Amount 'lots' is not an amount",
        ),
        (HEADER + "someday,Ada,ada@example.com,P,#1,$5.00\n", "line 2: Payment Date 'someday'"),
        (HEADER + "03/03/2026,,,P,#1,$5.00\n", "line 2: the row names no client"),
        (HEADER + "03/03/2026,Ada,ada@example.com,P,#1,$5.00,extra\n", "line 2: 1 more cells"),
        ("Client Email,Amount\nada@example.com,$5\n", "line 1: the payments report has no date"),
        ("Payment Date,Project\n03/03/2026,P\n", "line 1: the payments report has no amount"),
        ("Payment Date,Amount\n03/03/2026,$5\n", "line 1: the payments report has no client"),
    ],
)
async def test_malformed_reports_name_the_line(hook, text, message):
    with pytest.raises(ValueError) as caught:
        await hook("journeyhub_import_csv", text=text)
    assert message in str(caught.value)


async def test_blank_lines_totals_bom_and_header_only(hook):
    text = (
        "\ufeff" + HEADER + '03/03/2026,Ada,ada@example.com,P,#1,"$5.00"\n,,,,,\nTotal,,,,,$5.00\n'
    )
    [draft] = await hook("journeyhub_import_csv", text=text)
    assert draft.data["amount"] == 500
    assert await hook("journeyhub_import_csv", text=HEADER) == []
    assert await hook("journeyhub_import_csv", text="") == []


async def test_the_connection_currency_applies(hook, new_connection, sandbox):
    connection = new_connection(sandbox.config(currency="JPY"))
    [draft] = await hook(
        "journeyhub_import_csv",
        connection=connection,
        text=HEADER + '03/03/2026,Ada,a@x,P,#1,"¥5,000"\n',
    )
    assert draft.data["amount"] == 5000 and draft.data["currency"] == "JPY"
