"""The lexer's regular expressions: one for each character a token can start with.

Lark matches each token against one expression that tries every terminal in turn, so a `,` is
tried as a rate, a size, a duration, a name, an amount… before it is found to be a comma. Here
the characters each terminal can start with are read from its regular expression (with the
``re`` module's own parser), and each ASCII character gets an expression of only the terminals
that can start with it, in Lark's order: the first alternative that matches is the one Lark's
expression would have picked. Anything else (a blank, a character no terminal starts with,
non-ASCII text) goes to Lark's whole expression.

When the grammar ignores blanks (``%ignore /[ \\t\\f]+/``), each expression also consumes the
blanks after its token, and the whole expression the blanks before: no terminal starts with a
blank, so this skips exactly what the ignored terminal would have matched, in fewer matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from re import _constants as sre
from re import _parser as sre_parse
from typing import Any

from lark.lexer import TerminalDef

Match = Callable[[str, int, int], "re.Match[str] | None"]
BLANKS = "[ \t\x0c]+"  # the grammar's `%ignore /[ \t\f]+/`, as Lark writes it
_BLANK_CHARS = frozenset(" \t\x0c")
_ASCII = [chr(c) for c in range(128)]
_CATEGORIES = {
    sre.CATEGORY_DIGIT: "0123456789",
    sre.CATEGORY_WORD: "".join(c for c in _ASCII if c.isalnum() or c == "_"),
    sre.CATEGORY_SPACE: " \t\n\r\x0b\x0c",
}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}


class FirstCharScanner:
    """The next token at ``pos`` is ``by_char.get(text[pos], general)(text, pos, end)``, as
    Lark's scanner would find it (the lexer's loop does this inline, a call fewer per token).

    ``terminals`` are in Lark's order; ``combined`` is Lark's expression of all of them;
    ``skip_blanks`` says the grammar ignores blanks between tokens."""

    def __init__(
        self, terminals: Sequence[TerminalDef], combined: re.Pattern[str], skip_blanks: bool
    ) -> None:
        after = BLANKS[:-1] + "*" if skip_blanks else ""
        self.general: Match = re.compile(
            f"{after}(?:{combined.pattern}){after}", combined.flags
        ).match
        firsts = [(t, first_chars(t.pattern.to_regexp(), combined.flags)) for t in terminals]
        compiled: dict[tuple[str, ...], Match] = {}
        self.by_char: dict[str, Match] = {}
        for char in _ASCII:
            if skip_blanks and char in _BLANK_CHARS:
                continue  # the blanks before a token: the whole expression skips them
            candidates = [t for t, first in firsts if first is None or char in first]
            if not candidates:
                continue  # nothing starts with it: the whole expression reports it
            key = tuple(t.name for t in candidates)
            if key not in compiled:
                pattern = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in candidates)
                compiled[key] = re.compile(f"(?:{pattern}){after}", combined.flags).match
            self.by_char[char] = compiled[key]


def first_chars(pattern: str, flags: int = 0) -> frozenset[str] | None:
    """The ASCII characters a match of ``pattern`` can start with; None when that cannot be
    told (or the pattern can match the empty string, or ignores case)."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except (re.error, RecursionError):
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    chars, nullable = _first_of_sequence(parsed.data)
    return None if chars is None or nullable else frozenset(chars)


# The parsed expression is a sequence of (opcode, argument); the argument's shape depends on the
# opcode (a code point, a sub-pattern, a (low, high, sub-pattern) repeat…), hence `Any`.
_Item = tuple[Any, Any]


def _first_of_sequence(items: Iterable[_Item]) -> tuple[set[str] | None, bool]:
    chars: set[str] = set()
    for op, av in items:
        first, nullable = _first_of_item(op, av)
        if first is None:
            return None, False
        chars |= first
        if not nullable:
            return chars, False
    return chars, True


def _first_of_item(op: object, av: Any) -> tuple[set[str] | None, bool]:
    if op is sre.LITERAL:
        return {chr(av)} if av < 128 else set(), False
    if op is sre.IN:
        return _first_of_class(av), False
    if op is sre.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        if add_flags & re.IGNORECASE:
            return None, False
        return _first_of_sequence(sub.data)
    if op is sre.BRANCH:
        chars: set[str] = set()
        nullable = False
        for branch in av[1]:
            first, empty = _first_of_sequence(branch.data)
            if first is None:
                return None, False
            chars |= first
            nullable = nullable or empty
        return chars, nullable
    if op in _REPEATS:
        low, _high, sub = av
        first, empty = _first_of_sequence(sub.data)
        return first, empty or low == 0
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return set(), True  # zero-width: adds no character, may only narrow the match
    return None, False  # any character, a back-reference, …: cannot tell


def _first_of_class(items: Iterable[_Item]) -> set[str] | None:
    chars: set[str] = set()
    for op, av in items:
        if op is sre.LITERAL:
            if av < 128:
                chars.add(chr(av))
        elif op is sre.RANGE:
            low, high = av
            chars.update(_ASCII[low : min(high, 127) + 1])
        elif op is sre.CATEGORY and av in _CATEGORIES:
            chars.update(_CATEGORIES[av])
        else:
            return None  # a negated class, another category: cannot tell
    return chars
