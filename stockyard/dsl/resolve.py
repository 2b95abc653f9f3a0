"""Resolve the two expressions that name other things: provider chains and module lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import ast
from .diagnostics import Diagnostic, Label, Severity
from .interpret import problem_to_diagnostic
from .schema import ModuleSpec
from .span import Span
from .suggest import did_you_mean
from .types import Integer, Text, ValueProblem


@dataclass(frozen=True, slots=True)
class Hop:
    provider: str
    model: str | None
    weight: int
    span: Span


@dataclass(frozen=True, slots=True)
class ModuleUse:
    name: str
    params: Mapping[str, Any]  # every parameter, defaults filled in
    given: frozenset[str]  # the parameters written in the file
    spec: ModuleSpec
    span: Span


HOP_PARAMS = {"model": Text(), "weight": Integer(1, 1000)}


def resolve_chain(
    expr: ast.Value,
    providers: Mapping[str, Span],
    diagnostics: list[Diagnostic],
) -> tuple[tuple[Hop, ...], ...] | None:
    """``a -> b | c(weight: 2)`` → ((a,), (b, c)). ``providers`` maps names to declarations."""
    steps = expr.steps if isinstance(expr, ast.Chain) else (expr,)
    tiers: list[tuple[Hop, ...]] = []
    seen: dict[str, Span] = {}
    ok = True
    where = {name: str(span) for name, span in providers.items()}
    for step in steps:
        members = step.members if isinstance(step, ast.Tier) else (step,)
        hops: list[Hop] = []
        for member in members:
            hop = _hop(member, isinstance(step, ast.Tier), diagnostics)
            if hop is None:
                ok = False
                continue
            if hop.provider not in providers:
                diagnostics.append(
                    Diagnostic(
                        "SY201",
                        Severity.ERROR,
                        f"unknown provider `{hop.provider}`",
                        _name_span(member),
                        "not declared in any .pipe file",
                        help=did_you_mean(hop.provider, providers, where)
                        or "declare it: `provider " + hop.provider + " { kind … }`",
                    )
                )
                ok = False
            elif hop.provider in seen:
                diagnostics.append(
                    Diagnostic(
                        "SY206",
                        Severity.ERROR,
                        f"provider `{hop.provider}` appears twice in one chain",
                        _name_span(member),
                        "second time here",
                        notes=("a failed provider would be tried again instead of the next one",),
                        help="list each provider once; use `retry` to try the same provider again",
                        related=(Label(seen[hop.provider], "first here"),),
                    )
                )
                ok = False
            else:
                seen[hop.provider] = _name_span(member)
            hops.append(hop)
        tiers.append(tuple(hops))
    return tuple(tiers) if ok else None


def _name_span(member: ast.Value) -> Span:
    if isinstance(member, ast.Call):
        return member.name.span
    return member.span


def _hop(member: ast.Value, in_tier: bool, diagnostics: list[Diagnostic]) -> Hop | None:
    if isinstance(member, ast.Ident):
        return Hop(member.name, None, 1, member.span)
    if not isinstance(member, ast.Call):
        diagnostics.append(
            Diagnostic(
                "SY106",
                Severity.ERROR,
                f"expected a provider name, found {ast.describe(member)}",
                member.span,
                "not a provider",
                help='a chain names providers: `openai -> claude(model: "claude-3-5-haiku-latest")`',
            )
        )
        return None
    params = _call_params(member, HOP_PARAMS, f"chain step `{member.name.name}`", diagnostics)
    if params is None:
        return None
    weight = params.get("weight", (1, None))
    if weight[1] is not None and not in_tier:
        diagnostics.append(
            Diagnostic(
                "SY309",
                Severity.WARNING,
                "`weight` has no effect outside a `|` tier",
                weight[1],
                "ignored",
                help="weights split traffic within `a | b`; in `a -> b` order decides",
            )
        )
    model = params.get("model", (None, None))[0]
    return Hop(member.name.name, model, weight[0], member.span)


def _call_params(
    call: ast.Call,
    schema: Mapping[str, Any],
    owner: str,
    diagnostics: list[Diagnostic],
) -> dict[str, tuple[Any, Span]] | None:
    """Named arguments of a call checked against ``schema`` (name → ValueType)."""
    result: dict[str, tuple[Any, Span]] = {}
    ok = True
    for argument in call.arguments:
        if argument.name is None:
            diagnostics.append(
                Diagnostic(
                    "SY106",
                    Severity.ERROR,
                    f"parameters of {owner} are named",
                    argument.span,
                    "name this value",
                    help=_named_example(schema, argument.value),
                )
            )
            ok = False
            continue
        name = argument.name.name
        if name not in schema:
            notes = (
                ("takes: " + ", ".join(f"`{p}`" for p in schema),)
                if schema
                else (f"{owner} takes no parameters",)
            )
            diagnostics.append(
                Diagnostic(
                    "SY203",
                    Severity.ERROR,
                    f"unknown parameter `{name}` for {owner}",
                    argument.name.span,
                    "no such parameter",
                    notes=notes,
                    help=did_you_mean(name, schema),
                )
            )
            ok = False
            continue
        if name in result:
            diagnostics.append(
                Diagnostic(
                    "SY208",
                    Severity.ERROR,
                    f"parameter `{name}` is given twice",
                    argument.name.span,
                    "given again here",
                    related=(Label(result[name][1], "first given here"),),
                )
            )
            ok = False
            continue
        value_type = schema[name]
        value_type = getattr(value_type, "type", value_type)  # a Param or a bare ValueType
        try:
            result[name] = (value_type.from_ast(argument.value), argument.span)
        except ValueProblem as problem:
            diagnostics.append(problem_to_diagnostic(problem, argument.value.span))
            ok = False
    return result if ok else None


def _named_example(schema: Mapping[str, Any], value: ast.Value) -> str:
    if not schema:
        return "remove the parentheses"
    raw = value.raw if isinstance(value, ast.Literal) else "…"
    first = next(iter(schema))
    return f"write `{first}: {raw}`" + (
        f" (parameters: {', '.join(schema)})" if len(schema) > 1 else ""
    )


def resolve_modules(
    value: ast.ListValue,
    registry: Mapping[str, ModuleSpec],
    diagnostics: list[Diagnostic],
) -> tuple[ModuleUse, ...] | None:
    uses: list[ModuleUse] = []
    seen: dict[str, Span] = {}
    ok = True
    for item in value.items:
        if isinstance(item, ast.Ident):
            name, name_span, call = item.name, item.span, None
        elif isinstance(item, ast.Call):
            name, name_span, call = item.name.name, item.name.span, item
        else:
            diagnostics.append(
                Diagnostic(
                    "SY106",
                    Severity.ERROR,
                    f"expected a module, found {ast.describe(item)}",
                    item.span,
                    "not a module",
                    help="for example `[trace, audit, cache(ttl: 10m)]`",
                )
            )
            ok = False
            continue
        spec = registry.get(name)
        if spec is None:
            diagnostics.append(
                Diagnostic(
                    "SY202",
                    Severity.ERROR,
                    f"unknown module `{name}`",
                    name_span,
                    "no such module",
                    notes=("modules: " + ", ".join(f"`{m}`" for m in sorted(registry)),),
                    help=did_you_mean(name, registry),
                )
            )
            ok = False
            continue
        if name in seen:
            diagnostics.append(
                Diagnostic(
                    "SY207",
                    Severity.ERROR,
                    f"module `{name}` is listed twice",
                    name_span,
                    "listed again here",
                    help="keep one; modules run once, in the order written",
                    related=(Label(seen[name], "first listed here"),),
                )
            )
            ok = False
            continue
        seen[name] = name_span
        use = _module_use(spec, call, item.span, diagnostics)
        if use is None:
            ok = False
        else:
            uses.append(use)
    return tuple(uses) if ok else None


def _module_use(
    spec: ModuleSpec, call: ast.Call | None, span: Span, diagnostics: list[Diagnostic]
) -> ModuleUse | None:
    given: dict[str, tuple[Any, Span]] = {}
    if call is not None:
        parsed = _call_params(call, spec.params, f"module `{spec.name}`", diagnostics)
        if parsed is None:
            return None
        given = parsed
    params: dict[str, Any] = {}
    ok = True
    for name, param in spec.params.items():
        if name in given:
            params[name] = given[name][0]
        elif param.required:
            diagnostics.append(
                Diagnostic(
                    "SY204",
                    Severity.ERROR,
                    f"module `{spec.name}` needs parameter `{name}`",
                    span,
                    f"`{name}` missing",
                    notes=(f"`{name}`: {param.doc}",),
                    help=f"write `{spec.name}({name}: {param.example})`",
                )
            )
            ok = False
        else:
            params[name] = param.default
    if not ok:
        return None
    if spec.validate is not None:
        problems = spec.validate(params)
        for problem in problems:
            diagnostics.append(problem_to_diagnostic(problem, span))
        if problems:
            return None
    return ModuleUse(spec.name, params, frozenset(given), spec, span)
