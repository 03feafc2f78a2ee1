"""HoneyBook's "Payments completed" report (Finance > Reports > Download reports, a CSV) →
``payment_received`` drafts, for payments a Zap missed or that predate the Zap.

HoneyBook documents what the report holds ("project and client details, total paid, gratuity,
discounts, and refunds") but not its exact column names, so columns are found by normalised
name through the aliases below (README: which are assumed). Each draft's source id is
deterministic from its row, so importing the same report (or an overlapping one) again makes
no new trigger.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from dataclasses import dataclass
from typing import Any

from journeyhub.connectors.zapier import normalize, parse_when
from journeyhub.model import TriggerDraft

from journeyhub_honeybook.inbound import payment_source_id
from journeyhub_honeybook.values import minor_units, optional_minor_units

# Normalised header names accepted for each field, in order of preference.
COLUMNS: dict[str, tuple[str, ...]] = {
    "payment_id": ("payment_id", "transaction_id", "payment_number"),
    "date": ("date_paid", "payment_date", "paid_on", "paid_date", "transaction_date", "date"),
    "client_name": ("client_name", "client", "client_full_name", "paid_by", "payer", "name"),
    "client_email": ("client_email", "email", "email_address", "payer_email"),
    "project_name": ("project_name", "project", "project_title"),
    "project_type": ("project_type",),
    "project_date": ("project_date", "event_date"),
    "invoice": ("invoice", "invoice_number", "invoice_name", "invoice_id"),
    # "Total paid" is what reached the studio; "Amount" when the report has no total.
    "amount": ("total_paid", "amount_paid", "amount", "payment_amount", "total"),
    "gratuity": ("gratuity", "tip", "tips"),
    "discount": ("discount", "discounts"),
    "refunded": ("refunds", "refund", "refunded", "refund_amount", "amount_refunded"),
    "method": ("payment_method", "method"),
    "status": ("status", "payment_status"),
    "currency": ("currency",),
}
REQUIRED = ("date", "amount")
# Statuses of money not received (yet); any other status (Paid, Completed, Refunded…) is.
NOT_RECEIVED = frozenset(
    {
        "pending",
        "processing",
        "failed",
        "canceled",
        "cancelled",
        "upcoming",
        "overdue",
        "scheduled",
        "void",
        "declined",
    }
)


@dataclass(frozen=True)
class _Layout:
    columns: dict[str, str]  # field -> the header as written in the file

    def get(self, row: dict[str, str], field: str) -> str:
        header = self.columns.get(field)
        return (row.get(header) or "").strip() if header else ""


def _layout(headers: list[str]) -> _Layout:
    by_name: dict[str, str] = {}
    for header in headers:
        by_name.setdefault(normalize(header), header)
    columns: dict[str, str] = {}
    for field, aliases in COLUMNS.items():
        found = next((by_name[a] for a in aliases if a in by_name), None)
        if found is not None:
            columns[field] = found
    for field in REQUIRED:
        if field not in columns:
            raise ValueError(
                f"line 1: the payments report has no {field} column "
                f"(looked for: {', '.join(COLUMNS[field])})"
            )
    if "client_email" not in columns and "client_name" not in columns:
        raise ValueError("line 1: the payments report has no client email or client name column")
    return _Layout(columns)


def _fingerprint(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def parse_payments_report(text: str, currency: str) -> list[TriggerDraft]:
    """Drafts for the received payments in the report; ``ValueError`` naming the line of the
    first malformed row (nothing is imported from a file with a bad row)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")), skipinitialspace=True)
    try:
        headers = reader.fieldnames
    except csv.Error as exc:
        raise ValueError(f"line 1: not a CSV file: {exc}") from None
    if not headers:
        return []
    layout = _layout(list(headers))
    drafts: list[TriggerDraft] = []
    seen: Counter[str] = Counter()
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"line {reader.line_num}: {exc}") from None
        draft = _row_draft(row, layout, currency, reader.line_num, seen)
        if draft is not None:
            drafts.append(draft)
    return drafts


def _row_draft(
    row: dict[str, Any], layout: _Layout, default_currency: str, line: int, seen: Counter[str]
) -> TriggerDraft | None:
    if None in row:  # more cells than headers
        raise ValueError(f"line {line}: {len(row[None])} more cells than the header has")
    get = layout.get
    if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
        return None  # a blank line
    first_cell = next((v.strip() for v in row.values() if isinstance(v, str) and v.strip()), "")
    if first_cell.lower().startswith("total") and parse_when(get(row, "date")) is None:
        return None  # a totals line under the payments (assumed: the format is not documented)
    status = normalize(get(row, "status"))
    if status in NOT_RECEIVED:
        return None
    currency = (get(row, "currency") or default_currency).upper()
    amount_text = get(row, "amount")
    try:
        amount = minor_units(amount_text, currency)
    except ValueError:
        column = layout.columns["amount"]
        raise ValueError(f"line {line}: {column} {amount_text!r} is not an amount") from None
    date_text = get(row, "date")
    paid_at = parse_when(date_text)
    if paid_at is None:
        column = layout.columns["date"]
        raise ValueError(f"line {line}: {column} {date_text!r} is not a date") from None
    email = get(row, "client_email").lower() or None
    name = get(row, "client_name") or None
    if email is None and name is None:
        raise ValueError(f"line {line}: the row names no client (no email and no name)")
    payment_id = get(row, "payment_id")
    if payment_id:
        source_id = payment_source_id(payment_id)
    else:
        # No id in the report: the row's content is its identity. The n-th of several identical
        # rows is told apart by its rank, which an overlapping re-export keeps.
        parts = [
            paid_at.isoformat(),
            email or "",
            name or "",
            get(row, "project_name"),
            get(row, "invoice"),
            str(amount),
            get(row, "method"),
        ]
        fingerprint = _fingerprint(parts)
        seen[fingerprint] += 1
        source_id = f"honeybook:csv:{fingerprint}:{seen[fingerprint]}"
    return TriggerDraft(
        type="payment_received",
        source_event_id=source_id,
        occurred_at=paid_at,
        client_email=email,
        data={
            "amount": amount,
            "currency": currency,
            "amount_display": amount_text,
            "gratuity": optional_minor_units(get(row, "gratuity"), currency),
            "discount": optional_minor_units(get(row, "discount"), currency),
            "refunded": optional_minor_units(get(row, "refunded"), currency),
            "honeybook_payment_id": payment_id or None,
            "invoice": get(row, "invoice") or None,
            "payment_method": get(row, "method") or None,
            "project_name": get(row, "project_name") or None,
            "project_type": get(row, "project_type") or None,
            "project_date": get(row, "project_date") or None,
            "client_name": name,
            "status": get(row, "status") or None,
            "source": "csv",
        },
    )
