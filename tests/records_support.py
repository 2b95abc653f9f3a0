"""Helpers shared by the records tests (traces, spend, ledger) — no tests of its own.

Records are written by the store's batching writer (a flush every 50 ms), so readers poll the
admin API until what they expect has landed.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from .harness import Gateway

PRICES = json.loads(
    (Path(__file__).resolve().parents[1] / "stockyard" / "pricing" / "prices.json").read_text(),
    parse_float=Decimal,
)["models"]


def expected_cost(
    price: dict[str, Any] | tuple[Any, Any, Any], prompt: int, completion: int, cached: int = 0
) -> Decimal:
    """Dollars, computed here independently of stockyard.pricing (per 1M tokens)."""
    if isinstance(price, dict):
        inp, out = Decimal(price["input"]), Decimal(price["output"])
        cache = Decimal(price["cached"]) if price.get("cached") is not None else inp
    else:
        inp, out, cache = (Decimal(str(v)) for v in price)
    return ((prompt - cached) * inp + cached * cache + completion * out) / Decimal(1_000_000)


def get(gw: Gateway, path: str, **kwargs: Any) -> Any:
    response = gw.api("GET", path, **kwargs)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response.json()


def traces(
    gw: Gateway, headers: dict[str, str] | None = None, **params: Any
) -> list[dict[str, Any]]:
    """Every trace matching ``params`` (all pages), newest first."""
    found: list[dict[str, Any]] = []
    query = {"limit": 500, **params}
    while True:
        page = get(gw, "/api/lookout/traces", params=query, headers=headers)
        found += page["traces"]
        if page["next"] is None:
            return found
        query["before"] = page["next"]


def wait_traces(
    gw: Gateway,
    count: int,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
    **params: Any,
) -> list[dict[str, Any]]:
    """Poll until exactly ``count`` traces match (fails on more, or on fewer at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        found = traces(gw, headers=headers, **params)
        assert len(found) <= count, f"{len(found)} traces for {params}, expected {count}: {found}"
        if len(found) == count:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{len(found)} traces for {params} after {timeout}s, expected {count}"
            )
        time.sleep(0.03)


def ledger_events(gw: Gateway, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The whole ledger through the API (all pages), oldest first."""
    events: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 500}
    while True:
        page = get(gw, "/api/brand/ledger", params=query, headers=headers)
        events += page["events"]
        if page["next"] is None:
            return events[::-1]
        query["before"] = page["next"]


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.03) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def trace_id(response: httpx.Response | Any) -> str:
    headers = response.headers
    value = headers.get("x-stockyard-trace-id")
    assert value, f"no trace id header in {dict(headers)}"
    return str(value)
