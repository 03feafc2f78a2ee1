"""Credentials encrypted at rest with MultiFernet.

Keys come from ``JOURNEYHUB_SECRET_KEYS`` (comma-separated; the first encrypts, all decrypt, so a
new key can be put first and old data re-encrypted with ``journeyhub keys rotate-secrets``).
With no keys configured, a key file is generated under the data dir with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

import msgspec
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from journeyhub.logs import secrets_registry
from journeyhub.settings import Settings, SettingsError

KEY_FILE_NAME = "secret.key"


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise SettingsError("JOURNEYHUB_SECRET_KEYS holds no key")
        fernets = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key.encode()))
            except (ValueError, TypeError):
                # Never echo the key itself; say which one is wrong.
                raise SettingsError(
                    f"JOURNEYHUB_SECRET_KEYS entry #{index + 1} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes; make one with `journeyhub keys generate`)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._first = keys[0].encode()

    def encrypt(self, data: dict[str, Any]) -> bytes:
        return self._fernet.encrypt(msgspec.json.encode(data))

    def decrypt(self, token: bytes) -> dict[str, Any]:
        try:
            plain = self._fernet.decrypt(token)
        except InvalidToken:
            raise SettingsError(
                "stored credentials cannot be decrypted with any key in JOURNEYHUB_SECRET_KEYS"
            ) from None
        data = msgspec.json.decode(plain)
        secrets_registry.add(data)
        return data

    def derive_key(self, purpose: str) -> bytes:
        """32 bytes for one ``purpose`` (the dashboard's session cookies, its CSRF tokens),
        derived from the first key: the same in every process, new after a rotation."""
        return hmac.new(self._first, f"journeyhub:{purpose}".encode(), hashlib.sha256).digest()

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt with the first key (MultiFernet.rotate keeps the original timestamp)."""
        return self._fernet.rotate(token)


def generate_key() -> str:
    return Fernet.generate_key().decode()


def load_secret_box(settings: Settings) -> SecretBox:
    if settings.secret_keys:
        return SecretBox(list(settings.secret_keys))
    return SecretBox([_embedded_key(settings.data_dir)])


def _embedded_key(data_dir: Path) -> str:
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key())
    return path.read_text().strip()
