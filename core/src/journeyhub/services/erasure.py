"""Who a client is, as the hub can tell it in what it keeps: the client's id, and the email
addresses, names and phone numbers learnt from records known to be the client's. Erasure
(``services/clients.py``) finds with it every record that is about the client or mentions one
of those, in the store and on the bus.

Identifiers are learnt only from places that name the client for sure: a journey event's
``client`` (with the client's id), a trigger's ``email`` when the trigger's ``client_id`` is
the client's, a sync link whose ``our_id`` is the client's. Any other address in such a record
(the studio's sender address, a vendor's) is not taken for the client's: it would erase other
clients' records."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

import msgspec

ERASED = "[erased]"
CLIENT_FIELDS = ("email", "name", "phone")
# Shorter names and numbers would match unrelated text (a first name alone, a short code).
MIN_NAME = 4
MIN_PHONE_DIGITS = 7


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def strings(value: Any) -> Iterator[str]:
    """Every string in a decoded JSON value: keys and values, at any depth."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def decode(raw: bytes) -> Any:
    """A stored payload (a bus message, a dead letter) as JSON, with a stored webhook's
    ``body`` (bytes, which msgspec writes as base64) decoded as well: a vendor's raw request
    holds the client's address in it. None when the payload is not JSON."""
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    if isinstance(value, dict) and isinstance(value.get("body"), str):
        try:
            body = base64.b64decode(value["body"], validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            return value
        try:
            value = {**value, "body": msgspec.json.decode(body)}
        except msgspec.DecodeError:
            value = {**value, "body": unquote_plus(body)}  # a form-encoded request
    return value


def _client_ids(value: Any) -> set[str]:
    """The client ids a decoded record names, at any depth."""
    found: set[str] = set()
    if isinstance(value, dict):
        client = value.get("client")
        if isinstance(client, dict) and isinstance(client.get("id"), str):
            found.add(client["id"])
        for key in ("client_id", "our_id"):
            if isinstance(value.get(key), str):
                found.add(value[key])
        for item in value.values():
            found |= _client_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= _client_ids(item)
    return found


@dataclass
class Identity:
    """One client of one tenant, and what identifies the client's personal data."""

    client_id: str
    emails: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)

    # --- learning -------------------------------------------------------------------------------

    def add(self, kind: str, value: Any) -> None:
        if not isinstance(value, str) or not value.strip():
            return
        value = value.strip()
        if kind == "email" and "@" in value:
            self.emails.add(value.lower())
        elif kind == "name" and len(value) >= MIN_NAME:
            self.names.add(value.lower())
        elif kind == "phone" and len(_digits(value)) >= MIN_PHONE_DIGITS:
            self.phones.add(_digits(value))

    def learn(self, value: Any) -> None:
        """Take the client's fields from a decoded record: journey events' ``client``
        objects with the client's id, and triggers of the client (their ``email``)."""
        if isinstance(value, dict):
            client = value.get("client")
            if isinstance(client, dict) and client.get("id") == self.client_id:
                for kind in CLIENT_FIELDS:
                    self.add(kind, client.get(kind))
            if value.get("client_id") == self.client_id and isinstance(value.get("data"), dict):
                self.add("email", value["data"].get("email"))
            for item in value.values():
                self.learn(item)
        elif isinstance(value, list):
            for item in value:
                self.learn(item)

    def learn_fields(self, fields: dict[str, Any] | None) -> None:
        """A vendor record known to be the client's (a sync link of the client)."""
        for kind in CLIENT_FIELDS:
            self.add(kind, (fields or {}).get(kind))

    # --- matching -------------------------------------------------------------------------------

    def mentions(self, text: str) -> bool:
        """Whether ``text`` holds one of the client's email addresses, names or phone numbers
        (a phone number in any spelling: its digits)."""
        lowered = text.lower()
        if any(term in lowered for term in (*self.emails, *self.names)):
            return True
        digits = _digits(text)
        return bool(digits) and any(phone in digits for phone in self.phones)

    def about(self, value: Any) -> bool:
        """Whether a decoded record is the client's. A record that names its clients (a
        journey event's ``client``, a trigger's ``client_id``, a sync link's ``our_id``) is
        the client's only when one of them is the client's id: another client of the same
        name keeps its records. One that names none is the client's when it mentions the
        client (a vendor's raw request, a trigger no client was found for)."""
        named = _client_ids(value)
        if named:
            return self.client_id in named
        return any(self.mentions(s) for s in strings(value))

    def about_payload(self, raw: bytes, *extra: str) -> bool:
        """Whether a stored payload (with ``extra`` text kept beside it: headers, an error)
        is the client's, as :meth:`about` tells."""
        value = decode(raw)
        texts = [*extra, raw.decode("utf-8", "replace")] if value is None else [*extra, value]
        return self.about(texts)

    def redact(self, value: Any) -> Any:
        """``value`` with every string that mentions the client replaced by ``ERASED``."""
        if isinstance(value, str):
            return ERASED if self.mentions(value) else value
        if isinstance(value, dict):
            return {key: self.redact(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.redact(item) for item in value]
        return value
