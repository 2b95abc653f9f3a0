"""What happens when a request ends: its cost, spend, metrics, and the recorders modules asked
for (trace, audit). Called exactly once per routed request, after the last byte."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from ..core.context import RequestContext
from ..pricing import ModelPrice, cost, lookup
from ..store.money import to_pico
from ..store.spend import utc_day

log = logging.getLogger("stockyard.records")

Recorder = Callable[[RequestContext], Awaitable[None]]


def price_overrides(prices: Mapping[str, Any]) -> dict[str, ModelPrice]:
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
    """Set ``ctx.cost`` exactly, or leave it None and flag the model as unpriced."""
    check_usage(ctx)
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


async def finish(ctx: RequestContext, services: Any, overrides: Mapping[str, ModelPrice]) -> None:
    """Settle cost, count spend, run recorders. Never raises into the request path, and one
    failing step never keeps the others (a trace, a reservation's release) from running."""
    try:
        settle_cost(ctx, overrides)
    except Exception as error:  # e.g. usage that contradicts itself
        ctx.cost = None
        ctx.notes["cost_unknown"] = f"usage could not be priced: {error}"
        log.warning("request %s: cost unknown: %s", ctx.id, error)
    try:
        await _count_spend(ctx, services)
    except Exception:
        log.exception("counting the spend of request %s failed", ctx.id)
    for recorder in ctx.recorders:
        try:
            await recorder(ctx)
        except Exception:
            log.exception("a recorder of request %s failed", ctx.id)


async def _count_spend(ctx: RequestContext, services: Any) -> None:
    metrics = getattr(services, "metrics", None)
    if metrics is not None:
        metrics.observe(ctx)
    store = getattr(services, "store", None)
    if store is None:
        return
    pico = to_pico(ctx.cost) if ctx.cost is not None else 0
    day = utc_day(ctx.started_at)
    key = (
        day,
        ctx.project,
        ctx.key_id or "",
        ctx.route.name,
        ctx.served_model or ctx.model,
        ctx.provider or "",
    )
    usage = ctx.usage
    values = (
        1,
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.cached_tokens,
        pico,
        1 if ctx.cost is None else 0,
    )
    store.spend.add(day, ctx.project, ctx.key_id or "", ctx.route.name, pico)
    await store.add_spend(key, values)
