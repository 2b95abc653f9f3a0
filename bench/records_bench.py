#!/usr/bin/env python3
"""What recording costs: requests/s through the gateway with ``trace`` + ``audit`` on vs off.

    python bench/records_bench.py                     # 8 s runs, 3 rounds, concurrency 64
    python bench/records_bench.py --duration 15 --repeat 5
    python bench/records_bench.py --variants off,on,bodies,trace,audit
    python bench/records_bench.py --json /tmp/records.json

Setup: bench/upstream.py (a raw asyncio mock of the OpenAI API, much faster than the gateway)
and wrk (bench/chat.lua: a small non-streaming chat completion for ``gpt-4o-mini``) pinned to
one core (``--load-core``, default 1); one gateway per variant, each with its own fresh
database, pinned to another (``--gateway-core``, default 0). All gateways start first; then
the wrk runs alternate between them round by round (off, on, on, off, ...), so a machine
that gets busier or quieter during the benchmark shifts both sides alike. Per variant the
median run is shown; the verdict uses the *paired* cost, the median over rounds of
``1 - rps(variant) / rps(off)`` within the same round, counting only the rounds in which no
other process used more than ``--max-other`` of the gateway's core (read from /proc/stat):
what stays meaningful on a shared machine whose load changes from one run to the next (use
many short rounds there).

Reported per variant: requests/s, latency p50/p99, the gateway's CPU time per request (less
sensitive to other load on the machine than requests/s), and for the recording variants the
records on disk afterwards (every answered request must have its trace row and ledger event)
and the writer's back-pressure count. ``--micro`` also times the recording in-process (CPU
per request, writer and SQLite included), which does not depend on the machine's other load.
The target: the records (``on``) cost under 15 % of the throughput.

Needs Linux, ``wrk`` and ``taskset``. A benchmark, not a test: numbers vary run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
LUA = BENCH / "chat.lua"
PATH = "/v1/chat/completions"
TARGET = 0.15  # the records may cost at most this share of the throughput

VARIANTS = {
    "off": "",
    "on": "trace, audit",
    "trace": "trace",
    "audit": "audit",
    "bodies": "trace(bodies: true), audit",
}


def pinned(core: int | None, argv: list[str]) -> list[str]:
    return argv if core is None else ["taskset", "-c", str(core), *argv]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_jiffies(core: int) -> tuple[int, int]:
    """(busy, total) jiffies of one CPU core so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith(f"cpu{core} "):
                values = [int(v) for v in line.split()[1:9]]
                return sum(values) - values[3] - values[4], sum(values)
    raise SystemExit(f"records_bench: no core {core} in /proc/stat")


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return int(process.returncode)


def pipeline(upstream_port: int, modules: str) -> str:
    return f"""# written by bench/records_bench.py
provider upstream {{
  kind     openai
  base_url "http://127.0.0.1:{upstream_port}/v1"
  api_key  passthrough
}}

route chat {{
  path    {PATH}
  chain   upstream
  modules [{modules}]
}}
"""


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float
    other_load: float = 0.0  # share of the gateway's core used by other processes meanwhile


