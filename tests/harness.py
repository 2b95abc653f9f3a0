"""Real servers for end-to-end tests: the gateway in a subprocess, and scriptable upstreams
that speak the OpenAI HTTP API (JSON and SSE streams) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Tests wait on events, not on upper-bound clocks: a condition is polled until it holds, and
# only this generous ceiling (far beyond any healthy run, even on a busy CI host) fails a test.
CEILING = 30.0


def eventually(predicate: Any, what: str, timeout: float = CEILING, interval: float = 0.02) -> Any:
    """Poll ``predicate()`` until it returns something truthy, and return that; fail with
    ``what`` (what was awaited) only when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout:g} s")
        time.sleep(interval)


def overhead_ms(headers: Any, wall: float, upstream: float) -> float:
    """``x-stockyard-overhead-ms``, checked: a finite, non-negative number of milliseconds that
    leaves out the ``upstream`` seconds the provider took, so it fits in the client's ``wall``
    seconds (measured around the whole request) with those taken away."""
    value = float(headers["x-stockyard-overhead-ms"])
    assert math.isfinite(value) and value >= 0, value
    assert value + upstream * 1000 < wall * 1000, (value, upstream, wall)
    return value


def closed_url() -> str:
    """A base URL on a loopback port nothing listens on: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}/v1"


@dataclass
class Behaviour:
    """What the upstream does with one request. Unset fields mean: answer normally."""

    status: int = 200
    body: Any = None  # JSON for errors; default an OpenAI error object
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before the response starts
    chunk_delay: float = 0.0  # between stream chunks
    fail_after_chunks: int | None = None  # cut a stream after N chunks (no [DONE])
    reply: str | None = None
    words: int | None = None  # stream length (chunks of content)
    first_chunk_delay: float = 0.0  # stream: after the headers, before the first event
    echo_auth: bool = False  # error bodies repeat the Authorization header they received
    usage: dict[str, Any] | None = None  # the usage reported instead of 11 + 7 tokens
    echo: bool = False  # the answer repeats the last message's content
    hold: threading.Event | None = None  # the answer waits until the test sets this event
    hold_after_chunks: int | None = None  # a stream's hold: after N content chunks, not before
    # How a stream is framed (all valid SSE): the line end ("\n", "\r\n" or "\r"), a space
    # after `data:`/`event:` or not, a comment line in every event, each event in two writes
    # (cut after its first CR, so that a CRLF spans two network chunks, else in the middle).
    sse_line_end: str = "\n"
    sse_space: bool = True
    sse_comments: bool = False
    sse_split: bool = False


def sse_frame(behaviour: Behaviour, *fields: tuple[str, str]) -> bytes:
    """One SSE event, ``(field, value)`` lines, in the behaviour's framing."""
    end = behaviour.sse_line_end
    space = " " if behaviour.sse_space else ""
    lines = [": keep-alive"] if behaviour.sse_comments else []
    lines += [f"{name}:{space}{value}" for name, value in fields]
    return (end.join(lines) + end + end).encode()


async def write_sse(response: web.StreamResponse, behaviour: Behaviour, event: bytes) -> None:
    if not behaviour.sse_split:
        await response.write(event)
        return
    cut = event.find(b"\r") + 1 or len(event) // 2
    await response.write(event[:cut])
    await asyncio.sleep(0.002)  # the halves arrive as separate reads
    await response.write(event[cut:])


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    cancelled: bool = False  # the client (the gateway) went away before the end
    chunks: int = 0  # content chunks streamed to it
    raw: bytes = b""  # the body exactly as it arrived


