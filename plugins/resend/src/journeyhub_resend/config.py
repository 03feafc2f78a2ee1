"""The connection's config and credentials schemas. A ``ValueError`` in ``__post_init__`` is a
422 naming the field when a connection is saved: a template with a syntax error is refused then,
not by dead-lettering every email later. Messages never repeat a credential's value."""

from __future__ import annotations

import re

import msgspec
from journeyhub import signing
from journeyhub.kit import Config, check_timeout, check_url

from journeyhub_resend.templates import compile_check, locale_of

# "addr@domain.tld" or "Display Name <addr@domain.tld>": the two forms Resend accepts in ``from``.
_ADDRESS = r"[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+"
ADDRESS_RE = re.compile(rf"^{_ADDRESS}$")
FROM_RE = re.compile(rf"^(?:{_ADDRESS}|[^<>]*<\s*{_ADDRESS}\s*>)$")
# Colours reach templates' ``style`` attributes, where autoescaping does not stop CSS: hex only.
COLOR_RE = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


def valid_secret(secret: object) -> bool:
    """A usable Svix signing secret: ``whsec_<base64>``."""
    return isinstance(secret, str) and secret.startswith("whsec_") and signing.valid_secret(secret)


def valid_address(value: str) -> bool:
    return bool(ADDRESS_RE.match(value.strip()))


def check_language(name: str, tag: str) -> None:
    """A BCP 47 tag Babel (CLDR) has data for, e.g. ``fr`` or ``de-CH``."""
    if locale_of(tag) is None:
        raise ValueError(f"{name} must be a BCP 47 language tag with locale data")


class Branding(Config):
    """The wedding vendor's own look, available to templates as ``vendor``."""

    vendor_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None  # e.g. "#b08d57"
    background_color: str | None = None
    text_color: str | None = None
    signature: str | None = None  # plain text, e.g. "Anna & the Lumière team"

    def __post_init__(self) -> None:
        if self.logo_url is not None:
            check_url("branding.logo_url", self.logo_url)
        for part in ("accent_color", "background_color", "text_color"):
            if (value := getattr(self, part)) is not None and not COLOR_RE.match(value):
                raise ValueError(f"branding.{part} must be a hex colour such as #b08d57")


class TemplateParts(Config):
    """Jinja2 sources. ``html`` is autoescaped; ``subject`` and ``text`` are not."""

    subject: str
    html: str
    text: str | None = None


class EmailTemplate(TemplateParts):
    """The parts in the connection's ``language``, and ``translations`` by BCP 47 tag."""

    translations: dict[str, TemplateParts] = {}


class ResendConfig(Config):
    from_address: str | None = None  # required to send; an inbound-only connection has none
    api_base: str = "https://api.resend.com"
    reply_to: str | None = None
    language: str = "en"  # the templates' own language, for clients without a translation
    branding: Branding = msgspec.field(default_factory=Branding)
    templates: dict[str, EmailTemplate] = {}
    unsubscribe_url: str | None = None  # a template giving the one-click https URL
    unsubscribe_mailto: str | None = None  # an address that unsubscribes whoever writes to it
    tolerance_seconds: float = 300.0  # webhook timestamp tolerance (Svix uses ±5 min)
    timeout_seconds: float = 15.0  # per Resend API call
    # Where the tenant's incidents are mailed (docs/operations.md); unset: none are.
    operations_address: str | None = None

    def __post_init__(self) -> None:
        if self.from_address is not None and not FROM_RE.match(self.from_address.strip()):
            raise ValueError("from_address must be 'addr@domain' or 'Name <addr@domain>'")
        for name in ("reply_to", "unsubscribe_mailto", "operations_address"):
            if (value := getattr(self, name)) is not None and not valid_address(value):
                raise ValueError(f"{name} must be an email address")
        if self.unsubscribe_url is not None:
            if not self.unsubscribe_url.startswith("https://"):  # RFC 8058: one-click is HTTPS
                raise ValueError("unsubscribe_url must start with https://")
            if problem := compile_check(self.unsubscribe_url, html=False):
                raise ValueError(f"unsubscribe_url does not compile: {problem}")
        check_language("language", self.language)
        check_url("api_base", self.api_base)
        self.api_base = self.api_base.rstrip("/")
        check_timeout("tolerance_seconds", self.tolerance_seconds, 3600)
        check_timeout("timeout_seconds", self.timeout_seconds, 120)
        for name, template in self.templates.items():
            if not name.strip():
                raise ValueError("template names must not be empty")
            _check_parts(f"templates.{name}", template)
            for tag, parts in template.translations.items():
                check_language(f"templates.{name}.translations[{tag!r}]", tag)
                _check_parts(f"templates.{name}.translations.{tag}", parts)


def _check_parts(where: str, parts: TemplateParts) -> None:
    for part in ("subject", "html", "text"):
        source = getattr(parts, part)
        if source is not None and (problem := compile_check(source, html=part == "html")):
            raise ValueError(f"{where}.{part} does not compile: {problem}")


class ResendCredentials(Config):
    api_key: str | None = None  # "re_…", to send (sending access is enough); none: inbound only
    webhook_secret: str | None = None  # the endpoint's Svix signing secret, "whsec_…"
    previous_webhook_secrets: list[str] = []  # still accepted during a rotation

    def __post_init__(self) -> None:
        if self.api_key is None and self.webhook_secret is None:
            raise ValueError("give api_key (to send), webhook_secret (to receive), or both")
        key = self.api_key
        if key is not None and (not key.startswith("re_") or len(key) < 8):
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
