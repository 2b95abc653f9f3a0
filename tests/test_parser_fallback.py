"""The fast parser is an accelerator, not a single point of failure.

The fast lexer (dsl/lexer.py, scanner.py) and table loop (dsl/lalr.py) run on Lark's internals.
When they cannot be built (a Lark release renamed an internal), Lark's own lexer and LALR parser
take over, with the same AST builder and the same line-continuation rule, and say so once in the
log. Here their construction is broken on purpose, in every way a Lark upgrade could break it,
and the checker must give exactly what it gives with the fast parser: the same rendered
diagnostics for every golden input, the same compiled generation, the same AST and errors on
mutants; and a real gateway serves through the fallback.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stockyard.catalog import check_paths
from stockyard.dsl import CheckOptions, render_text, summary
from stockyard.dsl import lalr as lalr_module
from stockyard.dsl import lexer as lexer_module
from stockyard.dsl import parser as parser_module
from stockyard.dsl.continuation import ContinuationPostLex

from .corpus import mutants, pipeline_texts
from .harness import Gateway, Upstream, provider, running_gateway
from .test_check_golden import CASES, _extra_args

LOGGER = "stockyard.dsl"


def _raise(error: BaseException) -> Any:
    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    return fail


# How a Lark release could break the accelerator, and where.
BREAKAGES = {
    "table-attribute": (
        lalr_module.TableParser,
        "__init__",
        AttributeError("'LALR_Parser' object has no attribute 'parse_table'"),
    ),
    "lexer-signature": (
        lexer_module.PipeLexer,
        "__init__",
        TypeError("__init__() missing 1 required positional argument: 'comparator'"),
    ),
    "scanner-internals": (
        lexer_module.PipeLexer,
        "_compile",
        KeyError("_mres"),
    ),
}


def _break(monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "import":
        # `from .lalr import TableParser` fails as if lark.parsers.lalr_analysis had moved.
        monkeypatch.setitem(sys.modules, "stockyard.dsl.lalr", None)
    else:
        owner, name, error = BREAKAGES[how]
        monkeypatch.setattr(owner, name, _raise(error))
    parser_module._parser.cache_clear()


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """The checker with the fast parser's construction broken (param: how)."""
    _break(monkeypatch, getattr(request, "param", "table-attribute"))
    yield
    parser_module._parser.cache_clear()  # the next test builds the fast one again


def _golden(case: Path) -> tuple[str, Any]:
    """What `stockyard check` prints for a golden input, and what it compiles to."""
    options = CheckOptions(check_env="--env" in _extra_args(case))
    result = check_paths([case], options)
    text = render_text(result.diagnostics, result.sources)
    return text + summary(result.diagnostics, len(result.sources)), result.generation


@pytest.fixture(scope="module")
def with_fast_parser() -> dict[Path, tuple[str, Any]]:
    parser_module._parser.cache_clear()
    assert isinstance(parser_module._parser(), parser_module._FastParser)
    return {case: _golden(case) for case in CASES}


def test_the_fast_parser_is_the_one_normally_built() -> None:
    parser_module._parser.cache_clear()
    assert isinstance(parser_module._parser(), parser_module._FastParser)


