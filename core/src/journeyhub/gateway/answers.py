"""What the gateway's hot paths answer, whether through Litestar or in front of it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    content: Any  # a msgspec Struct or a dict, encoded as JSON
    retry_after: str | None = None


def problem(status: int, detail: str, **extra: Any) -> Answer:
    """An error answer in the shape of Litestar's: ``{"status_code", "detail", …}``."""
    return Answer(status, {"status_code": status, "detail": detail, **extra})
