"""Which rows of each table are one client's, by the column that names it: the one place that
says so, read by the client's timeline (``store/timeline.py``) and by its erasure
(``store/erasure.py``, which also looks for rows that only mention the client).

A journey event, a trigger, a delivery attempt and a push task's dead letter carry our client
id; a task carries it in its order key; a sync link in ``our_id``; the directory
(``store/clients.py``) is keyed by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from journeyhub.model import DeliveryTask, client_of
from journeyhub.store.tables import (
    ClientRow,
    ClientTerm,
    DeadLetter,
    Delivery,
    KeptEvent,
    SyncLink,
    TaskRow,
    TriggerRow,
)

# Where a client's rows are, per table of rows the timeline shows: (tenant column, client
# column). Each table has an index on (tenant, client, time) for it (migration 0010).
BY_CLIENT: dict[str, tuple[Any, Any]] = {
    "journey_events": (KeptEvent.tenant_id, KeptEvent.client_id),
    "deliveries": (Delivery.tenant_id, Delivery.client_id),
    "dead_letters": (DeadLetter.tenant_id, DeadLetter.client_id),
    "triggers": (TriggerRow.tenant_id, TriggerRow.client_id),
    "clients": (ClientRow.tenant_id, ClientRow.client_id),
    "client_terms": (ClientTerm.tenant_id, ClientTerm.client_id),
}


def of_client(table: str, tenant_id: str, client_id: str) -> list[Any]:
    """The conditions that select ``table``'s rows of the client, within the tenant."""
    tenant, client = BY_CLIENT[table]
    return [tenant == tenant_id, client == client_id]


def task_order_keys(client_id: str) -> list[str]:
    """The order keys of the client's tasks: its journey events', its triggers'."""
    return [client_id, f"trigger:{client_id}"]


def tasks_of(connections: Sequence[str], client_id: str) -> list[Any]:
    return [
        TaskRow.connection_id.in_(connections),
        TaskRow.order_key.in_(task_order_keys(client_id)),
    ]


def sync_links_of(connections: Sequence[str], client_id: str) -> list[Any]:
    """The client's records at the vendors (the studio's own, with no client, are not)."""
    return [SyncLink.connection_id.in_(connections), SyncLink.our_id == client_id]


def client_of_task(task: DeliveryTask) -> str | None:
    """The client id a task's delivery attempts and dead letter are recorded under."""
    return client_of(task)[0]
