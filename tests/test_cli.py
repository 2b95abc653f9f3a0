"""The real ``stockyard`` command in a subprocess: help, exit codes, output formats, paths."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNSET_VAR = "STOCKYARD_TEST_SURELY_UNSET_VARIABLE"


def _command() -> list[str]:
    """The installed console script next to this Python, else ``python -m stockyard``."""
    script = Path(sys.executable).with_name("stockyard")
    if script.is_file():
        return [str(script)]
    found = shutil.which("stockyard")
    if found:
        return [found]
    return [sys.executable, "-m", "stockyard"]


STOCKYARD = _command()


def run(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", UNSET_VAR)}
    environ.update(env or {})
    return subprocess.run(
        [*STOCKYARD, *map(str, args)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


CLEAN = """\
provider openai {
  kind    openai
  api_key passthrough
}

route chat {
  path    /v1/chat/completions
  chain   openai
  modules [trace, audit]
}
"""

# One warning (an env var that is not set), no errors.
WARNS = f"""\
provider openai {{
  kind    openai
  api_key env("{UNSET_VAR}")
}}

route chat {{
  path  /v1/chat/completions
  chain openai
}}
"""

# Two errors on known lines: an unknown attribute (line 3) and an unknown module (line 9).
ERRORS = """\
provider openai {
  kind    openai
  timeoutt 30s
}

