"""The adapter contract: every adapter is a concrete Adapter, adapters report usage rather than
write it, and the OpenAI stream decoder reads usage in any valid framing."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from stockyard.core.usage import Usage
from stockyard.providers import ADAPTERS
from stockyard.providers.base import Adapter
from stockyard.providers.openai import OpenAIEvents
from stockyard.providers.transport import StreamReader

PROVIDERS = Path(__file__).resolve().parents[1] / "stockyard" / "providers"


def test_every_adapter_is_a_concrete_adapter() -> None:
    for protocol, adapter in ADAPTERS.items():
        assert issubclass(adapter, Adapter) and not inspect.isabstract(adapter), protocol
        assert not hasattr(adapter, "aclose"), protocol  # pools live in HttpClients


def test_adapters_never_write_the_request_context_usage() -> None:
    """The dispatcher is the one writer of ctx.usage: adapters return or report usage."""
    for path in PROVIDERS.glob("*.py"):
        assert "ctx.usage" not in path.read_text(), path.name


def _stream(usage_frame: bytes) -> bytes:
    content = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    return b"data: " + json.dumps(content).encode() + b"\n\n" + usage_frame + b"data: [DONE]\n\n"


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@pytest.mark.parametrize(
    "frame",
    [
        b'data: {"choices": [], "usage": ' + json.dumps(USAGE).encode() + b"}\n\n",
        b'data:{"choices": [], "usage": ' + json.dumps(USAGE).encode() + b"}\r\n\r\n",
        b': note\rdata:  {"choices": [], "usage": ' + json.dumps(USAGE).encode() + b"}\r\r",
    ],
)
@pytest.mark.parametrize("keep", [False, True])
def test_openai_usage_is_reported_and_the_usage_chunk_dropped_unless_asked(
    frame: bytes, keep: bool
) -> None:
    reported: list[Usage] = []
    reader = StreamReader(OpenAIEvents(reported.append, keep_usage_chunk=keep))
    body = _stream(frame)
    out: list[bytes] = []
    for index in range(len(body)):  # one byte at a time: the worst a network can do
        events, failure = reader.feed(body[index : index + 1])
        assert failure is None
        out += events
    out += reader.end()
    assert [(u.prompt_tokens, u.completion_tokens) for u in reported] == [(5, 2)]
    assert len(out) == (3 if keep else 2) and out[-1] == b"data: [DONE]\n\n"
