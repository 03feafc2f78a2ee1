"""Error answers: 422 with field-level messages; never an internal detail or a secret."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from journeyhub.logs import get_logger, secrets_registry

T = TypeVar("T")
log = get_logger(__name__)

_AT_PATH = re.compile(r" - at `(?P<path>[^`]+)`$")


class UnprocessableInput(HTTPException):
    """422: the input was understood but is not valid; ``field`` names where."""

    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(detail=message, extra={"errors": [{"field": field, "message": message}]})


def field_error(exc: msgspec.ValidationError | msgspec.DecodeError) -> UnprocessableInput:
    text = str(exc)
    match = _AT_PATH.search(text)
    if match:
        return UnprocessableInput(text, field=match.group("path"))
    if isinstance(exc, msgspec.DecodeError):
        return UnprocessableInput(f"body is not valid JSON: {text}", field="$")
    return UnprocessableInput(text, field="$")


def decode_json(body: bytes, kind: type[T]) -> T:
    """Strictly decode a request body into ``kind``; raise 422 naming the field on failure."""
    try:
        return msgspec.json.decode(body, type=kind, strict=True)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise field_error(exc) from None


def internal_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    """An unexpected error: log it (scrubbed) and answer 500 without internals."""
    log.error("unhandled_error", path=request.url.path, error=secrets_registry.scrub(repr(exc)))
    return Response({"status_code": 500, "detail": "internal error"}, status_code=500)
