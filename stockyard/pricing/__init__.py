"""The shipped pricing table (dollars per one million tokens) and model-id matching."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any


@cache
def table() -> dict[str, Any]:
    data = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(data, parse_float=Decimal)


def known_models() -> frozenset[str]:
    return frozenset(table()["models"])
