"""Exact money in the database: integer pico-dollars (10^-12 $).

A price of $0.075 per million tokens is 75,000 pico-dollars per token, so any price with up to
six decimals per million tokens costs an exact integer; SQLite adds integers exactly.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

PICO = Decimal(10) ** 12


def to_pico(dollars: Decimal) -> int:
    return int((dollars * PICO).to_integral_value(ROUND_HALF_EVEN))


def from_pico(pico: int | None) -> Decimal | None:
    if pico is None:
        return None
    return (Decimal(pico) / PICO).normalize() if pico else Decimal(0)


def dollars_text(pico: int | None) -> str | None:
    """Dollars as a decimal string for JSON (no float rounding)."""
    value = from_pico(pico)
    return None if value is None else format(value, "f")
