"""The errors the services raise: :class:`InvalidInput` for bad input, :class:`Refused` for
what the current state does not allow, and ``LookupError`` for what is not there."""

from __future__ import annotations


class InvalidInput(ValueError):
    """The input was understood but is not valid; ``field`` names where (a JSON path such as
    ``$.config.api_base``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class Refused(Exception):
    """The request was understood and is valid, but cannot be done in the current state
    (e.g. syncing a connection that cannot be pulled); the CLI exits 4 on it."""
