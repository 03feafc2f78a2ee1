"""Per-tenant rate limit on ``POST /v1/events``: a token bucket per tenant, counted in events.

Each tenant's bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a
request for ``n`` events takes ``n`` tokens at once or none. When the bucket is short, the
request is refused with 429 and a ``Retry-After`` that says when ``n`` tokens will be there,
before anything is published, so a refused request stores nothing.

Why not aiolimiter (which the kernel uses for vendors' limits): its ``AsyncLimiter`` is built to
*wait* for capacity (``acquire`` sleeps), and the time until enough capacity exists is not part
of its public API. Here a request must be answered at once, with that time; a bucket of a few
lines does it exactly, takes its tokens synchronously (no ``await`` between the check and the
take, so concurrent requests on the loop cannot both spend the same tokens), and keeps one
small entry per tenant that has sent events.

The buckets live in the gateway process: with N gateway processes a tenant may send up to N
times the rate. Set ``JOURNEYHUB_EVENTS_RATE_PER_SECOND`` to the per-process share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from journeyhub.settings import Settings

STATE_KEY = "events_rate_limiter"


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """One token bucket per key (a tenant id). ``rate`` tokens/s, at most ``burst`` tokens."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, amount: int) -> float:
        """Take ``amount`` tokens for ``key``: 0.0 when taken, else the seconds to wait before
        ``amount`` tokens are there (nothing is taken then). ``amount`` must not exceed
        ``burst``: such a request could never pass."""
        if amount > self.burst:
            raise ValueError(f"{amount} tokens can never be taken from a bucket of {self.burst:g}")
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, updated=now)
            self._forget_full(now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.updated = now
        if bucket.tokens >= amount:
            bucket.tokens -= amount
            return 0.0
        return (amount - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those now and then so
        # tenants that stopped sending do not accumulate.
        if len(self._buckets) < 10_000:
            return
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[key]


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` in whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_seconds)))


def events_limiter(state: Any, settings: Settings) -> TokenBuckets | None:
    """The app's events limiter, made on first use; None when the limit is off (rate 0)."""
    if settings.events_rate_per_second <= 0:
        return None
    limiter = state.get(STATE_KEY) if hasattr(state, "get") else None
    if limiter is None:
        limiter = TokenBuckets(
            rate=float(settings.events_rate_per_second), burst=float(settings.events_burst)
        )
        state[STATE_KEY] = limiter
    return limiter
