"""The HTTP client connectors call their vendors with: the ``http`` argument of vendor hooks.

One client per process, with its connection pool, per-call timeouts, and the two things every
connector needs decided the same way: what a failed call means for a retry (``errors``), and
what a vendor's answer means (``VendorResponse.error``, ``retry_after``).

aiohttp is underneath, chosen by measurement (``bench/http_client``): about a quarter of
httpx's CPU per call with one call in flight and a tenth with 32 or more, whose connection
pool rescans every pooled connection on each request. Connectors do not see it: they get
``VendorResponse``s and the kernel's errors.

A failed call raises one of two errors, because the push worker must know whether a retry can
make a second effect at the vendor:

- ``VendorUnreachable``: the request never reached the vendor (no connection could be made):
  retrying is safe.
- ``OutcomeUnknown``: the request was sent and no answer came (a timeout, the connection
  dropped): the vendor may have carried it out, so the retry waits and looks up first.

Error messages name the method and the host only: a URL can carry a secret (a webhook token,
a catch-hook path) and messages end up in logs, dead letters and API answers.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import msgspec

from journeyhub import metrics, tracing
from journeyhub.errors import ConnectorError, OutcomeUnknown, PermanentError, VendorUnreachable
from journeyhub.errors import classify_status as _classify

JSON = "application/json"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date; None when
    absent or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class VendorResponse:
    """A vendor's answer, read in full."""

    __slots__ = ("content", "headers", "method", "status_code", "url")

    def __init__(
        self, method: str, url: str, status_code: int, headers: Mapping[str, str], content: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status_code = status_code
        self.headers = headers  # case-insensitive
        self.content = content

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not JSON."""
        return msgspec.json.decode(self.content)

    def retry_after(self) -> float | None:
        return retry_after(self.headers.get("retry-after"))

    def error(self, message: str) -> ConnectorError:
        """What this (unsuccessful) answer means for the task: 429 waits ``Retry-After``, 401
        refreshes the credentials, 408/409/5xx retry, other 4xx are permanent."""
        return _classify(self.status_code, message, self.retry_after())


def _where(method: str, url: str) -> str:
    return f"{method} to {urlsplit(url).hostname or 'the vendor'}"


def _query(params: Mapping[str, Any] | Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """Query parameters as strings (None left out, booleans as true/false); pairs may repeat
    a key."""
    pairs = params.items() if isinstance(params, Mapping) else params
    return [
        (key, ("true" if value else "false") if isinstance(value, bool) else str(value))
        for key, value in pairs
        if value is not None
    ]


class VendorHttp:
    def __init__(
        self,
        *,
        timeout: float = 10.0,
        connect_timeout: float = 5.0,
        limit: int = 200,
        user_agent: str = "journeyhub",
    ) -> None:
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.limit = limit
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running event loop it belongs to.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.limit, ttl_dns_cache=300),
                cookie_jar=aiohttp.DummyCookieJar(),  # vendors' cookies stay with each call
                headers={"user-agent": self.user_agent},
                json_serialize=lambda value: msgspec.json.encode(value).decode(),
            )
        return self._session

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> VendorResponse:
        """Send one request and read the whole answer. ``json`` is encoded with msgspec,
        ``data`` as a form, ``content`` as is. Raises ``VendorUnreachable`` or
        ``OutcomeUnknown`` when no answer came; any answer, error statuses included, is
        returned (``VendorResponse.error`` says what it means)."""
        method = method.upper()
        read = self.timeout if timeout is None else timeout
        # ``connect`` covers the wait for a pooled connection too: a call that never got one
        # was never sent, and fails as VendorUnreachable like a refused connection.
        limits = aiohttp.ClientTimeout(
            total=read + self.connect_timeout,
            connect=self.connect_timeout,
            sock_connect=min(self.connect_timeout, read),
            sock_read=read,
        )
        sent_headers = dict(headers or {})
        body: Any = content
        if json is not None:
            body = msgspec.json.encode(json)
            sent_headers.setdefault("content-type", JSON)
        elif data is not None:
            body = aiohttp.FormData({k: str(v) for k, v in data.items() if v is not None})
        self._count(url)
        span = None
        if tracing.ENABLED:  # a client span; its traceparent goes on the request
            span = tracing.client_span(method, url, sent_headers)
        try:
            async with self._client().request(
                method,
                url,
                params=_query(params) if params else None,
                data=body,
                headers=sent_headers,
                timeout=limits,
                allow_redirects=False,
            ) as response:
                payload = await response.read()
                if span is not None:
                    tracing.vendor_answered(span, response.status)
                return VendorResponse(method, url, response.status, response.headers, payload)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise VendorUnreachable(
                f"{_where(method, url)} failed: could not connect ({type(exc).__name__})"
            ) from exc
        except aiohttp.InvalidURL as exc:
            raise PermanentError(f"{_where(method, url)} failed: invalid request") from exc
        except TimeoutError as exc:
            raise OutcomeUnknown(
                f"{_where(method, url)} timed out: no answer within {read:g}s (the vendor may "
                "have carried it out)"
            ) from exc
        except aiohttp.ClientError as exc:
            raise OutcomeUnknown(
                f"{_where(method, url)}: the connection failed before the answer "
                f"({type(exc).__name__}; the vendor may have carried it out)"
            ) from exc
        finally:
            if span is not None:
                tracing.end(span, sys.exc_info()[1])

    async def get(self, url: str, **kwargs: Any) -> VendorResponse:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> VendorResponse:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> VendorResponse:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> VendorResponse:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> VendorResponse:
        return await self.request("DELETE", url, **kwargs)

    def _count(self, url: str) -> None:
        parts = urlsplit(url)
        host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
        metrics.child(metrics.vendor_requests, host).inc()

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def __aenter__(self) -> VendorHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
