"""Our loop over Lark's LALR table builds the AST Lark's own ``parse`` would, and fails alike.

The reference is Lark itself, on the same grammar, with the AST builder as its transformer and
``keep_all_tokens`` (so every token reaches the builder, as in our loop), fed by the same lexer.
For every shipped and golden pipeline, and for mutants of them, both must give equal ASTs, or
raise ``UnexpectedToken`` for the same token with the same expected terminals.
"""

from __future__ import annotations

from typing import Any

import pytest
from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedToken

from stockyard.dsl import parser as parser_module
from stockyard.dsl.lalr import TableParser
from stockyard.dsl.lexer import PipeLexer, TooDeep

from .corpus import mutants, pipeline_texts


@pytest.fixture(scope="module")
def reference() -> Lark:
    return Lark(
        parser_module.grammar_path().read_text(),
        parser="lalr",
        lexer=PipeLexer,
        maybe_placeholders=False,
        keep_all_tokens=True,
        transformer=parser_module._BUILDER,
    )


def outcome(run: Any) -> tuple[Any, ...]:
    parser_module._BUILDER.file = "t.pipe"
    parser_module._BUILDER.offset = 3
    try:
        return ("ok", run())
    except UnexpectedToken as error:
        token = error.token
        fields = (
            token.type,
            str(token),
            token.line,
            token.column,
            token.end_line,
            token.end_column,
        )
        return ("unexpected", fields, frozenset(error.expected))
    except UnexpectedCharacters as error:
        return ("characters", error.pos_in_stream)
    except TooDeep:
        return ("too deep",)


def both(reference: Lark, text: str) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    ours = parser_module._parser()
    expected = outcome(lambda: reference.parse(text))
    actual = outcome(lambda: ours.table.parse(ours.lexer.tokens(text)))
    return expected, actual


def test_same_ast_or_error_for_every_shipped_and_golden_pipeline(reference: Lark) -> None:
    kinds = set()
    for text in pipeline_texts():
        expected, actual = both(reference, text)
        assert actual == expected
        kinds.add(actual[0])
    assert {"ok", "unexpected", "characters"} <= kinds


def test_same_ast_or_error_for_mutants(reference: Lark) -> None:
    pieces = ["\n", ";", ",", "->", "|", "(", ")", "[", "]", "{", "}", ":", "x", '"s"', "5m", "# c"]
    kinds: dict[str, int] = {}
    for text in mutants(pipeline_texts(), pieces, 800, seed=11, edits=3, insert_share=0.6):
        expected, actual = both(reference, text)
        assert actual == expected, text
        kinds[actual[0]] = kinds.get(actual[0], 0) + 1
    assert kinds.get("ok", 0) > 50 and kinds.get("unexpected", 0) > 200


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "a {}", "a b { x }\n;"])
def test_edge_inputs(reference: Lark, text: str) -> None:
    expected, actual = both(reference, text)
    assert actual == expected


def test_a_rule_without_a_builder_method_is_refused() -> None:
    lark, _ = parser_module.build_lark()

    class Partial:
        def start(self, children: list[Any]) -> list[Any]:
            return children

    with pytest.raises(TypeError, match="no method for the grammar rule"):
        TableParser(lark, Partial())
