"""Per-connection rate limiting (aiolimiter), from the plugin's declared vendor limit, with an
override in the connection's config (``rate_limit_per_second``), and pauses after a 429.

The limiter lives in this process; with N worker processes, give each ``1/N`` of the vendor's
limit through the override (docs/deployment.md). A 429's ``Retry-After`` pauses the connection
for every worker, through the breaker state in the store.
"""

from __future__ import annotations

from aiolimiter import AsyncLimiter

from journeyhub.model import Connection, ConnectorInfo

# A little under the vendor's limit: their window and our leaky bucket do not line up exactly.
SAFETY = 0.95


class RateLimits:
    def __init__(self) -> None:
        self._limiters: dict[str, tuple[float, AsyncLimiter]] = {}

    def per_second(self, connection: Connection, info: ConnectorInfo) -> float | None:
        override = connection.options.get("rate_limit_per_second")
        if isinstance(override, int | float) and override > 0:
            return float(override)
        if info.rate_limit is None:
            return None
        return info.rate_limit.requests / info.rate_limit.per_seconds

    def limiter(self, connection: Connection, info: ConnectorInfo) -> AsyncLimiter | None:
        rate = self.per_second(connection, info)
        if rate is None:
            return None
        current = self._limiters.get(connection.id)
        if current is None or current[0] != rate:
            # Capacity 1 per 1/rate s: no bursts above the vendor's limit in any window.
            period = 1.0 / (rate * SAFETY)
            current = (rate, AsyncLimiter(1, period))
            self._limiters[connection.id] = current
        return current[1]
