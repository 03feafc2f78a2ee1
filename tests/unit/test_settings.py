from pathlib import Path

import pytest
from journeyhub.settings import SettingsError, load_settings


def test_defaults_match_the_design() -> None:
    settings = load_settings({})
    assert settings.data_dir == Path(".journeyhub")
    assert settings.nats_url is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.plugins is None
    assert settings.trace_hooks is False
    assert settings.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert settings.effective_database_url.endswith(".journeyhub/journeyhub.db")


def test_values_are_read_from_the_environment() -> None:
    settings = load_settings(
        {
            "JOURNEYHUB_PORT": "9001",
            "JOURNEYHUB_PLUGINS": "stripe, tave",
            "JOURNEYHUB_TRACE_HOOKS": "yes",
            "JOURNEYHUB_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "JOURNEYHUB_NATS_URL": "nats://a:4222,nats://b:4222",
            "JOURNEYHUB_SECRET_KEYS": "k1,k2",
            "JOURNEYHUB_LOG_FORMAT": "console",
        }
    )
    assert settings.port == 9001
    assert settings.plugins == ("stripe", "tave")
    assert settings.trace_hooks is True
    assert not settings.is_sqlite
    assert settings.secret_keys == ("k1", "k2")
    assert settings.log_format == "console"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOURNEYHUB_PORT", "eighty", "is not an integer"),
        ("JOURNEYHUB_PORT", "70000", "out of range"),
        ("JOURNEYHUB_TRACE_HOOKS", "maybe", "is not a boolean"),
        ("JOURNEYHUB_DATABASE_URL", "mysql://x", "must be a sqlite"),
        ("JOURNEYHUB_NATS_URL", "http://x", "must start with nats://"),
        ("JOURNEYHUB_LOG_FORMAT", "xml", "'json' or 'console'"),
        ("JOURNEYHUB_SUBJECT_PREFIX", "a.b", "one NATS token"),
    ],
)
def test_a_wrong_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert name in str(info.value)
    assert message in str(info.value)


def test_the_cli_fails_at_start_up_naming_the_variable(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "JOURNEYHUB_PORT": "nope", "JOURNEYHUB_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "journeyhub", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "JOURNEYHUB_PORT" in done.stderr
