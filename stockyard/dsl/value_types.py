"""Value types for attributes and module parameters.

One schema serves both the checker (values written in ``.pipe`` files, as AST nodes) and the
runtime-override API (values sent as JSON), so the two can never disagree about what is valid.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from ..core.generation import PASSTHROUGH
from ..core.span import Span
from ..core.values import EnvRef, RateValue
from . import literals, syntax
from .grammar import terminal_pattern
from .suggest import did_you_mean


class ValueProblem(Exception):
    """A value does not fit its type. Carries what a diagnostic needs."""

    def __init__(
        self,
        code: str,
        message: str,
        span: Span | None,
        label: str = "",
        help: str | None = None,
        others: Sequence[ValueProblem] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.span = span
        self.label = label
        self.help = help
        self.others = tuple(others)  # further problems found in the same value (list items)
        self.example = ""  # a bare example of the expected type, when `help` is None

    def all(self) -> tuple[ValueProblem, ...]:
        return (self, *(p for other in self.others for p in other.all()))

    @staticmethod
    def collect(problems: Sequence[ValueProblem]) -> ValueProblem:
        """One exception carrying several problems, e.g. one per bad item of a list."""
        first, *rest = problems
        return ValueProblem(
            first.code, first.message, first.span, first.label, first.help, [*first.others, *rest]
        )


# What a string's text would be without its quotes: the grammar's literal forms (its terminals,
# in this order of preference), and the AST's kind for each.
_UNQUOTED = (
    ("duration", "DURATION"),
    ("rate", "RATE"),
    ("size", "SIZE"),
    ("money", "MONEY"),
    ("number", "NUMBER"),
    ("status", "STATUS"),
    ("name", "NAME"),
)

TYPE_MISMATCH = "SY106"
INVALID_VALUE = "SY109"
OUT_OF_RANGE = "SY110"


class ValueType:
    """Base class. ``words`` completes "expected …" in messages."""

    words = "a value"
    example = ""
    plural = ""  # "failover conditions": for "a list of …"; default: derived from `words`

    def from_ast(self, value: syntax.Value) -> Any:
        raise NotImplementedError

    def from_json(self, value: Any) -> Any:
        raise NotImplementedError

    def mismatch(self, value: syntax.Value) -> ValueProblem:
        found = syntax.describe(value)
        raw = (
            f" `{value.raw}`"
            if isinstance(value, syntax.Literal) and value.kind != "string"
            else ""
        )
        if isinstance(value, syntax.Literal) and value.kind == "string":
            raw = f" {value.raw}"
        unquoted = self._unquoted(value)
        problem = ValueProblem(
            TYPE_MISMATCH,
            f"expected {self.words}, found {found}{raw}",
            value.span,
            f"expected {self.words}",
            f"remove the quotes: `{unquoted}`" if unquoted else None,
        )
        # The caller knows a better example (the whole attribute or call); this is the fallback.
        problem.example = self.example
        return problem

    def _unquoted(self, value: syntax.Value) -> str | None:
        """``"10m"`` where a duration is expected: the text would do without its quotes."""
        if not (isinstance(value, syntax.Literal) and value.kind == "string"):
            return None
        text = value.text
        for kind, terminal in _UNQUOTED:
            if terminal_pattern(terminal).fullmatch(text):
                bare: syntax.Value = (
                    syntax.Ident(text, value.span)
                    if kind == "name"
                    else syntax.Literal(kind, text, value.span)
                )
                try:
                    self.from_ast(bare)
                except ValueProblem:
                    return None
                return text
        return None

    def json_mismatch(self, value: Any) -> ValueProblem:
        example = f" (for example {self.example!r})" if self.example else ""
        return ValueProblem(TYPE_MISMATCH, f"expected {self.words}{example}, got {value!r}", None)


def _short(raw: str) -> str:
    """A literal as quoted in a message: very long ones are cut."""
    return raw if len(raw) <= 24 else raw[:20] + "…"


def _literal(value: syntax.Value, *kinds: str) -> syntax.Literal | None:
    if isinstance(value, syntax.Literal) and value.kind in kinds:
        return value
    return None


def _range_help(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"use a value from {low} to {high}"
    if low is not None:
        return f"use {low} or more"
    return f"use {high} or less"


def _check_range(number: Any, low: Any, high: Any, span: Span | None, shown: str) -> None:
    if low is not None and number < low:
        raise ValueProblem(
            OUT_OF_RANGE,
            f"{shown} is too small: the minimum is {low}",
            span,
            "too small",
            _range_help(low, high),
        )
    if high is not None and number > high:
        raise ValueProblem(
            OUT_OF_RANGE,
            f"{shown} is too large: the maximum is {high}",
            span,
            "too large",
            _range_help(low, high),
        )


class Duration(ValueType):
    """A duration, compiled to seconds (float)."""

    words = "a duration"
    example = "30s"

    def __init__(self, minimum: str | None = None, maximum: str | None = None) -> None:
        self.minimum = literals.duration_seconds(minimum) if minimum else None
        self.maximum = literals.duration_seconds(maximum) if maximum else None
        self._bounds = (minimum, maximum)

    def _range(self, seconds: Decimal, span: Span | None, shown: str) -> float:
        low, high = self._bounds
        if low and high:
            allowed = f"use a duration from {low} to {high}"
        else:
            allowed = f"use {low} or longer" if low else f"use {high} or shorter"
        if self.minimum is not None and seconds < self.minimum:
            raise ValueProblem(
                OUT_OF_RANGE,
                f"{shown} is too short: the minimum is {low}",
                span,
                "too short",
                allowed,
            )
        if self.maximum is not None and seconds > self.maximum:
            raise ValueProblem(
                OUT_OF_RANGE,
                f"{shown} is too long: the maximum is {high}",
                span,
                "too long",
                allowed,
            )
        return float(seconds)

    def from_ast(self, value: syntax.Value) -> float:
        lit = _literal(value, "duration")
        if lit is None:
            number = _literal(value, "number")
            if number is not None:
                raise ValueProblem(
                    TYPE_MISMATCH,
                    f"expected a duration, found a bare number `{number.raw}`",
                    value.span,
                    "this needs a unit",
                    f"add a unit: `{number.raw}s` for seconds or `{number.raw}ms` for milliseconds",
                )
            raise self.mismatch(value)
        return self._range(literals.duration_seconds(lit.raw), lit.span, f"`{_short(lit.raw)}`")

    def from_json(self, value: Any) -> float:
        if isinstance(value, bool):
            raise self.json_mismatch(value)
        if isinstance(value, int | float):
            return self._range(Decimal(str(value)), None, f"{value}s")
        if isinstance(value, str) and terminal_pattern("DURATION").fullmatch(value):
            return self._range(literals.duration_seconds(value), None, f"`{value}`")
        raise self.json_mismatch(value)


class Money(ValueType):
    """A plain amount of dollars (Decimal), e.g. a spend cap."""

    words = "an amount of money"
    example = "$25"

    def from_ast(self, value: syntax.Value) -> Decimal:
        lit = _literal(value, "money")
        if lit is None:
            number = _literal(value, "number")
            if number is not None:
                raise ValueProblem(
                    TYPE_MISMATCH,
                    f"expected an amount of money, found a bare number `{number.raw}`",
                    value.span,
                    "amounts start with `$`",
                    f"write `${number.raw}`",
                )
            raise self.mismatch(value)
        amount, per = literals.money(lit.raw)
        if per is not None:
            raise ValueProblem(
                TYPE_MISMATCH,
                f"expected a plain amount, found a per-token price `{lit.raw}`",
                lit.span,
                "a price, not an amount",
                f"write `{lit.raw.split('/')[0]}`",
            )
        return amount

    def from_json(self, value: Any) -> Decimal:
        return _decimal_from_json(self, value)


class Price(ValueType):
    """A per-token price, compiled to dollars per one million tokens (Decimal)."""

    words = "a per-token price"
    example = "$0.15/1M"

    def from_ast(self, value: syntax.Value) -> Decimal:
        lit = _literal(value, "money")
        if lit is None:
            raise self.mismatch(value)
        amount, per = literals.money(lit.raw)
        if per is None:
            raise ValueProblem(
                TYPE_MISMATCH,
                f"expected a per-token price, found a plain amount `{lit.raw}`",
                lit.span,
                "per how many tokens?",
                f"write `{lit.raw}/1M` for a price per million tokens",
            )
        if per == 0:
            raise ValueProblem(
                OUT_OF_RANGE, "a price per zero tokens has no meaning", lit.span, "zero"
            )
        return literals.per_million(amount, per)

    def from_json(self, value: Any) -> Decimal:
        return _decimal_from_json(self, value)


def _decimal_from_json(kind: ValueType, value: Any) -> Decimal:
    if isinstance(value, bool):
        raise kind.json_mismatch(value)
    text = value.lstrip("$") if isinstance(value, str) else str(value)
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise kind.json_mismatch(value) from None
    if not amount.is_finite() or amount < 0:
        raise kind.json_mismatch(value)
    return amount


class Rate(ValueType):
    words = "a rate"
    example = "60/min"

    def from_ast(self, value: syntax.Value) -> RateValue:
        lit = _literal(value, "rate")
        if lit is None:
            number = _literal(value, "number")
            if number is not None:
                raise ValueProblem(
                    TYPE_MISMATCH,
                    f"expected a rate, found a bare number `{number.raw}`",
                    value.span,
                    "per what?",
                    f"add the window: `{number.raw}/min`, `{number.raw}/s`, `{number.raw}/h` "
                    f"or `{number.raw}/day`",
                )
            raise self.mismatch(value)
        count, per = literals.rate(lit.raw)
        if count <= 0:
            raise ValueProblem(
                OUT_OF_RANGE, f"`{lit.raw}` allows nothing", lit.span, "must be above zero"
            )
        return RateValue(count, per)

    def from_json(self, value: Any) -> RateValue:
        if isinstance(value, str) and re.fullmatch(r"[0-9.]+[kKM]?/[a-z]+", value):
            try:
                count, per = literals.rate(value)
            except KeyError:
                raise self.json_mismatch(value) from None
            if count > 0:
                return RateValue(count, per)
        raise self.json_mismatch(value)


class Size(ValueType):
    words = "a size"
    example = "10MiB"

    def from_ast(self, value: syntax.Value) -> int:
        lit = _literal(value, "size")
        if lit is None:
            raise self.mismatch(value)
        return literals.size_bytes(lit.raw)

    def from_json(self, value: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str) and re.fullmatch(r"[0-9.]+(B|KB|MB|GB|KiB|MiB|GiB)", value):
            return literals.size_bytes(value)
        raise self.json_mismatch(value)


class Integer(ValueType):
    words = "a whole number"
    example = "3"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def from_ast(self, value: syntax.Value) -> int:
        lit = _literal(value, "number")
        if lit is not None and "." in lit.raw:
            problem = ValueProblem(
                TYPE_MISMATCH,
                f"expected a whole number, found `{lit.raw}`",
                lit.span,
                "not a whole number",
            )
            problem.example = self.example
            raise problem
        if lit is None:
            raise self.mismatch(value)
        number = int(Decimal(lit.raw))  # int(str) refuses over 4,300 digits
        _check_range(number, self.minimum, self.maximum, lit.span, f"`{_short(lit.raw)}`")
        return number

    def from_json(self, value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.json_mismatch(value)
        _check_range(value, self.minimum, self.maximum, None, str(value))
        return value


class Number(ValueType):
    words = "a number"
    example = "0.5"

    def __init__(
        self, minimum: Decimal | int | None = None, maximum: Decimal | int | None = None
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def from_ast(self, value: syntax.Value) -> Decimal:
        lit = _literal(value, "number")
        if lit is None:
            raise self.mismatch(value)
        number = Decimal(lit.raw)
        _check_range(number, self.minimum, self.maximum, lit.span, f"`{_short(lit.raw)}`")
        return number

    def from_json(self, value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.json_mismatch(value)
        number = Decimal(str(value))
        _check_range(number, self.minimum, self.maximum, None, str(value))
        return number


class Choice(ValueType):
    """One of a closed set of names, written bare: ``per project``."""

    def __init__(self, *options: str, what: str = "value") -> None:
        self.options = options
        self.what = what
        self.words = "one of " + ", ".join(f"`{o}`" for o in options)
        self.example = options[0]

    def _pick(self, name: str, span: Span | None) -> str:
        if name in self.options:
            return name
        raise ValueProblem(
            INVALID_VALUE,
            f"unknown {self.what} `{name}`",
            span,
            f"not a valid {self.what}",
            did_you_mean(name, self.options) or f"use {self.words}",
        )

    def from_ast(self, value: syntax.Value) -> str:
        if isinstance(value, syntax.Ident):
            return self._pick(value.name, value.span)
        if (
            isinstance(value, syntax.Literal)
            and value.kind == "string"
            and value.text in self.options
        ):
            return value.text
        raise self.mismatch(value)

    def from_json(self, value: Any) -> str:
        if isinstance(value, str):
            return self._pick(value, None)
        raise self.json_mismatch(value)


class Boolean(ValueType):
    words = "`true` or `false`"
    example = "true"
    _WORDS = {"true": True, "false": False, "on": True, "off": False, "yes": True, "no": False}

    def from_ast(self, value: syntax.Value) -> bool:
        if isinstance(value, syntax.Ident) and value.name in self._WORDS:
            return self._WORDS[value.name]
        raise self.mismatch(value)

    def from_json(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise self.json_mismatch(value)


class Text(ValueType):
    words = "a string"
    example = '"text"'

    def __init__(self, *, allow_env: bool = False, nonempty: bool = True) -> None:
        self.allow_env = allow_env
        self.nonempty = nonempty
        if allow_env:
            self.words = 'a string or `env("NAME")`'

    def check_text(self, text: str, span: Span | None) -> str:
        if self.nonempty and not text:
            raise ValueProblem(INVALID_VALUE, "this string must not be empty", span, "empty")
        return text

    def from_ast(self, value: syntax.Value) -> str | EnvRef:
        if isinstance(value, syntax.Literal) and value.kind == "string":
            return self.check_text(value.text, value.span)
        if self.allow_env:
            env = env_ref(value)
            if env is not None:
                return env
        raise self.mismatch(value)

    def from_json(self, value: Any) -> str:
        if isinstance(value, str):
            return self.check_text(value, None)
        raise self.json_mismatch(value)


class Url(Text):
    words = "a URL"
    example = '"https://api.openai.com/v1"'

    def __init__(self) -> None:
        super().__init__(allow_env=True)
        self.words = 'a URL string or `env("NAME")`'

    def check_text(self, text: str, span: Span | None) -> str:
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", text):
            fix = 'write the full address, e.g. "https://api.openai.com/v1"'
            if re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]+)?(/\S*)?", text):
                local = re.match(r"(localhost|127\.|0\.0\.0\.0|\[::1\])", text)
                fix = f'add the scheme: `"{"http" if local else "https"}://{text}"`'
            raise ValueProblem(
                INVALID_VALUE, f"`{text}` is not an http(s) URL", span, "not a URL", fix
            )
        return text.rstrip("/")


class Glob(Text):
    """A model-name pattern: ``*`` any run of characters, ``?`` one character."""

    words = "a model name or pattern"
    example = '"gpt-4o*"'

    def from_ast(self, value: syntax.Value) -> str:
        if isinstance(value, syntax.Ident):
            raise ValueProblem(
                TYPE_MISMATCH,
                f"model patterns are strings: found the bare name `{value.name}`",
                value.span,
                "put this in quotes",
                f'write `"{value.name}"`',
            )
        result = super().from_ast(value)
        assert isinstance(result, str)
        return result


class UrlPath(ValueType):
    words = "a path"
    example = "/v1/chat/completions"

    def from_ast(self, value: syntax.Value) -> str:
        if (
            isinstance(value, syntax.Literal)
            and value.kind in ("path", "string")
            and value.text.startswith("/")
        ):
            return value.text
        raise self.mismatch(value)

    def from_json(self, value: Any) -> str:
        if isinstance(value, str) and value.startswith("/"):
            return value
        raise self.json_mismatch(value)


class Secret(ValueType):
    """Where a credential comes from: ``passthrough``, ``none``, ``env("NAME")`` or a literal string."""

    words = '`passthrough`, `none` or `env("NAME")`'
    example = 'env("OPENAI_API_KEY")'

    def from_ast(self, value: syntax.Value) -> str | EnvRef | None:
        if isinstance(value, syntax.Ident) and value.name in ("passthrough", "none"):
            return None if value.name == "none" else PASSTHROUGH
        if isinstance(value, syntax.Ident):
            raise ValueProblem(
                INVALID_VALUE,
                f"unknown key source `{value.name}`",
                value.span,
                f"expected {self.words}",
                did_you_mean(value.name, ("passthrough", "none"))
                or f'to read a variable, write `env("{value.name}")`',
            )
        env = env_ref(value)
        if env is not None:
            return env
        if isinstance(value, syntax.Literal) and value.kind == "string":
            if value.text in ("passthrough", "none"):
                raise self.mismatch(value)  # a key spelt like a keyword: surely the keyword
            return value.text  # the checker warns: a secret written into a file
        raise self.mismatch(value)

    def from_json(self, value: Any) -> Any:
        raise self.json_mismatch(value)


def env_ref(value: syntax.Value) -> EnvRef | None:
    """``env("NAME")`` → EnvRef; anything else → None. A malformed env call is a problem."""
    if not (isinstance(value, syntax.Call) and value.name.name == "env"):
        return None
    args = value.arguments
    if (
        len(args) != 1
        or args[0].name is not None
        or not isinstance(args[0].value, syntax.Literal)
        or args[0].value.kind != "string"
    ):
        fix = 'write `env("NAME")`'
        if len(args) == 1 and isinstance(args[0].value, syntax.Ident):
            fix = f'put the name in quotes: `env("{args[0].value.name}")`'
        elif len(args) > 1:
            fix = 'give one variable: `env("NAME")`'
        raise ValueProblem(
            TYPE_MISMATCH,
            "`env` takes one string: the variable's name",
            value.span,
            "malformed env()",
            fix,
        )
    name = args[0].value.text
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueProblem(
            INVALID_VALUE,
            f"`{name}` is not a valid environment variable name",
            args[0].value.span,
            "not a variable name",
            "variable names are letters, digits and `_`, and do not start with a digit",
        )
    return EnvRef(name, value.span)


class ListOf(ValueType):
    """``[a, b, c]``. As an attribute's variadic values, the brackets may be left out."""

    def __init__(self, item: ValueType, *, min_items: int = 0) -> None:
        self.item = item
        self.min_items = min_items
        self.words = f"a list of {item.plural or _plural(item.words)}"
        self.example = f"[{item.example}]"

    def _too_few(self) -> str:
        if self.min_items == 1:
            return "the list is empty: give at least one item"
        return f"the list needs at least {self.min_items} items"

    def from_ast(self, value: syntax.Value) -> tuple[Any, ...]:
        if not isinstance(value, syntax.ListValue):
            raise self.mismatch(value)
        return self.items_from_ast(value.items, value.span)

    def items_from_ast(self, items: Sequence[syntax.Value], span: Span) -> tuple[Any, ...]:
        if len(items) < self.min_items:
            problem = ValueProblem(INVALID_VALUE, self._too_few(), span, "too few items")
            problem.example = self.example  # the caller shows the whole attribute or call
            raise problem
        values: list[Any] = []
        problems: list[ValueProblem] = []
        for item in items:  # every bad item is reported, not just the first
            try:
                values.append(self.item.from_ast(item))
            except ValueProblem as problem:
                problems.append(problem)
        if problems:
            raise ValueProblem.collect(problems)
        return tuple(values)

    def from_json(self, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise self.json_mismatch(value)
        if len(value) < self.min_items:
            raise ValueProblem(INVALID_VALUE, self._too_few(), None)
        return tuple(self.item.from_json(v) for v in value)


class Condition(ValueType):
    """A failover condition: ``5xx``, ``4xx``, a status code like ``429``, ``timeout``, ``connect``."""

    words = "a status class (`5xx`), a status code (`429`), `timeout` or `connect`"
    plural = "failover conditions: `5xx`, `429`, `timeout`, `connect`"
    example = "5xx"
    NAMES = ("timeout", "connect")

    def from_ast(self, value: syntax.Value) -> str:
        if isinstance(value, syntax.Literal) and value.kind == "status":
            return value.raw
        if isinstance(value, syntax.Literal) and value.kind == "number":
            return self._code(value.raw, value.span)
        if isinstance(value, syntax.Ident):
            if value.name in self.NAMES:
                return value.name
            raise ValueProblem(
                INVALID_VALUE,
                f"unknown failover condition `{value.name}`",
                value.span,
                "not a condition",
                did_you_mean(value.name, self.NAMES) or f"use {self.words}",
            )
        raise self.mismatch(value)

    def _code(self, raw: str, span: Span | None) -> str:
        if not raw.isdigit() or len(raw) != 3 or not 400 <= int(raw) <= 599:
            raise ValueProblem(
                INVALID_VALUE,
                f"`{_short(raw)}` is not an error status code",
                span,
                "expected 400–599",
                "use an error status such as `429`, or a class such as `5xx`",
            )
        return raw

    def from_json(self, value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            return self._code(str(value), None)
        if isinstance(value, str) and (
            value in self.NAMES or terminal_pattern("STATUS").fullmatch(value)
        ):
            return value
        if isinstance(value, str) and value.isdigit():
            return self._code(value, None)
        raise self.json_mismatch(value)


def _plural(words: str) -> str:
    for article in ("a ", "an "):
        if words.startswith(article):
            words = words[len(article) :]
            break
    head, _, tail = words.partition(" ")
    return (head + "s" + (" " + tail if tail else "")) if not head.endswith("s") else words


class Pairs(ValueType):
    """A small mapping written as a list of arrows: ``["fast" -> "gpt-4o-mini", …]``."""

    words = 'a list of `"from" -> "to"` pairs'
    example = '["fast" -> "gpt-4o-mini"]'

    def __init__(self, key: ValueType | None = None, value: ValueType | None = None) -> None:
        self.key = key or Text()
        self.value = value or Text()

    def from_ast(self, value: syntax.Value) -> tuple[tuple[Any, Any], ...]:
        if not isinstance(value, syntax.ListValue):
            raise self.mismatch(value)
        pairs: list[tuple[Any, Any]] = []
        seen: set[Any] = set()
        problems: list[ValueProblem] = []
        for item in value.items:
            try:
                if not (isinstance(item, syntax.Chain) and len(item.steps) == 2):
                    raise ValueProblem(
                        TYPE_MISMATCH,
                        f'expected a pair `"from" -> "to"`, found {syntax.describe(item)}',
                        item.span,
                        "not a pair",
                        f"for example `{self.example}`",
                    )
                key = self.key.from_ast(item.steps[0])
                if key in seen:
                    raise ValueProblem(
                        INVALID_VALUE,
                        f"`{key}` is mapped twice",
                        item.span,
                        "repeated key",
                        f"keep one mapping for `{key}`",
                    )
                seen.add(key)
                pairs.append((key, self.value.from_ast(item.steps[1])))
            except ValueProblem as problem:
                problems.append(problem)
        if problems:
            raise ValueProblem.collect(problems)
        return tuple(pairs)

    def from_json(self, value: Any) -> tuple[tuple[Any, Any], ...]:
        if not isinstance(value, dict):
            raise self.json_mismatch(value)
        return tuple((self.key.from_json(k), self.value.from_json(v)) for k, v in value.items())


class Network(Text):
    """An IP network in CIDR notation, or a single address."""

    words = "an IP network"
    example = '"10.0.0.0/8"'

    def check_text(self, text: str, span: Span | None) -> str:
        import ipaddress

        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueProblem(
                INVALID_VALUE,
                f"`{text}` is not an IP address or network",
                span,
                "not a network",
                'write an address or CIDR block, e.g. `"10.0.0.0/8"` or `"::1"`',
            ) from None


class Word(ValueType):
    """A bare name (``kind openai``); a string is accepted too."""

    words = "a name"
    example = "openai"

    def from_ast(self, value: syntax.Value) -> str:
        if isinstance(value, syntax.Ident):
            return value.name
        if isinstance(value, syntax.Literal) and value.kind == "string" and value.text:
            return value.text
        raise self.mismatch(value)

    def from_json(self, value: Any) -> str:
        if isinstance(value, str) and value:
            return value
        raise self.json_mismatch(value)
