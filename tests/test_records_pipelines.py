"""The shipped default pipeline and the offline example record what they serve: a request
through each shows up in the traces, in the spend and in the audit ledger."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from stockyard.catalog import check_paths
from stockyard.dsl import CheckOptions

from .harness import REPO, Gateway, Upstream
from .records_support import PRICES, expected_cost, get, ledger_events, wait_traces

DEFAULT_PIPE = REPO / "pipelines" / "default.pipe"
OFFLINE = REPO / "examples" / "offline"


def modules_of(path: Path) -> dict[str, list[str]]:
    """route -> the modules it runs, as compiled."""
    result = check_paths([str(path)], CheckOptions(check_env=False))
    assert result.generation is not None, result.diagnostics
    return {r.name: [m.name for m in r.modules] for r in result.generation.routes}


def test_shipped_pipelines_record_every_route() -> None:
    for path in (DEFAULT_PIPE, OFFLINE):
        for route, modules in modules_of(path).items():
            assert "trace" in modules and "audit" in modules, (path, route, modules)


def default_pipe_for(upstream: Upstream) -> str:
    """The shipped default.pipe, its openai provider pointed at a loopback upstream."""
    text = DEFAULT_PIPE.read_text()
    provider = re.search(r"provider openai \{.*?\n\}", text, re.S)
    assert provider is not None and "base_url" not in provider.group(0).split("#")[0]
    block = provider.group(0)
    pointed = re.sub(
        r"(\n\s*kind\s+openai[^\n]*)", rf'\1\n  base_url "{upstream.url}"', block, count=1
    )
    assert pointed != block
    return text.replace(block, pointed)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream("openai-stand-in")
    yield server
    server.close()


def test_default_pipeline_records_a_request(tmp_path: Path, upstream: Upstream) -> None:
    gw = Gateway(tmp_path)
    gw.write("default.pipe", default_pipe_for(upstream))
    try:
        gw.start("--no-watch", timeout=60)
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="sk-default-pipe-0000000",
                               max_retries=0)  # fmt: skip
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        raw.parse()
        trace_id = raw.headers["x-stockyard-trace-id"]
        assert upstream.received[-1].headers["Authorization"] == "Bearer sk-default-pipe-0000000"
        (row,) = wait_traces(gw, 1)
        assert row["id"] == trace_id and row["route"] == "default" and row["provider"] == "openai"
        cost = expected_cost(PRICES["gpt-4o-mini"], 11, 7)
        assert Decimal(row["cost"]) == cost
        spend = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": "route,model"})
        assert [
            (r["route"], r["model"], r["requests"], Decimal(r["cost"])) for r in spend["rows"]
        ] == [("default", "gpt-4o-mini", 1, cost)]
        events = ledger_events(gw)
        assert [e["detail"]["trace_id"] for e in events if e["type"] == "request"] == [trace_id]
        assert get(gw, "/api/trust/ledger/verify")["valid"] is True
    finally:
        gw.stop()


def run_offline(tmp_path: Path) -> None:
    gw = Gateway(tmp_path)
    shutil.copytree(OFFLINE, gw.pipelines, dirs_exist_ok=True)
    try:
        gw.start("--no-watch", timeout=60)
        client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="anything", max_retries=0)
        ids = []
        for model in ("mock-mini", "mock-large", "gpt-4o-mini"):
            for n in range(4):  # `flaky` fails one request in four: one failover at least
                raw = client.chat.completions.with_raw_response.create(
                    model=model, messages=[{"role": "user", "content": f"hello {n}"}]
                )
                assert raw.parse().choices[0].message.content == f"Mock reply to: hello {n}"
                ids.append(raw.headers["x-stockyard-trace-id"])
        embedded = client.embeddings.with_raw_response.create(model="mock-embed", input="abc")
        embedded.parse()
        ids.append(embedded.headers["x-stockyard-trace-id"])
        rows = wait_traces(gw, len(ids))
        assert {r["id"] for r in rows} == set(ids)
        assert {r["route"] for r in rows} == {"chat", "openai-names", "embeddings"}
        failovers = [r for r in rows if len(r["attempts"]) > 1]
        assert failovers and all(r["attempts"][0]["provider"] == "flaky" for r in failovers)
        assert all(r["priced"] and Decimal(r["cost"]) > 0 for r in rows)  # the price blocks
        total = sum(Decimal(r["cost"]) for r in rows)
        spend = get(gw, "/api/lookout/spend", params={"days": 1, "group_by": ""})
        assert Decimal(spend["total_cost"]) == total and spend["rows"][0]["requests"] == len(ids)
        events = [e for e in ledger_events(gw) if e["type"] == "request"]
        assert sorted(e["detail"]["trace_id"] for e in events) == sorted(ids)
        assert get(gw, "/api/trust/ledger/verify")["valid"] is True
    finally:
        gw.stop()


def test_offline_example_records_requests(tmp_path: Path) -> None:
    run_offline(tmp_path)
