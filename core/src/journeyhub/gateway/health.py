"""Liveness, readiness and metrics: open to the load balancer and the scraper, no key needed."""

from __future__ import annotations

import asyncio

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from journeyhub.hub import Hub


class HealthController(Controller):
    path = "/"
    tags = ["health"]

    @get("/health", operation_id="health", exclude_from_auth=True)
    async def health(self) -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @get("/ready", operation_id="ready", exclude_from_auth=True)
    async def ready(self, hub: NamedDependency[Hub]) -> Response[dict[str, object]]:
        """Store and bus reachable; 503 naming the part that is not."""
        checks: dict[str, str] = {}

        async def check(name: str, probe: object) -> None:
            try:
                await asyncio.wait_for(probe, timeout=3.0)  # type: ignore[arg-type]
                checks[name] = "ok"
            except Exception as exc:
                checks[name] = f"unavailable: {type(exc).__name__}"

        await asyncio.gather(check("store", hub.store.ping()), check("bus", hub.bus.ping()))
        ok = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ready" if ok else "not ready", "checks": checks},
            status_code=HTTP_200_OK if ok else HTTP_503_SERVICE_UNAVAILABLE,
        )
