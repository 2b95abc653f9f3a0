"""The shipped pricing table (dollars per one million tokens) and model-id matching.

``prices.json`` holds one row per model id. :func:`lookup` finds the price for the model id a
request named, and :func:`cost` turns token counts into an exact :class:`~decimal.Decimal`
amount of dollars.

Matching is deterministic:

1. the exact id (``price`` overrides first, then the shipped table);
2. otherwise the *longest* known id that is a prefix of the requested id and ends at a
   separator (``-``, ``:`` or ``@``), so ``gpt-4o-mini-2024-07-18`` prices as ``gpt-4o-mini``
   and never as ``gpt-4o``; at the same length an override beats the table;
3. if nothing matched and the id has a leading ``provider/`` part (``openai/gpt-4o``), that
   part is dropped and the steps above are tried again.

Table ids are matched case-insensitively; override ids as written or in lower case. An
unknown model gives ``None`` -- never a zero price and never a guess from a different family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext
from functools import cache, lru_cache
from importlib import resources
from typing import Any, Protocol

SEPARATORS = frozenset("-:@")
"""Characters after which a known id may be followed by a suffix (date, version, region)."""

_PRECISION = 60  # digits: exact for any token count a request can carry


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Dollars per one million tokens for one priced model id.

    ``cached`` is the price of prompt tokens served from the provider's cache; it equals
    ``input`` where the provider gives no discount.
    """

    model: str
    input: Decimal
    output: Decimal
    cached: Decimal


class PriceLike(Protocol):
    """Anything priced per million tokens, e.g. a compiled ``price`` block."""

    @property
    def input(self) -> Decimal: ...

    @property
    def output(self) -> Decimal: ...

    @property
    def cached(self) -> Decimal: ...


@cache
def table() -> dict[str, Any]:
    data = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(data, parse_float=Decimal)
    return loaded


def known_models() -> frozenset[str]:
    return _known()


@cache
def _known() -> frozenset[str]:
    return frozenset(table()["models"])


def _decimal(value: Any, model: str, field: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise ValueError(f"prices.json: {model}.{field} is not a number: {value!r}")
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"prices.json: {model}.{field} must be a finite amount >= 0")
    return amount


@cache
def _index() -> dict[str, ModelPrice]:
    """Lower-cased model id -> price, built once from the shipped table."""
    index: dict[str, ModelPrice] = {}
    for model, entry in sorted(table()["models"].items()):
        key = model.lower()
        if key in index:
            raise ValueError(f"prices.json: {model!r} and {index[key].model!r} differ only in case")
        input_price = _decimal(entry["input"], model, "input")
        output_price = _decimal(entry["output"], model, "output")
        cached = entry.get("cached")
        cached_price = input_price if cached is None else _decimal(cached, model, "cached")
        index[key] = ModelPrice(model, input_price, output_price, cached_price)
    return index


def _as_price(model: str, value: ModelPrice | PriceLike) -> ModelPrice:
    if isinstance(value, ModelPrice):
        return value
    return ModelPrice(model, value.input, value.output, value.cached)


def _override(
    overrides: Mapping[str, ModelPrice | PriceLike], model: str, lowered: str
) -> ModelPrice | None:
    value = overrides.get(model)
    if value is not None:
        return _as_price(model, value)
    if lowered != model:
        value = overrides.get(lowered)
        if value is not None:
            return _as_price(lowered, value)
    return None


def _prefixes(model: str) -> list[str]:
    """Every proper prefix of ``model`` that ends right before a separator, longest first.

    A prefix never stops inside a ``namespace/`` part: ``sonar-labs/x`` has no prefixes.
    """
    start = model.rfind("/") + 1
    return [model[:end] for end in range(len(model) - 1, start, -1) if model[end] in SEPARATORS]


def _match(model: str, overrides: Mapping[str, ModelPrice | PriceLike] | None) -> ModelPrice | None:
    index = _index()
    lowered = model.lower()
    if overrides:
        found = _override(overrides, model, lowered)
        if found is not None:
            return found
    found = index.get(lowered)
    if found is not None:
        return found
    for prefix in _prefixes(model):
        lowered_prefix = prefix.lower()
        if overrides:
            found = _override(overrides, prefix, lowered_prefix)
            if found is not None:
                return found
        found = index.get(lowered_prefix)
        if found is not None:
            return found
    return None


def _resolve(
    model: str, overrides: Mapping[str, ModelPrice | PriceLike] | None
) -> ModelPrice | None:
    candidate = model
    while candidate:
        found = _match(candidate, overrides)
        if found is not None:
            return found
        provider, slash, rest = candidate.partition("/")
        if not slash or not provider:
            return None
        candidate = rest
    return None


@lru_cache(maxsize=4096)
def _resolve_shipped(model: str) -> ModelPrice | None:
    return _resolve(model, None)


def lookup(
    model: str, overrides: Mapping[str, ModelPrice | PriceLike] | None = None
) -> ModelPrice | None:
    """The price for ``model``, or ``None`` when neither the overrides nor the table know it.

    ``overrides`` maps model ids (from ``price`` blocks) to prices; any value with ``input``,
    ``output`` and ``cached`` attributes is accepted. They take precedence over the shipped
    table at every step of the matching described in the module docstring.
    """
    if not isinstance(model, str) or not model:
        return None
    if not overrides:
        return _resolve_shipped(model)
    return _resolve(model, overrides)


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def cost(
    price: ModelPrice | PriceLike,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
) -> Decimal:
    """Exact dollars for one request.

    ``cached_tokens`` are the part of ``prompt_tokens`` served from the cache: they are billed
    at ``price.cached`` and the rest of the prompt at ``price.input``.
    """
    prompt = _count("prompt_tokens", prompt_tokens)
    completion = _count("completion_tokens", completion_tokens)
    cached = _count("cached_tokens", cached_tokens)
    if cached > prompt:
        raise ValueError(
            f"cached_tokens ({cached}) cannot exceed prompt_tokens ({prompt}): "
            "cached tokens are a subset of the prompt"
        )
    with localcontext() as context:
        context.prec = _PRECISION
        total = (prompt - cached) * price.input + cached * price.cached + completion * price.output
        return total.scaleb(-6)


__all__ = [
    "SEPARATORS",
    "ModelPrice",
    "PriceLike",
    "cost",
    "known_models",
    "lookup",
    "table",
]
