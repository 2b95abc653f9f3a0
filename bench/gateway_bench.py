"""Gateway benchmark: direct-to-upstream vs through Stockyard, on loopback.

    python bench/gateway_bench.py                      # default pipeline modules, 8 s per run
    python bench/gateway_bench.py --modules none       # no modules
    python bench/gateway_bench.py --modules all        # every module that has a runtime
    python bench/gateway_bench.py --modules "trace, cache(ttl: 5m)"
    python bench/gateway_bench.py --loop uvloop        # experiment: the gateway on uvloop
    python bench/gateway_bench.py --profile            # + a py-spy profile under load

Measures, against bench/upstream.py (a raw asyncio mock of the OpenAI API):

* non-streaming requests/s and latency p50/p99 at concurrency 1, 16 and 64 with wrk
  (bench/chat.lua), direct and through the gateway, and the latency the gateway adds;
* streaming time to first byte (first SSE event), direct and through the gateway, over
  sequential requests on one keep-alive connection;
* gateway start-up time (process start until /health answers 200) and RSS (VmRSS) after
  start-up, idle, and after the load.

The gateway is pinned to one core (``taskset -c 0``); wrk, the upstream and this script to the
other (``taskset -c 1``). Needs Linux, ``wrk`` and ``taskset``. Writes a JSON file to
bench/results/ and prints a table. This is a benchmark, not a test: numbers vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
LUA = BENCH / "chat.lua"
CHAT_PATH = "/v1/chat/completions"
AUTH = "Bearer sk-bench-0123456789abcdef"
STREAM_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],'
    b'"max_tokens":32,"stream":true}'
)
PLAIN_BODY = (
    b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],"max_tokens":32}'
)

# Issue 3's targets: (key in the summary, comparison, limit, unit, words).
TARGETS = (
    ("added_p50_ms_c1", "<=", 1.5, "ms", "added latency p50, concurrency 1"),
    ("gateway_rps_c64", ">=", 700, "req/s", "gateway requests/s, concurrency 64"),
    ("added_ttfb_p50_ms", "<=", 2.0, "ms", "added time to first byte p50 (streaming)"),
    ("idle_rss_mib", "<=", 100, "MiB", "idle RSS (max of after start-up and after load)"),
    ("startup_s", "<=", 1.5, "s", "start-up, process start to /health 200 (median)"),
)


# --- processes, /proc ------------------------------------------------------------------------

GATEWAY_KEY = ""  # an sk-sy-… key, created when the modules include `auth`
NICE = 0  # --nice: priority of every process of the benchmark (negative needs root)
RT_POLICY = "fifo"  # --rt-policy
RT = 0  # --rt: SCHED_FIFO priority of every process of the benchmark (needs root)


def pinned(core: int | None, argv: list[str]) -> list[str]:
    argv = argv if core is None else ["taskset", "-c", str(core), *argv]
    if RT:
        return ["chrt", "--rr" if RT_POLICY == "rr" else "--fifo", str(RT), *argv]
    return argv if NICE == 0 else ["nice", "-n", str(NICE), *argv]


def rss_kib(pid: int) -> dict[str, int]:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, number, _unit = line.split()
                values[name.rstrip(":")] = int(number)
    return values


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all threads) in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def core_busy() -> dict[int, tuple[int, int]]:
    """Per core: (busy jiffies, total jiffies) from /proc/stat."""
    cores = {}
    with open("/proc/stat") as stat:
        for line in stat:
            if line.startswith("cpu") and line[3].isdigit():
                name, *numbers = line.split()
                values = [int(x) for x in numbers[:8]]
                total = sum(values)
                cores[int(name[3:])] = (total - values[3] - values[4], total)
    return cores


def busy_share(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]
) -> dict[int, float]:
    return {
        core: (after[core][0] - before[core][0]) / max(1, after[core][1] - before[core][1])
        for core in after
    }


def wait_quiet(args: argparse.Namespace) -> float:
    """Wait (up to --quiet-wait s) until no core is busier than --quiet-limit; the load seen last."""
    deadline = time.monotonic() + args.quiet_wait
    while True:
        before = core_busy()
        time.sleep(0.5)
        load = max(busy_share(before, core_busy()).values())
        if load <= args.quiet_limit or time.monotonic() >= deadline:
            return load


def boost_threads(pid: int) -> int:
    """Under --rt, give the gateway's other threads (the SQLite writer, the file watcher, the
    default executor) a real-time priority one above the main thread's.

    Real-time threads of equal priority on one core do not share it: a busy event loop would
    keep the SQLite writer thread off the CPU for as long as it stays busy (seconds, with
    SCHED_RR 100 ms at a time), and the store's queue would fill up. With ordinary scheduling on
    an otherwise idle core, a waking thread gets the CPU at once; one priority step above the
    main thread gives the same. Returns how many threads were boosted."""
    if not RT:
        return 0
    policy = os.SCHED_RR if RT_POLICY == "rr" else os.SCHED_FIFO
    boosted = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        if int(tid) != pid:
            try:
                os.sched_setscheduler(int(tid), policy, os.sched_param(RT + 1))
                boosted += 1
            except OSError:
                pass
    return boosted


def stop_process(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """A one-shot GET on loopback (for /health polling): (status, body); raises OSError."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