@dataclass
class Variant:
    name: str
    modules: str
    workdir: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    runs: list[Run] = field(default_factory=list)
    requests_sent: int = 0
    records: dict[str, Any] = field(default_factory=dict)

    def median(self) -> Run:
        ordered = sorted(self.runs, key=lambda r: r.rps)
        return ordered[len(ordered) // 2]


def start_upstream(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, str(BENCH / "upstream.py"), "--port", "0"]
    process = subprocess.Popen(pinned(args.load_core, argv), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("ready "):
        stop(process)
        raise SystemExit(f"records_bench: the upstream did not start ({line!r})")
    return process, int(line.split()[1])


def start_gateway(args: argparse.Namespace, variant: Variant, upstream_port: int) -> None:
    pipes = variant.workdir / "pipelines"
    pipes.mkdir(parents=True)
    (pipes / "bench.pipe").write_text(pipeline(upstream_port, variant.modules))
    variant.port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    env.pop("STOCKYARD_ADMIN_KEY", None)
    argv = [sys.executable, "-m", "stockyard", "serve", "--port", str(variant.port),
            "--pipelines", str(pipes), "--db", str(variant.workdir / "stockyard.db"),
            "--no-watch"]  # fmt: skip
    log = (variant.workdir / "gateway.log").open("wb")
    variant.process = subprocess.Popen(
        pinned(args.gateway_core, argv), cwd=variant.workdir, env=env, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + args.startup_timeout
    while time.monotonic() < deadline:
        try:
            if http_get(variant.port, "/health", 0.5)[0] == 200:
                return
        except (OSError, IndexError, ValueError):
            pass
        if variant.process.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(
        f"records_bench: gateway `{variant.name}` did not start:\n"
        + (variant.workdir / "gateway.log").read_text(errors="replace")
    )


def wrk(args: argparse.Namespace, variant: Variant, seconds: int) -> Run:
    assert variant.process is not None
    argv = pinned(args.load_core, [
        "wrk", "-t1", f"-c{args.concurrency}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), f"http://127.0.0.1:{variant.port}{PATH}",
    ])  # fmt: skip
    cpu_before = cpu_seconds(variant.process.pid)
    core_before = core_jiffies(args.gateway_core)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    cpu = cpu_seconds(variant.process.pid) - cpu_before
    wall = time.perf_counter() - started
    busy, total = (a - b for a, b in zip(core_jiffies(args.gateway_core), core_before))
    other = max(0.0, busy / max(1, total) - cpu / wall)
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(
            f"records_bench: wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    data = json.loads(line.removeprefix("BENCHJSON "))
    requests = int(data["requests"])
    errors = sum(int(v) for k, v in data.items() if k.startswith("errors_"))
    variant.requests_sent += requests
    return Run(
        rps=requests / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=requests,
        errors=errors,
        cpu_us_per_request=cpu / max(1, requests) * 1e6,
        other_load=other,
    )


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def check_records(variant: Variant) -> None:
    """After a graceful stop: every request answered has its trace row and ledger event."""
    assert variant.process is not None
    status, body = http_get(variant.port, "/metrics")
    text = body.decode() if status == 200 else ""
    variant.records["backpressure_waits"] = metric(text, "stockyard_store_backpressure_total")
    variant.records["failed_batches"] = metric(text, "stockyard_store_failed_batches_total")
    variant.records["exit_code"] = stop(variant.process)
    conn = sqlite3.connect(variant.workdir / "stockyard.db")
    try:
        traces = conn.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM ledger WHERE type = 'request'").fetchone()[0]
        spent = conn.execute("SELECT COALESCE(SUM(requests), 0) FROM spend_daily").fetchone()[0]
    finally:
        conn.close()
    variant.records.update(traces=traces, ledger_events=events, spend_requests=spent)
    variant.records["requests_sent"] = variant.requests_sent


MICRO_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are terse."},'
    b'{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":32}'
)
MICRO_REPLY = (
    b'{"id":"chatcmpl-x","object":"chat.completion","created":1,"model":"gpt-4o-mini",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello!"},'
    b'"finish_reason":"stop"}],"usage":{"prompt_tokens":13,"completion_tokens":7}}'
)


def micro(requests: int) -> dict[str, float]:
    """In-process: CPU microseconds per request that the recording adds, writer included
    (module chain, cost, spend, trace row, ledger hash, SQLite commits), independent of how
    busy the machine is. Compared with the gateway's CPU time per request from the wrk runs."""
    import asyncio

    import orjson

    sys.path.insert(0, str(ROOT))
    from stockyard.catalog import check
    from stockyard.core.context import Attempt, RequestContext, new_trace_id
    from stockyard.core.response import GatewayResponse
    from stockyard.dsl import CheckOptions
    from stockyard.runtime.end import Ending
    from stockyard.runtime.pipeline import activate, build_module
    from stockyard.runtime.services import Services
    from stockyard.store.database import Store

    async def one(modules: str, workdir: Path) -> float:
        result = check({"bench.pipe": pipeline(9, modules)}, CheckOptions(check_env=False))
        assert result.generation is not None, result.diagnostics
        generation = result.generation
        route = generation.routes[0]
        store = Store(workdir / f"micro-{len(modules)}.db")
        services = Services(store=store)
        await store.open()
        active = activate(generation, services)
        ending = Ending(services)
        chain = [build_module(config, services) for config in route.modules]

        async def upstream(ctx: RequestContext) -> GatewayResponse:
            attempt = Attempt("upstream", ctx.model, 200, 0.4, None, "ok")
            ctx.attempts.append(attempt)
            ctx.provider, ctx.served_model, ctx.status = "upstream", ctx.model, 200
            ctx.usage.update_from_openai({"prompt_tokens": 13, "completion_tokens": 7})
            return GatewayResponse(200, {"content-type": "application/json"}, MICRO_REPLY)

        def wrap(module, call_next):  # type: ignore[no-untyped-def]
            async def step(ctx: RequestContext) -> GatewayResponse:
                return await module(ctx, call_next)

            return step

        handler = upstream
        for module in reversed(chain):
            handler = wrap(module, handler)
        headers = {"authorization": "Bearer sk-bench-0123456789abcdef",
                   "content-type": "application/json"}  # fmt: skip
        started = time.process_time()
        for _ in range(requests):
            ctx = RequestContext(
                id=new_trace_id(), method="POST", path=PATH, headers=headers,
                client_ip="127.0.0.1", raw_body=MICRO_BODY, body=orjson.loads(MICRO_BODY),
                generation=generation, route=route, model="gpt-4o-mini", stream=False,
            )  # fmt: skip
            response = await handler(ctx)
            await ending.run(ctx, response, active.prices)
            if store.queue.qsize() > 500:
                await asyncio.sleep(0)  # let the writer run, as it would between requests
        await store.close()  # everything written
        elapsed = time.process_time() - started
        await services.aclose()
        return elapsed / requests * 1e6

    with tempfile.TemporaryDirectory(prefix="stockyard-records-micro-") as temp:
        asyncio.run(one(VARIANTS["on"], Path(temp)))  # warm-up: imports, caches
        best: dict[str, float] = {}
        for _round in range(3):  # interleaved; the fastest of three counts
            for name in ("off", "on", "bodies"):
                value = asyncio.run(one(VARIANTS[name], Path(temp)))
                best[name] = min(best.get(name, value), value)
        return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per variant")
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per variant")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--variants",
        default="off,on",
        help=f"comma-separated, from {', '.join(VARIANTS)} (default: off,on)",
    )
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--startup-timeout", type=float, default=60)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--max-other",
        type=float,
        default=0.10,
        metavar="SHARE",
        help="rounds where other processes used more than this share of the "
        "gateway's core are left out of the paired cost (default 0.10)",
    )
    parser.add_argument(
        "--micro",
        type=int,
        default=20000,
        metavar="N",
        help="also time the recording in-process over N requests (0: skip)",
    )
    args = parser.parse_args()
    micro_us: dict[str, float] = {}
    if args.micro:
        micro_us = micro(args.micro)
        print(f"in-process CPU per request: off {micro_us['off']:.1f} us, trace+audit "
              f"{micro_us['on']:.1f} us, with bodies {micro_us['bodies']:.1f} us: the records "
              f"add {micro_us['on'] - micro_us['off']:.1f} us", flush=True)  # fmt: skip
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"records_bench: `{tool}` is not installed")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or "off" not in names:
        raise SystemExit(
            f"records_bench: choose variants from {', '.join(VARIANTS)}, `off` included"
        )

    temp = Path(tempfile.mkdtemp(prefix="stockyard-records-bench-"))
    upstream, upstream_port = start_upstream(args)
    variants = [Variant(n, VARIANTS[n], temp / n) for n in names]
    try:
        for variant in variants:
            start_gateway(args, variant, upstream_port)
        for variant in variants:
            wrk(args, variant, args.warmup)
        for round_number in range(args.repeat):
            order = variants if round_number % 2 == 0 else variants[::-1]
            for variant in order:
                run = wrk(args, variant, args.duration)
                variant.runs.append(run)
                print(f"round {round_number + 1}: {variant.name:7s} {run.rps:8.1f} req/s  "
                      f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
                      f"{run.cpu_us_per_request:6.0f} us CPU/request  errors {run.errors}  "
                      f"other load on the gateway's core {run.other_load:4.0%}",
                      flush=True)  # fmt: skip
        for variant in variants:
            if variant.modules:
                check_records(variant)
            elif variant.process is not None:
                stop(variant.process)
    finally:
        for variant in variants:
            if variant.process is not None and variant.process.poll() is None:
                stop(variant.process)
        stop(upstream)

    off_variant = next(v for v in variants if v.name == "off")
    off = off_variant.median()
    summary: dict[str, Any] = {
        "concurrency": args.concurrency, "duration_s": args.duration, "repeat": args.repeat,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_after": os.getloadavg()},
        "variants": {},
    }  # fmt: skip
    print(
        f"\nconcurrency {args.concurrency}, median of {args.repeat} x {args.duration} s; "
        "'paired': median over the rounds without other load on the gateway's core of the cost "
        "against the `off` run of the same round"
    )
    print(f"{'variant':8s} {'req/s':>9s} {'cost':>7s} {'paired':>7s} {'p50 ms':>7s} "
          f"{'p99 ms':>7s} {'CPU us/req':>10s} {'paired':>7s}  records")  # fmt: skip
    verdict_ok = True
    for variant in variants:
        med = variant.median()
        cost = 1 - med.rps / off.rps
        every = list(zip(variant.runs, off_variant.runs))
        pairs = [(v, o) for v, o in every if max(v.other_load, o.other_load) <= args.max_other]
        clean = len(pairs)
        pairs = pairs or every  # nothing clean: report all, flagged below
        paired = statistics.median(1 - v.rps / o.rps for v, o in pairs)
        paired_cpu = statistics.median(
            v.cpu_us_per_request / o.cpu_us_per_request - 1 for v, o in pairs
        )
        records = variant.records
        complete = None
        if records:
            sent = records["requests_sent"]
            complete = ("trace" not in variant.modules or records["traces"] >= sent) and (
                "audit" not in variant.modules or records["ledger_events"] >= sent
            )
        note = "" if not records else (
            f"{records['traces']} traces, {records['ledger_events']} events for "
            f"{records['requests_sent']} requests; back-pressure {records['backpressure_waits']:.0f}"
        )  # fmt: skip
        print(f"{variant.name:8s} {med.rps:9.1f} {cost:7.1%} {paired:7.1%} {med.p50_ms:7.2f} "
              f"{med.p99_ms:7.2f} {med.cpu_us_per_request:10.0f} {paired_cpu:7.1%}  "
              f"{clean}/{len(every)} clean rounds{'' if clean else ' (NONE: all rounds used)'}"
              f"{'; ' + note if note else ''}")  # fmt: skip
        summary["variants"][variant.name] = {
            "modules": variant.modules, "median": med.__dict__, "runs": [r.__dict__ for r in variant.runs],
            "throughput_cost": round(cost, 4), "paired_throughput_cost": round(paired, 4),
            "paired_cpu_cost": round(paired_cpu, 4), "clean_rounds": clean, "records": records,
            "records_complete": complete,
        }  # fmt: skip
        if variant.name == "on":
            verdict_ok = paired < TARGET and complete is not False
            summary["target"] = {"max_cost": TARGET, "cost": paired, "met": verdict_ok,
                                 "clean_rounds": clean}  # fmt: skip
    if micro_us:
        added = micro_us["on"] - micro_us["off"]
        gateway_us = off.cpu_us_per_request
        summary["micro_cpu_us"] = {k: round(v, 1) for k, v in micro_us.items()}
        summary["micro_share_of_gateway_cpu"] = round(added / gateway_us, 4)
        print(f"in-process: the records add {added:.1f} us CPU per request, "
              f"{added / gateway_us:.1%} of the gateway's {gateway_us:.0f} us per request "
              f"without them (a throughput cost of about {added / (gateway_us + added):.1%} "
              f"when the gateway's core is the bottleneck)")  # fmt: skip
    status = 0
    if "target" in summary:
        target = summary["target"]
        if not target["clean_rounds"]:
            verdict, status = "NOT MEASURED: other processes kept the gateway's core busy", 2
        else:
            verdict, status = ("MET", 0) if verdict_ok else ("NOT MET", 1)
        print(f"\ntarget: trace + audit cost < {TARGET:.0%} of throughput: {verdict} "
              f"({target['cost']:.1%} over {target['clean_rounds']} clean rounds)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    shutil.rmtree(temp, ignore_errors=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
