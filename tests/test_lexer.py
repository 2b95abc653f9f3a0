"""The fast lexer yields exactly what Lark's own lexer and the line-continuation rule would.

The reference here is Lark's ``BasicLexer`` (through ``Lark.lex`` on the same grammar) followed
by the continuation rule written out plainly: a line break is dropped inside ``(`` or ``[``
brackets, and after ``,``, ``->``, ``|``, ``(``, ``[`` or ``:``. Every field of every token
(type, text, offsets, lines, columns) must agree, and text nothing matches must fail at the same
place with the same exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import LexerState
from lark.utils import TextSlice

from stockyard.dsl.continuation import CONTINUES_LINE
from stockyard.dsl.lexer import MAX_NESTING, PipeLexer, TooDeep
from stockyard.dsl.parser import build_lark, grammar_path
from stockyard.dsl.scanner import first_chars

from .corpus import mutants, pipeline_texts

CONTINUES = CONTINUES_LINE  # the rule's tokens (tests/test_grammar.py pins what they are)


@pytest.fixture(scope="module")
def reference() -> Lark:
    return Lark(grammar_path().read_text(), parser="lalr", lexer="basic")


@pytest.fixture(scope="module")
def fast() -> PipeLexer:
    return build_lark()[1]


def continued(tokens: Iterable[Token]) -> Iterator[Token]:
    depth: list[str] = []
    previous = ""
    for token in tokens:
        if token.type == "_NL" and (depth or previous in CONTINUES):
            continue
        if token.type in ("LPAR", "LSQB"):
            depth.append(token.type)
        elif token.type in ("RPAR", "RSQB"):
            if depth and {"LPAR": "RPAR", "LSQB": "RSQB"}[depth[-1]] == token.type:
                depth.pop()
        elif token.type in ("LBRACE", "RBRACE"):
            depth.clear()
        previous = token.type
        yield token


def fields(token: Token) -> tuple[object, ...]:
    return (
        token.type,
        str(token),
        token.value,
        token.start_pos,
        token.line,
        token.column,
        token.end_line,
        token.end_column,
        token.end_pos,
    )


def lex_both(reference: Lark, fast: PipeLexer, text: str) -> tuple[list, list]:
    """Each side's token fields, or the error position it stopped with."""
    results = []
    for tokens in (
        lambda: continued(reference.lex(text)),
        lambda: fast.lex(LexerState(TextSlice(text, 0, len(text))), None),
    ):
        out: list[object] = []
        try:
            out.extend(fields(t) for t in tokens())
        except UnexpectedCharacters as error:
            out.append(("error", error.pos_in_stream, error.line, error.column, error.char))
        except TooDeep:
            out.append(("too deep",))
        results.append(out)
    expected, actual = results
    if actual and actual[-1] == ("too deep",):  # the reference has no nesting limit
        del actual[-1]
        expected = expected[: len(actual)]
    return expected, actual


def test_same_tokens_for_every_shipped_and_golden_pipeline(
    reference: Lark, fast: PipeLexer
) -> None:
    texts = pipeline_texts()
    assert len(texts) > 80
    compared = 0
    for text in texts:
        expected, actual = lex_both(reference, fast, text)
        assert actual == expected
        compared += len(actual)
    assert compared > 4000


def test_same_tokens_for_mutated_pipelines(reference: Lark, fast: PipeLexer) -> None:
    junk = [
        "\n",
        "\r\n",
        " ",
        "\\\n",
        "#",
        '"',
        "(",
        ")",
        "[",
        "]",
        "{",
        "}",
        "->",
        "|",
        ",",
        "é",
        "@",
    ]
    for text in mutants(pipeline_texts(), junk, 600, seed=2026):
        expected, actual = lex_both(reference, fast, text)
        assert actual == expected


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "route",
                "x",
                " ",
                "\t",
                "\n",
                "\r\n",
                "\\\n",
                "# c\n",
                '"s"',
                '"a\\"b"',
                "30s",
                "$0.15/1M",
                "60/min",
                "10MiB",
                "5xx",
                "/v1/x",
                "2",
                "0.5",
                "(",
                ")",
                "[",
                "]",
                "{",
                "}",
                ",",
                ":",
                ";",
                "->",
                "|",
                "=",
                "'",
                "\x00",
            ]
        ),
        max_size=60,
    )
)
def test_same_tokens_for_token_soup(reference: Lark, fast: PipeLexer, parts: list[str]) -> None:
    expected, actual = lex_both(reference, fast, "".join(parts))
    assert actual == expected


def test_nesting_limit(fast: PipeLexer) -> None:
    deep = "x a " + "[" * (MAX_NESTING + 1)
    with pytest.raises(TooDeep):
        list(fast.lex(LexerState(TextSlice(deep, 0, len(deep))), None))
    fine = "x a " + "[" * MAX_NESTING
    assert len(list(fast.lex(LexerState(TextSlice(fine, 0, len(fine))), None))) == MAX_NESTING + 2


def test_open_blocks_are_remembered_for_error_messages(fast: PipeLexer) -> None:
    text = 'route chat {\n  chain a ->\n  models ["x",\n'
    list(fast.lex(LexerState(TextSlice(text, 0, len(text))), None))
    brace, header = fast.open_braces[-1]
    assert (brace.line, brace.column) == (1, 12)
    assert [str(t) for t in header] == ["route", "chat"]
    assert [t.type for t in fast.open_brackets] == ["LSQB"]
    assert [str(t) for t in fast.recent] == ['"x"', ","]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("abc", "a"),
        ("[0-3x]+y", "0123x"),
        ("(?:ab|cd)e", "ac"),
        ("a?b", "ab"),
        ("(?:a*|b)c", "abc"),
        ("(?!z)[a-c]", "abc"),
        (r"\d+", "0123456789"),
        (r"\$[0-9]", "$"),
        ("é|x", "x"),  # a non-ASCII start is left to the whole expression
        (".x", None),  # any character
        ("[^a]", None),  # a negated class
        ("a*", None),  # can match nothing
        ("(?i)a", None),  # ignores case
        ("(?i:a)b", None),
        ("(", None),  # not a regular expression
    ],
)
def test_first_chars(pattern: str, expected: str | None) -> None:
    found = first_chars(pattern)
    assert (None if found is None else "".join(sorted(found))) == (
        None if expected is None else "".join(sorted(expected))
    )


def test_each_first_character_has_only_the_terminals_that_can_start_with_it(
    fast: PipeLexer,
) -> None:
    scan = fast._scan or fast._compile()
    comma = scan.by_char[","].__self__  # the compiled expression behind the bound match
    assert comma.groupindex.keys() == {"COMMA"}
    digits = scan.by_char["7"].__self__
    assert set(digits.groupindex) == {"RATE", "SIZE", "DURATION", "NUMBER"}
    assert "@" not in scan.by_char and " " not in scan.by_char  # left to the whole expression
