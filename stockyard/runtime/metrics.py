"""Counters for ``GET /metrics`` (Prometheus text format), updated once per request."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal

from ..core.context import RequestContext

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, str], int] = defaultdict(int)
        self.tokens: dict[tuple[str, str], int] = defaultdict(int)
        self.cost: dict[str, Decimal] = defaultdict(Decimal)
        self.cache_hits: dict[str, int] = defaultdict(int)
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.latency_count = 0

    def reject(self, status: int) -> None:
        """A request refused before a route was chosen (bad JSON, no route, too large, …)."""
        self.requests[("", "", status)] += 1
        self.errors[("", str(status))] += 1

    def observe(self, ctx: RequestContext) -> None:
        route = ctx.route.name
        provider = ctx.provider or ""
        status = ctx.status or 0
        self.requests[(route, provider, status)] += 1
        if status >= 400 or ctx.error:
            self.errors[(route, str(status))] += 1
        usage = ctx.usage
        if usage.prompt_tokens:
            self.tokens[(route, "prompt")] += usage.prompt_tokens
        if usage.completion_tokens:
            self.tokens[(route, "completion")] += usage.completion_tokens
        if ctx.cost:
            self.cost[route] += ctx.cost
        if ctx.cache == "hit":
            self.cache_hits[route] += 1
        seconds = ctx.duration_ms() / 1000
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        self.latency_count += 1

    def render(self, extra: Mapping[str, tuple[str, str, int]]) -> str:
        """The text format; ``extra`` adds families as name -> (kind, help, value)."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "stockyard_requests_total", "counter", "Requests served, by route, provider and status."
        )
        for (route, provider, status), n in sorted(self.requests.items()):
            out.append(
                f'stockyard_requests_total{{route="{_esc(route)}",provider="{_esc(provider)}",status="{status}"}} {n}'
            )
        family(
            "stockyard_errors_total",
            "counter",
            "Requests that ended in an error, by route and status.",
        )
        for (route, code), n in sorted(self.errors.items()):
            out.append(f'stockyard_errors_total{{route="{_esc(route)}",status="{code}"}} {n}')
        family("stockyard_tokens_total", "counter", "Tokens, by route and kind.")
        for (route, kind), n in sorted(self.tokens.items()):
            out.append(f'stockyard_tokens_total{{route="{_esc(route)}",kind="{kind}"}} {n}')
        family("stockyard_cost_dollars_total", "counter", "Cost of priced requests in dollars.")
        for route, amount in sorted(self.cost.items()):
            out.append(f'stockyard_cost_dollars_total{{route="{_esc(route)}"}} {amount:f}')
        family("stockyard_cache_hits_total", "counter", "Requests answered from the cache.")
        for route, n in sorted(self.cache_hits.items()):
            out.append(f'stockyard_cache_hits_total{{route="{_esc(route)}"}} {n}')
        family(
            "stockyard_request_duration_seconds",
            "histogram",
            "Request latency, first byte in to last byte out.",
        )
        cumulative = 0
        for bound, n in zip(LATENCY_BUCKETS, self.latency_counts, strict=False):
            cumulative += n
            out.append(f'stockyard_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
        cumulative += self.latency_counts[-1]
        out.append(f'stockyard_request_duration_seconds_bucket{{le="+Inf"}} {cumulative}')
        out.append(f"stockyard_request_duration_seconds_sum {self.latency_sum:.6f}")
        out.append(f"stockyard_request_duration_seconds_count {self.latency_count}")
        for name, (kind, help_text, value) in extra.items():
            family(name, kind, help_text)
            out.append(f"{name} {value}")
        return "\n".join(out) + "\n"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
