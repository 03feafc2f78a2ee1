"""Bearer tenant API keys and role guards for ``/v1/*``.

``admin`` may do everything; ``ingest`` may send events and read; ``read`` may only read.
A missing or unknown key is a 401, a key without the role a 403.
"""

from __future__ import annotations

from collections.abc import Callable

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from journeyhub.store.keys import Principal

GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "ingest", "read"}),
    "ingest": frozenset({"ingest", "read"}),
    "read": frozenset({"read"}),
}


class BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise NotAuthorizedException(
                "missing API key: send 'Authorization: Bearer <tenant key>'"
            )
        hub = connection.app.state.hub
        principal = await hub.store.tenants.authenticate(presented.strip())
        if principal is None:
            raise NotAuthorizedException("unknown or revoked API key")
        return AuthenticationResult(user=principal, auth=principal.key_id)


def require(role: str) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard that lets a request through when its key's role grants ``role``."""

    def guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal: Principal = connection.user
        if role not in GRANTS.get(principal.role, frozenset()):
            raise PermissionDeniedException(
                f"this key has the {principal.role!r} role; this call needs {role!r}"
            )

    guard.__name__ = f"require_{role}"
    return guard
