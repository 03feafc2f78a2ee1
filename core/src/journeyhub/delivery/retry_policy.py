"""How often, and how long apart, a failed delivery task is tried again: a connection's retry
policy, in its kernel options as ``config.retry``::

    "retry": {"schedule": ["5s", "30s", "2m", "10m", "30m", "1h", "3h", "6h"],
              "attempts": 9, "jitter": 0.2}

- ``schedule``: the waits before the 2nd, 3rd, … attempt: seconds as a number, or a string
  with a unit (``ms``, ``s``, ``m``, ``h``, ``d``);
- ``attempts``: attempts in all, the first included, before the task goes to the dead
  letters (default: one more than the schedule has waits; beyond the schedule its last wait
  repeats);
- ``jitter``: each wait is drawn from wait * (1 - jitter) to wait * (1 + jitter), so tasks that
  failed together do not all come back together.

A key left out takes the deployment's default (``JOURNEYHUB_RETRY_SCHEDULE``,
``JOURNEYHUB_RETRY_JITTER``): 5 s, 30 s, 2 min, 10 min, 30 min, 1 h, 3 h, 6 h with 20 % jitter,
nine attempts over about 11 hours, so a vendor down for hours loses nothing.

The wait is kept in the bus (the push worker naks the message with it), so it survives any
restart; a wait on an open breaker, a 429 or a re-authorisation is not an attempt. The push
stream keeps a message 7 days (``bus/jetstream.py``): a policy may plan at most
``MAX_SPAN`` of waits, which leaves the rest for breaker and rate-limit waits.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_SCHEDULE = (5.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 3 * 3600.0, 6 * 3600.0)
DEFAULT_JITTER = 0.2
MIN_WAIT = 0.01
MAX_WAIT = 24 * 3600.0
MAX_SPAN = 3 * 24 * 3600.0
MAX_ATTEMPTS = 1000
MAX_SCHEDULE = 100
KEYS = ("schedule", "attempts", "jitter")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class PolicyError(ValueError):
    """A retry policy that cannot be used; ``field`` is where, as a JSON path."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    attempts: int = len(DEFAULT_SCHEDULE) + 1
    jitter: float = DEFAULT_JITTER

    def exhausted(self, failures: int) -> bool:
        """True once ``failures`` failed attempts are all the policy allows."""
        return failures >= self.attempts

    def wait(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt, with jitter."""
        planned = self.schedule[min(failures, len(self.schedule)) - 1]
        return max(MIN_WAIT, planned * random.uniform(1 - self.jitter, 1 + self.jitter))

    def span(self) -> float:
        """The longest time the policy's waits can add up to."""
        waits = [self.schedule[min(n, len(self.schedule)) - 1] for n in range(1, self.attempts)]
        return sum(waits) * (1 + self.jitter)


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a number or a string such as ``500ms``, ``5s``, ``2m``, ``1h``, ``1d``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise PolicyError(
            f"{value!r} is not a duration (seconds, or e.g. '500ms', '5s', '2m', '1h', '1d')",
            field,
        )
    if not MIN_WAIT <= seconds <= MAX_WAIT:
        raise PolicyError(f"must be between {MIN_WAIT:g} s and {MAX_WAIT:g} s (1 day)", field)
    return seconds


def make_policy(
    schedule: Sequence[float], attempts: int | None, jitter: float, field: str
) -> RetryPolicy:
    """A policy, checked: at most ``MAX_SPAN`` of planned waits (``field`` names the policy)."""
    policy = RetryPolicy(
        tuple(schedule), len(schedule) + 1 if attempts is None else attempts, jitter
    )
    if policy.span() > MAX_SPAN:
        raise PolicyError(
            f"its waits add up to {policy.span() / 3600:.1f} h with jitter, over the "
            f"{MAX_SPAN / 3600:.0f} h a task may wait for its retries",
            field,
        )
    return policy


def parse_policy(value: Any, default: RetryPolicy, field: str = "$.config.retry") -> RetryPolicy:
    """The policy in a connection's ``retry`` option, keys left out taken from ``default``.
    Raises :class:`PolicyError` naming the field."""
    if not isinstance(value, dict):
        raise PolicyError("must be an object with schedule, attempts and/or jitter", field)
    for key in value:
        if key not in KEYS:
            raise PolicyError(f"unknown key (allowed: {', '.join(KEYS)})", f"{field}.{key}")
    schedule = default.schedule
    if "schedule" in value:
        raw = value["schedule"]
        where = f"{field}.schedule"
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SCHEDULE:
            raise PolicyError(f"must be a list of 1 to {MAX_SCHEDULE} durations", where)
        schedule = tuple(parse_duration(item, f"{where}[{i}]") for i, item in enumerate(raw))
    attempts = value.get("attempts")
    if attempts is not None and (
        not isinstance(attempts, int)
        or isinstance(attempts, bool)
        or not 1 <= attempts <= MAX_ATTEMPTS
    ):
        raise PolicyError(f"must be an integer from 1 to {MAX_ATTEMPTS}", f"{field}.attempts")
    if attempts is None and "schedule" not in value:
        attempts = default.attempts
    jitter = value.get("jitter", default.jitter)
    if not isinstance(jitter, int | float) or isinstance(jitter, bool) or not 0 <= jitter < 1:
        raise PolicyError("must be a number from 0 up to (not including) 1", f"{field}.jitter")
    return make_policy(schedule, attempts, float(jitter), field)


_cache: dict[tuple[str, datetime | None, RetryPolicy], RetryPolicy] = {}
MAX_CACHED = 10_000


def policy_for(
    connection_id: str, updated_at: datetime | None, options: dict[str, Any], default: RetryPolicy
) -> RetryPolicy:
    """A connection's policy (its ``retry`` option over ``default``), parsed once per version
    of the connection. An option that no longer parses (saved before a limit changed) falls
    back to ``default``: a retry is never refused for it."""
    key = (connection_id, updated_at, default)
    found = _cache.get(key)
    if found is not None and updated_at is not None:
        return found
    raw = options.get("retry")
    try:
        policy = default if raw is None else parse_policy(raw, default)
    except PolicyError:
        policy = default
    if updated_at is not None:
        if len(_cache) >= MAX_CACHED:
            _cache.clear()
        _cache[key] = policy
    return policy
