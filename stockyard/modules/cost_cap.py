"""``cost_cap``: enforce the route's ``cap`` — reserve worst-case cost at admission, settle after.

How a request is admitted
-------------------------

1. The scope value is read from the route's ``cap … per project|key|route``: the caller's
   project, gateway key id (``auth`` must run first) or the route name.
2. The request's *worst-case* cost is estimated (see :func:`estimate_prompt_tokens` and
   :func:`max_output_tokens`) for every model the request could be served by — the model each
   hop of the route's chain would send (its ``model:`` rewrite, else the requested model) — and
   the most expensive one counts.
3. ``spent + reserved + estimate`` is compared with the daily and the monthly cap, where
   ``spent`` is the settled spend of the scope (:class:`~stockyard.store.spend.SpendCounters`:
   rebuilt from ``spend_daily`` at start-up, updated as requests end) and ``reserved`` is the
   sum of the estimates of the scope's requests still in flight. Passing either cap is a 429
   ``budget_exceeded`` with ``Retry-After`` until the cap resets (UTC midnight, or the first
   of the next month). Otherwise the estimate is reserved — check and reservation happen
   without an ``await`` in between, so concurrent requests cannot both take the last dollar.
4. When the request has ended (a stream: at its last byte), the gateway adds the actual cost
   to the spend counters; then, in the ``SETTLE`` phase of the end-of-request sequence
   (:mod:`stockyard.runtime.end`), before the trace is written, the reservation is released
   and ``notes.cost_cap.settled`` set. Spend therefore never overshoots a cap by more than what requests spent
   beyond their estimates. A request that was served but whose cost stays unknown (the
   provider reported no usage: typically a stream the caller abandoned) keeps its reservation
   until the cap resets — the worst case is booked, since the provider bills it anyway. (Kept
   reservations live in memory: a restart forgets them.)

Reservations live in ``services.shared("cost_cap")``, so a reload (or a runtime toggle, which
rebuilds handlers) keeps them; they are keyed by scope, value and the UTC day / month the
request started in — the same day the gateway books its spend under.
"""

from __future__ import annotations

import calendar
import math
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from ..core.context import Phase, RequestContext
from ..core.response import GatewayResponse
from ..dsl.schema import REJECTS, Param, frozen_map
from ..dsl.value_types import Choice, Integer
from ..exceptions import AuthenticationFailed, PermissionDenied, RateLimited
from ..pricing import ModelPrice, cost, lookup
from ..store.money import from_pico, to_pico
from ..store.spend import utc_day
from .base import Handler, Module, ModuleDefinition, ModuleServices, Params

# --- Token estimates ----------------------------------------------------------------------------
#
# The prompt estimate must be an *upper bound in practice*, because a cap is only as good as
# the reservation made for each request. Stockyard has no tokenizer for every provider, so it
# counts bytes: BPE tokenizers (OpenAI's cl100k/o200k, Anthropic's, Llama's, Gemini's) average
# about 4 bytes of English text per token and rarely fall below 2 bytes per token even for
# code, digits, base64 or CJK text (a CJK character is 3 UTF-8 bytes and at most ~1-2 tokens).
# So a prompt is estimated as
#
#     ceil(UTF-8 bytes of every text the model reads / 2)
#     + 4 tokens per message (role and framing; OpenAI documents 3-4)
#     + 3 tokens priming the reply
#     + IMAGE_TOKENS per image part (OpenAI's high-detail maximum at 2048x768 is 1,105)
#
# where "every text" is the message contents, names, tool calls and tool results, and the JSON
# of `tools`/`functions` and of `response_format` (a JSON schema is read by the model too).
# Token-id prompts (completions/embeddings given lists of integers) count exactly. This is
# typically 1.5-2x the real count, which is the price of never under-reserving.

BYTES_PER_TOKEN = 2
MESSAGE_OVERHEAD = 4
REPLY_PRIMING = 3
IMAGE_TOKENS = 1105


