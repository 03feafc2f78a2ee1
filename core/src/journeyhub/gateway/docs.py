"""What the OpenAPI document says about request bodies and error answers.

Request bodies: the JSON APIs decode their bodies strictly with msgspec (no coercion) and answer
422 naming the field (``$.client.email``); Litestar's own body decoding is lenient and answers
400. :class:`StrictJSON` is a DTO that keeps our decoding *and* lets Litestar document the body:
a handler declares ``data: SomeStruct`` with ``dto=StrictJSON, return_dto=None``; the schema is
generated from the annotation, and the body is decoded by :func:`decode_json`. An empty body
reaches the handler as ``None`` when ``data`` defaults to ``None`` (the handler answers 422 or
applies defaults), so the annotation may add ``| None`` without changing what is documented.

Error answers: every error body is ``{"status_code", "detail", "extra"?, "reason"?}``
(:class:`Problem`); :func:`problems` documents the statuses a route can answer.
"""

from __future__ import annotations

import types
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, ClassVar, Union, get_args, get_origin

import msgspec
from litestar import Litestar
from litestar.dto import AbstractDTO, DTOFieldDefinition
from litestar.enums import ParamType
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
    Schema,
)
from litestar.routes import HTTPRoute
from litestar.typing import FieldDefinition

from journeyhub.gateway.auth import RoleGuard
from journeyhub.gateway.errors import decode_json

_DESCRIPTIONS = {
    400: "Bad request: a path or query parameter is not valid",
    401: "Missing, unknown or revoked API key (webhooks: bad, missing or stale signature)",
    403: "None of the key's roles allows this call (`detail` names the role it needs)",
    404: "No such record for this tenant (another tenant's record is not found either)",
    413: "Request body too large",
    422: "Invalid input; `extra.errors[].field` names the field (e.g. `$.client.email`)",
    429: "Rate limited; retry after `Retry-After` seconds (nothing was stored)",
    503: "Not stored: the bus or the store is unavailable; retry",
}


class Problem(msgspec.Struct, kw_only=True):
    """An error answer. ``extra`` holds field errors (422) or Litestar's details (400);
    ``reason`` says why a webhook was rejected (``bad_signature``, ``stale``, …)."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[dict[str, Any]] | None = None
    reason: str | None = None


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for the error statuses ``codes``."""
    return {
        code: ResponseSpec(
            data_container=Problem, description=_DESCRIPTIONS[code], generate_examples=False
        )
        for code in codes
    }


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = tuple(a for a in get_args(annotation) if a is not type(None))
        if len(args) == 1:
            return args[0]
        return Union[args]  # noqa: UP007 - built from a tuple of types
    return annotation


class StrictJSON(AbstractDTO[Any]):
    """Documents the ``data`` annotation; decodes the body strictly (422 naming the field)."""

    _types: ClassVar[dict[str, Any]] = {}

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def is_supported_model_type_field(cls, field_definition: FieldDefinition) -> bool:
        return False  # never used for answers: they are encoded as usual

    @classmethod
    def create_for_field_definition(
        cls, field_definition: FieldDefinition, handler_id: str, backend_cls: Any = None
    ) -> None:
        if field_definition.name == "data":
            cls._types[handler_id] = field_definition.annotation

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any
    ) -> Any:
        documented = _without_none(field_definition.annotation)
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(documented))

    def decode_bytes(self, value: bytes) -> Any:
        # The documented type: JSON ``null`` is not a body (no body at all is None).
        kind = _without_none(self._types[self.asgi_connection.route_handler.handler_id])
        return decode_json(value, kind)

    def decode_builtins(self, value: dict[str, Any]) -> Any:
        kind = _without_none(self._types[self.asgi_connection.route_handler.handler_id])
        return decode_json(msgspec.json.encode(value), kind)


