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
from typing import Any

from journeyhub.connectors.zapier import normalize, parse_when
from journeyhub.kit import TriggerDraft

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
ADJUSTMENTS = ("gratuity", "discount", "refunded")  # amounts beside the payment's, if readable
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


def _columns(headers: list[str]) -> dict[str, str]:
    """Each field's header as written in the file; ``ValueError`` when a needed one is missing."""
    by_name: dict[str, str] = {}
    for header in headers:
        by_name.setdefault(normalize(header), header)
    columns = {
        field: next(by_name[a] for a in aliases if a in by_name)
        for field, aliases in COLUMNS.items()
        if any(a in by_name for a in aliases)
    }
    for field in ("date", "amount"):
        if field not in columns:
            raise ValueError(
                f"line 1: the payments report has no {field} column "
                f"(looked for: {', '.join(COLUMNS[field])})"
            )
    if "client_email" not in columns and "client_name" not in columns:
        raise ValueError("line 1: the payments report has no client email or client name column")
    return columns


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
    columns = _columns(list(headers))
    seen: Counter[str] = Counter()
    try:
        rows = [_row_draft(row, columns, currency, reader.line_num, seen) for row in reader]
    except csv.Error as exc:
        raise ValueError(f"line {reader.line_num}: {exc}") from None
    return [draft for draft in rows if draft is not None]


def _row_draft(
    row: dict[str | None, Any],
    columns: dict[str, str],
    default_currency: str,
    line: int,
    seen: Counter[str],
) -> TriggerDraft | None:
    if None in row:  # more cells than headers
        raise ValueError(f"line {line}: {len(row[None])} more cells than the header has")
    # Every field, "" when the report has no such column (no header is None: checked above).
    cell = {field: (row.get(columns.get(field)) or "").strip() for field in COLUMNS}
    filled = [value.strip() for value in row.values() if value and value.strip()]
    if not filled:
        return None  # a blank line
    if filled[0].lower().startswith("total") and parse_when(cell["date"]) is None:
        return None  # a totals line under the payments (assumed: the format is not documented)
    if normalize(cell["status"]) in NOT_RECEIVED:
        return None

    def bad(field: str, what: str) -> ValueError:
        return ValueError(f"line {line}: {columns[field]} {cell[field]!r} is not {what}")

    currency = (cell["currency"] or default_currency).upper()
    try:
        amount = minor_units(cell["amount"], currency)
    except ValueError:
        raise bad("amount", "an amount") from None
    paid_at = parse_when(cell["date"])
    if paid_at is None:
        raise bad("date", "a date")
    email, name = cell["client_email"].lower() or None, cell["client_name"] or None
    if email is None and name is None:
        raise ValueError(f"line {line}: the row names no client (no email and no name)")
    if cell["payment_id"]:
        source_id = payment_source_id(cell["payment_id"])
    else:
        # No id in the report: the row's content is its identity. The n-th of several identical
        # rows is told apart by its rank, which an overlapping re-export keeps.
        parts = [paid_at.isoformat(), email or "", name or "", cell["project_name"]]
        parts += [cell["invoice"], str(amount), cell["method"]]
        fingerprint = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
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
            "amount_display": cell["amount"],
            **{k: optional_minor_units(cell[k], currency) for k in ADJUSTMENTS},
            "honeybook_payment_id": cell["payment_id"] or None,
            "invoice": cell["invoice"] or None,
            "payment_method": cell["method"] or None,
            **{k: cell[k] or None for k in ("project_name", "project_type", "project_date")},
            "client_name": name,
            "status": cell["status"] or None,
            "source": "csv",
        },
    )