class Upstream:
    """An OpenAI-compatible server on a loopback port, in its own thread and event loop.

    ``script`` is consumed one Behaviour per request; when empty, ``default`` applies.
    """

    def __init__(self, name: str = "upstream") -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.script: list[Behaviour] = []
        self.default = Behaviour()
        self.received: list[Received] = []
        self.cancelled = 0  # requests whose client went away before the end
        self.chunks_sent = 0
        # monotonic times of the latest stream's first chunk and of its latest content chunk
        self.first_chunk_at: float | None = None
        self.last_chunk_at: float | None = None
        self._lock = threading.Lock()
        self._epoch = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/v1/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def reset(self) -> None:
        """Forget the script, the default behaviour and everything received (shared upstreams)."""
        with self._lock:
            self.script = []
            self.default = Behaviour()
            self.received = []
            self.cancelled = 0
            self.chunks_sent = 0
            self._epoch += 1  # requests still running from before do not count any more
            self.first_chunk_at = self.last_chunk_at = None

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def models(self) -> list[str]:
        """The model of every request received so far (shows per-hop rewrites)."""
        with self._lock:
            return [r.body.get("model") for r in self.received]

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        """Poll ``predicate(self)`` until it holds (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.01)
        return bool(predicate(self))

    def next_behaviour(self) -> Behaviour:
        with self._lock:
            return self.script.pop(0) if self.script else self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        entry = Received(request.path, dict(request.headers), body, time.monotonic(), raw=raw)
        with self._lock:
            self.received.append(entry)
            epoch = self._epoch
        behaviour = self.next_behaviour()
        if behaviour.delay and not await self._sleep_unless_gone(request, behaviour.delay):
            self._note_cancel(entry, epoch)
            return web.Response(status=499)
        held = behaviour.hold if behaviour.hold_after_chunks is None else None
        if held is not None and not await self._wait_unless_gone(request, held):
            self._note_cancel(entry, epoch)
            return web.Response(status=499)
        if behaviour.status >= 400:
            message = f"{self.name} says {behaviour.status}"
            if behaviour.echo_auth:
                message += f" (you sent: {request.headers.get('Authorization', '')})"
            payload = behaviour.body or {
                "error": {"message": message, "type": "server_error", "code": None, "param": None}
            }
            return web.json_response(payload, status=behaviour.status, headers=behaviour.headers)
        model = body.get("model", "unknown")
        reply = behaviour.reply or f"{self.name} answers {model}"
        if behaviour.echo and body.get("messages"):
            reply = str(body["messages"][-1].get("content"))
        if request.path.endswith("/embeddings"):
            return web.json_response(
                {
                    "object": "list",
                    "model": model,
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            )
        usage = behaviour.usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                            "logprobs": None,
                        }
                    ],
                    "usage": usage,
                },
                headers=behaviour.headers,
            )
        return await self._stream(request, body, behaviour, reply, usage, entry, epoch)

    def _note_cancel(self, entry: Received, epoch: int) -> None:
        with self._lock:
            entry.cancelled = True
            if epoch == self._epoch:
                self.cancelled += 1

    @staticmethod
    async def _sleep_unless_gone(request: web.Request, seconds: float) -> bool:
        """Sleep; False as soon as the client closes the connection (it gave up on us)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            transport = request.transport
            if transport is None or transport.is_closing():
                return False
            await asyncio.sleep(min(left, 0.01))
        return True

    @staticmethod
    async def _wait_unless_gone(request: web.Request, event: threading.Event) -> bool:
        """Wait for ``event``; False as soon as the client closes the connection."""
        while not event.is_set():
            transport = request.transport
            if transport is None or transport.is_closing():
                return False
            await asyncio.sleep(0.01)
        return True

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        behaviour: Behaviour,
        reply: str,
        usage: dict[str, int],
        entry: Received,
        epoch: int,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "text/event-stream", **behaviour.headers}
        )
        await response.prepare(request)
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
        }
        words = reply.split(" ")
        if behaviour.words is not None:
            words = [f"w{i}" for i in range(behaviour.words)]

        def event(payload: Any) -> bytes:
            return sse_frame(behaviour, ("data", json.dumps(payload)))

        include_usage = (body.get("stream_options") or {}).get("include_usage") is True
        try:
            if behaviour.first_chunk_delay and not await self._sleep_unless_gone(
                request, behaviour.first_chunk_delay
            ):
                raise ConnectionResetError("the client went away before the first chunk")
            await write_sse(
                response,
                behaviour,
                event(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": ""},
                                "finish_reason": None,
                            }
                        ],
                    }
                ),
            )
            with self._lock:
                if epoch == self._epoch:
                    self.first_chunk_at = time.monotonic()
            for index, word in enumerate(words):
                if behaviour.fail_after_chunks is not None and index >= behaviour.fail_after_chunks:
                    # Break the connection mid-stream: no [DONE], no clean end.
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                if behaviour.chunk_delay and not await self._sleep_unless_gone(
                    request, behaviour.chunk_delay
                ):
                    raise ConnectionResetError("the client went away between chunks")
                if (
                    behaviour.hold is not None
                    and index == behaviour.hold_after_chunks
                    and not await self._wait_unless_gone(request, behaviour.hold)
                ):
                    raise ConnectionResetError("the client went away while the stream was held")
                piece = word if index == 0 else " " + word
                await write_sse(
                    response,
                    behaviour,
                    event(
                        {
                            **base,
                            "choices": [
                                {"index": 0, "delta": {"content": piece}, "finish_reason": None}
                            ],
                        }
                    ),
                )
                with self._lock:
                    entry.chunks += 1
                    if epoch == self._epoch:
                        self.chunks_sent += 1
                        self.last_chunk_at = time.monotonic()
            await write_sse(
                response,
                behaviour,
                event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            )
            if include_usage:
                await write_sse(response, behaviour, event({**base, "choices": [], "usage": usage}))
            await write_sse(response, behaviour, sse_frame(behaviour, ("data", "[DONE]")))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self._note_cancel(entry, epoch)
            raise
        return response


