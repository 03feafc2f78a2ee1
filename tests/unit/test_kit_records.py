"""The kit's vendor id map (``journeyhub.kit.records``): known ids first, lookups only where the
map may lack a record, 404s forgotten, and every record used reported, on failure too."""

from __future__ import annotations

from typing import Any

import pytest
from journeyhub.errors import PermanentError, RetryableError
from journeyhub.kit.records import IdMap, Stale
from journeyhub.model import Known, KnownRecord


def known(*records: KnownRecord, attempt: int = 1) -> Known:
    return Known(records=records, attempt=attempt)


def studio_contact(vendor_id: str = "c_studio") -> KnownRecord:
    return KnownRecord(kind="contact", vendor_id=vendor_id, email="ada@example.com")


OURS = KnownRecord(kind="contact", vendor_id="c_ours", our_id="cl_1")
PROJECT = KnownRecord(kind="project", vendor_id="p_1", ref="ji_1", our_id="cl_1")


class Vendor(IdMap):
    """A vendor with contacts and projects in memory: the pattern a connector follows."""

    def __init__(self, store: dict[str, dict[str, Any]], map_: Known) -> None:
        refs = {"project": "ji_1", "project_link": "ji_1"}
        super().__init__(map_, "cl_1", refs, links=("project_link",))
        self.store = store
        self.calls: list[str] = []

    async def lookup_project(self) -> str | None:
        self.calls.append("lookup")
        return next((i for i, r in self.store.items() if r.get("ref") == "ji_1"), None)

    async def project(self) -> str:
        if "project" in self.ids:
            return self.ids["project"]
        while (vendor_id := self.known_id("project")) is not None:
            self.calls.append(f"put {vendor_id}")
            if vendor_id in self.store:
                return self.use("project", vendor_id, "updated", {"name": "x"})
            self.forget("project", vendor_id, "ji_1")
        look = self.lookup_project
        if self.must_look("project") and (found := await self.lookup("project", look)):
            return self.use("project", found, "found")
        self.calls.append("create")
        self.store["p_new"] = {"ref": "ji_1"}
        return self.use("project", "p_new", "created", {"name": "x"})


def test_find_prefers_ours_and_matches_ref_and_fields():
    ids = IdMap(known(studio_contact(), OURS, PROJECT), "cl_1", {"project": "ji_1"})
    assert ids.find("contact") is OURS
    assert ids.known_id("project") == "p_1"
    assert ids.known_id("project", name="other") == "p_1"  # it has no "name": not against it
    other = KnownRecord(kind="project", vendor_id="p_2", ref="ji_1", fields={"name": "a"})
    ids = IdMap(known(other), "cl_1", {"project": "ji_1"})
    assert ids.known_id("project", name="b") is None
    assert IdMap(known(PROJECT), "cl_1", {"project": "ji_2"}).find("project") is None


def test_ref_of_can_read_a_ref_kept_elsewhere():
    class FromFields(IdMap):
        def ref_of(self, record: KnownRecord) -> str | None:
            return record.ref or record.fields.get("instance")

    pulled = KnownRecord(kind="project", vendor_id="p_9", fields={"instance": "ji_1"})
    assert FromFields(known(pulled), "cl_1", {"project": "ji_1"}).known_id("project") == "p_9"
    assert IdMap(known(pulled), "cl_1", {"project": "ji_1"}).known_id("project") is None


def test_must_look_only_where_the_map_may_lack_a_record():
    first = IdMap(known(PROJECT), "cl_1", {"project": "ji_1"})
    assert not first.must_look("project")
    first.forget("project", "p_1")
    assert first.must_look("project") and not first.must_look("contact")
    assert IdMap(known(attempt=2), "cl_1").must_look("contact")
    assert IdMap(Known(after_dead_letter=True), "cl_1").must_look("contact")


def test_use_reports_the_record_with_its_ref_and_email():
    ids = IdMap(known(), "cl_1", {"project": "ji_1"})
    assert ids.use("project", "p_1", "created", {"name": "x"}) == "p_1"
    ids.use("contact", "c_1", "found", email="ada@example.com")
    ids.use("contact", "c_1", "updated", {"email": "new@example.com"}, "ada@example.com")
    project, contact = ids.result(201).records
    assert (project.ref, project.fields, project.our_id) == ("ji_1", {"name": "x"}, "cl_1")
    assert (contact.ref, contact.email) == (None, "new@example.com")  # one entry per record
    assert ids.result(201).external_ids == {"project": "p_1", "contact": "c_1"}
    assert ids.how == {"project": "created", "contact": "updated"}