# --- the upstream ----------------------------------------------------------------------------


def start_upstream(args: argparse.Namespace) -> tuple[subprocess.Popen[str], int]:
    argv = [
        args.python,
        str(BENCH / "upstream.py"),
        "--port",
        "0",
        "--sse-events",
        str(args.sse_events),
        "--sse-gap-ms",
        str(args.sse_gap_ms),
    ]
    process = subprocess.Popen(pinned(args.load_core, argv), stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("ready "):
        stop_process(process)
        raise SystemExit(f"bench: the upstream did not start ({line!r})")
    return process, int(line.split()[1])


# --- the gateway -----------------------------------------------------------------------------


def shipped_default_modules() -> str:
    """The `modules [...]` text of the shipped default pipeline."""
    from stockyard.settings import shipped_pipelines

    path = shipped_pipelines() / "default.pipe"
    if not path.is_file():
        path = ROOT / "pipelines" / "default.pipe"
    text = path.read_text()
    text = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    match = re.search(r"\bmodules\s*\[([^\]]*)\]", text)
    return match.group(1).strip() if match else ""


# `--modules all`: every module, with parameters that let the benchmark's requests through
# while each module still does its work. The cache is left out: with wrk's identical requests it
# would answer everything itself (benchmark it on purpose with `--modules "..., cache(ttl: 5m)"`).
ALL_PARAMS = {
    "ip_allow": 'ip_allow(allow: ["127.0.0.0/8", "::1/128"])',
    "rate_limit": "rate_limit(requests: 1M/s)",
    "model_alias": 'model_alias(map: ["fast" -> "gpt-4o-mini"])',
    "max_tokens": "max_tokens(limit: 4096)",
}
ALL_SKIPPED = ("cache",)


def split_modules(text: str) -> list[str]:
    """Split a module list at top-level commas: 'trace, cache(ttl: 5m)' -> ['trace', 'cache(ttl: 5m)']."""
    items, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    items.append(current.strip())
    return [item for item in items if item]


def resolve_modules(choice: str, keep_missing: bool) -> tuple[list[str], list[str], str]:
    """(modules to use, modules dropped for lack of a runtime, what was asked for)."""
    from stockyard.modules import REGISTRY

    if choice == "default":
        asked = split_modules(shipped_default_modules())
    elif choice == "all":
        asked = [ALL_PARAMS.get(name, name) for name in REGISTRY if name not in ALL_SKIPPED]
    elif choice in ("none", ""):
        asked = []
    else:
        asked = split_modules(choice.strip().removeprefix("[").removesuffix("]"))
    used, dropped = [], []
    for item in asked:
        name = item.split("(", 1)[0].strip()
        if name not in REGISTRY:
            raise SystemExit(f"bench: unknown module `{name}` (known: {', '.join(REGISTRY)})")
        # Revisions before ModuleDefinition (every module has `create`) declared `factory`.
        if getattr(REGISTRY[name], "factory", "create") is None and not keep_missing:
            dropped.append(name)
        else:
            used.append(item)
    return used, dropped, choice


def pipeline_text(upstream_port: int, modules: list[str]) -> str:
    return f"""# Written by bench/gateway_bench.py
provider upstream {{
  kind     openai
  base_url "http://127.0.0.1:{upstream_port}/v1"
  api_key  passthrough
}}

route chat {{
  path    {CHAT_PATH}
  chain   upstream
  modules [{", ".join(modules)}]
}}
"""


@dataclass
class Gateway:
    process: subprocess.Popen[bytes]
    port: int
    startup_s: float
    rss_start_kib: int
    log: Path


def gateway_argv(args: argparse.Namespace, port: int, workdir: Path) -> list[str]:
    if args.floor:
        launcher = [
            args.python,
            str(BENCH / "serve_variant.py"),
            "--floor",
            "--server",
            args.server,
            "--loop",
            args.loop,
            "--",
        ]
    elif args.loop != "asyncio" or args.server != "hypercorn" or args.patch:
        launcher = [
            args.python,
            str(BENCH / "serve_variant.py"),
            "--loop",
            args.loop,
            "--server",
            args.server,
            *(f"--patch={name}" for name in args.patch),
            "--",
        ]
    else:
        launcher = [args.python, "-m", "stockyard"]
    argv = [
        *launcher,
        "serve",
        "--port",
        str(port),
        "--pipelines",
        str(workdir / "pipelines"),
        "--db",
        str(workdir / "stockyard.db"),
    ]
    if args.no_watch:
        argv.append("--no-watch")
    return pinned(args.gateway_core, argv)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gateway_env(args: argparse.Namespace) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("STOCKYARD_ADMIN_KEY", None)
    if args.source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(args.source), env.get("PYTHONPATH"))))
    return env


