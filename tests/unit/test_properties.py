"""Property-based tests (hypothesis) of the field-mapping engine and of every webhook signature
parser.

- mapping: ``validate_mappings`` raises nothing but ``MappingError``; on mappings it accepts,
  ``apply_mappings`` never raises for any valid journey event with the total transforms, and
  with ``date``/``int``/``template`` raises only ``ValueError`` (which the push worker turns
  into a permanent failure naming the mapping); each transform is total on its domain.
- signatures (Standard Webhooks, Svix/Resend, Stripe, the ``webhook`` connector, the Zapier
  bridge): arbitrary headers and bodies only ever give ``WebhookRejected`` (anything else would
  be a 500 at the gateway); a correct signature always verifies; a one-bit change never does.

hypothesis is not a locked dependency yet; until it is, these tests are skipped. Run them with
``uv run --with hypothesis pytest tests/unit/test_properties.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import string
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

hypothesis = pytest.importorskip(
    "hypothesis",
    reason="hypothesis is not installed: run `uv run --with hypothesis pytest "
    "tests/unit/test_properties.py` (or add it to the dev dependency group)",
)
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from journeyhub import signing  # noqa: E402
from journeyhub.connectors import webhook as webhook_connector  # noqa: E402
from journeyhub.connectors.zapier import verify_zapier  # noqa: E402
from journeyhub.errors import WebhookRejected  # noqa: E402
from journeyhub.mapping import (  # noqa: E402
    TRANSFORMS,
    MappingError,
    apply_mappings,
    apply_one,
    validate_mappings,
)
from journeyhub.model import EVENT_TYPES, Connection, FieldMapping, JourneyEvent  # noqa: E402

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)
TOLERANCE = 300

# --- strategies ----------------------------------------------------------------------------------

text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)  # what JSON can carry
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)

KNOWN_PATHS = [
    "id",
    "type",
    "occurred_at",
    "journey_instance_id",
    "journey_name",
    "client.id",
    "client.name",
    "client.email",
    "client.phone",
    "wedding.date",
    "wedding.venue.name",
    "wedding.venue.address",
    "wedding.guest_count",
    "step.name",
    "step.type",
    "step.id",
    "step.data.x",
    "data.anything",
    "data.deep.er",
]


@st.composite
def journey_events(draw: st.DrawFn) -> JourneyEvent:
    event_type = draw(st.sampled_from(EVENT_TYPES))
    step = {
        "name": draw(text),
        "type": draw(text),
        "data": draw(st.dictionaries(text, json_value, max_size=3)),
    }
    raw: dict[str, Any] = {
        "id": draw(text.filter(bool)),
        "type": event_type,
        "occurred_at": draw(st.datetimes(timezones=st.just(UTC))),
        "journey_instance_id": draw(text),
        "client": {
            "id": draw(text),
            "name": draw(st.none() | text),
            "email": draw(st.none() | text),
            "phone": draw(st.none() | text),
        },
        "journey_name": draw(st.none() | text),
        "wedding": draw(
            st.none()
            | st.fixed_dictionaries(
                {
                    "date": st.none() | text | st.dates().map(str),
                    "venue": st.none()
                    | st.fixed_dictionaries(
                        {"name": st.none() | text, "address": st.none() | text}
                    ),
                    "guest_count": st.none() | st.integers(),
                }
            )
        ),
        "step": step if event_type == "step_completed" else draw(st.none() | st.just(step)),
        "data": draw(st.dictionaries(text, json_value, max_size=4)),
    }
    return msgspec.convert(raw, JourneyEvent)


def transforms(names: list[str] | tuple[str, ...]) -> st.SearchStrategy[str | None]:
    arg = (
        st.sampled_from(["", "%Y-%m-%d", "%d/%m/%Y", "%B %d, %Y %H:%M", "%", "DD/MM", "%Q"]) | text
    )
    return (
        st.none()
        | st.sampled_from(names)
        | st.builds(lambda n, a: f"{n}:{a}", st.sampled_from(names), arg)
    )


def mappings(
    names: list[str] | tuple[str, ...] = TRANSFORMS, junk: bool = True
) -> st.SearchStrategy[FieldMapping]:
    source = st.sampled_from(KNOWN_PATHS) | (text if junk else st.nothing())
    target = st.sampled_from(["email", "contact.email", "contact", "job.date", "n", "a.b.c"]) | (
        text if junk else st.nothing()
    )
    templates = (
        st.sampled_from(
            [
                "{{ value }}",
                "{{ event.client.name }} x",
                "{{ event.client.nick.first }}",
                "{{ 1/0 }}",
                "{{ ''.__class__.__mro__ }}",
                "{{ value + 1 }}",
                "{% for x in value %}{{ x }}{% endfor %}",
                "{{ event.client.name ",
                "{{ value|upper }}",
            ]
        )
        | text
    )
    options = st.fixed_dictionaries(
        {},
        optional={
            "values": st.dictionaries(text, json_value, max_size=3) | json_value,
            "template": templates | json_value,
        },
    )
    return st.builds(
        FieldMapping,
        source=source,
        target=target,
        transform=transforms(names) | (text if junk else st.nothing()),
        default=json_value,
        options=options,
    )


# --- the field-mapping engine ---------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(st.lists(mappings(), max_size=5))
def test_validate_mappings_raises_nothing_but_mapping_error(items: list[FieldMapping]) -> None:
    try:
        validate_mappings(items)
    except MappingError as exc:
        assert exc.path.startswith("$.field_mappings[")


TOTAL = ("upper", "lower", "strip", "title", "map", "first_name", "last_name", "string")


@PROPERTY_SETTINGS
@given(st.lists(mappings(TOTAL), max_size=6), journey_events())
def test_valid_mappings_with_total_transforms_never_raise(
    items: list[FieldMapping], event: JourneyEvent
) -> None:
    try:
        validate_mappings(items)
    except MappingError:
        assume(False)
    out = apply_mappings(items, event)
    assert isinstance(out, dict)
    msgspec.json.encode(out)  # what a connector sends is JSON


@PROPERTY_SETTINGS
@given(st.lists(mappings(), max_size=6), journey_events())
def test_valid_mappings_raise_only_value_error(
    items: list[FieldMapping], event: JourneyEvent
) -> None:
    try:
        validate_mappings(items)
    except MappingError:
        assume(False)
    # ValueError: the push worker dead-letters the task with its message (a bad value, no crash)
    with contextlib.suppress(ValueError):
        apply_mappings(items, event)


@PROPERTY_SETTINGS
@given(
    st.dates() | st.datetimes(timezones=st.just(UTC)) | st.datetimes(),
    st.sampled_from(["", "%Y-%m-%d", "%d/%m/%Y", "%B %d, %Y", "%Y-%m-%dT%H:%M:%S%z", "%A %j"]),
    st.booleans(),
)
def test_date_is_total_on_iso_dates_and_datetimes(moment: Any, fmt: str, as_text: bool) -> None:
    transform = f"date:{fmt}" if fmt else "date"
    mapping = FieldMapping(source="wedding.date", target="d", transform=transform)
    validate_mappings([mapping])
    value = moment.isoformat() if as_text else moment
    out = apply_one(mapping, {"wedding": {"date": value}})
    assert isinstance(out, str)


@PROPERTY_SETTINGS
@given(st.integers() | st.integers().map(str) | st.integers().map(lambda i: f" {i} "))
def test_int_is_total_on_integers_and_integer_text(value: Any) -> None:
    mapping = FieldMapping(source="data.n", target="n", transform="int")
    assert apply_one(mapping, {"data": {"n": value}}) == int(value)


@PROPERTY_SETTINGS
@given(json_value, st.sampled_from(TOTAL), json_value)
def test_text_transforms_are_total(value: Any, name: str, default: Any) -> None:
    options = {"values": {"a": "b"}} if name == "map" else {}
    mapping = FieldMapping(
        source="data.v", target="v", transform=name, default=default, options=options
    )
    validate_mappings([mapping])
    apply_one(mapping, {"data": {"v": value}})


def test_every_plugins_default_mappings_are_valid() -> None:
    from journeyhub.plugins import get_plugin_manager

    registry = get_plugin_manager()
    for name, loaded in registry.connectors.items():
        try:
            validate_mappings(loaded.info.default_field_mappings)
        except MappingError as exc:  # pragma: no cover - the message names the plugin
            pytest.fail(f"{name}'s default field mappings do not validate: {exc}")


# --- signatures: helpers --------------------------------------------------------------------------

secret_bytes = st.binary(min_size=1, max_size=48)
msg_ids = st.text(
    st.sampled_from(string.ascii_letters + string.digits + "_-."), min_size=1, max_size=40
)
offsets = st.integers(min_value=-TOLERANCE, max_value=TOLERANCE)


def whsec(raw: bytes) -> str:
    return "whsec_" + base64.b64encode(raw).decode()


def flip_bit(data: bytes, position: int) -> bytes:
    index = position % (len(data) * 8)
    changed = bytearray(data)
    changed[index // 8] ^= 1 << (index % 8)
    return bytes(changed)


def garbage_headers(names: list[str]) -> st.SearchStrategy[dict[str, str]]:
    """Headers as a gateway sees them: lower-case names, latin-1 text; known names with junk,
    near-valid and huge values, and unknown names."""
    near_valid = st.one_of(
        header_text,
        st.builds(lambda s: f"v1,{s}", header_text),
        st.builds(lambda b: "v1," + base64.b64encode(b).decode(), st.binary(max_size=40)),
        st.builds(lambda t, h: f"t={t},v1={h}", st.integers(), header_text),
        st.integers().map(str),
        st.just("1" + "0" * 400),
        st.just("9" * 13),
        st.just("x" * 9000),
    )
    return st.dictionaries(
        st.sampled_from(names) | header_text.map(str.lower), near_valid, max_size=6
    )


def only_rejections(call: Any) -> None:
    with contextlib.suppress(WebhookRejected):
        call()


# --- Standard Webhooks / Svix (journeyhub.signing.verify) -----------------------------------------


@PROPERTY_SETTINGS
@given(
    st.lists(secret_bytes.map(whsec) | header_text, max_size=3),
    garbage_headers(["webhook-id", "webhook-timestamp", "webhook-signature"]),
    st.binary(max_size=200),
)
def test_signing_verify_rejects_garbage_cleanly(
    secrets: list[str], headers: dict[str, str], body: bytes
) -> None:
    only_rejections(lambda: signing.verify(secrets, headers, body, now=NOW))


@PROPERTY_SETTINGS
@given(
    secret_bytes, msg_ids, st.binary(max_size=300), offsets, st.sampled_from(["webhook", "svix"])
)
def test_signing_a_correct_signature_verifies_and_one_bit_does_not(
    raw: bytes, msg_id: str, body: bytes, offset: int, prefix: str
) -> None:
    secret = whsec(raw)
    timestamp = int(NOW.timestamp()) + offset
    headers = _sign_standard(raw, msg_id, timestamp, body, prefix)
    assert signing.verify([secret], headers, body, now=NOW, prefix=prefix) == msg_id
    if _utf8(body):  # the library (what senders use) signs text
        assert headers == signing.signed_headers(
            secret, msg_id, body, prefix=prefix, timestamp=timestamp
        )
    if body:
        with pytest.raises(WebhookRejected):
            signing.verify([secret], headers, flip_bit(body, offset), now=NOW, prefix=prefix)
    signature = base64.b64decode(headers[f"{prefix}-signature"][3:])
    forged = {
        **headers,
        f"{prefix}-signature": "v1," + base64.b64encode(flip_bit(signature, offset)).decode(),
    }
    with pytest.raises(WebhookRejected):
        signing.verify([secret], forged, body, now=NOW, prefix=prefix)
    with pytest.raises(WebhookRejected):
        signing.verify([whsec(flip_bit(raw, offset))], headers, body, now=NOW, prefix=prefix)


def _utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _sign_standard(
    raw: bytes, msg_id: str, timestamp: int, body: bytes, prefix: str
) -> dict[str, str]:
    """Standard Webhooks over the raw bytes, computed here (independent of the library)."""
    import hashlib
    import hmac

    digest = hmac.new(raw, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        f"{prefix}-id": msg_id,
        f"{prefix}-timestamp": str(timestamp),
        f"{prefix}-signature": "v1," + base64.b64encode(digest).decode(),
    }


# --- Resend (Svix) --------------------------------------------------------------------------------
#
# This section and the next test the Resend and Stripe connectors' own verifiers: they need
# those plugins installed (marked ``plugins``).


@pytest.mark.plugins
@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries(
        {"api_key": st.just("re_props_0123456789")},
        optional={
            "webhook_secret": secret_bytes.map(whsec) | json_value,
            "previous_webhook_secrets": json_value,
        },
    ),
    garbage_headers(["svix-id", "svix-timestamp", "svix-signature"]),
    st.binary(max_size=200),
)
def test_resend_verify_rejects_garbage_cleanly(
    credentials: dict[str, Any], headers: dict[str, str], body: bytes
) -> None:
    from journeyhub_resend import verify as resend_verify

    only_rejections(
        lambda: resend_verify.verify(credentials, headers, body, now=NOW, tolerance=TOLERANCE)
    )


@pytest.mark.plugins
@PROPERTY_SETTINGS
@given(
    secret_bytes, msg_ids, st.sampled_from(["email.opened", "email.bounced"]), json_value, offsets
)
def test_resend_a_correct_signature_verifies_and_one_bit_does_not(
    raw: bytes, msg_id: str, event_type: str, data: Any, offset: int
) -> None:
    from journeyhub_resend import verify as resend_verify

    body = json.dumps({"type": event_type, "data": data}).encode()
    credentials = {"api_key": "re_props_0123456789", "webhook_secret": whsec(raw)}
    headers = _sign_standard(raw, msg_id, int(NOW.timestamp()) + offset, body, "svix")
    receipt = resend_verify.verify(credentials, headers, body, now=NOW, tolerance=TOLERANCE)
    assert receipt.event_id == msg_id and receipt.event_type == event_type
    with pytest.raises(WebhookRejected):
        resend_verify.verify(
            credentials, headers, flip_bit(body, offset), now=NOW, tolerance=TOLERANCE
        )


# --- Stripe ---------------------------------------------------------------------------------------


def stripe_connection() -> Connection:
    return Connection(id="con_props", tenant_id="ten_props", vendor="stripe", name="s")


@pytest.mark.plugins
@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries(
        {"webhook_secret": secret_bytes.map(whsec) | json_value},
        optional={"previous_webhook_secrets": json_value},
    ),
    garbage_headers(["stripe-signature"]),
    st.binary(max_size=200),
)
def test_stripe_verify_rejects_garbage_cleanly(
    credentials: dict[str, Any], headers: dict[str, str], body: bytes
) -> None:
    from journeyhub_stripe import plugin as stripe_plugin

    only_rejections(
        lambda: stripe_plugin.journeyhub_verify_webhook(
            connection=stripe_connection(),
            credentials=credentials,
            headers=headers,
            body=body,
            now=NOW,
        )
    )


@pytest.mark.plugins
@PROPERTY_SETTINGS
@given(secret_bytes, st.binary(max_size=300), offsets, st.lists(secret_bytes, max_size=2))
def test_stripe_a_correct_signature_verifies_and_one_bit_does_not(
    raw: bytes, body: bytes, offset: int, others: list[bytes]
) -> None:
    from journeyhub_stripe.verify import compute_signature, verify_signature

    secret = whsec(raw)
    timestamp = int(NOW.timestamp()) + offset
    # other live secrets of the endpoint's (Stripe signs with each during a roll)
    signatures = [compute_signature(whsec(o), timestamp, body) for o in others if o != raw]
    signature = compute_signature(secret, timestamp, body)
    header = ",".join([f"t={timestamp}", *(f"v1={s}" for s in [*signatures, signature])])
    assert verify_signature(header, body, [secret], now=NOW, tolerance=TOLERANCE) == timestamp
    if body:
        with pytest.raises(WebhookRejected):
            verify_signature(header, flip_bit(body, offset), [secret], now=NOW, tolerance=TOLERANCE)
    flipped = flip_bit(bytes.fromhex(signature), offset).hex()
    forged = ",".join([f"t={timestamp}", *(f"v1={s}" for s in [*signatures, flipped])])
    assume(flipped not in signatures)
    with pytest.raises(WebhookRejected):
        verify_signature(forged, body, [secret], now=NOW, tolerance=TOLERANCE)
    moved = header.replace(f"t={timestamp}", f"t={timestamp ^ 1}", 1)
    with pytest.raises(WebhookRejected):
        verify_signature(moved, body, [secret], now=NOW, tolerance=TOLERANCE)


# --- the built-in webhook connector ---------------------------------------------------------------


def webhook_connection() -> Connection:
    return Connection(
        id="con_props",
        tenant_id="ten_props",
        vendor="webhook",
        name="w",
        config={"tolerance_seconds": float(TOLERANCE)},
    )


@PROPERTY_SETTINGS
@given(
    secret_bytes.map(whsec),
    garbage_headers(["webhook-id", "webhook-timestamp", "webhook-signature", "x-journeyhub-token"]),
    st.dictionaries(st.sampled_from(["token", "trigger"]) | text, text, max_size=3),
    st.binary(max_size=200),
)
def test_webhook_connector_rejects_garbage_cleanly(
    secret: str, headers: dict[str, str], query: dict[str, str], body: bytes
) -> None:
    only_rejections(
        lambda: webhook_connector.journeyhub_verify_webhook(
            connection=webhook_connection(),
            credentials={"secret": secret},
            headers=headers,
            body=body,
            now=NOW,
            query=query,
        )
    )


@PROPERTY_SETTINGS
@given(
    secret_bytes,
    msg_ids,
    text.filter(bool),
    st.sampled_from(["payment_received", "other"]),
    offsets,
    st.booleans(),
)
def test_webhook_connector_a_correct_signature_or_token_verifies_and_one_bit_does_not(
    raw: bytes, msg_id: str, trigger_id: str, trigger_type: str, offset: int, by_token: bool
) -> None:
    secret = whsec(raw)
    token = base64.urlsafe_b64encode(raw * 8).decode()[:40]  # a separate token, not the secret
    body = json.dumps({"id": trigger_id, "type": trigger_type}).encode()
    if by_token:
        headers, forged = (
            {"x-journeyhub-token": token},
            {"x-journeyhub-token": token[:-1] + chr(ord(token[-1]) ^ 1)},
        )
    else:
        headers = _sign_standard(raw, msg_id, int(NOW.timestamp()) + offset, body, "webhook")
        signature = base64.b64decode(headers["webhook-signature"][3:])
        forged = {
            **headers,
            "webhook-signature": "v1," + base64.b64encode(flip_bit(signature, offset)).decode(),
        }

    def call(h: dict[str, str], b: bytes) -> Any:
        return webhook_connector.journeyhub_verify_webhook(
            connection=webhook_connection(),
            credentials={"secret": secret, "token": token},
            headers=h,
            body=b,
            now=NOW,
            query={},
        )

    receipt = call(headers, body)
    assert receipt.event_id == trigger_id and receipt.event_type == trigger_type
    with pytest.raises(WebhookRejected):
        call(forged, body)
    if not by_token:
        with pytest.raises(WebhookRejected):
            call(headers, flip_bit(body, offset))


# --- the Zapier bridge ----------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries({}, optional={"secret": secret_bytes.map(whsec) | json_value}),
    garbage_headers(["x-journeyhub-token", "content-type"])
    | st.fixed_dictionaries(
        {
            "content-type": st.sampled_from(
                ["application/x-www-form-urlencoded", "application/json"]
            ),
            "x-journeyhub-token": header_text,
        }
    ),
    st.dictionaries(st.sampled_from(["token", "trigger"]) | text, text, max_size=3),
    st.binary(max_size=200) | json_value.map(lambda v: json.dumps(v).encode()),
)
def test_zapier_verify_rejects_garbage_cleanly(
    credentials: dict[str, Any], headers: dict[str, str], query: dict[str, str], body: bytes
) -> None:
    only_rejections(
        lambda: verify_zapier(credentials, headers, query, body, versioned=("updated_contact",))
    )


@PROPERTY_SETTINGS
@given(
    st.binary(min_size=18, max_size=48),
    st.from_regex(r"[A-Za-z][A-Za-z _]{0,20}", fullmatch=True),
    st.dictionaries(text, json_scalar, max_size=4),
    st.booleans(),
    st.integers(min_value=0),
)
def test_zapier_the_right_token_verifies_and_one_bit_does_not(
    raw: bytes, trigger: str, fields: dict[str, Any], form: bool, position: int
) -> None:
    secret = whsec(raw)
    data = {
        **{k: v for k, v in fields.items() if k.lower() not in {"trigger", "type"}},
        "trigger": trigger,
    }
    if form:
        from urllib.parse import urlencode

        body = urlencode({k: "" if v is None else str(v) for k, v in data.items()}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body, content_type = json.dumps(data).encode(), "application/json"
    credentials = {"secret": secret}
    receipt = verify_zapier(
        credentials, {"x-journeyhub-token": secret, "content-type": content_type}, {}, body
    )
    assert receipt.event_id
    wrong = flip_bit(secret.encode(), position).decode("latin-1")
    assume(wrong.strip().replace(" ", "+") != secret)
    with pytest.raises(WebhookRejected):
        verify_zapier(
            credentials, {"x-journeyhub-token": wrong, "content-type": content_type}, {}, body
        )


def test_the_tolerance_is_the_edge() -> None:
    """Just inside verifies, just outside is stale, for every scheme that carries a time."""
    raw = b"edge-secret-bytes-0123"
    body = b'{"id": "t1", "type": "payment_received"}'
    for offset, ok in [(TOLERANCE, True), (TOLERANCE + 1, False), (-TOLERANCE - 1, False)]:
        when = NOW + timedelta(seconds=offset)
        headers = _sign_standard(raw, "m1", int(when.timestamp()), body, "webhook")
        if ok:
            assert signing.verify([whsec(raw)], headers, body, now=NOW) == "m1"
        else:
            with pytest.raises(WebhookRejected) as caught:
                signing.verify([whsec(raw)], headers, body, now=NOW)
            assert caught.value.reason == "stale"
