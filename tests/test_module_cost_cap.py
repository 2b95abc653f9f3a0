"""``cost_cap`` end to end through the real server and the official SDK.

Prices come from ``price`` blocks, so every amount below is exact. Every request sends
``PROMPT`` with ``max_tokens: 10``; the harness upstream always reports 11 prompt and 7
completion tokens. So, at $100/1M input and $200/1M output:

- the reservation (worst case) is 19 prompt tokens (4 per message + 3 for the reply +
  ceil(24 bytes / 2)) × $0.0001 + 10 × $0.0002 = **$0.0039**;
- the settled (actual) cost is 11 × $0.0001 + 7 × $0.0002 = **$0.0025**.

The race test sends 200 concurrent requests against a daily cap of $0.08 (20 reservations)
and checks the settled spend against the cap, then that a restart and a reload keep the spend.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from stockyard.modules.cost_cap import estimate_prompt_tokens, seconds_to_month_start

from .harness import Behaviour, Gateway, Upstream, provider, running_gateway, upstreams

PROMPT = "x" * 20
MESSAGES = [{"role": "user", "content": PROMPT}]
ESTIMATE = Decimal("0.0039")
ACTUAL = Decimal("0.0025")
# The allowed overshoot: one request's estimate-vs-actual difference (here the estimate is an
# upper bound, so the spend must in fact stay within the cap).
SLACK = ESTIMATE - ACTUAL


def price(model: str, input_price: str = "$100/1M", output_price: str = "$200/1M") -> str:
    return f'price "{model}" {{ input {input_price}  output {output_price} }}\n'


def route(
    name: str, model: str, cap: str, modules: str = "trace, audit, cost_cap", chain: str = "up"
) -> str:
    return f"""
