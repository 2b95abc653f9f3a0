"""A request's numbers once it has ended: its usage checked, its cost settled, its spend counted.
These are the runtime's own steps of the end-of-request sequence (:mod:`stockyard.runtime.end`
runs them, in order, around the modules' hooks)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from ..core.context import RequestContext
from ..core.generation import PriceSpec
from ..pricing import ModelPrice, cost, lookup
from ..store.money import to_pico
from ..store.spend import utc_day

if TYPE_CHECKING:  # the store loads aiosqlite: nothing here needs it at run time
    from ..store.database import Store


def price_overrides(prices: Mapping[str, PriceSpec]) -> dict[str, ModelPrice]:
    """``price`` blocks of a generation, in the pricing module's shape (built once per generation)."""
    return {m: ModelPrice(m, p.input, p.output, p.cached) for m, p in prices.items()}


# No request carries this many tokens; a provider that says so is wrong, and numbers this
# large would not fit the database's 64-bit integers (nor its pico-dollar sums).
MAX_TOKENS = 10**12


def check_usage(ctx: RequestContext) -> None:
    """Discard reported usage that cannot be true (flagged in the trace, cost unknown)."""
    usage = ctx.usage
    counts = (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
              usage.reasoning_tokens)  # fmt: skip
    if any(count > MAX_TOKENS for count in counts):
        ctx.notes["usage_out_of_range"] = [str(count) for count in counts]
        usage.prompt_tokens = usage.completion_tokens = 0
        usage.cached_tokens = usage.reasoning_tokens = 0
        usage.known = False


def settle_cost(ctx: RequestContext, overrides: Mapping[str, ModelPrice]) -> None:
    """Set ``ctx.cost`` exactly, or leave it None and flag the model as unpriced. Expects
    :func:`check_usage` to have run."""
    if ctx.cost is not None:
        return
    served = any(a.outcome == "ok" for a in ctx.attempts)
    if not served:
        ctx.cost = Decimal(0)  # nothing was billed
        return
    if not ctx.usage.known:
        ctx.notes["cost_unknown"] = "the provider reported no usage"
        return
    model = ctx.served_model or ctx.model
    price = lookup(model, overrides)
    if price is None:
        ctx.notes["unpriced"] = model
        return
    usage = ctx.usage
    ctx.cost = cost(price, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)


def count_spend(ctx: RequestContext, store: Store) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Add the request's cost to the in-memory spend counters (what ``cost_cap`` admits by),
    and return the ``spend_daily`` row (key, values) to queue for the database."""
    pico = to_pico(ctx.cost) if ctx.cost is not None else 0
    day = utc_day(ctx.started_at)
    route = ctx.route.name
    key_id = ctx.key_id or ""
    store.spend.add(day, ctx.project, key_id, route, pico)
    usage = ctx.usage
    key = (day, ctx.project, key_id, route, ctx.served_model or ctx.model, ctx.provider or "")
    values = (
        1,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        pico,
        1 if ctx.cost is None else 0,
    )
    return key, values
