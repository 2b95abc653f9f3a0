"""The README's first lines work: the demo command serves, and its curl commands get answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .harness import REPO, free_port

README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S)
    assert first_block is not None
    lines = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert lines[0].startswith("pip install . && stockyard --demo")
    assert lines[1].startswith("pip install '.[test]' && pytest")
    assert README.index("```sh") < 40  # right at the top


def test_demo_serves_and_the_readme_curls_answer(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stockyard",
            "--demo",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "d.db"),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.1)
        block = re.search(r"Then, in another terminal.*?```sh\n(.*?)```", README, re.S)
        assert block is not None
        commands = re.sub(r"\\\n\s*", " ", block.group(1)).splitlines()
        outputs = []
        for command in commands:
            command = command.split("  #")[0].strip().replace("localhost:4200", f"localhost:{port}")
            if not command:
                continue
            done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=30)
            assert done.returncode == 0, (command, done.stderr)
            outputs.append(json.loads(done.stdout))
            time.sleep(0.3)  # let the writer flush the trace before the next read
        answer, traces, ledger, verify = outputs
        assert answer["choices"][0]["message"]["content"] == "Mock reply to: hello"
        assert traces["traces"][0]["model"] == "mock-mini"
        assert ledger["events"]
        assert verify["valid"] is True
    finally:
        process.terminate()
        process.wait(20)