def create_key(args: argparse.Namespace, workdir: Path) -> str:
    """A gateway key for the `auth` module, with `stockyard keys create`."""
    done = subprocess.run(
        [
            args.python,
            "-m",
            "stockyard",
            "keys",
            "create",
            "--project",
            "bench",
            "--db",
            str(workdir / "stockyard.db"),
        ],
        cwd=workdir,
        env=gateway_env(args),
        capture_output=True,
        text=True,
        check=False,
    )
    key = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not key.startswith("sk-"):
        raise SystemExit(
            f"bench: cannot create a gateway key for `auth`:\n{done.stdout}{done.stderr}"
        )
    return key


def start_gateway(args: argparse.Namespace, workdir: Path, index: int) -> Gateway:
    port = free_port()
    log = workdir / f"gateway-{index}.log"
    env = gateway_env(args)
    argv = gateway_argv(args, port, workdir)
    with log.open("wb") as out:
        started = time.perf_counter()
        process = subprocess.Popen(argv, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = started + args.startup_timeout
    while True:
        try:
            status, body = http_get(port, "/health", timeout=0.5)
            if status == 200 and json.loads(body).get("status") == "ok":
                elapsed = time.perf_counter() - started
                break
        except (OSError, ValueError, IndexError):
            pass
        if process.poll() is not None or time.perf_counter() > deadline:
            stop_process(process)
            raise SystemExit(
                f"bench: the gateway did not start:\n{log.read_text(errors='replace')}"
            )
        time.sleep(0.005)
    return Gateway(process, port, elapsed, rss_kib(process.pid)["VmRSS"], log)


def store_metrics(port: int) -> dict[str, float]:
    """The gateway's writer-queue gauges from GET /metrics (empty if it has none)."""
    try:
        status, body = http_get(port, "/metrics", timeout=2.0)
    except OSError:
        return {}
    if status != 200:
        return {}
    found = {}
    for line in body.decode(errors="replace").splitlines():
        name, _, value = line.partition(" ")
        if name in ("stockyard_store_queue_depth", "stockyard_store_backpressure_total"):
            try:
                found[name.removeprefix("stockyard_store_")] = float(value)
            except ValueError:
                pass
    return found


# --- load: wrk -------------------------------------------------------------------------------


@dataclass
class WrkRun:
    concurrency: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    errors: int
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU share of one core
    busy: dict[str, float] = field(default_factory=dict)  # core -> busy share, all processes
    other_load: float = 0.0  # CPU share used on the gateway's core by processes not ours

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def wrk(
    args: argparse.Namespace,
    port: int,
    concurrency: int,
    seconds: float,
    watch: dict[str, int] | None = None,
) -> WrkRun:
    argv = pinned(
        args.load_core,
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(LUA),
            f"http://127.0.0.1:{port}{CHAT_PATH}",
        ],
    )
    watch = watch or {}
    before = {name: cpu_seconds(pid) for name, pid in watch.items()}
    cores_before = core_busy()
    started = time.perf_counter()
    env = {**os.environ, "BENCH_GATEWAY_KEY": GATEWAY_KEY}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    wall = time.perf_counter() - started
    after = {name: cpu_seconds(pid) for name, pid in watch.items()}
    busy = busy_share(cores_before, core_busy())
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCHJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"bench: wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCHJSON "))
    errors = sum(v for k, v in data.items() if k.startswith("errors_"))
    run = WrkRun(
        concurrency=concurrency,
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["lat_mean_us"] / 1000,
        max_ms=data["lat_max_us"] / 1000,
        requests=data["requests"],
        errors=errors,
        cpu={name: (after[name] - before[name]) / wall for name in watch},
        busy={str(core): share for core, share in busy.items()},
    )
    if args.gateway_core is not None and "gateway" in run.cpu:
        run.other_load = max(0.0, busy.get(args.gateway_core, 0.0) - run.cpu["gateway"])
    return run


