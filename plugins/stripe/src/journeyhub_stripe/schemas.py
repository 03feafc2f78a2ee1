"""The Stripe connection's config and credentials, validated when a connection is saved.

A ``ValueError`` raised in ``__post_init__`` becomes a 422 naming the field, so messages say
what is wrong without ever repeating the value (it may be a secret).
"""

from __future__ import annotations

import msgspec

SECRET_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_live_", "rk_test_")


class StripeConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    api_base: str = "https://api.stripe.com"
    # How far the Stripe-Signature timestamp may be from our clock. Stripe's libraries use
    # 300 s; a longer window widens the replay window, a shorter one rejects clock skew.
    tolerance_seconds: int = 300
    timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not self.api_base.startswith(("https://", "http://")):
            raise ValueError("api_base must start with https:// (or http:// for a sandbox)")
        self.api_base = self.api_base.rstrip("/")
        if not 1 <= self.tolerance_seconds <= 3600:
            raise ValueError("tolerance_seconds must be between 1 and 3600")
        if not 0 < self.timeout_seconds <= 60:
            raise ValueError("timeout_seconds must be in (0, 60]")


def _is_webhook_secret(value: str) -> bool:
    return value.startswith("whsec_") and len(value) > len("whsec_")


class StripeCredentials(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The endpoint's signing secret from the Dashboard ("whsec_…"), used whole as the HMAC key.
    webhook_secret: str
    # Secrets still accepted while Stripe rolls the endpoint's secret (it signs with both).
    previous_webhook_secrets: list[str] = []
    # Only for catch-up (pull) and the connection test: a restricted key with Events read.
    api_key: str | None = None

    def __post_init__(self) -> None:
        if not _is_webhook_secret(self.webhook_secret):
            raise ValueError("webhook_secret must be the endpoint's signing secret: whsec_…")
        if not all(_is_webhook_secret(s) for s in self.previous_webhook_secrets):
            raise ValueError("previous_webhook_secrets must each be a signing secret: whsec_…")
        if self.api_key is not None:
            if self.api_key.startswith("pk_"):
                raise ValueError("api_key is a publishable key; use a secret or restricted key")
            if not self.api_key.startswith(SECRET_KEY_PREFIXES):
                raise ValueError("api_key must be a Stripe secret (sk_…) or restricted (rk_…) key")

    @property
    def webhook_secrets(self) -> list[str]:
        return [self.webhook_secret, *self.previous_webhook_secrets]