route {name} {{
  path    /v1/chat/completions, /v1/embeddings
  models  "{model}"
  chain   {chain}
  cap     {cap}
  modules [{modules}]
}}
"""


def ask(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    extra.setdefault("max_tokens", 10)
    return client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES, **extra)


def refused(client: openai.OpenAI, model: str, **extra: Any) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        ask(client, model, **extra)
    error = caught.value
    assert error.status_code == 429
    assert error.code == "budget_exceeded" and error.type == "rate_limit_error"
    return error


def seconds_to_midnight() -> float:
    return 86400 - time.time() % 86400


def test_estimate_matches_the_documented_arithmetic() -> None:
    body = {"messages": MESSAGES, "max_tokens": 10}
    assert estimate_prompt_tokens("/v1/chat/completions", body) == 19


# --- One gateway for the behaviour tests ----------------------------------------------------

PIPE = (
    price("basic-model")
    + price("small-model")
    + price("keyed-model")
    + price("month-model")
    + price("dflt-model")
    + price("slow-model")
    + price("cheap-model", "$1/1M", "$1/1M")
    + price("dear-model")
    + route("basic", "basic-model", "daily $1  monthly $2  per project")
    + route("small", "small-model", "daily $0.005 per project")
    + route("keyed", "keyed-model", "daily $0.005 per key", "trace, audit, auth, cost_cap")
    + route("month", "month-model", "monthly $0.005 per project")
    + route(
        "dflt",
        "dflt-model",
        "daily $10 per route",
        "trace, audit, cost_cap(default_max_tokens: 1000)",
    )
    + route("slow", "slow-model", "daily $0.005 per route")
    + price("streamy-model")
    + route("streamy", "streamy-model", "daily $0.007 per route")
    + price("gone-model")
    + route("gone", "gone-model", "daily $0.008 per route")
    + price("odd-model")
    + route("odd", "odd-model", "daily $0.005 per route")
    # the first tier serves cheaply; the fallback would be dear: the dear price is reserved
    + route(
        "hops",
        "hop-*",
        "daily $0.01 per route",
        chain='up(model: "cheap-model") -> up2(model: "dear-model")',
    )
)


@pytest.fixture(scope="module")
def up() -> Iterator[Upstream]:
    server = Upstream("capped")
    yield server
    server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, up: Upstream) -> Iterator[Gateway]:
    files = {"main.pipe": provider("up", up.url) + provider("up2", up.url) + PIPE}
    env = {"STOCKYARD_BREAKER_THRESHOLD": "100000"}
    with running_gateway(
        tmp_path_factory.mktemp("costcap"), files, env=env, start_timeout=60
    ) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _fresh(up: Upstream) -> None:
    up.reset()


def project(gw: Gateway, name: str) -> openai.OpenAI:
    return gw.client(default_headers={"x-stockyard-project": name})


def test_pipeline_checks_clean(gw: Gateway) -> None:
    result = gw.check()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stream", [False, True])
def test_reserves_then_settles(gw: Gateway, up: Upstream, stream: bool) -> None:
    raw = ask(project(gw, f"settle-{stream}"), "basic-model", stream=stream)
    result = raw.parse()
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in result if c.choices)
    else:
        assert result.choices[0].message.content == "capped answers basic-model"
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert trace["status"] == 200 and trace["stream"] is stream
    assert Decimal(trace["cost"]) == ACTUAL
    note = trace["notes"]["cost_cap"]
    assert Decimal(note["reserved"]) == ESTIMATE
    assert Decimal(note["settled"]) == ACTUAL
    assert (note["per"], note["prompt_estimate"], note["max_output"]) == ("project", 19, 10)
    assert up.count == 1


@pytest.mark.parametrize("stream", [False, True])
def test_refusal_shape(gw: Gateway, up: Upstream, stream: bool) -> None:
    client = project(gw, f"refusal-{stream}")
    ask(client, "small-model", stream=stream).parse()  # $0.0025 of $0.005 spent
    before = seconds_to_midnight()
    error = refused(client, "small-model", stream=stream)  # 0.0025 + 0.0039 > 0.005
    after = seconds_to_midnight()
    message = error.message
    assert f"daily budget of $0.005 for project `refusal-{stream}`" in message
    assert "$0.0025 spent today" in message or "reserved by requests in flight" in message
    assert "may cost up to $0.0039" in message
    retry_after = int(error.response.headers["retry-after"])
    assert after - 1 <= retry_after <= before + 1  # counted when it was refused, in seconds
    trace = gw.trace(error.response.headers["x-stockyard-trace-id"])
    assert trace["status"] == 429 and trace["notes"]["blocked_by"] == "cost_cap"
    assert trace["notes"]["cost_cap"]["cap"] == "daily"
    assert up.count == 1


def test_sdk_does_not_retry_a_budget_refusal(gw: Gateway, up: Upstream) -> None:
    """`x-should-retry: false`: the SDK's automatic retries would only be refused again."""
    client = gw.client(default_headers={"x-stockyard-project": "no-retry"}, max_retries=2)
    gw.trace(ask(client, "small-model").headers["x-stockyard-trace-id"])
    error = refused(client, "small-model")
    assert error.response.headers["x-should-retry"] == "false"
    gw.trace(error.response.headers["x-stockyard-trace-id"])
    traces = gw.api("GET", "/api/lookout/traces", params={"project": "no-retry"}).json()
    assert [t["status"] for t in traces["traces"]] == [429, 200]  # one refusal, no retries


def test_embeddings_reserve_their_input_only(gw: Gateway, up: Upstream) -> None:
    raw = project(gw, "embed").embeddings.with_raw_response.create(
        model="basic-model", input="hello"
    )
    note = gw.trace(raw.headers["x-stockyard-trace-id"])["notes"]["cost_cap"]
    assert (note["prompt_estimate"], note["max_output"]) == (6, 0)  # 3 + ceil(5 bytes / 2)
    assert Decimal(note["reserved"]) == Decimal("0.0006")
    assert Decimal(note["settled"]) == Decimal("0.0003")  # the upstream reports 3 tokens


def test_spend_is_shared_by_the_routes_of_a_scope(gw: Gateway, up: Upstream) -> None:
    client = project(gw, "sharing")
    gw.trace(ask(client, "basic-model").headers["x-stockyard-trace-id"])  # $0.0025 on `basic`
    refused(client, "small-model")  # `small` caps the same project at $0.005
    gw.trace(ask(project(gw, "other"), "small-model").headers["x-stockyard-trace-id"])
    assert up.count == 2