@pytest.mark.parametrize("fallback", [*BREAKAGES, "import"], indirect=True)
def test_fallback_is_built_and_logged_once(
    fallback: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    for _ in range(3):
        tree, diagnostics = parser_module.parse("route chat { path /v1/x }\n", "a.pipe")
        assert diagnostics == [] and tree.blocks[0].kind.name == "route"
    assert isinstance(parser_module._parser(), parser_module._LarkParser)
    warnings = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "using Lark's own parser" in warnings[0].getMessage()
    debug = [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.DEBUG]
    assert len(debug) == 1 and debug[0].exc_info is not None  # the traceback, for a bug report


def test_golden_suite_is_identical_through_the_fallback(
    with_fast_parser: dict[Path, tuple[str, Any]], fallback: None
) -> None:
    assert isinstance(parser_module._parser(), parser_module._LarkParser)
    compiled = 0
    with_errors = 0
    for case in CASES:
        text, generation = _golden(case)
        expected_text, expected_generation = with_fast_parser[case]
        assert text == expected_text, case.name
        assert generation == expected_generation, case.name
        compiled += generation is not None
        with_errors += "error" in text
    assert compiled > 5 and with_errors > 50  # both kinds of input were compared


def _outcome(text: str) -> tuple[Any, ...]:
    tree, diagnostics = parser_module.parse(text, "m.pipe")
    return tree, render_text(diagnostics, {"m.pipe": text})


def test_mutants_parse_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Broken text exercises error recovery, which reads the lexer's memory of open blocks:
    the post-lexer must remember what the fast lexer does."""
    pieces = ["\n", ";", ",", "->", "|", "(", ")", "[", "]", "{", "}", ":", "x", '"s"', "5m"]
    texts = list(mutants(pipeline_texts(), pieces, 300, seed=5, edits=3, insert_share=0.6))
    parser_module._parser.cache_clear()
    fast = [_outcome(text) for text in texts]
    _break(monkeypatch, "table-attribute")
    try:
        slow = [_outcome(text) for text in texts]
    finally:
        parser_module._parser.cache_clear()
    broken = 0
    for text, expected, actual in zip(texts, fast, slow, strict=True):
        assert actual == expected, text
        broken += bool(expected[1])
    assert broken > 150


def test_post_lexer_remembers_what_the_fast_lexer_does() -> None:
    _, fast = parser_module.build_lark()
    lark = parser_module.lark_parser().lark
    text = 'route a {\n  models "x",\n    "y"\n  chain p -> (\n'
    post = ContinuationPostLex()
    slow = list(post.process(lark.lex(text)))
    assert [(t.type, t.value) for t in fast.tokens(text)] == [(t.type, t.value) for t in slow]
    assert [b[0].line for b in post.open_braces] == [b[0].line for b in fast.open_braces]
    assert post.open_brackets == fast.open_brackets
    assert post.line_tokens == fast.line_tokens and post.recent == fast.recent
    assert post.last_before_line == fast.last_before_line


# --- end to end: the command line and the gateway, in processes whose fast parser is broken ---

BREAK_ON_START = textwrap.dedent(
    """
    # Installed as sitecustomize by tests/test_parser_fallback.py: breaks the fast parser's
    # construction as a Lark release that renamed an internal would.
    import stockyard.dsl.lalr as lalr

    def _broken(self, *args, **kwargs):
        raise AttributeError("'LALR_Parser' object has no attribute 'parse_table'")

    lalr.TableParser.__init__ = _broken
    """
)


@pytest.fixture
def broken_env(tmp_path: Path) -> dict[str, str]:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(BREAK_ON_START)
    root = str(Path(__file__).resolve().parents[1])
    return {"PYTHONPATH": f"{shim}:{root}", "NO_COLOR": "1"}


def test_cli_check_through_the_fallback_prints_the_catalogue(broken_env: dict[str, str]) -> None:
    import os
    import subprocess

    root = Path(__file__).resolve().parents[1]
    picked = [c for c in CASES if c.is_file() and not _extra_args(c)][:: max(1, len(CASES) // 12)]
    assert len(picked) >= 8
    for case in picked:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "stockyard",
                "check",
                "--no-env",
                "--color",
                "never",
                case.relative_to(root).as_posix(),
            ],
            cwd=root,
            env={"PATH": os.environ.get("PATH", ""), **broken_env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.stdout == case.with_suffix(".expected").read_text(encoding="utf-8"), case.name
        # Said once, on standard error, without a traceback.
        assert run.stderr.count("using Lark's own parser") == 1, run.stderr
        assert "Traceback" not in run.stderr


BROKEN_SYNTAX = """
route chat {
  path  /v1/chat/completions
  chain new ->
}
"""


def _chat(gateway: Gateway) -> int:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=10).status_code


def test_gateway_serves_and_reloads_through_the_fallback(
    tmp_path: Path, broken_env: dict[str, str]
) -> None:
    old, new = Upstream("old"), Upstream("new")
    providers = provider("old", old.url) + provider("new", new.url)
    route = "route chat {\n  path /v1/chat/completions\n  chain %s\n}\n"
    try:
        files = {"main.pipe": providers + route % "old"}
        with running_gateway(tmp_path, files, env=broken_env) as gateway:
            assert _chat(gateway) == 200 and old.count == 1
            # A reload parses again, on the gateway's reload thread: still the fallback.
            gateway.write("main.pipe", providers + route % "new")
            assert gateway.api("POST", "/api/proxy/reload").status_code == 200
            assert _chat(gateway) == 200 and new.count == 1
            # A syntax error goes through the fallback's error recovery: the same diagnostics
            # as `stockyard check` with the fast parser gives for the same file.
            gateway.write("main.pipe", providers + BROKEN_SYNTAX)
            rejected = gateway.api("POST", "/api/proxy/reload")
            assert rejected.status_code == 422, rejected.text
            status = gateway.api("GET", "/api/proxy/reload").json()
            parser_module._parser.cache_clear()
            assert isinstance(parser_module._parser(), parser_module._FastParser)
            expected = check_paths([gateway.pipelines], CheckOptions(check_env=False))
            assert expected.errors
            assert status["rendered"] == render_text(expected.diagnostics, expected.sources)
            assert _chat(gateway) == 200 and new.count == 2  # the last good pipeline serves
            # Said once in all that.
            assert gateway.log().count("using Lark's own parser") == 1, gateway.log()
    finally:
        old.close()
        new.close()
