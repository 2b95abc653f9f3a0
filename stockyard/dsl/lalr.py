"""Lark's LALR(1) parse table, run by a loop of our own that builds the AST as rules reduce.

Lark analyses ``grammar/pipe.lark`` (and, in strict mode, proves it has no conflicts); this
module only runs the resulting table. Lark's own loop looks up each reduced rule in a dict keyed
by ``Rule`` objects (whose hash and equality are Python methods), and its tree builder wraps every
callback in filters and builds a throw-away ``Tree`` for each helper rule it later inlines. Here
each table entry already holds what to do: shift to a state, or reduce ``size`` values with a
prepared function. The semantics are Lark's, with ``keep_all_tokens``: every token is passed on;
a rule whose name starts with ``_`` (``_sep`` and Lark's ``__x_star_N`` helpers for ``*`` and
``+``) is spliced into the rule that uses it; a ``?rule`` with one child is that child; an alias
(``-> string``) names the builder method. tests/test_lalr.py checks that the ASTs and the syntax
errors are the ones Lark's own ``parse`` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedToken
from lark.grammar import Rule
from lark.parsers.lalr_analysis import Shift

Reducer = Callable[[list[Any]], Any]
# A state to shift to, or (size, rule name, reducer); no reducer: the one child passes through.
Action = int | tuple[int, str, Reducer | None]


class _Splice(list):  # type: ignore[type-arg]  # holds tokens and nodes alike, as list[Any]
    """The children of an inlined rule, waiting to be spliced into the rule that uses it."""

    __slots__ = ()


def _splice(children: list[Any]) -> _Splice:
    return _flatten(children, _Splice())  # type: ignore[return-value]  # _flatten returns the _Splice it was given


def _append_to_first(children: list[Any]) -> _Splice:
    # `__x_star_N: __x_star_N item`, left-recursive: extend the list built so far in place
    # (nothing else holds it) instead of copying it at every item.
    out: _Splice = children[0]
    out.extend(children[1:])
    return out


def _splicer(rule: Rule) -> Reducer | None:
    """The cheapest reducer for an inlined rule, by where its inlined children are."""
    inlined = [i for i, s in enumerate(rule.expansion) if _inlined(s)]
    if not inlined:
        return _Splice  # tokens and nodes only: they are the list
    if inlined == [0]:
        return None if len(rule.expansion) == 1 else _append_to_first
    return _splice


def _inlined(symbol: Any) -> bool:
    return not symbol.is_term and symbol.name.startswith("_")


def _flatten(children: list[Any], out: list[Any] | None = None) -> list[Any]:
    """The children, with those of inlined rules spliced in (into ``out`` when given)."""
    out = [] if out is None else out
    for child in children:
        if child.__class__ is _Splice:
            out.extend(child)
        else:
            out.append(child)
    return out


def _reducer(rule: Rule, builder: object) -> Reducer | None:
    if rule.origin.name.startswith("_"):
        return _splicer(rule)
    name = rule.alias or rule.origin.name
    method: Reducer | None = getattr(builder, name, None)
    expand_single = bool(rule.options.expand1) and not rule.alias
    splices = any(_inlined(s) for s in rule.expansion)
    if expand_single and len(rule.expansion) == 1 and not splices:
        return None  # `?value: tier`: the tier itself, nothing to call
    if method is None:
        raise TypeError(f"the AST builder has no method for the grammar rule `{name}`")
    if expand_single:

        def expand(children: list[Any]) -> Any:
            if splices:
                children = _flatten(children)
            if len(children) == 1:
                return children[0]
            assert method is not None
            return method(children)

        return expand
    assert method is not None
    if splices:
        return lambda children: method(_flatten(children))
    return method


class TableParser:
    """Parses a token stream with the table Lark built for ``lark``, calling ``builder``'s
    method named after each rule (or its alias) with the rule's children."""

    def __init__(self, lark: Lark, builder: object, start: str = "start") -> None:
        table = lark.parser.parser.parser.parse_table
        self._start: int = table.start_states[start]
        self._end: int = table.end_states[start]
        reducers: dict[Rule, Action] = {}
        self._actions: dict[int, dict[str, Action]] = {}
        for state, entries in table.states.items():
            actions: dict[str, Action] = {}
            for symbol, (kind, argument) in entries.items():
                if kind is Shift:
                    actions[symbol] = argument
                else:
                    rule = argument
                    if rule not in reducers:
                        size = len(rule.expansion)
                        reducers[rule] = (size, rule.origin.name, _reducer(rule, builder))
                    actions[symbol] = reducers[rule]
            self._actions[state] = actions

    def parse(self, tokens: Iterable[Token]) -> Any:
        """The value the start rule reduced to. Raises :class:`UnexpectedToken` (with the
        token and the terminals that were expected) on a syntax error."""
        table = self._actions
        states = [self._start]
        values: list[Any] = []
        token: Token | None = None
        for token in tokens:
            kind = token.type
            while True:
                action = table[states[-1]].get(kind)
                if action is None:
                    raise self._unexpected(token, states[-1])
                if action.__class__ is int:
                    states.append(action)
                    values.append(token)
                    break
                size, name, reduce = action  # type: ignore[misc]  # not an int: a reduction (no isinstance on the hot path)
                if size == 1:  # one child: replace the top of both stacks in place
                    if reduce is not None:
                        values[-1] = reduce([values[-1]])
                    states[-1] = table[states[-2]][name]  # type: ignore[assignment]  # after a reduction: a goto, always a state
                    continue
                if size:
                    children = values[-size:]
                    del states[-size:]
                    del values[-size:]
                    values.append(reduce(children))  # type: ignore[misc]  # only one-child rules have no reducer
                else:
                    values.append(reduce([]))  # type: ignore[misc]  # an empty rule always has a reducer
                states.append(table[states[-1]][name])  # type: ignore[arg-type]  # a goto, always a state
        end = Token.new_borrow_pos("$END", "", token) if token else Token("$END", "", 0, 1, 1)
        while True:
            action = table[states[-1]].get("$END")
            if action is None or action.__class__ is int:
                raise self._unexpected(end, states[-1])
            size, name, reduce = action  # type: ignore[misc]  # not an int: a reduction (no isinstance on the hot path)
            children = values[-size:] if size else []
            if size:
                del states[-size:]
                del values[-size:]
            values.append(children[0] if reduce is None else reduce(children))
            states.append(table[states[-1]][name])  # type: ignore[arg-type]  # a goto, always a state
            if states[-1] == self._end:
                return values[-1]

    def _unexpected(self, token: Token, state: int) -> UnexpectedToken:
        expected = {symbol for symbol in self._actions[state] if symbol.isupper()}
        return UnexpectedToken(token, expected, state=state)  # type: ignore[no-untyped-call]  # Lark's is untyped
