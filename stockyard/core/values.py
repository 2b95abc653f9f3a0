"""Values the language compiles to that outlive the compiler: environment references and rates."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .span import Span


@dataclass(frozen=True, slots=True)
class EnvRef:
    """``env("NAME")``: read from the environment when the generation is built."""

    name: str
    span: Span | None = None

    def __str__(self) -> str:
        return f'env("{self.name}")'


@dataclass(frozen=True, slots=True)
class RateValue:
    count: Decimal
    per_seconds: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h", 86400: "day"}.get(
            self.per_seconds, f"{self.per_seconds}s"
        )
        return f"{self.count.normalize():f}/{unit}"
