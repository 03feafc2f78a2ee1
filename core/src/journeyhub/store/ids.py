"""Row ids: a short prefix naming the kind (``ten``, ``con``, ``dlq``…) and 80 random bits."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"
