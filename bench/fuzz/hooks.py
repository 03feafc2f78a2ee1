"""schemathesis hooks loaded by bench/fuzz/run.py (``SCHEMATHESIS_HOOKS=hooks``).

- Path parameters: besides the random ids schemathesis makes up (which only ever reach a 404),
  cases use the ids of real records of the fuzzing tenant, so the authorised code behind the
  404 runs too. ``/webhooks/{vendor}/{connection_id}`` gets real (vendor, connection) pairs,
  so each vendor's signature check sees the garbage signatures and bodies. Connections that
  the fuzzer may delete or disable (``/v1/connections/{id}``) are not the webhooks' ones.
- Every response is counted (operation, status) in ``JOURNEYHUB_FUZZ_CALLS`` (JSON lines).
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

_IDS = json.loads(os.environ.get("JOURNEYHUB_FUZZ_IDS", "{}"))
_CALLS = os.environ.get("JOURNEYHUB_FUZZ_CALLS")


def _with(path_parameters: dict[str, Any], **values: Any) -> dict[str, Any]:
    return {**path_parameters, **values}


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any]) -> Any:
    operation = context.operation
    if operation is None or not isinstance(path_parameters, dict):
        return st.just(path_parameters)
    path = operation.path
    original = st.just(path_parameters)
    if path.startswith("/webhooks/") and _IDS.get("webhooks"):
        pairs = st.sampled_from([tuple(p) for p in _IDS["webhooks"]])
        real = pairs.map(lambda p: _with(path_parameters, vendor=p[0], connection_id=p[1]))
        return real  # the random ones (404) are the coverage phase's: fuzz the real checks
    if "connection_id" in path_parameters and _IDS.get("connections"):
        real = st.sampled_from(_IDS["connections"]).map(
            lambda c: _with(path_parameters, connection_id=c)
        )
        return real | original
    if "dead_letter_id" in path_parameters and _IDS.get("dead_letters"):
        real = st.sampled_from(_IDS["dead_letters"]).map(
            lambda d: _with(path_parameters, dead_letter_id=d)
        )
        return real | original
    return original


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if _CALLS is None:
        return
    record = {
        "operation": f"{case.method.upper()} {case.operation.path}",
        "status": response.status_code,
        "path": case.formatted_path,
    }
    if response.status_code >= 500:
        record["body"] = response.text[:500]
    with open(_CALLS, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
