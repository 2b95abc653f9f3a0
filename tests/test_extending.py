"""grammar/README.md's "Extending Stockyard" works as written.

A copy of the package gets the manual's module file, its registry line and its preset line —
taken from the manual's code blocks, not restated here — and then the manual's pipeline checks
clean and serves a request through the new module and the new provider kind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Gateway, Upstream

ROOT = Path(__file__).resolve().parents[1]
SECTION = (ROOT / "grammar" / "README.md").read_text().split("## 14. Extending Stockyard", 1)[1]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
BLOCKS = [(info, body) for info, body in FENCE.findall(SECTION)]


def python_blocks() -> tuple[str, str, str]:
    """The module file, the registry line, the preset line: in the order the manual shows them."""
    module, registry, preset = [body for info, body in BLOCKS if info == "python"]
    return module, registry, preset


def pipeline() -> str:
    (body,) = [body for info, body in BLOCKS if info == "pipe-extension"]
    return body


def insert_after(text: str, anchor: str, line: str) -> str:
    """Add ``line`` to a literal tuple, right after the entry ``anchor`` starts."""
    at = text.index(anchor)
    end = text.index("\n", at) + 1
    return text[:end] + line + text[end:]


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package extended as the manual says; returns the directory to import from."""
    root = tmp_path_factory.mktemp("extended")
    package = root / "stockyard"
    shutil.copytree(ROOT / "stockyard", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "grammar" / "pipe.lark", package / "dsl" / "pipe.lark")
    module, registry, preset = python_blocks()
    first, _, code = module.partition("\n")
    assert first == "# file: stockyard/modules/stamp_user.py"
    (package / "modules" / "stamp_user.py").write_text(code)
    modules_init = package / "modules" / "__init__.py"
    modules_init.write_text(insert_after(modules_init.read_text(), '    "audit",', registry))
    presets = package / "providers" / "presets.py"
    presets.write_text(insert_after(presets.read_text(), '    ("vllm",', preset))
    return root


def stockyard(pythonpath: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-m", "stockyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_manual_pipeline_needs_the_extension(tmp_path: Path) -> None:
    """Without the two files the manual's pipeline is wrong: the test below proves something."""
    (tmp_path / "p.pipe").write_text(pipeline())
    result = stockyard(ROOT, "check", "--strict", "--no-env", "p.pipe", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown module `stamp_user`" in result.stdout
    assert "acme" in result.stdout


def test_the_extended_package_checks_the_manual_pipeline(extended: Path, tmp_path: Path) -> None:
    (tmp_path / "p.pipe").write_text(pipeline())
    result = stockyard(extended, "check", "--strict", "--no-env", "p.pipe", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    misspelt = pipeline().replace("stamp_user(prefix:", "stamp_user(prefx:")
    (tmp_path / "p.pipe").write_text(misspelt)
    result = stockyard(extended, "check", "--no-env", "p.pipe", cwd=tmp_path)
    assert result.returncode == 1
    assert "did you mean `prefix`" in result.stdout


@pytest.fixture
def acme_gateway(extended: Path, tmp_path: Path) -> Iterator[tuple[Gateway, Upstream]]:
    upstream = Upstream("acme")
    # The preset's base URL is the vendor's; here the pipeline points it at a loopback upstream.
    text = pipeline().replace("  kind    acme\n", f'  kind    acme\n  base_url "{upstream.url}"\n')
    gateway = Gateway(
        tmp_path,
        env={"PYTHONPATH": str(extended), "ACME_API_KEY": "sk-acme-test-key-0001"},
    )
    gateway.write("p.pipe", text)
    try:
        yield gateway.start(), upstream
    finally:
        gateway.stop()
        upstream.close()


def test_a_request_goes_through_the_new_module_and_provider(
    acme_gateway: tuple[Gateway, Upstream],
) -> None:
    gateway, upstream = acme_gateway
    client = gateway.client(default_headers={"x-stockyard-project": "team-a"})
    answer = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert answer.choices[0].message.content
    seen = upstream.received[-1]
    assert seen.body["user"] == "acme:team-a"  # stamped by the new module
    assert seen.headers["Authorization"] == "Bearer sk-acme-test-key-0001"  # the preset's key
    # A user the caller set is kept (replace: false by default).
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], user="alice"
    )
    assert upstream.received[-1].body["user"] == "alice"
    # The module is a module like any other: listed, and toggled off at run time.
    listed = gateway.api("GET", "/api/proxy/modules").json()["modules"]
    assert "stamp_user" in [m["name"] for m in listed]
    assert gateway.api("PUT", "/api/proxy/modules/stamp_user", json={"enabled": False}).is_success
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert "user" not in upstream.received[-1].body
