"""The end of a request: one sequence, run by the gateway exactly once per routed request,
after its last byte — or its error, or the caller's disconnect.

The sequence
------------

1. **close**: the response's stream is closed (it stops the upstream when the caller left
   early) and the response's ``on_close`` callbacks run (the provider connection is released).
2. **usage**: usage that cannot be true is discarded and flagged (``notes.usage_out_of_range``).
3. **price**: ``ctx.cost`` is settled from the usage and the generation's prices (left None,
   with ``notes.cost_unknown`` or ``notes.unpriced``, when it cannot be known).
4. **spend**: the cost is added to the in-memory spend counters, then its ``spend_daily`` row
   is queued. This comes before any reservation is released: at no moment is a request's cost
   counted in neither the spend nor the reservations, so concurrent admissions cannot overshoot
   a cap.
5. :attr:`~stockyard.core.context.Phase.SETTLE` hooks: modules give back or correct what they
   held at admission — ``cost_cap`` settles its reservation against the cost of step 3,
   ``rate_limit`` corrects its token bucket with the actual usage. Both note what they did.
6. :attr:`~stockyard.core.context.Phase.KEEP` hooks: ``cache`` stores a complete answer, with
   the cost it had.
7. :attr:`~stockyard.core.context.Phase.TRACE` hooks: ``trace`` queues the trace row, which
   therefore shows the settled cost and every note written above.
8. :attr:`~stockyard.core.context.Phase.AUDIT` hooks: ``audit`` queues the ledger event.
9. **metrics**: the request is counted for ``GET /metrics``.

Modules take part by declaring a hook for a phase while they handle the request —
``ctx.on_end(Phase.SETTLE, hook)`` — never by running code after ``call_next`` for things that
must happen at the end (a stream has not even started then). Hooks of one phase run in the
order they were declared. ``ctx.ended_ms`` is set when the sequence begins: recorded latencies
are first byte in to last byte out, not counting the recording.

Isolation and shutdown
----------------------

Every step is isolated: an exception is logged and the next step runs, so a failing trace write
never keeps the reservation's release, the audit event or the metrics from happening. The
sequence never raises into the request path, except to pass on a cancellation, and that only
after every step has run: when the server tears a request down (its grace period is over) the
steps still run, and :meth:`Ending.drained` lets the application wait for the sequences in
flight before it closes the store, which then writes every queued row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from operator import itemgetter

from ..core.context import RequestContext
from ..core.response import GatewayResponse
from ..pricing import ModelPrice
from .records import check_usage, count_spend, settle_cost
from .services import Services

log = logging.getLogger("stockyard.end")

_PHASE = itemgetter(0)


async def close_response(response: GatewayResponse) -> None:
    """Close the response's stream (a no-op once it has ended) and run its ``on_close``."""
    stream = response.stream
    try:
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
    finally:  # the connection is released even if closing the stream failed
        for callback in response.on_close:
            result = callback()
            if asyncio.iscoroutine(result):
                await result


class Ending:
    """Runs the sequence and knows how many are in flight (for a clean shutdown)."""

    __slots__ = ("_idle", "in_flight", "services")

    def __init__(self, services: Services) -> None:
        self.services = services
        self.in_flight = 0
        self._idle: asyncio.Event | None = None  # made on demand: only shutdown waits on it

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until no sequence is running (True), or ``timeout`` seconds (False)."""
        if self.in_flight == 0:
            return True
        if self._idle is None or self._idle.is_set():  # set by an earlier drain: a new one
            self._idle = asyncio.Event()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(
        self,
        ctx: RequestContext,
        response: GatewayResponse | None,
        prices: Mapping[str, ModelPrice],
    ) -> None:
        """The sequence of the module docstring, for one request."""
        ctx.ended_ms = ctx.elapsed_ms()
        self.in_flight += 1
        try:
            await self._steps(ctx, response, prices)
        finally:
            self.in_flight -= 1
            if self.in_flight == 0 and self._idle is not None:
                self._idle.set()

    async def _steps(
        self,
        ctx: RequestContext,
        response: GatewayResponse | None,
        prices: Mapping[str, ModelPrice],
    ) -> None:
        cancelled: asyncio.CancelledError | None = None
        if response is not None:
            try:
                await close_response(response)
            except asyncio.CancelledError as error:
                cancelled = error
            except Exception:
                log.exception("closing the response of request %s failed", ctx.id)
        try:
            check_usage(ctx)
        except Exception:
            log.exception("checking the usage of request %s failed", ctx.id)
        try:
            settle_cost(ctx, prices)
        except Exception as error:  # e.g. usage that contradicts itself
            ctx.cost = None
            ctx.notes["cost_unknown"] = f"usage could not be priced: {error}"
            log.warning("request %s: cost unknown: %s", ctx.id, error)
        store = self.services.store
        try:
            key, values = count_spend(ctx, store)
            await store.add_spend(key, values)
        except asyncio.CancelledError as error:
            cancelled = error
        except Exception:
            log.exception("counting the spend of request %s failed", ctx.id)
        hooks = ctx.end_hooks
        if len(hooks) > 1:
            hooks.sort(key=_PHASE)  # stable: declaration order within a phase
        for phase, hook in hooks:
            try:
                await hook(ctx)
            except asyncio.CancelledError as error:
                cancelled = error
            except Exception:
                log.exception("the %s hook of request %s failed", phase.name.lower(), ctx.id)
        try:
            self.services.metrics.observe(ctx)
        except Exception:
            log.exception("counting request %s in the metrics failed", ctx.id)
        if cancelled is not None:
            raise cancelled