def measure(
    args: argparse.Namespace,
    port: int,
    concurrency: int,
    watch: dict[str, int],
    boost: tuple[int, ...] = (),
) -> WrkRun:
    """Warm up, then ``--repeat`` measured runs; the run with the median requests/s."""
    for pid in boost:
        boost_threads(pid)
    if args.warmup > 0:
        wrk(args, port, concurrency, args.warmup)
    load = wait_quiet(args)
    if load > args.quiet_limit and args.quiet_wait > 0:
        print(
            f"bench: warning: the machine is busy ({100 * load:.0f}% on a core) before a run; "
            "numbers will be low",
            file=sys.stderr,
        )
    runs = sorted(
        (wrk(args, port, concurrency, args.duration, watch) for _ in range(args.repeat)),
        key=lambda r: r.rps,
    )
    return runs[len(runs) // 2]


# --- streaming: time to first byte -----------------------------------------------------------


async def _read_response(
    reader: asyncio.StreamReader, started: float
) -> tuple[int, float, float, bytes, bool]:
    """Read one response: (status, first body byte at, end at, body, server closes), times since
    ``started``."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    lower = head.lower()
    body = bytearray()
    first = None
    if b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if first is None:
                first = time.perf_counter() - started
    else:
        match = re.search(rb"content-length:\s*(\d+)", lower)
        body += await reader.readexactly(int(match.group(1)) if match else 0)
        first = time.perf_counter() - started
    closing = b"\r\nconnection: close" in lower
    return status, first or 0.0, time.perf_counter() - started, bytes(body), closing


async def _sequential_client(port: int, count: int, warmup: int, body: bytes) -> dict[str, Any]:
    """``warmup + count`` requests one after another on a keep-alive connection (a new one when
    the server closes it: Hypercorn does after keep_alive_max_requests, 1,000 by default)."""
    accept = "text/event-stream" if body is STREAM_BODY else "application/json"
    request = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: {AUTH}\r\n"
        f"Content-Type: application/json\r\nAccept: {accept}\r\n{key_header()}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    firsts, totals = [], []
    last = b""
    reconnects = 0
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index in range(warmup + count):
            started = time.perf_counter()
            writer.write(request)
            status, first, total, last, closing = await _read_response(reader, started)
            if status != 200:
                raise SystemExit(f"bench: request answered {status}: {last[:300]!r}")
            if index >= warmup:
                firsts.append(first * 1000)
                totals.append(total * 1000)
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                reconnects += 1
    finally:
        writer.close()
    return {"ttfb_ms": firsts, "total_ms": totals, "last_body": last, "reconnects": reconnects}


def key_header() -> str:
    return f"X-Stockyard-Key: {GATEWAY_KEY}\r\n" if GATEWAY_KEY else ""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_stats(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """Exact per-request latency at concurrency 1 (wrk's percentiles are corrected for
    coordinated omission, which inflates them wherever a run has a stall)."""
    result = asyncio.run(
        _sequential_client(port, args.latency_requests, args.latency_warmup, PLAIN_BODY)
    )
    values = result["total_ms"]
    return {
        "requests": len(values),
        "reconnects": result["reconnects"],
        "p50_ms": percentile(values, 50),
        "p90_ms": percentile(values, 90),
        "p99_ms": percentile(values, 99),
        "mean_ms": statistics.fmean(values),
        "max_ms": max(values),
    }


def stream_stats(port: int, args: argparse.Namespace) -> dict[str, Any]:
    result = asyncio.run(
        _sequential_client(port, args.ttfb_requests, args.ttfb_warmup, STREAM_BODY)
    )
    ttfb, total = result["ttfb_ms"], result["total_ms"]
    body = result["last_body"]
    return {
        "requests": len(ttfb),
        "ttfb_p50_ms": percentile(ttfb, 50),
        "ttfb_p90_ms": percentile(ttfb, 90),
        "ttfb_p99_ms": percentile(ttfb, 99),
        "ttfb_mean_ms": statistics.fmean(ttfb),
        "total_p50_ms": percentile(total, 50),
        "total_p99_ms": percentile(total, 99),
        "events": body.count(b"data: "),
        "ends_with_done": body.rstrip().endswith(b"data: [DONE]"),
    }


def sanity(port: int, expected: bytes | None) -> bytes:
    """One non-streaming POST; fails loudly unless it answers 200 (and ``expected`` when given)."""

    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            (
                f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\n"
                f"{key_header()}Content-Type: application/json\r\nContent-Length: {len(PLAIN_BODY)}\r\n\r\n"
            ).encode()
            + PLAIN_BODY
        )
        status, _, _, body, _ = await _read_response(reader, time.perf_counter())
        writer.close()
        return status, body

    status, body = asyncio.run(once())
    if status != 200 or (expected is not None and body != expected):
        raise SystemExit(f"bench: sanity request on port {port} answered {status}: {body[:400]!r}")
    return body


# --- profile ---------------------------------------------------------------------------------


def profile(args: argparse.Namespace, gateway: Gateway, out_stem: Path) -> dict[str, Any]:
    """py-spy record on the gateway during a concurrency-64 wrk run; collapsed stacks + summary."""
    pyspy = shutil.which("py-spy") or str(Path(args.python).parent / "py-spy")
    if not Path(pyspy).exists():
        print("bench: --profile needs py-spy (pip install py-spy); skipped", file=sys.stderr)
        return {}
    raw = out_stem.with_suffix(".collapsed.txt")
    seconds = max(3, int(args.duration))
    recorder = subprocess.Popen(
        pinned(
            args.load_core,
            [
                pyspy,
                "record",
                "--pid",
                str(gateway.process.pid),
                "--duration",
                str(seconds + 1),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
                "--gil",
            ],
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    run = wrk(args, gateway.port, 64, seconds)
    recorder.wait(seconds + 30)
    if not raw.exists():
        return {
            "error": (recorder.stderr.read() if recorder.stderr else b"").decode(errors="replace")
        }
    return {"file": shown(raw), "rps_while_profiling": round(run.rps, 1), **summarise_profile(raw)}


def summarise_profile(raw: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks.

    Self time is reliable. Inclusive shares are lower bounds: py-spy often sees a resumed
    coroutine's frames without the event-loop frames beneath them."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    packages: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";")]
        total += count
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + count
            package = _package(frames[-1])
            packages[package] = packages.get(package, 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count

    def ranked(table: dict[str, int], limit: int = top) -> list[list[Any]]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])[:limit]
        return [[name, round(100 * n / total, 1)] for name, n in rows]

    return {
        "samples": total,
        "self_pct": ranked(own),
        "inclusive_pct": ranked(inclusive, 40),
        "self_by_package_pct": ranked(packages),
    }


def _package(name: str) -> str:
    path = name.split(":", 1)[0]
    if path.startswith("stockyard/"):
        return "/".join(path.split("/")[:2])
    if "/" not in path:
        return path
    return path.split("/", 1)[0] if not path.startswith("/") else "other"


def _frame_name(frame: str) -> str:
    """'send (aiohttp/client.py:123)' -> 'aiohttp/client.py:send' (lines dropped to merge)."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    path = path.replace(str(ROOT) + "/", "")
    return f"{path}:{function}"


# --- report ----------------------------------------------------------------------------------


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def versions() -> dict[str, str]:
    found = {}
    for name in ("hypercorn", "h11", "quart", "aiohttp", "orjson", "uvloop", "uvicorn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def git(*argv: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *argv], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


def git_state(args: argparse.Namespace) -> dict[str, Any]:
    if args.ref:
        return {
            "commit": git("rev-parse", "--short", args.ref),
            "dirty": False,
            "source": f"git archive {args.ref}",
        }
    if args.source is not None:
        return {"source": str(args.source)}
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "stockyard")),
        "source": "working tree",
    }


