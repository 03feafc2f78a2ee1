"""A connection's retry policy: its shape, its limits, its waits, and the default."""

from __future__ import annotations

from datetime import timedelta

import pytest
from journeyhub.bus.jetstream import STREAMS
from journeyhub.delivery.gate import ORDER_WAIT, retry_wait
from journeyhub.delivery.retry_policy import (
    DEFAULT_SCHEDULE,
    MAX_SPAN,
    PolicyError,
    RetryPolicy,
    parse_policy,
    policy_for,
)
from journeyhub.model import utcnow
from journeyhub.settings import SettingsError, load_settings
from journeyhub.store.tasks import Pending

DEFAULT = RetryPolicy()


def test_the_default_rides_out_hours_in_nine_attempts() -> None:
    assert DEFAULT.schedule == (5, 30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600)
    assert DEFAULT.attempts == 9 and DEFAULT.jitter == 0.2
    assert sum(DEFAULT.schedule) > 10 * 3600  # a vendor down for ten hours loses nothing
    assert load_settings({}).retry_schedule == DEFAULT_SCHEDULE


def test_waits_follow_the_schedule_with_jitter_and_the_last_repeats() -> None:
    policy = parse_policy({"schedule": ["500ms", 2, "1m"], "attempts": 6, "jitter": 0.5}, DEFAULT)
    assert policy.schedule == (0.5, 2.0, 60.0) and policy.attempts == 6
    for failures, planned in ((1, 0.5), (2, 2.0), (3, 60.0), (5, 60.0)):
        waits = [policy.wait(failures) for _ in range(200)]
        assert all(planned * 0.5 <= w <= planned * 1.5 for w in waits)
        assert len(set(waits)) > 1  # jittered: tasks that failed together spread out
    assert [policy.exhausted(n) for n in (5, 6)] == [False, True]


def test_keys_left_out_come_from_the_default() -> None:
    assert parse_policy({}, DEFAULT) == DEFAULT
    assert parse_policy({"attempts": 3}, DEFAULT).schedule == DEFAULT.schedule
    only = parse_policy({"schedule": ["1s", "1h"]}, DEFAULT)
    assert only.attempts == 3 and only.jitter == DEFAULT.jitter


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ([], "$.config.retry"),
        ({"tries": 3}, "$.config.retry.tries"),
        ({"schedule": []}, "$.config.retry.schedule"),
        ({"schedule": ["5s", "5 fortnights"]}, "$.config.retry.schedule[1]"),
        ({"schedule": ["2d"]}, "$.config.retry.schedule[0]"),
        ({"schedule": [0]}, "$.config.retry.schedule[0]"),
        ({"attempts": 0}, "$.config.retry.attempts"),
        ({"attempts": True}, "$.config.retry.attempts"),
        ({"jitter": 1}, "$.config.retry.jitter"),
        ({"schedule": ["1d"], "attempts": 5}, "$.config.retry"),  # 4+ days of waits
    ],
)
def test_a_bad_policy_names_its_field(value: object, field: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(value, DEFAULT)
    assert caught.value.field == field


def test_a_policy_fits_in_what_the_push_stream_keeps() -> None:
    push = next(spec for spec in STREAMS if spec.kind == "push")
    assert push.max_age > MAX_SPAN and DEFAULT.span() < MAX_SPAN


def test_a_connection_option_that_no_longer_parses_falls_back_to_the_default() -> None:
    now = utcnow()
    assert policy_for("con_x", now, {"retry": {"attempts": 0}}, DEFAULT) == DEFAULT
    own = policy_for("con_y", now, {"retry": {"attempts": 2}}, DEFAULT)
    assert own.attempts == 2


def test_the_default_schedule_from_the_environment() -> None:
    settings = load_settings(
        {"JOURNEYHUB_RETRY_SCHEDULE": "1s, 2m,1h", "JOURNEYHUB_RETRY_JITTER": "0"}
    )
    assert settings.retry_schedule == (1.0, 120.0, 3600.0) and settings.retry_jitter == 0.0
    for name, raw in (("RETRY_SCHEDULE", "soon"), ("RETRY_SCHEDULE", ""), ("RETRY_JITTER", "2")):
        with pytest.raises(SettingsError, match=f"JOURNEYHUB_{name}"):
            load_settings({f"JOURNEYHUB_{name}": raw})


def test_a_task_behind_one_waiting_for_its_retry_waits_as_long() -> None:
    now = utcnow()
    later = now + timedelta(minutes=10)
    pending = [Pending(1, "t1", False, later), Pending(2, "t2", False)]
    assert retry_wait(pending, 2, now) == pytest.approx(600 + ORDER_WAIT)
    assert retry_wait(pending, 1, now) == 0.0  # nothing before the first
    held = [Pending(1, "t1", True, later)]  # being pushed now: its old time says nothing
    assert retry_wait(held, 2, now) == 0.0