def _text_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if value is None:
        return 0
    return len(orjson.dumps(value))


def _content_cost(content: Any) -> tuple[int, int]:
    """(bytes of text, tokens counted directly) for one message's ``content``."""
    if isinstance(content, str) or content is None:
        return _text_bytes(content), 0
    if not isinstance(content, list):
        return _text_bytes(content), 0
    size = tokens = 0
    for part in content:
        if isinstance(part, str):
            size += _text_bytes(part)
        elif isinstance(part, dict):
            kind = part.get("type")
            if kind == "text" or (kind is None and "text" in part):
                size += _text_bytes(part.get("text"))
            elif kind in ("image_url", "image", "input_image"):
                tokens += IMAGE_TOKENS  # the URL (or base64 data) is not read as text
            else:  # audio, files, refusals, future part types: their JSON, bytes and all
                size += _text_bytes(part)
        else:
            size += _text_bytes(part)
    return size, tokens


def _token_ids(value: Any) -> int | None:
    """Exact count when ``value`` is a token-id prompt (a list of ints, or of such lists)."""
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        counts = [_token_ids(v) for v in value]
        if all(c is not None for c in counts):
            return sum(c for c in counts if c is not None)
    return None


def estimate_prompt_tokens(path: str, body: Mapping[str, Any]) -> int:
    """An upper bound (in practice) of the prompt tokens of a request; see the notes above."""
    size = 0
    tokens = 0
    if path.endswith("/chat/completions"):
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else ():
            tokens += MESSAGE_OVERHEAD
            if not isinstance(message, dict):
                size += _text_bytes(message)
                continue
            part_bytes, part_tokens = _content_cost(message.get("content"))
            size += part_bytes
            tokens += part_tokens
            for extra in ("role", "name", "tool_calls", "function_call", "tool_call_id"):
                if message.get(extra) is not None:
                    size += _text_bytes(message[extra])
        tokens += REPLY_PRIMING
        for extra in ("tools", "functions", "response_format", "tool_choice"):
            if body.get(extra) is not None:
                size += _text_bytes(body[extra])
    else:
        field_name = "input" if path.endswith("/embeddings") else "prompt"
        prompt = body.get(field_name)
        exact = _token_ids(prompt)
        if exact is not None:
            tokens += exact
        elif isinstance(prompt, list):
            for item in prompt:
                size += _text_bytes(item)
                tokens += 1
        else:
            size += _text_bytes(prompt)
        if body.get("suffix") is not None:
            size += _text_bytes(body["suffix"])
        tokens += REPLY_PRIMING
    return tokens + math.ceil(size / BYTES_PER_TOKEN)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def max_output_tokens(path: str, body: Mapping[str, Any], default: int | None) -> int:
    """The most completion tokens the request can be billed for: the caller's
    ``max_completion_tokens`` / ``max_tokens`` (else ``default``), times ``n`` (and
    ``best_of`` for completions). Embeddings produce none. ``default=None`` counts an unset
    limit as 0 (rate limiting corrects with the actual count afterwards)."""
    if path.endswith("/embeddings"):
        return 0
    limit = _positive_int(body.get("max_completion_tokens")) or _positive_int(
        body.get("max_tokens")
    )
    if limit is None:
        limit = default or 0
    choices = max(_positive_int(body.get("n")) or 1, _positive_int(body.get("best_of")) or 1)
    return limit * choices


# --- Periods ---------------------------------------------------------------------------------


def seconds_to_midnight(now: float) -> int:
    """Whole seconds (at least 1) until the next UTC midnight."""
    return max(1, math.ceil(86400 - now % 86400))


def seconds_to_month_start(now: float) -> int:
    """Whole seconds (at least 1) until 00:00 UTC on the first of the next month."""
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    start = calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0))
    return max(1, math.ceil(start - now))


def _money(pico: int) -> str:
    value = from_pico(pico) or Decimal(0)
    if value == 0:
        return "$0"
    text = format(value.quantize(Decimal("0.01")) if abs(value) >= 1 else value, "f")
    return f"${text}"