def test_per_key(gw: Gateway, up: Upstream) -> None:
    first = gw.create_key("keyed-team", name="first")
    second = gw.create_key("keyed-team", name="second")
    one = gw.client(api_key=first["key"])
    gw.trace(ask(one, "keyed-model").headers["x-stockyard-trace-id"])
    error = refused(one, "keyed-model")
    assert f"for key `{first['id']}`" in error.message
    raw = ask(gw.client(api_key=second["key"]), "keyed-model")  # same project, own budget
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert trace["key_id"] == second["id"]
    with pytest.raises(openai.AuthenticationError):
        ask(gw.client(), "keyed-model")
    assert up.count == 2


def test_monthly_cap(gw: Gateway, up: Upstream) -> None:
    client = project(gw, "monthly")
    gw.trace(ask(client, "month-model").headers["x-stockyard-trace-id"])
    before = seconds_to_month_start(time.time())
    error = refused(client, "month-model")
    after = seconds_to_month_start(time.time())
    assert "monthly budget of $0.005" in error.message and "spent this month" in error.message
    retry_after = int(error.response.headers["retry-after"])
    assert after - 1 <= retry_after <= before + 1  # counted when it was refused, in seconds


def test_default_max_tokens_and_choices(gw: Gateway, up: Upstream) -> None:
    client = gw.client()
    cases = [
        ({"max_tokens": None}, 1000),
        ({"max_completion_tokens": 50, "max_tokens": None}, 50),
        ({"max_tokens": 40, "n": 3}, 120),
    ]
    for extra, expected in cases:
        body = {k: v for k, v in extra.items() if v is not None}
        raw = client.chat.completions.with_raw_response.create(
            model="dflt-model", messages=MESSAGES, **body
        )
        note = gw.trace(raw.headers["x-stockyard-trace-id"])["notes"]["cost_cap"]
        assert note["max_output"] == expected
        assert Decimal(note["reserved"]) == Decimal("0.0019") + expected * Decimal("0.0002")


def test_the_dearest_hop_is_reserved(gw: Gateway, up: Upstream) -> None:
    raw = ask(gw.client(), "hop-model")
    assert up.models() == ["cheap-model"]
    trace = gw.trace(raw.headers["x-stockyard-trace-id"])
    assert Decimal(trace["notes"]["cost_cap"]["reserved"]) == ESTIMATE  # dear-model's price
    assert Decimal(trace["cost"]) == Decimal("0.000018")  # served by cheap-model


def test_reservations_survive_a_reload(gw: Gateway, up: Upstream) -> None:
    """A request in flight holds its reservation across a reload: the cap ($0.005) has room
    for one reservation ($0.0039), so a second request is refused while the first runs."""
    release = threading.Event()
    up.script = [Behaviour(hold=release)]  # answers only when the test says so
    outcome: dict[str, Any] = {}

    def slow() -> None:
        outcome["raw"] = ask(gw.client(), "slow-model")

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert up.wait_for(lambda u: u.count == 1)
        reload_pipelines(gw, (gw.pipelines / "main.pipe").read_text() + "\n# reloaded\n")
        refused(gw.client(), "slow-model")
        assert thread.is_alive()  # refused while the first request was still in flight
    finally:
        release.set()
    thread.join(30)
    trace = gw.trace(outcome["raw"].headers["x-stockyard-trace-id"])
    assert Decimal(trace["cost"]) == ACTUAL
    refused(gw.client(), "slow-model")  # 0.0025 spent + 0.0039 > 0.005
    assert up.count == 1


def test_runtime_toggle_off_and_back_keeps_the_spend(gw: Gateway, up: Upstream) -> None:
    """Toggles rebuild the handlers (`create` runs again): the counters and reservations are
    shared state, so switching `cost_cap` off and on again does not reset the budget."""
    client = project(gw, "toggled")
    gw.trace(ask(client, "small-model").headers["x-stockyard-trace-id"])
    refused(client, "small-model")
    put = gw.api("PUT", "/api/proxy/modules/cost_cap", json={"enabled": False, "route": "small"})
    assert put.status_code == 200, put.text
    try:
        gw.trace(ask(client, "small-model").headers["x-stockyard-trace-id"])  # not enforced
    finally:
        assert gw.api("DELETE", "/api/proxy/modules/cost_cap?route=small").status_code == 200
    error = refused(client, "small-model")
    assert "$0.005 spent today" in error.message  # both answers count
    assert up.count == 2


