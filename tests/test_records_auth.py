"""The admin API's protection, and secrets kept out of every record.

* With an admin key configured, every ``/api`` route (enumerated from the application's URL
  map, so a new route is covered the day it is added) answers 401 without a key and 403 with a
  wrong one, and accepts ``Authorization: Bearer`` and ``X-Admin-Key``; ``/health`` needs none.
* Without a key, loopback callers are served and anyone else is refused; starting on a
  non-loopback address without a key fails with a clear message.
* No provider key (from the environment) and no caller key appears in any trace, ledger
  event, log line, admin API response or /v1 error, even when upstreams echo them back.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from stockyard.app import create_app
from stockyard.settings import Settings

from .harness import REPO, Behaviour, Gateway, Upstream, free_port, provider
from .records_support import ledger_events, traces, wait_for

ADMIN_KEY = "adm-Zk3Pq9Rt5Vw1Xy7"
PROVIDER_KEY = "provtok-Lx8Nm2Bv6Cq4Df0"  # not sk-shaped: only an exact match can catch it
PROVIDER_SK_KEY = "sk-provider-Hh7Jj6Kk5Ll4Mm3Nn2"
CALLER_KEY = "callertok-Ty5Ui4Op3As2Gh9"
SECRETS = (PROVIDER_KEY, PROVIDER_SK_KEY, CALLER_KEY, ADMIN_KEY)
# distinctive fragments: a secret cut or partly escaped still shows
FRAGMENTS = ("Lx8Nm2Bv6Cq4", "Hh7Jj6Kk5Ll4", "Ty5Ui4Op3As2", "Zk3Pq9Rt5Vw1")
METHODS_SKIPPED = {"HEAD", "OPTIONS"}


def api_rules() -> list[tuple[str, str]]:
    """(method, path) of every admin route the application declares, placeholders filled."""
    app = create_app(Settings(db=Path("/nonexistent/never-opened.db")))
    found = []
    for rule in app.api.url_map.iter_rules():
        if not rule.rule.startswith("/api"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"placeholder-\1", rule.rule)
        for method in sorted(set(rule.methods or ()) - METHODS_SKIPPED):
            found.append((method, path))
    return found


RULES = api_rules()


def test_the_enumeration_covers_the_documented_routes() -> None:
    paths = {path for _method, path in RULES}
    for documented in (
        "/api/lookout/traces", "/api/lookout/traces/placeholder-trace_id", "/api/lookout/spend",
        "/api/brand/ledger", "/api/trust/ledger/verify", "/api/brand/ledger/verify",
        "/api/proxy/reload", "/api/proxy/routes", "/api/proxy/providers",
    ):  # fmt: skip
        assert documented in paths
    assert ("POST", "/api/proxy/reload") in RULES


@pytest.fixture(scope="module")
def ups() -> Iterator[dict[str, Upstream]]:
    servers = {"keyed": Upstream("keyed"), "keyed_sk": Upstream("keyedsk"),
               "passed": Upstream("passed")}  # fmt: skip
    yield servers
    for server in servers.values():
        server.close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, ups: dict[str, Upstream]) -> Iterator[Gateway]:
    pipe = (
        provider("keyed", ups["keyed"].url, api_key='env("UPSTREAM_TOKEN")')
        + provider("keyedsk", ups["keyed_sk"].url, api_key='env("UPSTREAM_SK")')
        + provider("passed", ups["passed"].url)
        + """
route keyed {
  path    /v1/chat/completions
  models  "k-*"
  chain   keyed -> keyedsk
  modules [trace(bodies: true), audit]
}

