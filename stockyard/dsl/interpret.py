"""Read a block's attributes against its schema: typed values, or diagnostics saying why not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.span import Span
from . import syntax
from .diagnostics import Diagnostic, Label, Severity
from .schema import AttributeSpec, BlockSpec
from .suggest import closest, did_you_mean
from .value_types import ValueProblem


@dataclass(frozen=True, slots=True)
class AttrValue:
    """One attribute as read: positional values, clause values, and where each came from."""

    spec: AttributeSpec
    node: syntax.Attribute
    positional: tuple[Any, ...]
    positional_spans: tuple[Span, ...]
    clauses: Mapping[str, Any]
    clause_spans: Mapping[str, Span]

    @property
    def first(self) -> Any:
        return self.positional[0] if self.positional else None

    @property
    def span(self) -> Span:
        return self.node.span


@dataclass
class BlockValues:
    block: syntax.Block
    attributes: dict[str, list[AttrValue]] = field(default_factory=dict)
    # Attributes that a misspelt one probably is (`pth` → `path`): already reported.
    misspelt: set[str] = field(default_factory=set)

    def get(self, name: str) -> AttrValue | None:
        values = self.attributes.get(name)
        return values[0] if values else None


def problem_diagnostics(
    problem: ValueProblem,
    fallback: Span,
    example: str | None = None,
    severity: Severity = Severity.ERROR,
) -> list[Diagnostic]:
    """One diagnostic per problem (a list can hold several bad items). ``example`` is how the
    whole attribute or call is written, shown when the problem has no more specific help."""
    result = []
    for p in problem.all():
        help_text = p.help
        if help_text is None and (example or p.example):
            help_text = f"for example `{example or p.example}`"
        result.append(
            Diagnostic(
                p.code, severity, p.message, p.span or fallback, p.label or "here", help=help_text
            )
        )
    return result


def split_shared_lines(block: syntax.Block, spec: BlockSpec) -> tuple[syntax.Attribute, ...]:
    """``input $1/1M output $2/1M`` → two attributes, for blocks that allow it."""
    if not spec.several_per_line:
        return block.attributes
    result: list[syntax.Attribute] = []
    for attr in block.attributes:
        name, values = attr.name, list(attr.values)
        start = 0
        for index in range(1, len(values) + 1):
            at_end = index == len(values)
            item = values[index] if not at_end else None
            if at_end or (
                isinstance(item, syntax.Ident) and item.name in spec.attributes and index > start
            ):
                own = tuple(values[start:index])
                end = own[-1].span if own else name.span
                result.append(syntax.Attribute(name, own, name.span.to(end)))
                if not at_end:
                    assert isinstance(item, syntax.Ident)
                    name = item
                    start = index + 1
    return tuple(result)


def split_run_on_lines(
    nodes: tuple[syntax.Attribute, ...],
    allowed: Mapping[str, AttributeSpec],
    diagnostics: list[Diagnostic],
) -> tuple[syntax.Attribute, ...]:
    """``models "a",`` then ``chain openai`` on the next line: the trailing `,` (or `->`, `|`)
    continues the line, so `chain` is read as a value of `models`. Say so once, and read the
    next line as the attribute it was meant to be rather than reporting its consequences."""
    result: list[syntax.Attribute] = []
    pending = list(nodes)
    while pending:
        node = pending.pop(0)
        split = _run_on(node, allowed)
        if split is None:
            result.append(node)
            continue
        head, name, rest, joiner, previous_line = split
        diagnostics.append(
            Diagnostic(
                "SY001",
                Severity.ERROR,
                f"`{name.name}` on line {name.span.line} is read as part of `{node.name.name}`",
                name.span,
                f"continues `{node.name.name}` from line {previous_line}",
                notes=(f"a line that ends with {joiner} continues on the next line",),
                help=f"remove the {joiner} at the end of line {previous_line}",
            )
        )
        end = head[-1].span if head else node.name.span
        result.append(syntax.Attribute(node.name, head, node.name.span.to(end)))
        end = rest[-1].span if rest else name.span
        pending.insert(0, syntax.Attribute(name, rest, name.span.to(end)))
    return tuple(result)


def _run_on(
    node: syntax.Attribute, allowed: Mapping[str, AttributeSpec]
) -> tuple[tuple[syntax.Value, ...], syntax.Ident, tuple[syntax.Value, ...], str, int] | None:
    """Where an attribute name starts a new line inside ``node``'s values: (values before it,
    the name, values after it, what continued the line, the line it continued)."""
    previous_end = node.name.span.end_line
    if node.span.end_line == previous_end:
        return None  # all on one line: nothing can start a new one
    values = node.values
    for index, value in enumerate(values):
        if (
            isinstance(value, syntax.Ident)
            and value.name in allowed
            and value.span.line > previous_end
        ):
            return values[:index], value, values[index + 1 :], "`,`", previous_end
        if isinstance(value, syntax.Chain | syntax.Tier):
            steps = value.steps if isinstance(value, syntax.Chain) else value.members
            joiner = "`->`" if isinstance(value, syntax.Chain) else "`|`"
            for k in range(1, len(steps)):
                step = steps[k]
                if (
                    isinstance(step, syntax.Ident)
                    and step.name in allowed
                    and step.span.line > steps[k - 1].span.end_line
                ):
                    before = _join(steps[:k], value)
                    after = _join(steps[k + 1 :], value)
                    return (
                        (*values[:index], *before),
                        step,
                        (*after, *values[index + 1 :]),
                        joiner,
                        steps[k - 1].span.end_line,
                    )
        previous_end = value.span.end_line
    return None


def _join(
    steps: tuple[syntax.Value, ...], like: syntax.Chain | syntax.Tier
) -> tuple[syntax.Value, ...]:
    if len(steps) <= 1:
        return steps
    span = steps[0].span.to(steps[-1].span)
    return (
        syntax.Chain(steps, span) if isinstance(like, syntax.Chain) else syntax.Tier(steps, span),
    )


def read_block(
    block: syntax.Block,
    spec: BlockSpec,
    extra: Mapping[str, AttributeSpec],
    extra_owner: str,
    diagnostics: list[Diagnostic],
    elsewhere: Mapping[str, str] | None = None,
) -> BlockValues:
    """Validate every attribute of ``block``; report all problems, keep what is valid.
    ``elsewhere`` names where attributes not allowed here do belong (for a hint)."""
    result = BlockValues(block)
    allowed = {**spec.attributes, **extra}
    meant = result.misspelt
    written = set(block.broken)  # every attribute written, valid or not
    nodes = split_run_on_lines(split_shared_lines(block, spec), allowed, diagnostics)
    for node in nodes:
        name = node.name.name
        written.add(name)
        attr_spec = allowed.get(name)
        if attr_spec is None:
            diagnostics.append(
                _unknown_attribute(node, spec, allowed, extra_owner, elsewhere or {})
            )
            guess = closest(name, allowed) or _glued(name, allowed)
            if guess is not None:
                meant.add(guess)
            continue
        previous = result.attributes.get(name)
        if previous and not attr_spec.repeatable:
            diagnostics.append(
                Diagnostic(
                    "SY105",
                    Severity.ERROR,
                    f"`{name}` is set twice in {spec.kind} `{block.name or spec.kind}`",
                    node.name.span,
                    "set again here",
                    help=f"keep one `{name}` line",
                    related=(Label(previous[0].node.name.span, "first set here"),),
                )
            )
            continue
        value = read_attribute(node, attr_spec, diagnostics)
        if value is not None:
            result.attributes.setdefault(name, []).append(value)
    for attr_spec in allowed.values():
        if attr_spec.required and attr_spec.name not in result.attributes:
            if attr_spec.name in written:
                continue  # present but invalid: already reported
            if attr_spec.name in meant:
                continue  # misspelt: "did you mean" already says so
            diagnostics.append(
                Diagnostic(
                    "SY104",
                    Severity.ERROR,
                    f"{spec.kind} `{block.name or spec.kind}` has no `{attr_spec.name}`",
                    block.header,
                    f"`{attr_spec.name}` is required",
                    notes=(f"`{attr_spec.name}`: {attr_spec.doc}",),
                    help=f"add `{attr_spec.example}`",
                )
            )
    return result


def _glued(name: str, allowed: Mapping[str, AttributeSpec]) -> str | None:
    """`chainopenai`: an attribute name run into its value."""
    for attribute in sorted(allowed, key=len, reverse=True):
        if len(attribute) >= 4 and name.startswith(attribute) and len(name) > len(attribute):
            return attribute
    return None


def _unknown_attribute(
    node: syntax.Attribute,
    spec: BlockSpec,
    allowed: Mapping[str, AttributeSpec],
    extra_owner: str,
    elsewhere: Mapping[str, str],
) -> Diagnostic:
    name = node.name.name
    suggestion = did_you_mean(name, allowed)
    glued = _glued(name, allowed)
    if suggestion is None and glued is not None:
        suggestion = f"is a space missing? `{glued} {name[len(glued) :]}`"
    notes: tuple[str, ...] = ()
    if suggestion is None:
        notes = (f"{spec.kind} blocks accept: {', '.join(f'`{a}`' for a in allowed)}",)
        if name in elsewhere:
            suggestion = f"`{name}` is an attribute of {elsewhere[name]}"
    what = f"{spec.kind} {extra_owner}".strip()
    return Diagnostic(
        "SY103",
        Severity.ERROR,
        f"unknown attribute `{name}` in {what}",
        node.name.span,
        "not an attribute here",
        notes=notes,
        help=suggestion,
    )


def read_attribute(
    node: syntax.Attribute, spec: AttributeSpec, diagnostics: list[Diagnostic]
) -> AttrValue | None:
    positional: list[Any] = []
    positional_spans: list[Span] = []
    clauses: dict[str, Any] = {}
    clause_spans: dict[str, Span] = {}
    ok = True
    values = node.values
    if not values:
        diagnostics.append(
            Diagnostic(
                "SY107",
                Severity.ERROR,
                f"`{spec.name}` needs a value",
                node.span,
                "nothing after this",
                notes=(f"`{spec.name}`: {spec.doc}",),
                help=f"for example `{spec.example}`",
            )
        )
        return None
    index = 0
    while index < len(values):
        value = values[index]
        if isinstance(value, syntax.Ident) and value.name in spec.clauses:
            if value.name in clauses:
                diagnostics.append(
                    Diagnostic(
                        "SY105",
                        Severity.ERROR,
                        f"`{value.name}` is given twice in `{spec.name}`",
                        value.span,
                        "given again here",
                        help=f"keep one `{value.name}`",
                        related=(Label(clause_spans[value.name], "first given here"),),
                    )
                )
                ok = False
            elif index + 1 >= len(values):
                clause_type = spec.clauses[value.name]
                diagnostics.append(
                    Diagnostic(
                        "SY107",
                        Severity.ERROR,
                        f"`{value.name}` needs a value: expected {clause_type.words}",
                        value.span,
                        "value missing after this",
                        help=f"for example `{spec.example}`",
                    )
                )
                ok = False
            else:
                target = values[index + 1]
                try:
                    clauses[value.name] = spec.clauses[value.name].from_ast(target)
                    clause_spans[value.name] = value.span.to(target.span)
                except ValueProblem as problem:
                    diagnostics += problem_diagnostics(problem, target.span, spec.example)
                    ok = False
            index += 2
            continue
        slot = len(positional)
        value_type = spec.positional[slot] if slot < len(spec.positional) else spec.variadic
        if value_type is None:
            diagnostics.append(_extra_value(node, spec, value))
            return None
        try:
            positional.append(value_type.from_ast(value))
            positional_spans.append(value.span)
        except ValueProblem as problem:
            if (
                spec.clauses
                and isinstance(value, syntax.Ident)
                and slot >= len(spec.positional) - (1 if spec.optional_positional else 0)
            ):
                diagnostics.append(_unknown_clause(spec, value))
            else:
                diagnostics += problem_diagnostics(problem, value.span, spec.example)
            ok = False
            positional.append(None)
            positional_spans.append(value.span)
        index += 1
    if not ok:
        return None
    if len(positional) < spec.min_positional:
        missing = (
            spec.positional[len(positional)]
            if len(positional) < len(spec.positional)
            else spec.variadic
        )
        words = missing.words if missing else "a value"
        diagnostics.append(
            Diagnostic(
                "SY107",
                Severity.ERROR,
                f"`{spec.name}` needs {words}",
                node.span,
                "value missing",
                help=f"for example `{spec.example}`",
            )
        )
        return None
    if spec.variadic is not None:
        _repeated_values(spec, positional, positional_spans, diagnostics)
    if spec.exclusive and positional and clauses:
        first = _source_text(values[0])
        written = ", ".join(f"`{c}`" for c in clauses)
        diagnostics.append(
            Diagnostic(
                "SY109",
                Severity.ERROR,
                f"`{spec.name} {first}` cannot be combined with {written}",
                node.span,
                "contradictory",
                help=f"write either `{spec.name} {first}` or `{spec.example}`",
            )
        )
        return None
    if spec.needs_one_clause and not clauses:
        diagnostics.append(
            Diagnostic(
                "SY107",
                Severity.ERROR,
                f"`{spec.name}` needs at least one of " + ", ".join(f"`{c}`" for c in spec.clauses),
                node.span,
                "nothing set",
                help=f"for example `{spec.example}`",
            )
        )
        return None
    return AttrValue(spec, node, tuple(positional), tuple(positional_spans), clauses, clause_spans)


def _repeated_values(
    spec: AttributeSpec, values: list[Any], spans: list[Span], diagnostics: list[Diagnostic]
) -> None:
    """`path /v1/chat/completions, /v1/chat/completions`: harmless, but surely not meant."""
    first_seen: dict[Any, Span] = {}
    for value, span in zip(values[len(spec.positional) :], spans[len(spec.positional) :]):
        if value in first_seen:
            diagnostics.append(
                Diagnostic(
                    "SY313",
                    Severity.WARNING,
                    f"`{value}` is listed twice in `{spec.name}`",
                    span,
                    "listed again here",
                    help="remove one; was another value meant?",
                    related=(Label(first_seen[value], "first listed here"),),
                )
            )
        else:
            first_seen[value] = span


def _unknown_clause(spec: AttributeSpec, value: syntax.Ident) -> Diagnostic:
    suggestion = did_you_mean(value.name, spec.clauses)
    return Diagnostic(
        "SY108",
        Severity.ERROR,
        f"unknown option `{value.name}` for `{spec.name}`",
        value.span,
        "not an option of `" + spec.name + "`",
        notes=(f"`{spec.name}` takes: " + ", ".join(f"`{c}`" for c in spec.clauses),),
        help=suggestion or f"for example `{spec.example}`",
    )


def _extra_value(node: syntax.Attribute, spec: AttributeSpec, value: syntax.Value) -> Diagnostic:
    if spec.clauses and isinstance(value, syntax.Ident):
        return _unknown_clause(spec, value)
    help_text = f"for example `{spec.example}`"
    if any(isinstance(v, syntax.Ident) for v in node.values[1:]) and not spec.clauses:
        help_text = "one attribute per line, or separate them with `;`"
    return Diagnostic(
        "SY107",
        Severity.ERROR,
        f"too many values for `{spec.name}`",
        value.span,
        f"{syntax.describe(value)} is not expected here",
        help=help_text,
    )


def _source_text(value: syntax.Value) -> str:
    if isinstance(value, syntax.Literal):
        return value.raw
    if isinstance(value, syntax.Ident):
        return value.name
    return "…"