def test_a_stream_holds_its_reservation_until_its_last_byte(gw: Gateway, up: Upstream) -> None:
    """The cap ($0.007) has room for one reservation ($0.0039) at a time: while a slow stream
    is being read, a second request is refused; once it has ended (settled at $0.0025), one
    more fits."""
    release = threading.Event()
    # the stream stops after its first words until the test has been refused
    up.script = [Behaviour(words=30, hold=release, hold_after_chunks=2)]
    stream = gw.client().chat.completions.create(
        model="streamy-model", messages=MESSAGES, max_tokens=10, stream=True
    )
    chunks = iter(stream)
    try:
        next(chunks)  # the answer has started: headers and the first chunk are out
        error = refused(gw.client(), "streamy-model")
        assert "$0.0039 reserved by requests in flight" in error.message
    finally:
        release.set()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("w29")
    trace = gw.trace(stream.response.headers["x-stockyard-trace-id"])
    assert Decimal(trace["notes"]["cost_cap"]["settled"]) == ACTUAL
    gw.trace(ask(gw.client(), "streamy-model").headers["x-stockyard-trace-id"])
    assert up.count == 2


def test_an_abandoned_stream_keeps_its_reservation(gw: Gateway, up: Upstream) -> None:
    """The caller goes away mid-stream: no usage arrives, the cost is unknown, and the worst
    case stays booked (the provider bills what it generated). The cap ($0.008) has room for
    two reservations of $0.0039."""
    up.script = [Behaviour(words=200, chunk_delay=0.02)]
    stream = gw.client().chat.completions.create(
        model="gone-model", messages=MESSAGES, max_tokens=10, stream=True
    )
    trace_id = stream.response.headers["x-stockyard-trace-id"]
    for _, _chunk in zip(range(3), stream, strict=False):
        pass
    stream.close()
    trace = gw.trace(trace_id)
    assert trace["cost"] is None and trace["notes"].get("disconnected") is True
    assert trace["notes"]["cost_cap"]["kept"].startswith("cost unknown")
    # $0.0039 kept + $0.0039 fits in $0.008 once; then $0.0039 + $0.0025 + $0.0039 does not
    gw.trace(ask(gw.client(), "gone-model").headers["x-stockyard-trace-id"])
    refused(gw.client(), "gone-model")
    assert up.count == 2


def test_an_odd_usage_report_still_releases_the_reservation(gw: Gateway, up: Upstream) -> None:
    odd = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
           "prompt_tokens_details": {"cached_tokens": 50}}  # fmt: skip
    up.script = [Behaviour(usage=odd)]
    raw = ask(gw.client(), "odd-model")  # the cap ($0.005) has room for one reservation
    assert raw.parse().choices[0].message.content == "capped answers odd-model"
    trace = gw.trace(raw.headers["x-stockyard-trace-id"], timeout=2)
    # cached tokens cannot exceed the prompt: priced as 11 cached prompt tokens, and released
    assert trace["cached_tokens"] == 11 and trace["cost"] is not None
    assert Decimal(trace["notes"]["cost_cap"]["settled"]) == Decimal(trace["cost"])
    error = refused(gw.client(), "odd-model")  # spent + a new worst case passes the cap …
    assert "$0 reserved" in error.message  # … but nothing is still reserved for the first


# --- Helpers for reloads and the race -------------------------------------------------------


def source_hash(gw: Gateway) -> str:
    return gw.api("GET", "/health").json()["source_hash"]  # type: ignore[no-any-return]


def reload_pipelines(gw: Gateway, text: str) -> None:
    """Rewrite main.pipe (as an editor does) and wait until the watcher has loaded it."""
    before = source_hash(gw)
    gw.write("main.pipe", text)
    deadline = time.monotonic() + 10
    while source_hash(gw) == before:
        assert time.monotonic() < deadline, gw.api("GET", "/api/proxy/reload").text
        time.sleep(0.05)


def settled(gw: Gateway, route_name: str, expected: int) -> list[dict[str, Any]]:
    """Every trace of a route, once all ``expected`` are written."""
    deadline = time.monotonic() + 20
    while True:
        body = gw.api("GET", "/api/lookout/traces", params={"route": route_name, "limit": 500})
        traces = body.json()["traces"]
        if len(traces) >= expected or time.monotonic() > deadline:
            return traces  # type: ignore[no-any-return]
        time.sleep(0.1)


