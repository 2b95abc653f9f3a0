"""The grammar itself: LALR without conflicts, terminals that cannot collide, shipped in the wheel;
and the one source of the language's tokens: the code matches what the grammar says."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lark import Lark

from stockyard.catalog import KINDS, REGISTRY
from stockyard.dsl import CheckOptions, check, continuation
from stockyard.dsl import grammar as grammar_module
from stockyard.dsl import parser as parser_module
from stockyard.dsl.continuation import CONTINUES_LINE_ORDER, LINE_JOINER
from stockyard.dsl.grammar import terminal_pattern, terminal_regexp
from stockyard.dsl.parser import build_lark, grammar_path


def test_grammar_builds_in_strict_mode() -> None:
    import interegular  # noqa: F401  (a test extra: without it Lark cannot check collisions)

    parser, _lexer = build_lark(strict=True)  # raises on any shift/reduce or regex collision
    terminals = {t.name for t in parser.terminals}
    assert {"NAME", "STRING", "DURATION", "MONEY", "RATE", "SIZE", "STATUS", "PATH"} <= terminals


def test_grammar_file_is_the_one_in_the_repository() -> None:
    assert grammar_path().name == "pipe.lark"
    assert "start:" in grammar_path().read_text()


# --- one source of truth: code reads the grammar's terminals, it keeps no copies ---------------

LITERAL_TERMINALS = ("NAME", "STRING", "NUMBER", "DURATION", "MONEY", "RATE", "SIZE", "STATUS")


def _independent_lark(text: str) -> Lark:
    return Lark(text, parser="lalr", lexer="basic")


def test_terminal_regexps_are_the_grammars() -> None:
    reference = _independent_lark(grammar_path().read_text())
    for name in (*LITERAL_TERMINALS, "COMMENT", "PATH"):
        assert terminal_regexp(name) == reference.get_terminal(name).pattern.to_regexp()


def test_the_shapes_code_uses_are_the_grammars() -> None:
    """What value types, the checker and error recovery match against is the grammar's."""
    from stockyard.dsl import value_types

    shapes = parser_module._shapes()
    assert terminal_regexp("STRING") in shapes.block_header.pattern
    assert terminal_regexp("COMMENT") in shapes.block_header.pattern
    assert shapes.string_or_comment.pattern == (
        f"{terminal_regexp('STRING')}|{terminal_regexp('COMMENT')}"
    )
    # Each kind is the one the grammar's `atom` rule gives that terminal (`DURATION -> duration`;
    # a NAME is an `ident`, which value types call a name).
    reference = _independent_lark(grammar_path().read_text())
    aliases = {
        rule.expansion[0].name: rule.alias
        for rule in reference.rules
        if rule.origin.name == "atom" and len(rule.expansion) == 1 and rule.expansion[0].is_term
    }
    for kind, terminal in value_types._UNQUOTED:
        assert terminal_pattern(terminal).pattern == terminal_regexp(terminal)
        assert aliases[terminal] == ("ident" if kind == "name" else kind)


def test_the_continuation_rule_is_made_of_the_grammars_tokens() -> None:
    reference = _independent_lark(grammar_path().read_text())
    shown = [reference.get_terminal(name).pattern.value for name in CONTINUES_LINE_ORDER]
    assert shown == [",", "->", "|", "(", "[", ":"]
    assert parser_module._shapes().line_goes_on == (*shown, LINE_JOINER)
    # The joiner is a backslash the grammar ignores before a line break.
    ignored = [reference.get_terminal(name) for name in reference.ignore_tokens]
    assert any(re.fullmatch(t.pattern.to_regexp(), LINE_JOINER + "\n") for t in ignored)


def test_a_header_name_as_written_covers_every_name() -> None:
    """Error recovery splits a file at block headers with a looser name (a malformed one still
    starts a block): every name the grammar accepts must be one of them."""
    import interegular

    name = interegular.parse_pattern(terminal_regexp("NAME")).to_fsm()
    loose = interegular.parse_pattern(parser_module.LOOSE_NAME).to_fsm()
    assert name.difference(loose).empty()


@pytest.fixture
def mutated_grammar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The grammar with NAME also allowing `$` inside a name, and `=>` for `->`."""
    text = grammar_path().read_text()
    original_name = "NAME: /[A-Za-z_][A-Za-z0-9_]*(?:[.\\-][A-Za-z0-9_]+)*/"
    assert original_name in text and '_ARROW: "->"' in text
    text = text.replace(original_name, "NAME: /[A-Za-z_][A-Za-z0-9_$]*(?:[.\\-][A-Za-z0-9_]+)*/")
    text = text.replace('_ARROW: "->"', '_ARROW: "=>"')
    path = tmp_path / "pipe.lark"
    path.write_text(text)
    monkeypatch.setattr(grammar_module, "grammar_path", lambda: path)
    monkeypatch.setenv("STOCKYARD_NO_GRAMMAR_CACHE", "1")
    _clear_caches()
    yield
    _clear_caches()  # the next user loads the real grammar again


def _clear_caches() -> None:
    for cached in (
        grammar_module.analysed,
        grammar_module.terminal_regexp,
        grammar_module.terminal_pattern,
        grammar_module.terminal_literal,
        parser_module._parser,
        parser_module._shapes,
        continuation.line_goes_on,
    ):
        cached.cache_clear()


QUOTED_LABEL = 'provider "a$b" {\n  kind openai\n  api_key passthrough\n}\n'


def _quoted_label_help() -> str | None:
    result = check({"t.pipe": QUOTED_LABEL}, REGISTRY, KINDS, CheckOptions(check_env=False))
    helps = [d.help for d in result.diagnostics if "names are bare words" in d.message]
    assert len(helps) == 1, result.diagnostics
    return helps[0]


def test_editing_the_grammar_changes_what_the_code_matches(mutated_grammar: None) -> None:
    assert "$" in terminal_regexp("NAME")
    assert terminal_pattern("NAME").fullmatch("a$b")
    assert parser_module._shapes().line_goes_on[1] == "=>"
    # The checker's "remove the quotes" advice follows the grammar's idea of a name.
    assert _quoted_label_help() == "remove the quotes: write `provider a$b { … }`"


def test_with_the_real_grammar_that_name_needs_its_quotes() -> None:
    _clear_caches()
    assert not terminal_pattern("NAME").fullmatch("a$b")
    assert _quoted_label_help() != "remove the quotes: write `provider a$b { … }`"


def test_importing_the_package_builds_no_parser() -> None:
    """The terminals are read lazily: importing the checker, the CLI or the value types (the
    gateway and `stockyard --help` do) does not analyse the grammar."""
    code = (
        "import stockyard.cli, stockyard.catalog, stockyard.dsl.value_types\n"
        "from stockyard.dsl import grammar\n"
        "print(grammar.analysed.cache_info().currsize)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "0"