def export_ref(ref: str) -> Path:
    """The tree of ``ref`` in a temporary directory (no change to the repository)."""
    target = Path(tempfile.mkdtemp(prefix="stockyard-gwbench-ref-"))
    present = set(git("ls-tree", "--name-only", ref).split())
    paths = [p for p in ("stockyard", "grammar", "pipelines") if p in present]
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", ref, *paths], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise SystemExit(
            f"bench: git archive {ref} failed: {archive.stderr.decode(errors='replace')}"
        )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    # As an installed wheel would have: bytecode compiled ahead (PYTHONDONTWRITEBYTECODE may be set).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(target / "stockyard")], check=True
    )
    return target


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def check_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, op, limit, unit, words in TARGETS:
        value = summary.get(key)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        rows.append(
            {
                "key": key,
                "what": words,
                "value": value,
                "limit": f"{op} {limit}",
                "unit": unit,
                "met": met,
            }
        )
    return rows


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    ]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(
            "  ".join(
                str(c).rjust(w) if i else str(c).ljust(w)
                for i, (c, w) in enumerate(zip(row, widths))
            )
        )
    return "\n".join(lines)


def render(result: dict[str, Any]) -> str:
    setup = result["setup"]
    out = [
        f"Stockyard gateway benchmark  ({result['label']}; {setup['cpu']}, {setup['cores']} cores; "
        f"gateway on core {setup['gateway_core']}, wrk + upstream + client on core {setup['load_core']}"
        + (f"; SCHED_FIFO {setup['rt']}" if setup.get("rt") else "")
        + (f"; nice {setup['nice']}" if setup.get("nice") else "")
        + ")",
        f"stockyard {setup['git'].get('commit', setup['git'].get('source'))}"
        f"{' (+ uncommitted changes)' if setup['git'].get('dirty') else ''}; "
        f"gateway: {setup['server']} on {setup['loop']}; modules [{', '.join(setup['modules'])}]"
        + (
            f"  (asked `{setup['modules_asked']}`; dropped, no runtime implementation yet: "
            f"{', '.join(setup['modules_dropped'])})"
            if setup["modules_dropped"]
            else ""
        ),
        "",
        f"Non-streaming POST {CHAT_PATH} (wrk -t1, {setup['duration_s']:g} s per run, "
        f"median of {setup['repeat']})",
    ]
    rows = []
    for row in result["nonstream"]:
        d, g = row["direct"], row["gateway"]
        rows.append(
            [
                str(row["concurrency"]),
                fmt(d["rps"], 0),
                fmt(g["rps"], 0),
                fmt(d["p50_ms"], 3),
                fmt(g["p50_ms"], 3),
                fmt(row["added_p50_ms"], 3),
                fmt(d["p99_ms"], 3),
                fmt(g["p99_ms"], 3),
                fmt(row["added_p99_ms"], 3),
                f"{100 * g['cpu'].get('gateway', 0):.0f}%",
                fmt(row["gateway_cpu_us_per_req"], 0),
                f"{100 * d['cpu'].get('upstream', 0):.0f}%",
                f"{100 * g['other_load']:.0f}%",
                str(d["errors"] + g["errors"]),
            ]
        )
    out.append(
        table(
            [
                "conc",
                "direct rps",
                "gw rps",
                "direct p50",
                "gw p50",
                "added p50",
                "direct p99",
                "gw p99",
                "added p99",
                "gw CPU",
                "gw CPU µs/req",
                "upstr CPU (direct)",
                "other load",
                "errors",
            ],
            rows,
        )
    )
    out.append(
        "(wrk latencies in ms, corrected by wrk for coordinated omission, so their tails are\n"
        " pessimistic; CPU = share of one core during the run; other load = CPU taken on the\n"
        " gateway's core by processes outside the benchmark during the gateway run: ~0% on a\n"
        " quiet machine)"
    )
    levels = ", ".join(
        f"c={row['concurrency']} {row.get('gateway_rss_after_mib', 0):.0f} MiB"
        + (
            f" (writer queue {row['gateway_store_after'].get('queue_depth', 0):,.0f}, back-pressure waits "
            f"{row['gateway_store_after'].get('backpressure_total', 0):,.0f})"
            if row.get("gateway_store_after")
            else ""
        )
        for row in result["nonstream"]
    )
    out.append(f"gateway RSS after each level: {levels}")
    lat = result["latency_c1"]
    out += [
        "",
        f"Latency at concurrency 1, exact: {lat['direct']['requests']} sequential non-streaming "
        "requests on one keep-alive connection (ms)",
    ]
    rows = [
        [name, fmt(v["p50_ms"], 3), fmt(v["p90_ms"], 3), fmt(v["p99_ms"], 3), fmt(v["mean_ms"], 3)]
        for name, v in (("direct", lat["direct"]), ("gateway", lat["gateway"]))
    ]
    rows.append(["added"] + [fmt(lat[f"added_{q}_ms"], 3) for q in ("p50", "p90", "p99", "mean")])
    out.append(table(["", "p50", "p90", "p99", "mean"], rows))
    s = result["stream"]
    out += [
        "",
        f"Streaming: time to first SSE event, {s['direct']['requests']} sequential requests, "
        f"{setup['sse_events']} content events {setup['sse_gap_ms']:g} ms apart",
    ]
    rows = [
        [
            name,
            fmt(v["ttfb_p50_ms"], 3),
            fmt(v["ttfb_p90_ms"], 3),
            fmt(v["ttfb_p99_ms"], 3),
            fmt(v["total_p50_ms"], 3),
            str(v["events"]),
        ]
        for name, v in (("direct", s["direct"]), ("gateway", s["gateway"]))
    ]
    rows.append(
        [
            "added",
            fmt(s["added_ttfb_p50_ms"], 3),
            "",
            fmt(s["added_ttfb_p99_ms"], 3),
            fmt(s["added_total_p50_ms"], 3),
            "",
        ]
    )
    out.append(table(["", "TTFB p50", "TTFB p90", "TTFB p99", "whole stream p50", "events"], rows))
    m = result["memory"]
    out += [
        "",
        "Start-up and memory",
        table(
            ["", "value"],
            [
                ["start-up (median), s", fmt(result["startup"]["median_s"], 3)],
                [
                    "start-up (each run), s",
                    ", ".join(f"{x:.3f}" for x in result["startup"]["runs_s"]),
                ],
                ["RSS at /health 200, MiB", fmt(m["rss_at_ready_mib"], 1)],
                ["RSS idle after start-up, MiB", fmt(m["rss_idle_mib"], 1)],
                ["RSS idle after load, MiB", fmt(m["rss_after_load_mib"], 1)],
                ["peak RSS (VmHWM), MiB", fmt(m["hwm_mib"], 1)],
            ],
        ),
    ]
    out += ["", "Targets (issue 3)"]
    rows = [
        [
            t["what"],
            fmt(t["value"], 3),
            f"{t['limit']} {t['unit']}",
            {True: "MET", False: "MISSED", None: "-"}[t["met"]],
        ]
        for t in result["targets"]
    ]
    out.append(table(["target", "value", "limit", ""], rows))
    prof = result.get("profile") or {}
    if prof.get("self_pct"):
        out += [
            "",
            f"py-spy profile under load ({prof['samples']} samples, {prof['file']}): top self time",
        ]
        out.append(
            table(["function", "self %"], [[n, f"{p:.1f}"] for n, p in prof["self_pct"][:20]])
        )
        out += ["", "self time by package"]
        out.append(
            table(["package", "self %"], [[n, f"{p:.1f}"] for n, p in prof["self_by_package_pct"]])
        )
    return "\n".join(out)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--modules",
        default="default",
        help="the route's modules: default (the shipped default pipeline's), none, "
        "all (every module), or a list such as 'trace, cache(ttl: 5m)'. Modules "
        "without a runtime implementation are dropped (and reported)",
    )
    parser.add_argument(
        "--keep-missing-modules",
        action="store_true",
        help="do not drop modules without a runtime (the gateway will refuse them)",
    )
    parser.add_argument(
        "--concurrency", default="1,16,64", help="wrk connections (default 1,16,64)"
    )
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run (default 8)")
    parser.add_argument(
        "--warmup", type=float, default=2, help="warm-up seconds before each (default 2)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per point; the median is kept")
    parser.add_argument(
        "--latency-requests",
        type=int,
        default=3000,
        help="sequential non-streaming requests for the exact concurrency-1 latency",
    )
    parser.add_argument("--latency-warmup", type=int, default=200)
    parser.add_argument("--ttfb-requests", type=int, default=300)
    parser.add_argument("--ttfb-warmup", type=int, default=30)
    parser.add_argument("--startups", type=int, default=3, help="start-up measurements (default 3)")
    parser.add_argument(
        "--startup-timeout", type=float, default=30, help="seconds to wait for /health"
    )
    parser.add_argument("--sse-events", type=int, default=8)
    parser.add_argument("--sse-gap-ms", type=float, default=1.0)
    parser.add_argument("--gateway-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run gateway, upstream, wrk and client at this nice level, e.g. -10 on a "
        "machine shared with other work (negative needs root)",
    )
    parser.add_argument(
        "--rt",
        type=int,
        default=0,
        metavar="PRIO",
        help="run gateway, upstream, wrk and client SCHED_FIFO at this priority (chrt -f), "
        "so that other work on a shared machine cannot delay them (needs root; the "
        "kernel still leaves 5%% of each core to others)",
    )
    parser.add_argument(
        "--rt-policy",
        choices=("fifo", "rr"),
        default="fifo",
        help="real-time policy for --rt (default fifo)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60,
        help="before each run, wait up to this many seconds for an idle machine (default 60)",
    )
    parser.add_argument(
        "--quiet-limit",
        type=float,
        default=0.10,
        help="idle means no core busier than this share (default 0.10)",
    )
    parser.add_argument("--no-watch", action="store_true", help="start the gateway with --no-watch")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="experiment: run the gateway on uvloop (via bench/serve_variant.py)",
    )
    parser.add_argument(
        "--server",
        choices=("hypercorn", "uvicorn"),
        default="hypercorn",
        help="experiment: serve the same ASGI app with another server",
    )
    parser.add_argument(
        "--patch",
        action="append",
        default=[],
        choices=("dummy-cookie-jar",),
        help="experiment: monkey-patch the gateway (see bench/serve_variant.py)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="experiment: in the gateway's place, a bare ASGI app on the same server that "
        "answers a fixed body without calling the upstream (the server's own ceiling)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also record a py-spy profile of the gateway under concurrency-64 load",
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for gateway and upstream"
    )
    parser.add_argument(
        "--ref",
        metavar="REV",
        help="benchmark stockyard as committed at REV (git archive into a temp dir, "
        "put first on PYTHONPATH) instead of the working tree",
    )
    parser.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="benchmark the stockyard package found in DIR (put first on PYTHONPATH)",
    )
    parser.add_argument("--label", help="name of this run (default from modules/loop/server)")
    parser.add_argument(
        "--out", type=Path, help="JSON output (default bench/results/gateway-LABEL.json)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s runs, 1 s warm-up, 100 TTFB requests"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.ttfb_requests, args.startups = 2, 1, 100, 1
        args.latency_requests = 500
    if args.no_pin:
        args.gateway_core = args.load_core = None
    return args


def _terminate(signum: int, _frame: Any) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")  # so that `finally` stops the servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    for tool in ("wrk", *(() if args.no_pin else ("taskset",))):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: `{tool}` not found (apt-get install wrk util-linux)")
    if args.load_core is not None:
        os.sched_setaffinity(0, {args.load_core})  # this script (the streaming client) too
    global NICE, RT, RT_POLICY, GATEWAY_KEY
    if args.nice:
        NICE = args.nice
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    if args.rt:
        RT, RT_POLICY = args.rt, args.rt_policy
        policy = os.SCHED_RR if args.rt_policy == "rr" else os.SCHED_FIFO
        os.sched_setscheduler(0, policy | os.SCHED_RESET_ON_FORK, os.sched_param(args.rt))
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    if args.ref:
        args.source = export_ref(args.ref)
    if args.source is not None:
        sys.path.insert(0, str(args.source))  # module checks below use the same stockyard
    modules, dropped, asked = resolve_modules(args.modules, args.keep_missing_modules)
    if args.floor:
        label = args.label or "-".join(
            ["floor", args.server] + ([args.loop] if args.loop != "asyncio" else [])
        )
    else:
        label = args.label or "-".join(
            [{"default": "default", "none": "none", "all": "all"}.get(args.modules, "custom")]
            + ([args.loop] if args.loop != "asyncio" else [])
            + ([args.server] if args.server != "hypercorn" else [])
            + args.patch
        )
    out = args.out or RESULTS / f"gateway-{label}.json"
    if dropped:
        print(
            f"bench: modules without a runtime implementation (no factory in stockyard/modules/): "
            f"{', '.join(dropped)}; benchmarking with modules [{', '.join(modules)}]",
            file=sys.stderr,
        )

    upstream, upstream_port = start_upstream(args)
    workdir = Path(tempfile.mkdtemp(prefix="stockyard-gwbench-"))
    gateway: Gateway | None = None
    try:
        (workdir / "pipelines").mkdir()
        (workdir / "pipelines" / "bench.pipe").write_text(pipeline_text(upstream_port, modules))
        if any(item.split("(", 1)[0].strip() == "auth" for item in modules):
            GATEWAY_KEY = create_key(args, workdir)
        # Start-up: every start but the last is measured and stopped; the last one serves the load.
        startups, idle_rss = [], []
        for index in range(max(1, args.startups)):
            wait_quiet(args)
            gateway = start_gateway(args, workdir, index)
            startups.append(gateway.startup_s)
            time.sleep(1.0)
            idle_rss.append(rss_kib(gateway.process.pid)["VmRSS"])
            print(
                f"bench: start-up {index + 1}: {gateway.startup_s:.3f} s, RSS {gateway.rss_start_kib / 1024:.1f} "
                f"MiB at ready, {idle_rss[-1] / 1024:.1f} MiB after 1 s",
                file=sys.stderr,
            )
            if index < args.startups - 1:
                stop_process(gateway.process)
        assert gateway is not None
        expected = sanity(upstream_port, None)
        sanity(gateway.port, expected)

        watch = {"gateway": gateway.process.pid, "upstream": upstream.pid}
        nonstream = []
        for concurrency in concurrencies:
            direct = measure(args, upstream_port, concurrency, watch)
            through = measure(args, gateway.port, concurrency, watch, boost=(gateway.process.pid,))
            nonstream.append(
                {
                    "concurrency": concurrency,
                    "direct": direct.to_json(),
                    "gateway": through.to_json(),
                    "added_p50_ms": through.p50_ms - direct.p50_ms,
                    "added_p99_ms": through.p99_ms - direct.p99_ms,
                    "gateway_cpu_us_per_req": 1e6 * through.cpu["gateway"] / through.rps
                    if through.rps
                    else None,
                    "gateway_rss_after_mib": rss_kib(gateway.process.pid)["VmRSS"] / 1024,
                    "gateway_store_after": store_metrics(gateway.port),
                }
            )
            print(
                f"bench: c={concurrency}: direct {direct.rps:,.0f} req/s p50 {direct.p50_ms:.3f} ms; "
                f"gateway {through.rps:,.0f} req/s p50 {through.p50_ms:.3f} ms "
                f"(gateway CPU {100 * through.cpu['gateway']:.0f}%, RSS {nonstream[-1]['gateway_rss_after_mib']:.0f} MiB"
                + "".join(
                    f", store {k} {v:,.0f}" for k, v in nonstream[-1]["gateway_store_after"].items()
                )
                + ")",
                file=sys.stderr,
            )

        wait_quiet(args)
        boost_threads(gateway.process.pid)
        latency_direct = latency_stats(upstream_port, args)
        wait_quiet(args)
        latency_gateway = latency_stats(gateway.port, args)
        latency = {
            "direct": latency_direct,
            "gateway": latency_gateway,
            **{
                f"added_{q}_ms": latency_gateway[f"{q}_ms"] - latency_direct[f"{q}_ms"]
                for q in ("p50", "p90", "p99", "mean")
            },
        }
        wait_quiet(args)
        stream_direct = stream_stats(upstream_port, args)
        wait_quiet(args)
        stream_gateway = stream_stats(gateway.port, args)
        stream = {
            "direct": stream_direct,
            "gateway": stream_gateway,
            "added_ttfb_p50_ms": stream_gateway["ttfb_p50_ms"] - stream_direct["ttfb_p50_ms"],
            "added_ttfb_p99_ms": stream_gateway["ttfb_p99_ms"] - stream_direct["ttfb_p99_ms"],
            "added_total_p50_ms": stream_gateway["total_p50_ms"] - stream_direct["total_p50_ms"],
        }
        if not stream_gateway["ends_with_done"]:
            print(
                "bench: warning: the gateway's stream did not end with data: [DONE]",
                file=sys.stderr,
            )

        time.sleep(2.0)
        after = rss_kib(gateway.process.pid)
        prof = profile(args, gateway, out.with_suffix("")) if args.profile else {}
    finally:
        if gateway is not None:
            stop_process(gateway.process)
        stop_process(upstream)
        if args.ref:
            shutil.rmtree(args.source, ignore_errors=True)

    by_conc = {row["concurrency"]: row for row in nonstream}
    memory = {
        "rss_at_ready_mib": gateway.rss_start_kib / 1024,
        "rss_idle_mib": max(idle_rss) / 1024,
        "rss_after_load_mib": after["VmRSS"] / 1024,
        "hwm_mib": after["VmHWM"] / 1024,
    }
    summary = {
        "added_p50_ms_c1": latency["added_p50_ms"],
        "gateway_rps_c64": by_conc[64]["gateway"]["rps"] if 64 in by_conc else None,
        "added_ttfb_p50_ms": stream["added_ttfb_p50_ms"],
        "idle_rss_mib": max(memory["rss_idle_mib"], memory["rss_after_load_mib"]),
        "startup_s": statistics.median(startups),
    }
    result = {
        "label": label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "setup": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "versions": versions(),
            "git": git_state(args),
            "gateway_core": args.gateway_core,
            "load_core": args.load_core,
            "server": args.server,
            "loop": args.loop,
            "floor": args.floor,
            "patch": args.patch,
            "watch": not args.no_watch,
            "nice": args.nice,
            "rt": args.rt,
            "modules": modules,
            "modules_asked": asked,
            "modules_dropped": dropped,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "repeat": args.repeat,
            "sse_events": args.sse_events,
            "sse_gap_ms": args.sse_gap_ms,
            "pipeline": pipeline_text(upstream_port, modules).replace(str(upstream_port), "PORT"),
        },
        "nonstream": nonstream,
        "latency_c1": latency,
        "stream": stream,
        "startup": {"runs_s": startups, "median_s": statistics.median(startups)},
        "memory": memory,
        "summary": summary,
        "targets": check_targets(summary),
    }
    if prof:
        result["profile"] = prof
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    print(render(result))
    print(f"\nresults: {shown(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