def spend(gw: Gateway, expected: Decimal) -> Decimal:
    """Today's settled spend from GET /api/lookout/spend, once the writer has caught up."""
    deadline = time.monotonic() + 10
    while True:
        total = Decimal(gw.spend_total(days=1))
        if total == expected or time.monotonic() > deadline:
            return total
        time.sleep(0.05)


RACE_CAP = Decimal("0.08")


def race_pipe(up: Upstream, cap: Decimal = RACE_CAP, comment: str = "") -> str:
    return (
        provider("up", up.url)
        + price("race-model")
        + f"# {comment}\n"
        + route("race", "race-model", f"daily ${cap} per project")
    )


async def _race(gw: Gateway, count: int) -> list[tuple[str, Any]]:
    client = gw.async_client(default_headers={"x-stockyard-project": "race"}, timeout=60)

    async def one(index: int) -> tuple[str, Any]:
        try:
            if index % 2:  # every other request streams
                stream = await client.chat.completions.create(
                    model="race-model", messages=MESSAGES, max_tokens=10, stream=True
                )
                text = ""
                async for chunk in stream:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                assert text == "capped answers race-model"
                return "ok", stream.response.headers["x-stockyard-trace-id"]
            raw = await client.chat.completions.with_raw_response.create(
                model="race-model", messages=MESSAGES, max_tokens=10
            )
            raw.parse()
            return "ok", raw.headers["x-stockyard-trace-id"]
        except openai.RateLimitError as error:
            return "429", error
        except Exception as error:  # reported by the assertion below
            return "error", repr(error)

    try:
        return await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


def fill(gw: Gateway) -> int:
    """Send requests one by one until the cap refuses; how many passed."""
    client = project(gw, "race")
    passed = 0
    while True:
        try:
            raw = ask(client, "race-model")
        except openai.RateLimitError as error:
            assert error.code == "budget_exceeded"
            return passed
        gw.trace(raw.headers["x-stockyard-trace-id"])  # settled before the next one
        passed += 1
        assert passed < 100


def test_cap_race_restart_and_reload(gateway: Gateway, tmp_path: Path) -> None:
    up = Upstream("capped")
    try:
        up.default = Behaviour(delay=0.3)
        gateway.env["STOCKYARD_BREAKER_THRESHOLD"] = "100000"
        gateway.write("main.pipe", race_pipe(up))
        gateway.start(timeout=60)
        assert gateway.check().returncode == 0, gateway.check().stdout

        # 200 concurrent requests; the cap has room for 20 reservations of $0.0039.
        started = time.monotonic()
        results = asyncio.run(_race(gateway, 200))
        elapsed = time.monotonic() - started
        errors = [detail for kind, detail in results if kind == "error"]
        assert not errors, errors[:3]
        admitted = [detail for kind, detail in results if kind == "ok"]
        refusals = [detail for kind, detail in results if kind == "429"]
        assert len(admitted) + len(refusals) == 200
        for error in refusals:
            assert error.code == "budget_exceeded", error.message
            assert "daily budget of $0.08 for project `race`" in error.message
        # At least the 20 reservations that fit; at most what the cap pays for at the actual
        # cost (reservations released early let a few late arrivals in).
        assert 20 <= len(admitted) <= int(RACE_CAP / ACTUAL), len(admitted)
        assert up.count == len(admitted)

        traces = settled(gateway, "race", 200)
        assert len(traces) == 200
        costs = [Decimal(t["cost"]) for t in traces if t["status"] == 200]
        assert len(costs) == len(admitted) and set(costs) == {ACTUAL}
        total = sum(costs, Decimal(0))
        assert total <= RACE_CAP + SLACK
        assert spend(gateway, total) == total
        overshoot = max(Decimal(0), total - RACE_CAP)
        print(
            f"\nrace: {len(admitted)} admitted of 200 in {elapsed:.2f}s; settled ${total} "
            f"against a cap of ${RACE_CAP} (overshoot ${overshoot}; one request's "
            f"estimate-vs-actual difference is ${SLACK})"
        )

        # Top up one by one to the last request that fits: then the cap refuses.
        total += fill(gateway) * ACTUAL
        assert spend(gateway, total) == total
        assert RACE_CAP - ESTIMATE < total <= RACE_CAP

        # A restart rebuilds the counters from the database: still refused.
        gateway.stop()
        gateway.start(timeout=60)
        error = refused(project(gateway, "race"), "race-model")
        assert f"${total} spent today" in error.message
        assert spend(gateway, total) == total
        # ...while another project's budget is untouched.
        ask(project(gateway, "elsewhere"), "race-model")

        # A reload (the file rewritten) keeps the counters too.
        reload_pipelines(gateway, race_pipe(up, comment="reloaded"))
        refused(project(gateway, "race"), "race-model")
        # A reload that raises the cap admits again, up to the new cap, from the same spend.
        raised = RACE_CAP + Decimal("0.01")
        reload_pipelines(gateway, race_pipe(up, raised))
        more = fill(gateway)
        assert more == math.floor((raised - ESTIMATE - total) / ACTUAL) + 1
        total += more * ACTUAL
        assert raised - ESTIMATE < total <= raised
        assert spend(gateway, total + ACTUAL) == total + ACTUAL  # + the `elsewhere` request
    finally:
        gateway.stop()
        up.close()