def _wait_text(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 24:
        return f"{hours // 24}d{hours % 24}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# --- Shared state ----------------------------------------------------------------------------


@dataclass
class Reservations:
    """Pico-dollars reserved by requests in flight, by (scope, value, day) and (…, month).

    Shared by every generation (``services.shared``): a reload never forgets a reservation.
    """

    daily: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    monthly: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    in_flight: int = 0
    kept: int = 0  # pico-dollars of requests whose cost stayed unknown (kept reserved)

    def held(self, scope: str, value: str, day: str) -> tuple[int, int]:
        return self.daily.get((scope, value, day), 0), self.monthly.get((scope, value, day[:7]), 0)

    def hold(self, scope: str, value: str, day: str, pico: int) -> None:
        self.daily[(scope, value, day)] += pico
        self.monthly[(scope, value, day[:7])] += pico
        self.in_flight += 1

    def release(self, scope: str, value: str, day: str, pico: int) -> None:
        for table, key in (
            (self.daily, (scope, value, day)),
            (self.monthly, (scope, value, day[:7])),
        ):
            left = table.get(key, 0) - pico
            if left > 0:
                table[key] = left
            else:
                table.pop(key, None)
        self.in_flight -= 1

    def keep(self, pico: int) -> None:
        """A request ended with an unknown cost: its reservation stays, as spent."""
        self.in_flight -= 1
        self.kept += pico


_PRICE_CACHE: dict[tuple[str, str, str], tuple[tuple[str, ModelPrice | None], ...]] = {}


def candidate_prices(ctx: RequestContext) -> tuple[tuple[str, ModelPrice | None], ...]:
    """(model, price or None) for every model a hop of the route would send this request as."""
    key = (ctx.generation.source_hash, ctx.route.name, ctx.model)
    found = _PRICE_CACHE.get(key)
    if found is None:
        models = dict.fromkeys(h.model or ctx.model for t in ctx.route.chain for h in t.hops)
        if not models:
            models = {ctx.model: None}
        overrides = ctx.generation.prices
        found = tuple((m, lookup(m, overrides)) for m in models)
        if len(_PRICE_CACHE) > 4096:
            _PRICE_CACHE.clear()
        _PRICE_CACHE[key] = found
    return found


def create(params: Params, services: ModuleServices) -> Module:
    reject_unpriced = params["unpriced"] == "reject"
    default_max = int(params["default_max_tokens"])
    reservations: Reservations = services.shared("cost_cap", Reservations)
    counters = services.store.spend

    async def cost_cap(ctx: RequestContext, call_next: Handler) -> GatewayResponse:
        cap = ctx.route.cap
        if cap is None or (cap.daily is None and cap.monthly is None):
            return await call_next(ctx)
        scope = cap.per
        value = {"project": ctx.project, "key": ctx.key_id, "route": ctx.route.name}.get(scope)
        if not value:
            ctx.blocked_by = "cost_cap"
            raise AuthenticationFailed(
                f"route `{ctx.route.name}` caps spend per key, but the request carries no "
                "gateway key (the route needs `auth` before `cost_cap`)",
                code="missing_api_key",
            )

        # Worst case over every model the request could be served by.
        prompt = estimate_prompt_tokens(ctx.path, ctx.body)
        output = max_output_tokens(ctx.path, ctx.body, default_max)
        estimate = 0
        unpriced: list[str] = []
        for model, price in candidate_prices(ctx):
            if price is None:
                unpriced.append(model)
            else:
                estimate = max(estimate, to_pico(cost(price, prompt, output)))
        if unpriced:
            ctx.notes["unpriced"] = unpriced[0] if len(unpriced) == 1 else unpriced
            if reject_unpriced:
                ctx.blocked_by = "cost_cap"
                names = ", ".join(f"`{m}`" for m in unpriced)
                raise PermissionDenied(
                    f"model {names} has no price, so route `{ctx.route.name}`'s spend cap cannot "
                    "be enforced; add a `price` block for it (or use `cost_cap(unpriced: allow)`)",
                    code="model_unpriced",
                )

        # Check and reserve with no await in between: atomic on the event loop.
        day = utc_day(ctx.started_at)
        spent_day, spent_month = counters.spent(scope, value, day)
        held_day, held_month = reservations.held(scope, value, day)
        refusals = []
        for period, limit, spent, held in (
            ("daily", cap.daily, spent_day, held_day),
            ("monthly", cap.monthly, spent_month, held_month),
        ):
            if limit is None:
                continue
            limit_pico = to_pico(limit)
            over = spent + held + estimate > limit_pico
            used_up = estimate == 0 and spent + held >= limit_pico  # even a free request waits
            if over or used_up:
                refusals.append((period, limit_pico, spent, held))
        if refusals:
            now = time.time()
            period, limit_pico, spent, held = refusals[-1]  # monthly when both: it resets later
            wait = max(
                seconds_to_midnight(now) if p == "daily" else seconds_to_month_start(now)
                for p, *_ in refusals
            )
            when = "today" if period == "daily" else "this month"
            ctx.blocked_by = "cost_cap"
            ctx.notes["cost_cap"] = {
                "cap": period,
                "limit": format(from_pico(limit_pico), "f"),
                "per": scope,
                "spent": format(from_pico(spent), "f"),
                "reserved_in_flight": format(from_pico(held), "f"),
                "estimate": format(from_pico(estimate), "f"),
            }
            raise RateLimited(
                f"{period} budget of {_money(limit_pico)} for {scope} `{value}` would be exceeded: "
                f"{_money(spent)} spent {when}, {_money(held)} reserved by requests in flight, "
                f"and this request may cost up to {_money(estimate)} "
                f"({prompt} prompt + {output} completion tokens at most); "
                f"the {period} cap resets in {_wait_text(wait)}",
                code="budget_exceeded",
                # Nothing changes before the cap resets: tell SDKs (OpenAI's honour this) not
                # to retry in a few seconds.
                headers={"retry-after": str(wait), "x-should-retry": "false"},
            )
        reservations.hold(scope, value, day, estimate)
        note: dict[str, Any] = {
            "reserved": format(from_pico(estimate), "f"),
            "per": scope,
            "prompt_estimate": prompt,
            "max_output": output,
        }
        ctx.notes["cost_cap"] = note
        released = False

        async def settle(done: RequestContext) -> None:
            # The SETTLE phase: the actual cost is already in the spend counters.
            nonlocal released
            if released:
                return
            released = True
            if done.cost is None and estimate:
                # Served, but the cost is unknown (no usage reported, e.g. a stream the caller
                # abandoned or one cut mid-way): the provider bills it all the same. The worst
                # case stays booked until the cap resets, so unknown costs cannot evade it.
                note["settled"] = None
                note["kept"] = "cost unknown: the reservation stays booked until the cap resets"
                reservations.keep(estimate)
                return
            reservations.release(scope, value, day, estimate)
            note["settled"] = format(done.cost, "f") if done.cost is not None else None

        # Before the trace (which shows what was settled), and independent of its success.
        ctx.on_end(Phase.SETTLE, settle)
        return await call_next(ctx)

    return cost_cap


SPEC = ModuleDefinition(
    name="cost_cap",
    doc="Refuse requests (429 budget_exceeded) that could take spend past the route's `cap`.",
    params=frozen_map(
        {
            "unpriced": Param(
                Choice("reject", "allow", what="policy"),
                "What to do with a model that has no price.",
                default="reject",
                example="allow",
            ),
            "default_max_tokens": Param(
                Integer(1, 10_000_000),
                "Output tokens assumed when a request sets no max_tokens.",
                default=4096,
                example="1024",
            ),
        }
    ),
    roles=frozenset({REJECTS}),
    create=create,
)
