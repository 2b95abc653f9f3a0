"""``rate_limit``: token buckets for requests and tokens per key, project, route or IP.

Each limit is a token bucket holding up to ``count`` units that refills continuously at
``count / window``: ``requests: 60/min`` allows a burst of 60 and then one a second. A request
takes 1 from the requests bucket and, for ``tokens``, its *estimated* tokens from the tokens
bucket (the prompt estimate of :func:`~stockyard.modules.cost_cap.estimate_prompt_tokens` plus
the caller's ``max_tokens`` × ``n`` when set); when it has ended, a recorder corrects the tokens
bucket with the actual prompt + completion tokens the provider reported (a request no provider
served gives its tokens back). A request needing more tokens than the bucket holds is admitted
when the bucket is full, and the bucket goes into debt.

Over a limit: 429 ``rate_limit_exceeded`` with ``Retry-After`` (whole seconds),
``retry-after-ms``, and the ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*`` and
``x-ratelimit-reset-*`` headers (``-requests`` and ``-tokens``) that OpenAI sends; successful
answers carry the same headers. A reset is the time until the bucket is full again, written as
OpenAI does (``1s``, ``250ms``, ``6m0s``).

Buckets live in ``services.shared("rate_limit")``, so reloads and runtime toggles keep them. A
bucket is identified by its kind, scope, scope value *and* its limit: routes declaring the same
limit with the same scope share one bucket (e.g. a limit in ``defaults``); changing a limit
starts a fresh, full bucket. ``per: ip`` uses the connection's address (no proxy headers are
trusted); ``per: key`` needs ``auth`` before it and refuses requests without a gateway key.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..core.context import Phase, RequestContext
from ..core.response import GatewayResponse
from ..core.values import RateValue
from ..dsl.schema import REJECTS, Param, frozen_map
from ..dsl.value_types import INVALID_VALUE, Choice, Rate, ValueProblem
from ..exceptions import AuthenticationFailed, RateLimited
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params
from .cost_cap import estimate_prompt_tokens, max_output_tokens

PRUNE_EVERY = 4096  # admissions between sweeps of idle, full buckets


class Bucket:
    __slots__ = ("level", "updated")

    def __init__(self, level: float, updated: float) -> None:
        self.level = level
        self.updated = updated


class Buckets:
    """Every bucket, keyed by (kind, scope, value, count, window). Shared across reloads."""

    def __init__(self) -> None:
        self.buckets: dict[tuple[Any, ...], Bucket] = {}
        self.admissions = 0

    def get(self, key: tuple[Any, ...], capacity: float, rate: float, now: float) -> Bucket:
        """The bucket, refilled up to ``now``."""
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(capacity, now)
        elif now > bucket.updated:
            bucket.level = min(capacity, bucket.level + (now - bucket.updated) * rate)
            bucket.updated = now
        return bucket

    def prune(self, now: float) -> None:
        """Forget buckets that have refilled completely (a new bucket starts full anyway)."""
        for key, bucket in list(self.buckets.items()):
            count, window = float(key[3]), float(key[4])
            capacity = max(count, 1.0)
            if bucket.level + (now - bucket.updated) * count / window >= capacity:
                del self.buckets[key]


def _count_text(count: Decimal) -> str:
    return format(count.normalize(), "f")


def duration_text(seconds: float) -> str:
    """OpenAI's format for reset times: ``250ms``, ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        text = f"{math.ceil(seconds * 1000) / 1000:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"


class Limit:
    """One configured limit (requests or tokens) of one module instance."""

    __slots__ = ("capacity", "count_text", "kind", "rate", "value")

    def __init__(self, kind: str, value: RateValue) -> None:
        self.kind = kind
        self.value = value
        self.rate = float(value.count) / value.per_seconds
        # A bucket holds at least one request: `0.5/s` means one request every two seconds.
        self.capacity = max(float(value.count), 1.0)
        self.count_text = _count_text(value.count)

    def key(self, per: str, owner: str) -> tuple[Any, ...]:
        return (self.kind, per, owner, self.value.count, self.value.per_seconds)

    def headers(self, bucket: Bucket, into: dict[str, str]) -> None:
        level = bucket.level
        into[f"x-ratelimit-limit-{self.kind}"] = self.count_text
        into[f"x-ratelimit-remaining-{self.kind}"] = str(max(0, math.floor(level)))
        into[f"x-ratelimit-reset-{self.kind}"] = duration_text((self.capacity - level) / self.rate)


