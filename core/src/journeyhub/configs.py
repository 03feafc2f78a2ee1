"""A connection's ``config`` and credentials decoded into its plugin's own Structs; the config
once per connection version.

The connection cache hands the same ``Connection`` out for every task of a busy connection;
decoding its config again for each push would repeat the same work. A change to the connection
moves its ``updated_at``, which is part of the key, so an edited config is decoded afresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar, cast

import msgspec

from journeyhub.errors import PermanentError
from journeyhub.model import Connection

S = TypeVar("S")
MAX_ENTRIES = 10_000
_decoded: dict[tuple[type, str, datetime | None], Any] = {}


def config_as(connection: Connection, schema: type[S]) -> S:
    """``connection.config`` as ``schema``. Saved configs were validated when the connection
    was saved; one that does not decode now (an older plugin's shape) is a PermanentError
    naming the field. A connection never saved (``updated_at`` None) is not cached."""
    key = (schema, connection.id, connection.updated_at)
    if connection.updated_at is not None and key in _decoded:
        return cast(S, _decoded[key])
    try:
        value = msgspec.convert(connection.config, schema)
    except msgspec.ValidationError as exc:
        raise PermanentError(f"invalid {connection.vendor} connection config: {exc}") from None
    if connection.updated_at is not None:
        if len(_decoded) >= MAX_ENTRIES:
            _decoded.clear()
        _decoded[key] = value
    return value


def credentials_as(credentials: Mapping[str, Any], schema: type[S], vendor: str) -> S:
    """Decrypted credentials as ``schema``. The message names the field, never its value."""
    try:
        return msgspec.convert(credentials, schema)
    except msgspec.ValidationError as exc:
        raise PermanentError(f"invalid {vendor} connection credentials: {exc}") from None
