"""Pull: one page of the calendar Studio Ninja syncs into, through journeyhub_gcal.

Paging, sync tokens, the 410 full resync and the cursor are gcal's ``list_events_page``; this
module only says which events are Studio Ninja's and what they stand for (``entries``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from journeyhub.model import PulledRecord, PullPage
from journeyhub.vendor_http import VendorHttp
from journeyhub_gcal import list_events_page

from journeyhub_studioninja.config import StudioNinjaConfig
from journeyhub_studioninja.entries import job_records, shoot_record


async def pull_page(
    http: VendorHttp,
    config: StudioNinjaConfig,
    credentials: Mapping[str, Any],
    cursor: str | None,
) -> PullPage:
    def record(item: dict[str, Any]) -> PulledRecord | None:
        return shoot_record(item, config)

    page = await list_events_page(http, config.gcal(), credentials, cursor, record=record)
    records: list[PulledRecord] = []
    for shoot in page.records:
        records.append(shoot)
        records.extend(job_records(shoot))
    return PullPage(records=records, next_cursor=page.next_cursor, has_more=page.has_more)