def _validate(params: Mapping[str, Any]) -> list[ValueProblem]:
    if params.get("requests") is None and params.get("tokens") is None:
        return [
            ValueProblem(
                INVALID_VALUE,
                "`rate_limit` needs `requests` or `tokens`",
                None,
                "no limit set",
                help="for example `rate_limit(requests: 60/min)`",
            )
        ]
    return []


def create(params: Params, services: ModuleServices) -> Module:
    per = str(params["per"])
    limits = [
        Limit(kind, params[kind]) for kind in ("requests", "tokens") if params.get(kind) is not None
    ]
    requests_limit = next((lim for lim in limits if lim.kind == "requests"), None)
    tokens_limit = next((lim for lim in limits if lim.kind == "tokens"), None)
    state: Buckets = services.shared("rate_limit", Buckets)

    async def rate_limit(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        if per == "key":
            owner = ctx.key_id
        elif per == "project":
            owner = ctx.project
        elif per == "route":
            owner = ctx.route.name
        else:
            owner = ctx.client_ip or "unknown"
        if not owner:
            ctx.blocked_by = "rate_limit"
            raise AuthenticationFailed(
                f"route `{ctx.route.name}` limits requests per key, but the request carries no "
                "gateway key (the route needs `auth` before `rate_limit`)",
                code="missing_api_key",
            )
        estimate = 0
        if tokens_limit is not None:
            estimate = estimate_prompt_tokens(ctx.path, ctx.body) + max_output_tokens(
                ctx.path, ctx.body, None
            )
        now = time.monotonic()
        # Look at every bucket first, take from them only if all have room: no await between.
        taken: list[tuple[Limit, Bucket, float]] = []
        wait = 0.0
        short: list[Limit] = []
        for limit in limits:
            bucket = state.get(limit.key(per, owner), limit.capacity, limit.rate, now)
            need = 1.0 if limit is requests_limit else min(float(estimate), limit.capacity)
            if bucket.level + 1e-9 < need:
                short.append(limit)
                wait = max(wait, (need - bucket.level) / limit.rate)
            taken.append((limit, bucket, need))
        headers: dict[str, str] = {}
        if short:
            for limit, bucket, _need in taken:
                limit.headers(bucket, headers)
            retry = max(1, math.ceil(wait))
            headers["retry-after"] = str(retry)
            headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
            names = " and ".join(f"{lim.value} {lim.kind}" for lim in short)
            ctx.blocked_by = "rate_limit"
            ctx.notes["rate_limit"] = {
                "limit": [f"{lim.kind}: {lim.value}" for lim in short],
                "per": per,
                "retry_after_s": round(wait, 3),
            }
            ctx.response_headers.update(headers)
            raise RateLimited(
                f"rate limit of {names} per {per} `{owner}` reached; "
                f"retry in {duration_text(wait)}",
                code="rate_limit_exceeded",
                headers=headers,
            )
        for limit, bucket, need in taken:
            bucket.level -= need
            limit.headers(bucket, headers)
        ctx.response_headers.update(headers)
        if estimate or tokens_limit is not None:
            ctx.notes["rate_limit"] = {"tokens_estimate": estimate}
        state.admissions += 1
        if state.admissions % PRUNE_EVERY == 0:
            state.prune(now)
        if tokens_limit is not None:
            tokens_bucket = next(b for lim, b, _ in taken if lim is tokens_limit)
            token_need = next(n for lim, _, n in taken if lim is tokens_limit)

            async def correct(done: RequestContext) -> None:
                served = any(a.outcome == "ok" for a in done.attempts) or done.cache == "hit"
                if done.usage.known:
                    actual = done.usage.prompt_tokens + done.usage.completion_tokens
                elif not served:
                    actual = 0  # nothing was generated: give the tokens back
                else:
                    return  # no usage reported: the estimate stands
                tokens_bucket.level = min(
                    tokens_limit.capacity, tokens_bucket.level + token_need - actual
                )
                ctx.notes["rate_limit"]["tokens_actual"] = actual

            ctx.on_end(Phase.SETTLE, correct)
        return await call_next(ctx)

    return rate_limit


SPEC = ModuleDefinition(
    name="rate_limit",
    doc="Limit requests and tokens per minute; over the limit answers 429 with Retry-After.",
    params=frozen_map(
        {
            "requests": Param(
                Rate(), "Requests allowed per window.", default=None, example="60/min"
            ),
            "tokens": Param(
                Rate(),
                "Prompt + completion tokens allowed per window.",
                default=None,
                example="100k/min",
            ),
            "per": Param(
                Choice("key", "project", "route", "ip", what="scope"),
                "What each bucket belongs to.",
                default="project",
                example="key",
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    validate=_validate,
    needs_key=lambda params: params.get("per") == "key",
    create=create,
)
