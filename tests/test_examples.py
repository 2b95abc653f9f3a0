"""The shipped pipelines, the examples and the language manual must all check clean.

Runs the real command line (``python -m stockyard``) the way CI and users do:

- ``pipelines/`` and every directory under ``examples/`` that holds ``.pipe`` files (found, not
  listed: a new example is covered automatically) pass ``stockyard check --strict --no-env``;
- ``stockyard routes`` on each prints every route the files declare;
- every ```` ```pipe ```` block of ``grammar/README.md`` checks clean, and every
  ```` ```pipe-error ```` block fails with exactly the output the manual shows after it.

Manual conventions: a line ``# file: NAME.pipe`` inside a block starts a new file of a
multi-file example (the default file name is ``example.pipe``); ```` ```pipe-fragment ````
blocks (partial syntax, not whole programs) are not checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from stockyard.dsl.grammar import terminal_regexp

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = ROOT / "pipelines"
EXAMPLES = ROOT / "examples"
MANUAL = ROOT / "grammar" / "README.md"

ROUTE_DECLARATION = re.compile(rf"^[ \t]*route[ \t]+({terminal_regexp('NAME')})[ \t]*\{{", re.M)
FILE_MARKER = re.compile(r"^# file: (\S+\.pipe)[ \t]*$")
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)


def stockyard(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "stockyard", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def pipeline_dirs() -> list[Path]:
    """``pipelines/`` and each example directory (``examples/NAME``) with ``.pipe`` files."""
    found = [PIPELINES]
    found += sorted(d for d in EXAMPLES.iterdir() if d.is_dir() and any(d.rglob("*.pipe")))
    return found


def declared_routes(directory: Path) -> list[str]:
    names = []
    for file in sorted(directory.rglob("*.pipe")):
        names += ROUTE_DECLARATION.findall(file.read_text(encoding="utf-8"))
    return names


def test_examples_are_present() -> None:
    names = {d.name for d in pipeline_dirs()}
    assert {"pipelines", "offline", "failover", "caps-and-cache", "multi-file"} <= names
    for directory in pipeline_dirs()[1:]:
        assert (directory / "README.md").is_file(), f"{directory} has no README.md"


@pytest.mark.parametrize("directory", pipeline_dirs(), ids=lambda d: d.name)
def test_checks_clean(directory: Path) -> None:
    result = stockyard("check", "--strict", "--no-env", str(directory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout, result.stdout
    assert "warning" not in result.stdout and "error" not in result.stdout


@pytest.mark.parametrize("directory", pipeline_dirs(), ids=lambda d: d.name)
def test_routes_lists_every_declared_route(directory: Path) -> None:
    declared = declared_routes(directory)
    assert declared, f"no routes declared in {directory}"

    text = stockyard("routes", str(directory))
    assert text.returncode == 0, text.stdout + text.stderr
    header, *rest = text.stdout.splitlines()
    assert header.split()[:2] == ["#", "ROUTE"], text.stdout
    table = rest[: rest.index("")] if "" in rest else rest
    printed = [line.split()[1] for line in table]
    assert sorted(printed) == sorted(declared)
    assert f"{len(declared)} route(s)" in text.stdout

    as_json = stockyard("routes", "--format", "json", str(directory))
    assert as_json.returncode == 0, as_json.stderr
    assert sorted(r["name"] for r in json.loads(as_json.stdout)) == sorted(declared)


def test_offline_example_needs_no_network_or_keys() -> None:
    """Only the mock provider, and no environment variables at all."""
    offline = EXAMPLES / "offline"
    text = "\n".join(f.read_text(encoding="utf-8") for f in offline.rglob("*.pipe"))
    kinds = set(re.findall(r"^\s*kind\s+(\S+)", text, re.M))
    assert kinds == {"mock"}
    result = stockyard("check", "--strict", str(offline), cwd=offline)  # env checks on
    assert result.returncode == 0, result.stdout


# --- the manual --------------------------------------------------------------------------------


def manual_blocks() -> list[tuple[str, str, int]]:
    """(info string, body, line number) of every fenced block of the manual."""
    text = MANUAL.read_text(encoding="utf-8")
    return [
        (m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1)
        for m in FENCE.finditer(text)
    ]


def split_files(body: str) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    current = "example.pipe"
    for line in body.splitlines():
        marker = FILE_MARKER.match(line)
        if marker:
            current = marker.group(1)
        files.setdefault(current, []).append(line)
    return {name: "\n".join(lines).strip("\n") + "\n" for name, lines in files.items()}


def write_pipelines(tmp_path: Path, body: str) -> Path:
    directory = tmp_path / "pipelines"
    for name, text in split_files(body).items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return directory


def _blocks(kind: str) -> list[tuple[str, int]]:
    return [(body, line) for info, body, line in manual_blocks() if info == kind]


def test_manual_has_whole_examples() -> None:
    kinds = [info for info, _, _ in manual_blocks()]
    whole, fragments = kinds.count("pipe"), kinds.count("pipe-fragment")
    assert whole >= 10 and whole > fragments


@pytest.mark.parametrize(
    "body", [b for b, _ in _blocks("pipe")], ids=[f"line-{n}" for _, n in _blocks("pipe")]
)
def test_manual_example_checks_clean(body: str, tmp_path: Path) -> None:
    write_pipelines(tmp_path, body)
    result = stockyard("check", "--strict", "--no-env", "pipelines", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no problems" in result.stdout


def error_examples() -> list[tuple[str, str | None, str | None, int]]:
    """Each ```pipe-error block with the ```text and ```json blocks that follow it, if any."""
    blocks = manual_blocks()
    found = []
    for index, (info, body, line) in enumerate(blocks):
        if info != "pipe-error":
            continue
        following = {i: b for i, b, _ in blocks[index + 1 : index + 3]}
        found.append((body, following.get("text"), following.get("json"), line))
    return found


@pytest.mark.parametrize(
    "body,text,as_json",
    [(b, t, j) for b, t, j, _ in error_examples()],
    ids=[f"line-{n}" for *_, n in error_examples()],
)
def test_manual_error_example_output(
    body: str, text: str | None, as_json: str | None, tmp_path: Path
) -> None:
    write_pipelines(tmp_path, body)
    result = stockyard("check", "--no-env", "pipelines", cwd=tmp_path)
    assert result.returncode == 1, result.stdout
    if text is not None:
        assert result.stdout.strip() == text.strip()
    if as_json is not None:
        result = stockyard("check", "--no-env", "--format", "json", "pipelines", cwd=tmp_path)
        assert json.loads(result.stdout) == json.loads(as_json)


def test_manual_covers_every_module_kind_and_code() -> None:
    from stockyard.modules import REGISTRY
    from stockyard.providers import KINDS

    text = MANUAL.read_text(encoding="utf-8")
    for module, spec in REGISTRY.items():
        assert f"#### `{module}`" in text, f"module {module} is not documented"
        for param in spec.params:
            example = re.compile(rf"`{module}\([^`]*\b{param}:")
            assert example.search(text), f"{module}({param}: …) has no example"
    for kind in KINDS:
        assert f"| `{kind}` |" in text, f"provider kind {kind} is not documented"
    codes = set()
    for path in (ROOT / "stockyard").rglob("*.py"):
        codes |= set(re.findall(r'"(SY\d{3})"', path.read_text(encoding="utf-8")))
    for code in sorted(codes):
        assert f"| `{code}` |" in text, f"diagnostic code {code} is not documented"
