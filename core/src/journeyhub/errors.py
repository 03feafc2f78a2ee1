"""Errors a connector raises, so the kernel knows whether to retry, wait, or give up.

The push worker turns these into bus actions: retryable → redelivery with backoff,
rate limited → redelivery after Retry-After, permanent → dead letters at once, endpoint
gone → dead letters at once and the connection disabled.
"""

from __future__ import annotations

from typing import Any


class ConnectorError(Exception):
    """Base class; ``vendor_status`` is the vendor's HTTP status when there was one.

    ``records``: what the failed push had already written or found at the vendor (a contact
    made before the job failed), as ``SyncedRecord``s. The kernel keeps them like a success's,
    so the retry, or the client's next task, knows them and does not create them again."""

    retryable: bool = True

    def __init__(self, message: str, *, vendor_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.vendor_status = vendor_status
        self.records: list[Any] = []


class RetryableError(ConnectorError):
    """A transient failure: 5xx, 408, timeouts, dropped connections."""


class VendorUnreachable(RetryableError):
    """No connection to the vendor could be made: the request never reached it."""


class OutcomeUnknown(RetryableError):
    """The request was sent and no answer came (a timeout, a dropped connection): the vendor
    may have carried it out. The retry waits a little and looks up before it creates."""


class RateLimited(RetryableError):
    """429: wait ``retry_after`` seconds before the next call on this connection."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, vendor_status: int | None = 429
    ) -> None:
        super().__init__(message, vendor_status=vendor_status)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    """Retrying cannot help: a 4xx other than 408/409/429, a validation error."""

    retryable = False


class EndpointGone(PermanentError):
    """The receiving endpoint said it is gone for good (410 Gone) and wants nothing more from
    us. The task goes to the dead letters; the kernel disables the connection, audits it and
    shows it in the connection's health, so nothing more is sent until a person re-enables
    it. A connector raises this only where 410 means the endpoint, not one record (a deleted
    calendar event is a 410 for that event alone)."""


class AuthExpired(RetryableError):
    """The access token was refused (401); refresh it and retry."""


class ReauthRequired(PermanentError):
    """The credentials are revoked or expired for good; a person must reconnect."""


class WebhookRejected(Exception):
    """A webhook failed verification. ``reason`` is shown to the caller: it says what was wrong
    (``bad_signature``, ``stale``, ``missing_signature``, ``bad_token``), never the secret."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ConnectorNotFound(LookupError):
    """No loaded plugin owns this vendor."""


def classify_status(status: int, message: str, retry_after: float | None = None) -> ConnectorError:
    """Map a vendor HTTP status to the error the kernel acts on."""
    if status == 429:
        return RateLimited(message, retry_after=retry_after)
    if status == 401:
        return AuthExpired(message, vendor_status=status)
    if status in (408, 409) or status >= 500:
        return RetryableError(message, vendor_status=status)
    return PermanentError(message, vendor_status=status)
