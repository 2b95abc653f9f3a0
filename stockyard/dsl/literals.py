"""Decode typed literals. The grammar guarantees the shape; these functions give the meaning."""

from __future__ import annotations

import re
from decimal import Decimal

_DURATION_UNITS = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_RATE_UNITS = {
    "s": 1, "sec": 1, "second": 1,
    "m": 60, "min": 60, "minute": 60,
    "h": 3600, "hour": 3600,
    "d": 86400, "day": 86400,
}  # fmt: skip
_MULTIPLIERS = {"": 1, "k": 1000, "K": 1000, "M": 1_000_000}
_SIZE_UNITS = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
}

_DURATION = re.compile(r"([0-9.]+)(ms|s|m|h|d)")
_MONEY = re.compile(r"\$([0-9.]+)(?:/([0-9]+)([KkM]?))?")
_RATE = re.compile(r"([0-9.]+)([kKM]?)/([a-z]+)")
_SIZE = re.compile(r"([0-9.]+)([A-Za-z]+)")

ONE_MILLION = 1_000_000


def duration_seconds(raw: str) -> Decimal:
    m = _DURATION.fullmatch(raw)
    assert m, raw
    return Decimal(m.group(1)) * _DURATION_UNITS[m.group(2)]


def money(raw: str) -> tuple[Decimal, int | None]:
    """``$25`` → (25, None); ``$0.15/1M`` → (0.15, 1000000): dollars and the tokens they buy."""
    m = _MONEY.fullmatch(raw)
    assert m, raw
    amount = Decimal(m.group(1))
    if m.group(2) is None:
        return amount, None
    # int(Decimal) has no digit limit, unlike int(str) (4,300 digits)
    return amount, int(Decimal(m.group(2))) * _MULTIPLIERS[m.group(3)]


def per_million(amount: Decimal, per_tokens: int) -> Decimal:
    """Normalise a price to dollars per one million tokens, exactly."""
    return amount * ONE_MILLION / per_tokens


def rate(raw: str) -> tuple[Decimal, int]:
    """``60/min`` → (60, 60): a count and the window in seconds."""
    m = _RATE.fullmatch(raw)
    assert m, raw
    return Decimal(m.group(1)) * _MULTIPLIERS[m.group(2)], _RATE_UNITS[m.group(3)]


def size_bytes(raw: str) -> int:
    m = _SIZE.fullmatch(raw)
    assert m, raw
    return int(Decimal(m.group(1)) * _SIZE_UNITS[m.group(2)])


def format_money(amount: Decimal) -> str:
    text = format(amount.normalize(), "f")
    return f"${text}"


def format_seconds(seconds: Decimal | float) -> str:
    value = Decimal(str(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if value >= size and value % size == 0:
            return f"{value // size}{unit}"
    if value < 1:
        return f"{(value * 1000).normalize():f}ms"
    return f"{value.normalize():f}s"
