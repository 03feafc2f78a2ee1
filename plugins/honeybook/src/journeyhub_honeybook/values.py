"""Money as HoneyBook's Zaps and payments report write it: text such as ``"$1,500.00"``."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# Currencies without minor units (ISO 4217 exponent 0) among those a studio may bill in.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "UGX", "XAF", "XOF", "PYG"})
# "$1,500.00", "1500", "-25.5", "(25.50)", "USD 1,500.00", "A$300", "1,500.00 CAD".
# US separators only (comma thousands, dot decimals), as HoneyBook writes amounts.
_AMOUNT = re.compile(
    r"^(?P<open>\()?\s*(?P<sign>-)?\s*(?:[A-Z]{3}\s*)?(?:[A-Z]{0,2}[$£€¥])?\s*(?P<sign2>-)?\s*"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?\s*(?:[A-Z]{3})?\s*(?P<close>\))?$"
)


def minor_units(value: Any, currency: str) -> int:
    """An amount in the currency's minor unit (cents): ``"$1,500.00"`` → ``150000``.
    Raises ``ValueError`` for anything that is not an amount."""
    readable = not isinstance(value, bool) and value is not None
    match = _AMOUNT.match(str(value).strip()) if readable else None
    if match is None or bool(match["open"]) != bool(match["close"]):
        raise ValueError(f"{value!r} is not an amount")
    # The pattern admits digits only, so this is always a valid Decimal.
    amount = Decimal(f"{match['int'].replace(',', '')}.{match['frac'] or '0'}")
    exponent = 0 if currency.upper() in _ZERO_DECIMAL else 2
    minor = int((amount * 10**exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return -minor if match["open"] or match["sign"] or match["sign2"] else minor


def optional_minor_units(value: Any, currency: str) -> int | None:
    """Like :func:`minor_units`, ``None`` for an empty or unreadable value."""
    try:
        return minor_units(value, currency)
    except ValueError:
        return None