async def test_forget_reports_the_deletion_and_drops_the_record_its_links_and_its_lookup():
    ids = IdMap(known(PROJECT), "cl_1", {"project": "ji_1"}, links=("project_link",))
    ids.use("project", "p_1", "known")
    ids.use("project_link", "l_1", "known")

    async def look() -> str:
        return "p_2"

    assert await ids.lookup("project", look) == "p_2"
    ids.forget("contact", "c_other")  # not in use: only reported
    assert ids.ids == {"project": "p_1", "project_link": "l_1"}
    ids.forget("project", "p_1", "ji_1")
    assert ids.ids == {} and ids.how == {} and ids.looked == {}
    assert ids.find("project") is None  # gone for the rest of the push
    deleted = [(r.kind, r.vendor_id, r.ref) for r in ids.records.values() if r.deleted]
    assert deleted == [("project", "p_1", "ji_1"), ("contact", "c_other", None)]


async def test_a_known_id_is_used_without_a_lookup():
    vendor = Vendor({"p_1": {"ref": "ji_1"}}, known(PROJECT))
    assert await vendor.run(vendor.project) == "p_1"
    assert vendor.calls == ["put p_1"]


async def test_a_deleted_known_record_is_looked_up_and_else_made_again():
    store: dict[str, dict[str, Any]] = {}
    vendor = Vendor(store, known(PROJECT))
    assert await vendor.run(vendor.project) == "p_new"
    assert vendor.calls == ["put p_1", "lookup", "create"]
    records = [(r.vendor_id, r.deleted) for r in vendor.result(None).records]
    assert records == [("p_1", True), ("p_new", False)]


async def test_a_complete_map_without_the_record_creates_it_without_a_lookup():
    vendor = Vendor({"p_old": {"ref": "ji_1"}}, known())
    assert await vendor.run(vendor.project) == "p_new"
    assert vendor.calls == ["create"]
    retry = Vendor({"p_old": {"ref": "ji_1"}}, known(attempt=2))
    assert await retry.run(retry.project) == "p_old"  # an earlier attempt may have made it
    assert retry.calls == ["lookup"]


async def test_lookups_are_made_once_per_push():
    ids, calls = IdMap(known(attempt=2), "cl_1"), list[int]()

    async def look() -> str:
        calls.append(1)
        return "p_1"

    assert await ids.lookup("project", look) == await ids.lookup("project", look) == "p_1"
    assert calls == [1]


async def test_recheck_forgets_the_known_records_found_deleted_and_asks_for_a_rerun():
    ids = IdMap(known(PROJECT, OURS), "cl_1", {"project": "ji_1"})
    ids.use("project", "p_1", "known")
    ids.use("contact", "c_ours", "found")  # found in this push: not checked again
    read: list[tuple[str, str]] = []

    async def exists(kind: str, vendor_id: str) -> Any:
        read.append((kind, vendor_id))
        return None if vendor_id == "p_1" else {"id": vendor_id}

    with pytest.raises(Stale):
        await ids.recheck(("project", "contact"), exists)
    assert read == [("project", "p_1")] and "project" not in ids.ids
    await ids.recheck(("project", "contact"), exists)  # none gone: the refusal stands


async def test_run_reruns_after_stale_and_reports_what_was_written_on_failure():
    ids, rounds = IdMap(known(), "cl_1"), list[int]()

    async def writes() -> str:
        rounds.append(1)
        if len(rounds) == 1:
            raise Stale
        ids.use("contact", "c_1", "created")
        raise RetryableError("the vendor answered 503")

    with pytest.raises(RetryableError) as failed:
        await ids.run(writes)
    assert len(rounds) == 2
    assert [r.vendor_id for r in failed.value.records] == ["c_1"]


async def test_run_gives_up_when_every_round_forgets_something():
    ids = IdMap(known(), "cl_1")

    async def writes() -> None:
        ids.forget("project", f"p_{len(ids.gone)}")
        raise Stale

    with pytest.raises(PermanentError) as failed:
        await ids.run(writes, rounds=3)
    assert len(failed.value.records) == 3 and all(r.deleted for r in failed.value.records)