class Gateway:
    """``stockyard serve`` in a subprocess on a free port, with its own pipelines and DB."""

    def __init__(
        self, directory: Path, env: dict[str, str] | None = None, admin_key: str | None = None
    ) -> None:
        self.directory = directory
        self.pipelines = directory / "pipelines"
        self.pipelines.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "gateway.log"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.pop("STOCKYARD_ADMIN_KEY", None)
        if admin_key:
            self.env["STOCKYARD_ADMIN_KEY"] = admin_key
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, name: str, text: str) -> Path:
        """Write a pipeline file atomically (temp file + rename), as editors do."""
        target = self.pipelines / name
        temp = self.pipelines / f".{name}.tmp"
        temp.write_text(text)
        os.replace(temp, target)
        return target

    def start(self, *extra: str, timeout: float = 40) -> Gateway:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stockyard",
                "serve",
                "--port",
                str(self.port),
                "--pipelines",
                str(self.pipelines),
                "--db",
                str(self.directory / "stockyard.db"),
                *extra,
            ],
            cwd=self.directory,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop(signal.SIGKILL)  # never leave a half-started gateway behind
        raise RuntimeError(f"gateway did not become healthy:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Call the gateway (admin API, /health, /v1) with httpx."""
        kwargs.setdefault("timeout", 10)
        return httpx.request(method, f"{self.url}{path}", **kwargs)

    def client(self, api_key: str = "sk-test-caller-key-000", **kwargs: Any) -> openai.OpenAI:
        """The official sync SDK pointed at this gateway (no SDK retries: we test ours)."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 20)
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)

    def async_client(
        self, api_key: str = "sk-test-caller-key-000", **kwargs: Any
    ) -> openai.AsyncOpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 20)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, **kwargs)

    def check(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``stockyard check --strict --no-env`` on this gateway's pipelines (or ``args``)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "stockyard",
                "check",
                *(args or ("--strict", "--no-env")),
                str(self.pipelines),
            ],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    def create_key(self, project: str, **fields: Any) -> dict[str, Any]:
        """A new gateway key through ``POST /api/keys`` (loopback needs no admin key): the
        JSON answer, whose ``key`` is the ``sk-sy-…`` secret and ``id`` its id."""
        response = self.api("POST", "/api/keys", json={"project": project, **fields})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def spend_total(self, **params: Any) -> str:
        """``total_cost`` of ``GET /api/lookout/spend`` (dollars, a decimal string)."""
        response = self.api("GET", "/api/lookout/spend", params=params)
        assert response.status_code == 200, response.text
        return response.json()["total_cost"]  # type: ignore[no-any-return]

    def trace(self, trace_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The recorded trace of one request (routes need the `trace` module); waits for the
        store's batched writer."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.api("GET", f"/api/lookout/traces/{trace_id}")
            if response.status_code == 200:
                return response.json()
            if time.monotonic() > deadline:
                raise AssertionError(f"no trace {trace_id}: {response.status_code} {response.text}")
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        assert self.process is not None and self.process.poll() is None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def provider(
    name: str, url: str, *, api_key: str = "passthrough", kind: str = "openai", extra: str = ""
) -> str:
    """A ``provider`` block for a pipeline file."""
    return f'provider {name} {{\n  kind {kind}\n  base_url "{url}"\n  api_key {api_key}\n  {extra}\n}}\n'


@contextlib.contextmanager
def running_gateway(
    directory: Path,
    files: dict[str, str],
    *extra: str,
    env: dict[str, str] | None = None,
    start_timeout: float = 15,
) -> Iterator[Gateway]:
    """A started gateway serving ``files`` (name -> pipeline text); stopped on exit."""
    gateway = Gateway(directory, env=env)
    for name, text in files.items():
        gateway.write(name, text)
    try:
        yield gateway.start(*extra, timeout=start_timeout)
    finally:
        gateway.stop()


@contextlib.contextmanager
def upstreams(*names: str) -> Iterator[list[Upstream]]:
    servers = [Upstream(n) for n in names]
    try:
        yield servers
    finally:
        for server in servers:
            server.close()
