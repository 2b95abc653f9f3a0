"""The grammar itself: LALR without conflicts, terminals that cannot collide, shipped in the wheel."""

from __future__ import annotations

from stockyard.dsl.parser import build_lark, grammar_path


def test_grammar_builds_in_strict_mode() -> None:
    import interegular  # noqa: F401  (a test extra: without it Lark cannot check collisions)

    parser, _lexer = build_lark(strict=True)  # raises on any shift/reduce or regex collision
    terminals = {t.name for t in parser.terminals}
    assert {"NAME", "STRING", "DURATION", "MONEY", "RATE", "SIZE", "STATUS", "PATH"} <= terminals


def test_grammar_file_is_the_one_in_the_repository() -> None:
    assert grammar_path().name == "pipe.lark"
    assert "start:" in grammar_path().read_text()