route chat {
  path    /v1/chat/completions
  chain   openai
  modules [trace, audti]
}
"""


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return directory


# --- help -------------------------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: stockyard")
    for command in ("check", "routes"):
        assert command in result.stdout
    assert "--version" in result.stdout


def test_version() -> None:
    from stockyard import __version__

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"stockyard {__version__}"


def test_check_help_mentions_every_option_and_the_exit_codes() -> None:
    result = run("check", "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: stockyard check")
    for option in ("--format", "json", "text", "--strict", "--no-env", "--color", "PATH"):
        assert option in out, option
    assert "pipelines/" in out  # the default path
    assert "0 clean" in out and "1 errors" in out and "2 usage" in out


def test_routes_help() -> None:
    result = run("routes", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: stockyard routes")
    assert "--format" in result.stdout and "PATH" in result.stdout


@pytest.mark.parametrize(
    "args", [("check", "--format", "xml", "x"), ("check", "--bogus"), ("frobnicate",)]
)
def test_bad_usage_exits_2(args: tuple[str, ...], tmp_path: Path) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert result.stdout == ""


# --- exit codes -------------------------------------------------------------------------------


def test_clean_pipeline_exits_0(tmp_path: Path) -> None:
    write(tmp_path / "p", {"main.pipe": CLEAN})
    result = run("check", tmp_path / "p")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok: 1 file checked, no problems"
    assert result.stderr == ""


def test_errors_exit_1_and_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, {"bad.pipe": ERRORS}) / "bad.pipe"
    result = run("check", "--no-env", path)
    assert result.returncode == 1
    out = result.stdout
    assert "error[SY103]: unknown attribute `timeoutt`" in out
    assert f"--> {path}:3:3" in out
    assert "error[SY202]: unknown module `audti`" in out
    assert f"--> {path}:9:19" in out
    assert "help: did you mean `audit`?" in out
    assert out.rstrip().endswith("2 errors in 1 file")


def test_missing_path_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run("check", missing)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip() == f"stockyard: {missing}: no such file or directory"


def test_missing_path_among_good_ones_still_exits_2(tmp_path: Path) -> None:
    write(tmp_path, {"ok.pipe": CLEAN})
    result = run("check", tmp_path / "ok.pipe", tmp_path / "missing.pipe")
    assert result.returncode == 2
    assert "missing.pipe: no such file or directory" in result.stderr


def test_directory_without_pipe_files_exits_2(tmp_path: Path) -> None:
    write(tmp_path / "empty", {"notes.txt": "no pipelines here", "sub/x.yaml": "a: 1"})
    result = run("check", tmp_path / "empty")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no .pipe files" in result.stderr and str(tmp_path / "empty") in result.stderr


def test_routes_exit_codes(tmp_path: Path) -> None:
    write(tmp_path / "bad", {"bad.pipe": ERRORS})
    bad = run("routes", tmp_path / "bad")
    assert bad.returncode == 1
    assert "error[SY103]" in bad.stderr and "nothing compiled" in bad.stderr
    assert run("routes", tmp_path / "missing").returncode == 2


def test_directories_are_searched_recursively(tmp_path: Path) -> None:
    write(
        tmp_path / "p",
        {
            "a/providers.pipe": CLEAN.split("route")[0],
            "b/c/routes.pipe": "route" + CLEAN.split("route")[1],
        },
    )
    result = run("check", tmp_path / "p")
    assert result.returncode == 0, result.stdout
    assert "2 files checked" in result.stdout


def test_invalid_utf8_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "bin.pipe").write_bytes(b"provider x {\n  kind \xff\xfe\n}\n")
    result = run("check", tmp_path / "bin.pipe")
    assert result.returncode == 1
    assert "error[SY005]" in result.stdout
    assert f"{tmp_path / 'bin.pipe'}:2:8" in result.stdout
    assert "Traceback" not in result.stderr


# --- --strict and --no-env --------------------------------------------------------------------


def test_warnings_alone_exit_0(tmp_path: Path) -> None:
    write(tmp_path, {"w.pipe": WARNS})
    result = run("check", tmp_path)
    assert result.returncode == 0, result.stdout
    assert f"warning[SY304]: environment variable `{UNSET_VAR}` is not set" in result.stdout
    assert result.stdout.rstrip().endswith("1 warning in 1 file")


def test_strict_turns_warnings_into_exit_1(tmp_path: Path) -> None:
    write(tmp_path, {"w.pipe": WARNS})
    result = run("check", "--strict", tmp_path)
    assert result.returncode == 1
    assert "warning[SY304]" in result.stdout


def test_strict_on_a_clean_pipeline_exits_0(tmp_path: Path) -> None:
    write(tmp_path, {"c.pipe": CLEAN})
    assert run("check", "--strict", tmp_path).returncode == 0


def test_no_env_suppresses_the_env_warning(tmp_path: Path) -> None:
    write(tmp_path, {"w.pipe": WARNS})
    result = run("check", "--no-env", "--strict", tmp_path)
    assert result.returncode == 0, result.stdout
    assert "SY304" not in result.stdout
    assert "no problems" in result.stdout


def test_a_set_variable_is_not_reported(tmp_path: Path) -> None:
    write(tmp_path, {"w.pipe": WARNS})
    result = run("check", "--strict", tmp_path, env={UNSET_VAR: "sk-test"})
    assert result.returncode == 0, result.stdout
    assert "SY304" not in result.stdout


def test_color(tmp_path: Path) -> None:
    write(tmp_path, {"bad.pipe": ERRORS})
    assert "\x1b[" in run("check", "--color", "always", tmp_path).stdout
    assert "\x1b[" not in run("check", "--color", "never", tmp_path).stdout
    assert "\x1b[" not in run("check", tmp_path).stdout  # auto: stdout is a pipe here


# --- --format json ----------------------------------------------------------------------------

SPAN_KEYS = {"file", "line", "column", "end_line", "end_column"}


def _json(result: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    document = json.loads(result.stdout)
    assert {"version", "counts", "diagnostics"} <= set(document)
    assert document["version"] == 1
    assert set(document["counts"]) == {"error", "warning"}
    for d in document["diagnostics"]:
        assert {"code", "severity", "message", "span", "help", "notes"} <= set(d)
        assert d["severity"] in ("error", "warning")
        assert isinstance(d["notes"], list)
        assert d["help"] is None or isinstance(d["help"], str)
        if d["span"] is not None:
            assert set(d["span"]) == SPAN_KEYS
    return document


def test_json_with_errors(tmp_path: Path) -> None:
    path = write(tmp_path, {"bad.pipe": ERRORS}) / "bad.pipe"
    result = run("check", "--format", "json", "--no-env", path)
    assert result.returncode == 1
    document = _json(result)
    assert document["counts"] == {"error": 2, "warning": 0}
    assert document["ok"] is False
    first, second = document["diagnostics"]
    assert first["code"] == "SY103" and first["severity"] == "error"
    assert "timeoutt" in first["message"]
    assert first["span"] == {
        "file": str(path),
        "line": 3,
        "column": 3,
        "end_line": 3,
        "end_column": 11,
    }
    assert second["code"] == "SY202" and "audti" in second["message"]
    assert second["span"]["line"] == 9 and second["span"]["column"] == 19
    assert "audit" in second["help"]
    assert second["notes"] and "modules:" in second["notes"][0]


def test_json_clean_and_with_warnings(tmp_path: Path) -> None:
    write(tmp_path / "c", {"c.pipe": CLEAN})
    clean = run("check", "--format", "json", tmp_path / "c")
    assert clean.returncode == 0
    document = _json(clean)
    assert document["diagnostics"] == [] and document["counts"] == {"error": 0, "warning": 0}
    assert document["ok"] is True

    write(tmp_path / "w", {"w.pipe": WARNS})
    warned = run("check", "--format", "json", tmp_path / "w")
    assert warned.returncode == 0
    document = _json(warned)
    assert [d["code"] for d in document["diagnostics"]] == ["SY304"]
    assert document["diagnostics"][0]["notes"]
    assert document["diagnostics"][0]["help"].startswith(f"export {UNSET_VAR}=")
    assert document["ok"] is True

    strict = run("check", "--format", "json", "--strict", tmp_path / "w")
    assert strict.returncode == 1
    assert _json(strict)["ok"] is False


# --- routes -----------------------------------------------------------------------------------

ROUTES = {
    "10-providers.pipe": "provider openai { kind openai }\nprovider claude { kind anthropic }\n",
    "20-chat.pipe": (
        'route mini { path /v1/chat/completions; models "gpt-4o-mini"; chain openai }\n'
        "route chat { path /v1/chat/completions\n"
        '  models "gpt-4o*"\n'
        '  chain openai -> claude(model: "claude-3-5-haiku-latest")\n'
        "  modules [trace, audit] }\n"
    ),
    "30-messages.pipe": "route messages { path /v1/messages; chain claude }\n",
    "05-first.pipe": "route first { path /v1/embeddings; chain openai }\n",
}


def test_routes_lists_routes_in_match_order(tmp_path: Path) -> None:
    write(tmp_path, ROUTES)
    result = run("routes", tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "ROUTE", "PATH", "MODELS", "CHAIN", "MODULES"]
    rows = [line.split()[:2] for line in lines[1:5]]
    assert rows == [["1", "first"], ["2", "mini"], ["3", "chat"], ["4", "messages"]]
    chat = lines[3]
    assert "/v1/chat/completions" in chat and "gpt-4o*" in chat
    assert 'openai -> claude(model: "claude-3-5-haiku-latest")' in chat
    assert "trace, audit" in chat
    assert lines[1].split()[3] == "*"  # no models: every model
    assert "4 route(s) from 4 file(s)" in result.stdout


def test_routes_json(tmp_path: Path) -> None:
    write(tmp_path, ROUTES)
    result = run("routes", "--format", "json", tmp_path)
    assert result.returncode == 0, result.stderr
    routes = json.loads(result.stdout)
    assert [r["name"] for r in routes] == ["first", "mini", "chat", "messages"]
    chat = routes[2]
    assert chat["paths"] == ["/v1/chat/completions"]
    assert chat["models"] == ["gpt-4o*"]
    assert chat["chain"] == [
        [{"provider": "openai", "model": None, "weight": 1}],
        [{"provider": "claude", "model": "claude-3-5-haiku-latest", "weight": 1}],
    ]
    assert chat["modules"] == ["trace", "audit"]


# --- where it runs from -----------------------------------------------------------------------


def test_relative_and_absolute_paths_from_another_directory(tmp_path: Path) -> None:
    write(tmp_path / "project" / "pipes", {"main.pipe": CLEAN, "bad.pipe": ERRORS})
    elsewhere = tmp_path / "elsewhere" / "deep"
    elsewhere.mkdir(parents=True)
    good = tmp_path / "project" / "pipes" / "main.pipe"

    relative = run("check", "../../project/pipes/main.pipe", cwd=elsewhere)
    assert relative.returncode == 0, relative.stdout + relative.stderr
    absolute = run("check", good, cwd=elsewhere)
    assert absolute.returncode == 0, absolute.stdout + absolute.stderr

    # Diagnostics name files as they were given.
    rel_dir = run("check", "--no-env", "../../project/pipes", cwd=elsewhere)
    assert rel_dir.returncode == 1
    assert "--> ../../project/pipes/bad.pipe:3:3" in rel_dir.stdout
    abs_dir = run("check", "--no-env", tmp_path / "project" / "pipes", cwd=elsewhere)
    assert f"--> {tmp_path / 'project' / 'pipes' / 'bad.pipe'}:3:3" in abs_dir.stdout

    routes = run("routes", "../../project/pipes/main.pipe", cwd=elsewhere)
    assert routes.returncode == 0 and "chat" in routes.stdout


def test_default_path_is_pipelines_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path / "pipelines", {"main.pipe": CLEAN})
    result = run("check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 file checked" in result.stdout
    assert run("routes", cwd=tmp_path).returncode == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    missing = run("check", cwd=empty)
    assert missing.returncode == 2
    assert "pipelines" in missing.stderr


def test_a_configmap_volume_is_read_once(tmp_path: Path) -> None:
    """Kubernetes mounts a ConfigMap as ``..<stamp>/`` plus ``..data`` and file symlinks."""
    stamp = tmp_path / "..2026_11_26_00_00_00.000000001"
    stamp.mkdir()
    (stamp / "main.pipe").write_text(CLEAN)
    (tmp_path / "..data").symlink_to(stamp.name)
    (tmp_path / "main.pipe").symlink_to("..data/main.pipe")
    result = run("check", "--strict", "--no-env", str(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "1 file checked" in result.stdout
