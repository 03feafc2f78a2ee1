"""The connection's config and credentials schemas. A ``ValueError`` in ``__post_init__`` is a
422 naming the field when a connection is saved: a template with a syntax error is refused then,
not by dead-lettering every email later. Messages never repeat a credential's value."""

from __future__ import annotations

import re

import msgspec
from journeyhub import signing
from journeyhub.kit import Config, check_timeout, check_url

from journeyhub_resend.templates import compile_check

# "addr@domain.tld" or "Display Name <addr@domain.tld>": the two forms Resend accepts in ``from``.
_ADDRESS = r"[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+"
ADDRESS_RE = re.compile(rf"^{_ADDRESS}$")
FROM_RE = re.compile(rf"^(?:{_ADDRESS}|[^<>]*<\s*{_ADDRESS}\s*>)$")


def valid_secret(secret: object) -> bool:
    """A usable Svix signing secret: ``whsec_<base64>``."""
    return isinstance(secret, str) and secret.startswith("whsec_") and signing.valid_secret(secret)


def valid_address(value: str) -> bool:
    return bool(ADDRESS_RE.match(value.strip()))


class Branding(Config):
    """The wedding vendor's own look, available to templates as ``vendor``."""

    vendor_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None  # e.g. "#b08d57"
    signature: str | None = None  # plain text, e.g. "Anna & the Lumière team"


class EmailTemplate(Config):
    """Jinja2 sources. ``html`` is autoescaped; ``subject`` and ``text`` are not."""

    subject: str
    html: str
    text: str | None = None


class ResendConfig(Config):
    from_address: str
    api_base: str = "https://api.resend.com"
    reply_to: str | None = None
    branding: Branding = msgspec.field(default_factory=Branding)
    templates: dict[str, EmailTemplate] = {}
    tolerance_seconds: float = 300.0  # webhook timestamp tolerance (Svix uses ±5 min)
    timeout_seconds: float = 15.0  # per Resend API call

    def __post_init__(self) -> None:
        if not FROM_RE.match(self.from_address.strip()):
            raise ValueError("from_address must be 'addr@domain' or 'Name <addr@domain>'")
        if self.reply_to is not None and not valid_address(self.reply_to):
            raise ValueError("reply_to must be an email address")
        check_url("api_base", self.api_base)
        self.api_base = self.api_base.rstrip("/")
        check_timeout("tolerance_seconds", self.tolerance_seconds, 3600)
        check_timeout("timeout_seconds", self.timeout_seconds, 120)
        for name, template in self.templates.items():
            if not name.strip():
                raise ValueError("template names must not be empty")
            for part, source in msgspec.structs.asdict(template).items():
                if source is not None and (problem := compile_check(source, html=part == "html")):
                    raise ValueError(f"templates.{name}.{part} does not compile: {problem}")


class ResendCredentials(Config):
    api_key: str  # "re_…"; sending access is enough to push
    webhook_secret: str | None = None  # the endpoint's Svix signing secret, "whsec_…"
    previous_webhook_secrets: list[str] = []  # still accepted during a rotation

    def __post_init__(self) -> None:
        if not self.api_key.startswith("re_") or len(self.api_key) < 8:
            raise ValueError("api_key must be a Resend API key (it starts with 're_')")
        if self.webhook_secret is not None and not valid_secret(self.webhook_secret):
            raise ValueError("webhook_secret must be a Svix signing secret: whsec_<base64>")
        if not all(valid_secret(secret) for secret in self.previous_webhook_secrets):
            raise ValueError("previous_webhook_secrets must hold Svix secrets: whsec_<base64>")

    @property
    def webhook_secrets(self) -> list[str]:
        """Current secret first, then the ones being rotated out."""
        current = [self.webhook_secret] if self.webhook_secret else []
        return current + self.previous_webhook_secrets
