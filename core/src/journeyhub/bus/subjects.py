"""Subject and stream names (prefix ``jh`` by default, ``JOURNEYHUB_SUBJECT_PREFIX``)."""

from __future__ import annotations

from dataclasses import dataclass


def token(value: str) -> str:
    """Make a value safe as one NATS subject token."""
    return "".join("_" if c in " .*>\t\r\n" else c for c in value) or "_"


@dataclass(frozen=True)
class Subjects:
    prefix: str = "jh"

    def inbound(self, vendor: str, connection_id: str) -> str:
        return f"{self.prefix}.inbound.{token(vendor)}.{token(connection_id)}"

    def events(self, tenant_id: str) -> str:
        return f"{self.prefix}.events.{token(tenant_id)}"

    def push(self, connection_id: str) -> str:
        return f"{self.prefix}.push.{token(connection_id)}"

    def triggers(self, tenant_id: str) -> str:
        return f"{self.prefix}.triggers.{token(tenant_id)}"

    def dlq(self, connection_id: str) -> str:
        return f"{self.prefix}.dlq.{token(connection_id)}"

    def stream(self, kind: str) -> str:
        """Stream name for ``inbound``, ``events``, ``push``, ``triggers`` or ``dlq``."""
        return f"{self.prefix.upper()}_{kind.upper()}"

    def wildcard(self, kind: str) -> str:
        return f"{self.prefix}.{kind}.>"