# --- Unpriced models and counters rebuilt from the database ---------------------------------


def test_unpriced_models(tmp_path: Path) -> None:
    with upstreams("unpriced") as (up,):
        pipe = (
            provider("up", up.url)
            + route("strict", "mystery-model", "daily $1 per project")
            + route(
                "lenient",
                "mystery-ok",
                "daily $1 per project",
                "trace, audit, cost_cap(unpriced: allow)",
            )
        )
        with running_gateway(tmp_path, {"main.pipe": pipe}, start_timeout=60) as gw:
            with pytest.raises(openai.PermissionDeniedError) as caught:
                ask(gw.client(), "mystery-model")
            error = caught.value
            assert error.status_code == 403 and error.code == "model_unpriced"
            assert "`mystery-model` has no price" in error.message
            assert up.count == 0
            notes = gw.trace(error.response.headers["x-stockyard-trace-id"])["notes"]
            assert notes["blocked_by"] == "cost_cap" and notes["unpriced"] == "mystery-model"

            raw = ask(gw.client(), "mystery-ok")
            trace = gw.trace(raw.headers["x-stockyard-trace-id"])
            assert trace["status"] == 200 and trace["cost"] is None and trace["priced"] is False
            assert trace["notes"]["unpriced"] == "mystery-ok"
            assert Decimal(trace["notes"]["cost_cap"]["reserved"]) == 0
            assert up.count == 1


def test_counters_are_rebuilt_from_the_database_and_days_roll_over(
    gateway: Gateway, upstream: Upstream
) -> None:
    """Spend booked on earlier days (written straight into ``spend_daily``) is loaded at start-up:
    yesterday's spend does not count against today's cap but does count this month; last
    month's counts for neither."""
    gateway.write(
        "main.pipe",
        provider("up", upstream.url)
        + price("roll-model")
        + route("roll", "roll-model", "daily $0.01  monthly $0.05  per project"),
    )
    gateway.start(timeout=60)
    gateway.stop()
    now = time.time()
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    yesterday = time.strftime("%Y-%m-%d", time.gmtime(now - 86400))
    year, month = int(today[:4]), int(today[5:7])
    last_month = f"{year - 1}-12-01" if month == 1 else f"{year}-{month - 1:02d}-01"
    pico = 10**12
    with sqlite3.connect(gateway.directory / "stockyard.db") as db:
        for day, cost in ((yesterday, Decimal("0.045")), (last_month, Decimal(10))):
            db.execute(
                "INSERT INTO spend_daily VALUES (?, 'rollers', '', 'roll', 'roll-model', 'up', "
                "1, 0, 0, 0, ?, 0)",
                (day, int(cost * pico)),
            )
    gateway.start(timeout=60)
    client = project(gateway, "rollers")
    # today: nothing spent yet; this month: $0.045 (unless yesterday was last month)
    gateway.trace(ask(client, "roll-model").headers["x-stockyard-trace-id"])
    if yesterday[:7] == today[:7]:
        error = refused(client, "roll-model")  # 0.045 + 0.0025 + 0.0039 > 0.05
        assert "monthly budget of $0.05" in error.message
        assert "$0.0475 spent this month" in error.message
    else:  # today is the first of the month: only today's spend counts
        ask(client, "roll-model")
    assert upstream.count == (1 if yesterday[:7] == today[:7] else 2)
