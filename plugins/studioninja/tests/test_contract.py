"""Studio Ninja passes the kernel's connector contract: push (the enquiry form) and pull (the
Google calendar it syncs into), with Google's OAuth refreshed through ``journeyhub_authenticate``
as the workers do."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from journeyhub.model import Connection, PullPage
from journeyhub.testing.contract import ConnectorContract
from journeyhub.testing.sandbox import Fault


class BothSides:
    """The contract plans faults without naming a server; Studio Ninja has two (Google's
    calendar for pull, the enquiry form for push): plan them on both."""

    def __init__(self, sandbox: Any) -> None:
        self.sides = (sandbox.google.faults, sandbox.forms.faults)

    def plan(self, *faults: Fault) -> None:
        for side in self.sides:
            side.plan(*faults)

    def clear(self) -> None:
        for side in self.sides:
            side.clear()


class TestStudioNinjaContract(ConnectorContract):
    vendor = "studioninja"
    bad_config = {
        "calendar_id": "  ",
        "enquiry_form_url": "http://app.studioninja.co/contactform/parser/a/b",  # not https
        "title_patterns": {"SHOT": "^SHOT"},
        "job_id_pattern": r"job \d+",  # no group to capture the id
        "page_size": 5000,
    }
    bad_credentials = {"refresh_token": "  ", "channel_token": "too-short"}
    pull_seed_count = 7

    # ``sandbox`` (Google's side and the form, reset per test) comes from conftest.py.

    def make_connection(self, sandbox: Any) -> Connection:
        return self.connection(sandbox.config(page_size=3))

    def make_credentials(self, sandbox: Any) -> dict[str, Any]:
        return sandbox.credentials()  # no access token yet

    def refused_credentials(self, sandbox: Any) -> dict[str, Any]:
        return sandbox.credentials(
            refresh_token="1//revoked-refresh-token-0123",
            access_token="ya29.revoked-access-token-0123",
            expires_at=4102444800.0,
        )

    def faults(self, sandbox: Any) -> Any:
        return BothSides(sandbox)

    def count_effects(self, sandbox: Any) -> int:
        return len(sandbox.submissions)  # leads made through the form

    def seed_for_pull(self, sandbox: Any, count: int) -> list[str]:
        day = date(2026, 5, 1) + timedelta(days=len(sandbox.google.events(sandbox.calendar_id)))
        return [
            sandbox.add_entry("SHOOT", f"Couple {day + timedelta(n)}", day + timedelta(n))["id"]
            for n in range(count)
        ]

    def pulled_ids(self, page: PullPage) -> list[str]:
        # The calendar entries; each also speaks for its job (a second record, keyed by job).
        return [r.vendor_id for r in page.records if r.kind == "shoot"]
