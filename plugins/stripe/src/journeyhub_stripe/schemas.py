"""The Stripe connection's config and credentials. A refusal names the field, never the value
(it may be a secret)."""

from __future__ import annotations

from typing import Annotated

from journeyhub.kit import Config, check_url
from msgspec import Meta

# An endpoint's signing secret from the Dashboard, used whole as the HMAC key.
WebhookSecret = Annotated[str, Meta(pattern="^whsec_.")]


class StripeConfig(Config):
    api_base: str = "https://api.stripe.com"
    # How far the Stripe-Signature timestamp may be from our clock. Stripe's libraries use
    # 300 s; a longer window widens the replay window, a shorter one rejects clock skew.
    tolerance_seconds: Annotated[int, Meta(ge=1, le=3600)] = 300
    timeout_seconds: Annotated[float, Meta(gt=0, le=60)] = 10.0

    def __post_init__(self) -> None:
        check_url("api_base", self.api_base)
        self.api_base = self.api_base.rstrip("/")


class StripeCredentials(Config):
    webhook_secret: WebhookSecret
    # Secrets still accepted while Stripe rolls the endpoint's secret (it signs with both).
    previous_webhook_secrets: list[WebhookSecret] = []
    # Only for catch-up (pull) and the connection test: a secret (sk_) or, better, restricted
    # (rk_) key with Events read; never a publishable key (pk_).
    api_key: Annotated[str, Meta(pattern="^[sr]k_(live|test)_")] | None = None

    @property
    def webhook_secrets(self) -> list[str]:
        return [self.webhook_secret, *self.previous_webhook_secrets]
