"""The end of every module chain: send the request along the route's provider chain.

Tiers are tried in order (failover); within a tier, providers are tried in a weighted random
order (load balancing). Each provider gets ``retries`` extra tries with exponential backoff and
jitter that honours Retry-After. Failures the route does not fail over on go straight back.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Mapping

from ..core.context import Attempt, RequestContext
from ..core.env import resolve
from ..core.generation import PASSTHROUGH, HopSpec, ProviderSpec, RouteSpec, TierSpec
from ..core.response import GatewayResponse
from ..core.usage import Usage
from ..exceptions import (
    BadGateway,
    GatewayError,
    GatewayTimeout,
    RateLimited,
    ServiceUnavailable,
    UpstreamFailure,
)
from ..providers.base import Adapter, Timeouts, UpstreamReply, UpstreamRequest
from .breaker import Breakers

DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 10.0
_SECRET = re.compile(r"\b(sk|key|tok|pk|rk)[-_][A-Za-z0-9_\-]{8,}")


def weighted_order(tier: TierSpec, rng: random.Random) -> list[HopSpec]:
    """A random order in which heavier hops tend to come first (weighted sampling)."""
    hops = list(tier.hops)
    if len(hops) == 1:
        return hops
    # Efraimidis–Spirakis: sort by u^(1/w), descending.
    return sorted(hops, key=lambda h: rng.random() ** (1.0 / h.weight), reverse=True)


class Dispatcher:
    def __init__(
        self,
        route: RouteSpec,
        providers: Mapping[str, ProviderSpec],
        adapters: Mapping[str, Adapter],
        breakers: Breakers,
        rng: random.Random | None = None,
    ) -> None:
        self.route = route
        self.providers = providers
        self.adapters = adapters
        self.breakers = breakers
        self.rng = rng or random.Random()
        self.policy = route.policy

    def timeouts(self, provider: ProviderSpec) -> Timeouts:
        policy = self.policy
        return Timeouts(
            total=policy.timeout or provider.timeout or DEFAULT_TIMEOUT,
            connect=policy.connect_timeout or provider.connect_timeout or DEFAULT_CONNECT_TIMEOUT,
            first_token=policy.first_token_timeout,
        )

    async def __call__(self, ctx: RequestContext) -> GatewayResponse:
        endpoint = ctx.path.removeprefix("/v1/").strip("/")
        last: UpstreamFailure | None = None
        tried = False
        for tier in self.route.chain:
            for hop in weighted_order(tier, self.rng):
                provider = self.providers[hop.provider]
                model = hop.model or ctx.model
                if not self.breakers.allow(hop.provider):
                    ctx.attempts.append(
                        Attempt(hop.provider, model, error="circuit open", outcome="skipped")
                    )
                    continue
                tried = True
                try:
                    return await self._try_provider(ctx, provider, model, endpoint)
                except UpstreamFailure as failure:
                    last = failure
                    if not failure.matches(self.policy.failover_on):
                        raise _client_error(failure, ctx, provider) from None
        raise _exhausted(last, tried, ctx)

    async def _try_provider(
        self, ctx: RequestContext, provider: ProviderSpec, model: str, endpoint: str
    ) -> GatewayResponse:
        adapter = self.adapters[provider.name]
        api_key = ctx.caller_key if provider.api_key == PASSTHROUGH else resolve(provider.api_key)

        def record_usage(usage: Usage) -> None:
            ctx.usage = usage  # the dispatcher is the one writer of ctx.usage

        request = UpstreamRequest(
            ctx,
            provider,
            endpoint,
            model,
            ctx.stream,
            self.timeouts(provider),
            api_key,
            record_usage,
        )
        policy = self.policy
        for attempt_number in range(policy.retries + 1):
            started = time.perf_counter()
            attempt = Attempt(provider.name, model)
            ctx.attempts.append(attempt)
            try:
                result = await adapter.send(request)
            except UpstreamFailure as failure:
                attempt.latency_ms = (time.perf_counter() - started) * 1000
                ctx.upstream_ms += attempt.latency_ms
                attempt.status = failure.status
                attempt.error = _scrub(str(failure), ctx, provider)
                retryable = failure.matches(policy.failover_on)
                if failure.kind != "status" or (failure.status or 0) >= 500:
                    self.breakers.failure(provider.name)
                else:  # it answered (4xx, 429): not a sign of health or sickness
                    self.breakers.release(provider.name)
                if not retryable or attempt_number == policy.retries:
                    raise
                delay = min(policy.max_backoff, policy.backoff * 2**attempt_number)
                delay *= 0.5 + self.rng.random() / 2
                if failure.retry_after is not None:
                    if failure.retry_after > policy.max_backoff:
                        raise  # asked to wait longer than we would: move on
                    delay = max(delay, failure.retry_after)
                await asyncio.sleep(delay)
                ctx.upstream_ms += delay * 1000
                continue
            except asyncio.CancelledError:
                self.breakers.release(provider.name)
                attempt.error = "cancelled: the caller went away"
                attempt.latency_ms = (time.perf_counter() - started) * 1000
                raise
            elapsed = (time.perf_counter() - started) * 1000
            attempt.latency_ms = elapsed
            attempt.status = result.status
            attempt.outcome = "ok"
            ctx.upstream_ms += elapsed
            self.breakers.success(provider.name)
            ctx.provider = provider.name
            ctx.served_model = model
            ctx.status = result.status
            content_type = result.headers.get("content-type", "application/json")
            if isinstance(result, UpstreamReply):
                if result.usage is not None:
                    ctx.usage = result.usage
                return GatewayResponse(result.status, {"content-type": content_type}, result.body)
            ctx.first_token_ms = ctx.elapsed_ms()
            response = GatewayResponse(
                result.status,
                {"content-type": "text/event-stream", "cache-control": "no-cache"},
                stream=result.chunks,
            )
            response.on_close.append(result.close)
            return response
        raise AssertionError("unreachable")  # pragma: no cover


def _scrub(text: str, ctx: RequestContext, provider: ProviderSpec) -> str:
    """Remove credentials from text that will be shown or recorded."""
    for secret in (
        ctx.caller_key,
        resolve(provider.api_key) if provider.api_key != PASSTHROUGH else None,
    ):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return _SECRET.sub("[redacted]", text)


def _client_error(
    failure: UpstreamFailure, ctx: RequestContext, provider: ProviderSpec
) -> GatewayError:
    """A failure the route does not fail over on: the caller sees the provider's answer."""
    message = _scrub(failure.message, ctx, provider)
    headers = {}
    if failure.retry_after is not None:
        headers["retry-after"] = str(max(1, round(failure.retry_after)))
    if failure.kind == "timeout":
        return GatewayTimeout(f"{provider.name}: {message}")
    if failure.kind == "connect":
        return BadGateway(f"{provider.name}: {message}")
    status = failure.status or 502
    if status >= 500:
        return BadGateway(
            f"{provider.name} answered {status}: {message}",
            code=f"upstream_{status}",
            headers=headers,
        )
    error = GatewayError(message, status=status, code=f"upstream_{status}", headers=headers)
    error.type = "rate_limit_error" if status == 429 else "invalid_request_error"
    return error


def _exhausted(last: UpstreamFailure | None, tried: bool, ctx: RequestContext) -> GatewayError:
    if not tried or last is None:
        return ServiceUnavailable(
            "every provider of route `" + ctx.route.name + "` is unavailable (circuit open); "
            "retry later"
        )
    summary = "; ".join(
        f"{a.provider}: {a.error or a.status}" for a in ctx.attempts if a.outcome != "ok"
    )
    if last.kind == "timeout":
        return GatewayTimeout(f"every provider timed out ({summary})")
    if last.kind == "connect":
        return ServiceUnavailable(f"no provider could be reached ({summary})")
    if last.status == 429:
        headers = {"retry-after": str(max(1, round(last.retry_after)))} if last.retry_after else {}
        return RateLimited(f"every provider is rate-limiting ({summary})", headers=headers)
    return BadGateway(f"every provider failed ({summary})", code=f"upstream_{last.status}")
