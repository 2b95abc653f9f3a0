"""Resolve the two expressions that name other things: provider chains and module lists."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.span import Span
from . import syntax
from .diagnostics import Diagnostic, Label, Severity
from .interpret import problem_diagnostics
from .schema import ModuleSpec
from .suggest import did_you_mean
from .value_types import Integer, Text, ValueProblem


@dataclass(frozen=True, slots=True)
class Hop:
    provider: str
    model: str | None
    weight: int
    span: Span
    model_span: Span | None = None  # where `model: "…"` is written


@dataclass(frozen=True, slots=True)
class ModuleUse:
    name: str
    params: Mapping[str, Any]  # every parameter, defaults filled in
    spec: ModuleSpec
    span: Span


HOP_PARAMS = {"model": Text(), "weight": Integer(1, 1000)}
HOP_EXAMPLES = {"model": '"gpt-4o-mini"', "weight": "3"}


def resolve_chain(
    expr: syntax.Value,
    providers: Mapping[str, Span],
    diagnostics: list[Diagnostic],
    unreadable: Collection[str] = (),
    kinds: Collection[str] = (),
) -> tuple[tuple[Hop, ...], ...] | None:
    """``a -> b | c(weight: 2)`` → ((a,), (b, c)). ``providers`` maps names to declarations;
    ``unreadable`` names providers whose block had an error of its own (not reported again)."""
    steps = expr.steps if isinstance(expr, syntax.Chain) else (expr,)
    tiers: list[tuple[Hop, ...]] = []
    seen: dict[str, tuple[Span, int]] = {}
    ok = True
    for tier_index, step in enumerate(steps):
        members = step.members if isinstance(step, syntax.Tier) else (step,)
        hops: list[Hop] = []
        for member in members:
            hop = _hop(member, isinstance(step, syntax.Tier), diagnostics)
            if hop is None:
                ok = False
                continue
            if hop.provider in unreadable and hop.provider not in providers:
                ok = False  # its block is broken; that error is the one to fix
            elif hop.provider not in providers:
                declare = f"declare it: `provider {hop.provider} {{ kind … }}`"
                if hop.provider in kinds:
                    declare = f"declare it: `provider {hop.provider} {{ kind {hop.provider} }}`"
                diagnostics.append(
                    Diagnostic(
                        "SY201",
                        Severity.ERROR,
                        f"unknown provider `{hop.provider}`",
                        _name_span(member),
                        "not declared in any .pipe file",
                        help=did_you_mean(
                            hop.provider, providers, {n: str(s) for n, s in providers.items()}
                        )
                        or declare,
                    )
                )
                ok = False
            elif hop.provider in seen:
                first_span, first_tier = seen[hop.provider]
                if first_tier == tier_index:
                    note = f"`{hop.provider}` would get two shares of this tier's traffic"
                    fix = "list each provider once; give it a larger `weight` instead"
                else:
                    note = "a failed provider would be tried again instead of the next one"
                    fix = "list each provider once; use `retry` to try the same provider again"
                diagnostics.append(
                    Diagnostic(
                        "SY206",
                        Severity.ERROR,
                        f"provider `{hop.provider}` appears twice in one chain",
                        _name_span(member),
                        "second time here",
                        notes=(note,),
                        help=fix,
                        related=(Label(first_span, "first here"),),
                    )
                )
                ok = False
            else:
                seen[hop.provider] = (_name_span(member), tier_index)
            hops.append(hop)
        tiers.append(tuple(hops))
    return tuple(tiers) if ok else None


def _name_span(member: syntax.Value) -> Span:
    if isinstance(member, syntax.Call):
        return member.name.span
    return member.span


def _hop(member: syntax.Value, in_tier: bool, diagnostics: list[Diagnostic]) -> Hop | None:
    if isinstance(member, syntax.Ident):
        return Hop(member.name, None, 1, member.span)
    if not isinstance(member, syntax.Call):
        diagnostics.append(
            Diagnostic(
                "SY106",
                Severity.ERROR,
                f"expected a provider name, found {syntax.describe(member)}",
                member.span,
                "not a provider",
                help='a chain names providers: `openai -> claude(model: "claude-3-5-haiku-latest")`',
            )
        )
        return None
    params = _call_params(
        member, HOP_PARAMS, f"chain step `{member.name.name}`", diagnostics, HOP_EXAMPLES
    )
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
    model_span = next(
        (a.value.span for a in member.arguments if a.name and a.name.name == "model"), None
    )
    return Hop(member.name.name, model, weight[0], member.span, model_span)


def _call_params(
    call: syntax.Call,
    schema: Mapping[str, Any],
    owner: str,
    diagnostics: list[Diagnostic],
    examples: Mapping[str, str] | None = None,
) -> dict[str, tuple[Any, Span]] | None:
    """Named arguments of a call checked against ``schema`` (name → Param or ValueType).
    ``examples`` gives a sample value per parameter (a Param carries its own)."""
    result: dict[str, tuple[Any, Span]] = {}
    ok = True
    for argument in call.arguments:
        if argument.name is None and not schema:
            diagnostics.append(
                Diagnostic(
                    "SY203",
                    Severity.ERROR,
                    f"{owner} takes no parameters",
                    argument.span,
                    "remove this",
                    help=f"write `{call.name.name}` without parentheses",
                )
            )
            ok = False
            continue
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
                    help=did_you_mean(name, schema)
                    or (None if schema else f"write `{call.name.name}` without parentheses"),
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
                    help=f"keep one `{name}`",
                    related=(Label(result[name][1], "first given here"),),
                )
            )
            ok = False
            continue
        param = schema[name]
        value_type = getattr(param, "type", param)  # a Param or a bare ValueType
        try:
            result[name] = (value_type.from_ast(argument.value), argument.span)
        except ValueProblem as problem:
            sample = getattr(param, "example", "") if param is not value_type else ""
            sample = sample or (examples or {}).get(name, "")
            example = f"{call.name.name}({name}: {sample})" if sample else None
            diagnostics += problem_diagnostics(problem, argument.value.span, example)
            ok = False
    return result if ok else None


def _named_example(schema: Mapping[str, Any], value: syntax.Value) -> str:
    raw = value.raw if isinstance(value, syntax.Literal) else "…"
    first = next(iter(schema))
    return f"write `{first}: {raw}`" + (
        f" (parameters: {', '.join(f'`{p}`' for p in schema)})" if len(schema) > 1 else ""
    )


def resolve_modules(
    value: syntax.ListValue,
    registry: Mapping[str, ModuleSpec],
    diagnostics: list[Diagnostic],
) -> tuple[ModuleUse, ...] | None:
    uses: list[ModuleUse] = []
    seen: dict[str, Span] = {}
    ok = True
    for item in value.items:
        if isinstance(item, syntax.Ident):
            name, name_span, call = item.name, item.span, None
        elif isinstance(item, syntax.Call):
            name, name_span, call = item.name.name, item.name.span, item
        else:
            diagnostics.append(
                Diagnostic(
                    "SY106",
                    Severity.ERROR,
                    f"expected a module, found {syntax.describe(item)}",
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
    spec: ModuleSpec, call: syntax.Call | None, span: Span, diagnostics: list[Diagnostic]
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
            diagnostics += problem_diagnostics(problem, span)
        if problems:
            return None
    return ModuleUse(spec.name, params, spec, span)