@dataclass
class OptionalBody(Operation):
    """An operation whose documented body may be left out (its fields all have defaults)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False


# Where each vendor puts its signature; a webhook carries the ones of its vendor.
_WEBHOOK_HEADERS = {
    "stripe-signature": "Stripe: `t=<unix seconds>,v1=<hex HMAC-SHA256>`",
    "svix-id": "Resend (Svix): the message id",
    "svix-timestamp": "Resend (Svix): unix seconds",
    "svix-signature": "Resend (Svix): `v1,<base64>` items",
    "webhook-id": "Standard Webhooks (the `webhook` connector): the message id",
    "webhook-timestamp": "Standard Webhooks: unix seconds",
    "webhook-signature": "Standard Webhooks: `v1,<base64>` items",
    "x-journeyhub-token": "The connection's token (not its signing secret): unsigned senders",
    "x-goog-channel-token": "Google Calendar watch channels: the channel's token",
}
_WEBHOOK_QUERY = {
    "token": "The connection's secret in the URL, for senders that cannot set a header",
    "trigger": "Zapier bridge: the trigger's name, when the body does not carry it",
}


@dataclass
class WebhookOperation(Operation):
    """``POST /webhooks/{vendor}/{connection_id}``: the body is the vendor's, read raw (up to
    ``JOURNEYHUB_WEBHOOK_MAX_BYTES``) and checked by the vendor's plugin, so it is documented
    as any JSON object or form, with the signature headers the vendors use."""

    def __post_init__(self) -> None:
        anything = OpenAPIMediaType(schema=Schema(type=OpenAPIType.OBJECT))
        self.request_body = RequestBody(
            content={"application/json": anything, "application/x-www-form-urlencoded": anything},
            description="The vendor's event, exactly as the vendor sends it",
            required=False,
        )
        extra = [_optional(name, ParamType.HEADER, text) for name, text in _WEBHOOK_HEADERS.items()]
        extra += [_optional(name, ParamType.QUERY, text) for name, text in _WEBHOOK_QUERY.items()]
        self.parameters = [*(self.parameters or []), *extra]


def _optional(name: str, where: ParamType, description: str) -> Parameter:
    return Parameter(
        name=name,
        param_in=where,
        required=False,
        schema=Schema(type=OpenAPIType.STRING),
        description=description,
    )


def document_common_errors(app: Litestar) -> Litestar:
    """Add the answers that middleware and guards give to every ``/v1`` operation: 401 (no
    or a bad key) and 403 (the role), 404 where a path names a record, 413 where there is a
    body. Done on the generated document, so a new route is covered without a line of its
    own; a route documents its other errors itself (:func:`problems`)."""
    openapi = app.openapi_schema
    problem = Reference(ref="#/components/schemas/Problem")
    if openapi.components.schemas is None or "Problem" not in openapi.components.schemas:
        return app  # no route uses problems(): nothing to point at
    roles = needed_roles(app)
    for path, item in (openapi.paths or {}).items():
        if not path.startswith("/v1/"):
            continue
        for method in ("get", "post", "put", "patch", "delete"):
            operation: Operation | None = getattr(item, method)
            if operation is None:
                continue
            codes = [401, 403]
            if "{" in path:
                codes.append(404)
            if operation.request_body is not None:
                codes.append(413)
            responses = operation.responses if operation.responses is not None else {}
            for code in codes:
                responses.setdefault(
                    str(code),
                    OpenAPIResponse(
                        description=_DESCRIPTIONS[code],
                        content={"application/json": OpenAPIMediaType(schema=problem)},
                    ),
                )
            refused = responses["403"]
            role = roles.get((method.upper(), path))
            if role is not None and isinstance(refused, OpenAPIResponse):
                refused.description = (
                    f"The call needs the `{role}` role: none of the key's grants it"
                )
            operation.responses = responses
    return app


def needed_roles(app: Litestar) -> dict[tuple[str, str], str]:
    """The role each operation's guard needs (``require(role)``), by method and path as the
    OpenAPI document writes them."""
    found: dict[tuple[str, str], str] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for guard in handler.resolve_guards():
                if isinstance(guard, RoleGuard):
                    for method in handler.http_methods:
                        found[(method, route.path_format)] = guard.role
    return found
