"""Bearer tenant API keys and role guards for ``/v1/*``.

A role grants only what it names: ``ingest`` sends journey events (``POST /v1/events``) and
nothing else; ``read`` reads; ``admin`` administers (creates, changes and deletes connections,
replays, resends, erases) and reads what it changes. A key may carry several roles and may do
what any of them grants (``store/tenants.GRANTS``). Every ``/v1`` route names the role it needs
with ``guards=[require(role)]``. A missing or unknown key is a 401, a key without the role a 403.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from journeyhub.gateway.answers import Answer, problem
from journeyhub.services.keys import authenticate
from journeyhub.store.tenants import ROLES, Principal


class KeyCache:
    """Keys recently verified against the store, for a few seconds: every request of a busy
    client would otherwise cost a database round trip. A revoked key stops working within
    ``ttl`` seconds (in every gateway process). Keyed by the key's hash, never the key."""

    def __init__(self, ttl: float = 5.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[str, tuple[float, Principal]] = {}

    async def principal(self, hub: Any, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode()).hexdigest()
        now = time.monotonic()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = await authenticate(hub.store, presented)
        if principal is not None:
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[digest] = (now + self.ttl, principal)
        return principal


def key_cache(state: Any) -> KeyCache:
    """The app's key cache, made on first use."""
    if "key_cache" not in state:
        state.key_cache = KeyCache()
    return state.key_cache


def role_problem(principal: Principal, role: str) -> Answer | None:
    """The 403 answer when none of the key's roles grants ``role``; None when one does."""
    if principal.may(role):
        return None
    held = ", ".join(principal.roles) or "none"
    return problem(403, f"this call needs {role!r}; this key's roles: {held}")


class BearerKeyMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise NotAuthorizedException(
                "missing API key: send 'Authorization: Bearer <tenant key>'"
            )
        state = connection.app.state
        principal = await key_cache(state).principal(state.hub, presented.strip())
        if principal is None:
            raise NotAuthorizedException("unknown or revoked API key")
        return AuthenticationResult(user=principal, auth=principal.key_id)


@dataclass(frozen=True)
class RoleGuard:
    """The guard :func:`require` makes; ``role`` says which role its route needs (the
    OpenAPI document and the security tests read it). ``async``: Litestar runs a plain
    function guard in a worker thread, per request."""

    role: str

    async def __call__(self, connection: ASGIConnection, _: BaseRouteHandler) -> None:
        principal = connection.scope.get("user")
        if not isinstance(principal, Principal):  # a request the key middleware let through
            raise NotAuthorizedException(
                "missing API key: send 'Authorization: Bearer <tenant key>'"
            )
        if (refused := role_problem(principal, self.role)) is not None:
            raise PermissionDeniedException(refused.content["detail"])


def require(role: str) -> RoleGuard:
    """A guard that lets a request through when one of its key's roles grants ``role``
    (``admin``, ``ingest`` or ``read``): ``guards=[require("read")]``."""
    if role not in ROLES:
        raise ValueError(f"no role {role!r}: one of {', '.join(ROLES)}")
    return RoleGuard(role)
