"""Credentials encryption, key rotation, the embedded key file, and redaction of secrets."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from journeyhub.logs import configure_logging, get_logger, secrets_registry
from journeyhub.secretbox import SecretBox, generate_key, load_secret_box
from journeyhub.settings import SettingsError, load_settings


def test_round_trip() -> None:
    box = SecretBox([generate_key()])
    token = box.encrypt({"api_key": "re_live_123456", "nested": {"a": 1}})
    assert b"re_live_123456" not in token
    assert box.decrypt(token) == {"api_key": "re_live_123456", "nested": {"a": 1}}


def test_rotation_first_key_encrypts_all_decrypt() -> None:
    old, new = generate_key(), generate_key()
    token = SecretBox([old]).encrypt({"k": "value-one"})
    rotated_box = SecretBox([new, old])
    assert rotated_box.decrypt(token) == {"k": "value-one"}  # old data still readable
    rotated = rotated_box.rotate(token)
    assert SecretBox([new]).decrypt(rotated) == {"k": "value-one"}  # now under the new key
    with pytest.raises(SettingsError, match="cannot be decrypted"):
        SecretBox([old]).decrypt(SecretBox([new]).encrypt({"k": "v"}))


def test_a_bad_key_is_named_by_position_never_echoed() -> None:
    with pytest.raises(SettingsError) as info:
        SecretBox([generate_key(), "not-a-real-key-abcdef"])
    assert "entry #2" in str(info.value)
    assert "not-a-real-key-abcdef" not in str(info.value)


def test_embedded_key_file_is_private_and_stable(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=tmp_path / "data")
    box = load_secret_box(settings)
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    token = box.encrypt({"a": "b"})
    assert load_secret_box(settings).decrypt(token) == {"a": "b"}


async def test_rotate_secrets_re_encrypts_every_connection(tmp_path: Path) -> None:
    from journeyhub.store.db import migrate
    from journeyhub.store.store import Store

    old, new = generate_key(), generate_key()
    settings = load_settings({}, data_dir=tmp_path, secret_keys=(old,))
    migrate(settings)
    store = Store(settings, load_secret_box(settings))
    tenant = await store.tenants.add("t")
    created = await store.connections.create(
        tenant_id=tenant,
        vendor="webhook",
        name="n",
        direction="inbound",
        enabled=True,
        config={},
        credentials={"secret": "whsec_abc"},
        event_types=[],
        field_mappings=[],
        actor="test",
    )
    await store.close()

    rotated = load_settings({}, data_dir=tmp_path, secret_keys=(new, old))
    store = Store(rotated, load_secret_box(rotated))
    assert await store.connections.rotate_credentials() == 1
    await store.close()

    only_new = load_settings({}, data_dir=tmp_path, secret_keys=(new,))
    store = Store(only_new, load_secret_box(only_new))
    found = await store.connections.get_with_credentials(created.id)
    await store.close()
    assert found is not None and found[1] == {"secret": "whsec_abc"}


def test_log_lines_never_carry_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", "info")
    secrets_registry.add({"api_key": "vendor-key-7f3a9c"})
    log = get_logger("test")
    log.info(
        "calling vendor",
        api_key="plain-key-value",
        headers={"Authorization": "Bearer abc.def", "x-other": "fine"},
        note="the key vendor-key-7f3a9c leaked into a message",
        webhook="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        stripe="sk_test_51Habcdef",
    )
    try:
        raise RuntimeError("refused key vendor-key-7f3a9c")
    except RuntimeError:
        log.exception("failed")
    out = capsys.readouterr().err
    for secret in ("plain-key-value", "abc.def", "vendor-key-7f3a9c", "whsec_MfKQ", "sk_test_51H"):
        assert secret not in out
    first = json.loads(out.splitlines()[0])
    assert first["api_key"] == "[redacted]"
    assert first["headers"]["x-other"] == "fine"


def test_a_secret_with_quotes_or_backslashes_is_scrubbed_from_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """JSON lines are scrubbed once rendered: a secret whose characters JSON escapes must be
    found in its escaped form too."""
    configure_logging("json", "info")
    odd = 'pa"ss\\word-9c1\n'
    secrets_registry.add({"password": odd})
    get_logger("test").info("vendor refused", detail=f"the password {odd} was refused")
    out = capsys.readouterr().err
    assert 'pa\\"ss' not in out and "word-9c1" not in out
    assert json.loads(out.splitlines()[0])["detail"] == "the password [redacted] was refused"
