"""The one error the services raise for bad input (besides ``LookupError`` for what is not
there)."""

from __future__ import annotations


class InvalidInput(ValueError):
    """The input was understood but is not valid; ``field`` names where (a JSON path such as
    ``$.config.api_base``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
