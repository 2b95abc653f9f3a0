"""A minimal, fast mock of the OpenAI chat completions endpoint for benchmarks.

Raw asyncio protocol (uvloop when installed), HTTP/1.1 keep-alive, one canned
``chat.completion`` body for every POST, and a canned SSE stream when the request body says
``"stream": true``. It does no JSON parsing and no routing: it exists to be much faster than
the gateway it is compared with, so that "direct" numbers show the ceiling of the setup.

    python bench/upstream.py --port 9100 [--sse-events 8] [--sse-gap-ms 1]

Prints ``ready PORT`` on stdout once it listens. Not a general HTTP server: it ignores the
path and most headers and understands Content-Length bodies only (no chunked uploads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys

_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)

MODEL = "gpt-4o-mini-2024-07-18"
CREATED = 1700000000
USAGE = {
    "prompt_tokens": 13,
    "completion_tokens": 7,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0},
}


def completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion",
            "created": CREATED,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hello! How can I help you today?",
                        "refusal": None,
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
            "system_fingerprint": "fp_bench",
        },
        separators=(",", ":"),
    ).encode()


def sse_events(count: int) -> tuple[list[bytes], bytes]:
    """(events, usage event): role chunk, ``count`` content chunks, finish chunk; then usage."""

    def chunk(
        delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True
    ) -> bytes:
        payload = {
            "id": "chatcmpl-bench0000000000000000000000",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if choices
            else [],
        }
        if usage is not None:
            payload["usage"] = usage
        return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"

    words = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": words[i % len(words)]}) for i in range(count)]
    events.append(chunk({}, finish="stop"))
    return events, chunk({}, usage=USAGE, choices=False)


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Upstream(asyncio.Protocol):
    body = completion_body()
    plain = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"openai-processing-ms: 1\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
    )
    sse_head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    events: list[bytes] = []
    usage_event = b""
    gap = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""
        self.streaming = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.streaming:
            self._process()

    def _process(self) -> None:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[: end + 2]
            match = _LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            close = _CLOSE.search(head) is not None
            if _STREAM.search(body):
                self._stream(_USAGE.search(body) is not None, close)
                return  # the rest of the buffer waits until the stream is done
            self.transport.write(self.plain)
            if close:
                self.transport.close()
                return

    def _stream(self, usage: bool, close: bool) -> None:
        events = list(self.events)
        if usage:
            events.append(self.usage_event)
        events.append(b"data: [DONE]\n\n")
        frames = [_frame(e) for e in events]
        frames[-1] += b"0\r\n\r\n"
        if self.gap <= 0:
            self.transport.write(self.sse_head + b"".join(frames))
            self._done(close)
            return
        self.streaming = True
        self.transport.write(self.sse_head + frames[0])
        loop = asyncio.get_running_loop()

        def step(i: int) -> None:
            if self.transport.is_closing():
                return
            self.transport.write(frames[i])
            if i + 1 < len(frames):
                loop.call_later(self.gap, step, i + 1)
            else:
                self.streaming = False
                self._done(close)

        loop.call_later(self.gap, step, 1)

    def _done(self, close: bool) -> None:
        if close:
            self.transport.close()
        elif self.buffer:
            self._process()


async def main(args: argparse.Namespace) -> None:
    Upstream.events, Upstream.usage_event = sse_events(args.sse_events)
    Upstream.gap = args.sse_gap_ms / 1000
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        Upstream, args.host, args.port, backlog=1024, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument("--sse-events", type=int, default=8, help="content chunks per stream")
    parser.add_argument(
        "--sse-gap-ms",
        type=float,
        default=1.0,
        help="pause between SSE events after the first (0: send the stream at once)",
    )
    parser.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    args = parser.parse_args(argv)
    if not args.no_uvloop:
        try:
            import uvloop

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        except ImportError:
            pass
    asyncio.run(main(args))


if __name__ == "__main__":
    sys.exit(cli())
