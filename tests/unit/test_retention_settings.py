"""``JOURNEYHUB_RETENTION_*``: days per kind of data, ``off`` or 0 to keep it for ever."""

import pytest
from journeyhub.settings import SettingsError, load_settings
from journeyhub.store.retention import limits


def test_defaults() -> None:
    settings = load_settings({})
    assert {kind.name: days for kind, days in limits(settings).items()} == {
        "deliveries": 30,
        "triggers": 30,
        "audit": 365,
        "incidents": 365,
        "dead_letters": 30,
        "tasks": 7,
        "events": 30,
        "chart_samples": 2,
        "clients": 30,
    }
    assert settings.retention_interval_seconds == 3600
    assert settings.retention_batch_size == 5000


def test_off_or_zero_keeps_a_kind_for_ever() -> None:
    settings = load_settings(
        {
            "JOURNEYHUB_RETENTION_AUDIT_DAYS": "off",
            "JOURNEYHUB_RETENTION_TRIGGERS_DAYS": "0",
            "JOURNEYHUB_RETENTION_DELIVERIES_DAYS": "90",
            "JOURNEYHUB_RETENTION_INTERVAL_SECONDS": "600",
            "JOURNEYHUB_RETENTION_BATCH_SIZE": "1000",
        }
    )
    kept = {kind.name: days for kind, days in limits(settings).items()}
    assert "audit" not in kept and "triggers" not in kept
    assert kept["deliveries"] == 90
    assert settings.retention_interval_seconds == 600
    assert settings.retention_batch_size == 1000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOURNEYHUB_RETENTION_DELIVERIES_DAYS", "-1"),
        ("JOURNEYHUB_RETENTION_TASKS_DAYS", "a week"),
        ("JOURNEYHUB_RETENTION_BATCH_SIZE", "0"),
        ("JOURNEYHUB_RETENTION_INTERVAL_SECONDS", "off"),
    ],
)
def test_a_wrong_value_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})