route passed {
  path    /v1/chat/completions, /v1/embeddings
  chain   passed
  modules [trace(bodies: true), audit]
}
"""
    )
    env = {"UPSTREAM_TOKEN": PROVIDER_KEY, "UPSTREAM_SK": PROVIDER_SK_KEY}
    gateway = Gateway(tmp_path_factory.mktemp("auth"), env=env, admin_key=ADMIN_KEY)
    gateway.write("main.pipe", pipe)
    try:
        yield gateway.start("--no-watch", timeout=60)
    finally:
        gateway.stop()


@pytest.fixture(autouse=True)
def _fresh(ups: dict[str, Upstream]) -> None:
    for server in ups.values():
        server.reset()


# --- admin key ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), RULES, ids=[f"{m} {p}" for m, p in RULES])
def test_every_api_route_needs_the_admin_key(gw: Gateway, method: str, path: str) -> None:
    missing = gw.api(method, path)
    assert missing.status_code == 401, missing.text
    assert missing.json()["error"]["type"] == "authentication_error"
    for headers in (
        {"authorization": "Bearer wrong-key"},
        {"x-admin-key": "wrong-key"},
        {"authorization": f"Bearer {ADMIN_KEY}x"},
        {"x-admin-key": ADMIN_KEY[:-1]},
    ):
        wrong = gw.api(method, path, headers=headers)
        assert wrong.status_code == 403, (headers, wrong.text)
    assert gw.api(method, path, headers={"authorization": "Basic abc"}).status_code == 401
    for headers in ({"authorization": f"Bearer {ADMIN_KEY}"}, {"x-admin-key": ADMIN_KEY}):
        ok = gw.api(method, path, headers=headers, json={} if method in ("POST", "PUT") else None)
        assert ok.status_code not in (401, 403), (headers, ok.status_code, ok.text)


def test_health_and_metrics(gw: Gateway) -> None:
    health = gw.api("GET", "/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert not any(s in health.text for s in SECRETS)
    assert gw.api("GET", "/metrics").status_code == 401
    metrics = gw.api("GET", "/metrics", headers={"x-admin-key": ADMIN_KEY})
    assert metrics.status_code == 200 and "stockyard_store_queue_depth" in metrics.text


def _guarded_app_call(client_ip: str, method: str, path: str) -> int:
    app = create_app(Settings(db=Path("/nonexistent/never-opened.db")))

    async def call() -> int:
        client = app.api.test_client()
        response = await client.open(
            path, method=method, json={} if method in ("POST", "PUT") else None,
            scope_base={"client": (client_ip, 40000)},
        )  # fmt: skip
        return response.status_code

    return asyncio.run(call())


@pytest.mark.parametrize(("method", "path"), RULES, ids=[f"{m} {p}" for m, p in RULES])
def test_without_a_key_only_loopback_is_served(method: str, path: str) -> None:
    for outsider in ("203.0.113.7", "10.1.2.3", "2001:db8::5"):
        assert _guarded_app_call(outsider, method, path) == 403
    if (method, path) in (("GET", "/api/proxy/routes"), ("GET", "/api/proxy/reload")):
        for local in ("127.0.0.1", "::1"):  # routes that work without an open database
            assert _guarded_app_call(local, method, path) == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_refuses_a_public_address_without_an_admin_key(tmp_path: Path, host: str) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "main.pipe").write_text(
        provider("x", "http://127.0.0.1:9/v1")
        + "route r {\n  path /v1/chat/completions\n  chain x\n}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "STOCKYARD_ADMIN_KEY"}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run(
        [sys.executable, "-m", "stockyard", "serve", "--host", host, "--port", str(free_port()),
         "--pipelines", str(tmp_path / "p"), "--db", str(tmp_path / "s.db")],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode != 0
    assert "refusing to listen" in run.stderr and "STOCKYARD_ADMIN_KEY" in run.stderr
    assert not (tmp_path / "s.db").exists()  # refused before touching anything


# --- secrets stay out of every record --------------------------------------------------------


def _client(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=CALLER_KEY, max_retries=0, timeout=20)


def test_no_key_in_any_record_log_or_response(gw: Gateway, ups: dict[str, Upstream]) -> None:
    client = _client(gw)
    v1_texts: list[str] = []

    def attempt(**kwargs: Any) -> None:
        try:  # a 200 is the upstream's own answer, passed through as it is
            client.chat.completions.create(**kwargs)
        except openai.APIStatusError as error:  # an error is the gateway's text
            v1_texts.append(error.response.text)

    echo = Behaviour(status=400, echo_auth=True)
    fail = Behaviour(status=500, echo_auth=True)
    leaky = f"keys: {PROVIDER_KEY} {PROVIDER_SK_KEY} {CALLER_KEY}"
    ups["keyed"].script = [Behaviour(), echo, fail, Behaviour(reply=leaky), fail]
    ups["keyed_sk"].script = [Behaviour(reply=leaky), fail]
    ups["passed"].script = [Behaviour(), echo, fail, Behaviour(reply=leaky)]
    messages = [{"role": "user", "content": f"hi, my key is {CALLER_KEY}"}]
    for _ in range(5):  # keyed: ok, 400 echo, 500 echo -> keyedsk leaky, leaky, 500 -> 500
        attempt(model="k-model", messages=messages)
    for _ in range(4):  # passthrough: ok, 400 echo, 500 echo, leaky reply
        attempt(model="gpt-4o-mini", messages=messages)
    attempt(model="gpt-4o-mini", messages="not a list")  # rejected by validation
    # a stream cut by the upstream after two chunks (the gateway logs it)
    ups["passed"].script = [Behaviour(words=10, fail_after_chunks=2)]
    with httpx.stream(
        "POST", f"{gw.url}/v1/chat/completions", timeout=10,
        headers={"authorization": f"Bearer {CALLER_KEY}"},
        json={"model": "gpt-4o-mini", "messages": messages, "stream": True},
    ) as response:  # fmt: skip
        v1_texts.append(response.read().decode())
    assert ups["keyed"].count == 5 and ups["passed"].count == 5
    # the keys really were sent upstream and echoed: the scrubbing below is not vacuous
    sent = {r.headers.get("Authorization") for u in ups.values() for r in u.received}
    assert {f"Bearer {PROVIDER_KEY}", f"Bearer {PROVIDER_SK_KEY}", f"Bearer {CALLER_KEY}"} <= sent

    admin = {"x-admin-key": ADMIN_KEY}
    rows = wait_for(lambda: (found := traces(gw, headers=admin)) and len(found) >= 11 and found)
    texts = list(v1_texts)
    for row in rows:
        texts.append(gw.api("GET", f"/api/lookout/traces/{row['id']}", headers=admin).text)
    assert any("[redacted]" in t for t in texts)  # the bodies were kept, with keys removed
    assert len(ledger_events(gw, headers=admin)) >= 11
    for method, path in RULES:
        if method == "GET" and "placeholder" not in path:
            texts.append(gw.api("GET", path, headers=admin).text)
    for params in ({"limit": 500}, {"group_by": "project,key_id,route,model,provider"}):
        texts.append(gw.api("GET", "/api/lookout/traces", params=params, headers=admin).text)
        texts.append(gw.api("GET", "/api/lookout/spend", params=params, headers=admin).text)
    texts.append(gw.api("GET", "/api/brand/ledger", params={"limit": 500}, headers=admin).text)
    texts += [gw.api("GET", p, headers=admin).text for p in ("/metrics", "/health", "/")]
    for text in texts:
        for secret in SECRETS[:3] + FRAGMENTS[:3]:
            assert secret not in text, (secret, text[:2000])
        assert ADMIN_KEY not in text

    assert gw.stop() == 0  # a graceful stop: every record is on disk
    files = [p for p in gw.directory.iterdir() if p.name.startswith("stockyard.db")]
    assert files
    blobs = {p.name: p.read_bytes() for p in files}
    blobs["gateway.log"] = gw.log_path.read_bytes()
    assert b"stream" in blobs["gateway.log"]  # the log did say things
    for name, blob in blobs.items():
        for secret in SECRETS + FRAGMENTS:
            assert secret.encode() not in blob, (secret, name)
