"""The grammar (``grammar/pipe.lark``), analysed by Lark once per process, and its terminals.

The grammar is the one source of the language's tokens: code that needs a token's shape (is
this quoted text a bare name? a duration?) asks :func:`terminal_regexp` for the terminal's
pattern instead of keeping a copy, so that editing the grammar cannot silently drift from it.
Only Lark's public API is used here (``Lark``, ``get_terminal``, ``lexer_conf``).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark

GRAMMAR_NAME = "pipe.lark"


def grammar_path() -> Path:
    """The grammar shipped inside the package, or ``grammar/pipe.lark`` of a source checkout."""
    packaged = resources.files(__package__).joinpath(GRAMMAR_NAME)
    if packaged.is_file():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[2] / "grammar" / GRAMMAR_NAME
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"the pipeline grammar {GRAMMAR_NAME} is missing from the installation")


def new_lark(*, strict: bool = False, transformer: Any = None, postlex: Any = None) -> Lark:
    """Lark's LALR parser for the grammar, with Lark's basic lexer and every token kept (the
    AST builder wants the punctuation too). ``strict`` also proves the grammar has no conflicts
    and no colliding terminals (it needs the ``interegular`` package); tests/test_grammar.py
    builds it that way, so that the runtime need not pay for the proof on every start.

    Without ``strict`` the analysed grammar is cached on disk. Lark keys the cache on the grammar,
    the hashable options and the versions; ``transformer`` and ``postlex`` are not part of the key,
    so the fallback parser (which has both) loads the same file as the fast one."""
    grammar = grammar_path().read_text(encoding="utf-8")
    cache_file = None if strict else _cache_file()
    if cache_file is not None:
        try:  # the analysed grammar, pickled by Lark
            return _lark(grammar, strict, cache_file, transformer, postlex)
        except Exception:  # a cache is only ever an optimisation
            pass
    return _lark(grammar, strict, False, transformer, postlex)


def _lark(grammar: str, strict: bool, cache: str | bool, transformer: Any, postlex: Any) -> Lark:
    return Lark(
        grammar,
        cache=cache,
        parser="lalr",
        lexer="basic",
        maybe_placeholders=False,
        keep_all_tokens=True,
        strict=strict,
        transformer=transformer,
        postlex=postlex,
    )


def _cache_file() -> str | None:
    """Where Lark keeps the analysed grammar: a directory of this user's own in the temp
    directory (a pickle is only loaded from a place nobody else can write), else no cache."""
    getuid = getattr(os, "getuid", None)
    if getuid is None or os.environ.get("STOCKYARD_NO_GRAMMAR_CACHE"):
        return None
    try:
        directory = Path(tempfile.gettempdir()) / f"stockyard-{getuid()}"
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != getuid() or info.st_mode & 0o022:
            return None
        # Named for this way of building it (Lark's basic lexer): a build that differs would
        # only overwrite it at each start.
        return str(directory / "pipe-grammar-basic.lark-cache")
    except OSError:
        return None


@cache
def analysed() -> Lark:
    """The grammar analysed once per process: the fast parser runs its table, and the
    terminals below are read from it (parsing needs it anyway, so they cost nothing more)."""
    return new_lark()


@cache
def terminal_regexp(name: str) -> str:
    """The regular expression of the grammar's terminal ``name`` (e.g. ``NAME``), as Lark
    matches it."""
    return str(analysed().get_terminal(name).pattern.to_regexp())


@cache
def terminal_pattern(name: str) -> re.Pattern[str]:
    """:func:`terminal_regexp`, compiled. A terminal's trailing lookahead (``NUMBER`` must not
    run into a letter) makes no difference to ``fullmatch``: nothing follows the end."""
    return re.compile(terminal_regexp(name))


@cache
def terminal_literal(name: str) -> str:
    """The text of a punctuation terminal: ``COMMA`` is ``,``, ``_ARROW`` is ``->``."""
    pattern = analysed().get_terminal(name).pattern
    if pattern.type != "str":
        raise ValueError(f"the terminal {name} is a pattern, not a literal")
    return str(pattern.value)
