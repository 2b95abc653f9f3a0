"""Check all ``.pipe`` files together: every problem in one run, never stopping at the first.

Pipeline: parse each file → read each block against its schema → resolve names across files
(providers, modules, prices) → route-level semantics (:mod:`.route_checks`). The result keeps
what was read (a :class:`Program`) so the compiler does not read anything twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.generation import PASSTHROUGH
from ..core.span import Span
from ..core.values import EnvRef
from . import syntax
from .blocks import BLOCKS, DEFAULTS, PRICE, PROVIDER, ROUTE
from .diagnostics import Diagnostic, Label, Severity
from .grammar import terminal_pattern
from .interpret import BlockValues, read_block
from .parser import parse
from .resolve import Hop, ModuleUse, resolve_chain, resolve_modules
from .schema import ModuleSpec, ProviderKind
from .suggest import closest, did_you_mean


@dataclass
class ProviderDecl:
    name: str
    values: BlockValues
    kind: ProviderKind | None


@dataclass
class RouteDecl:
    name: str
    values: BlockValues
    chain: tuple[tuple[Hop, ...], ...] | None = None
    modules: tuple[ModuleUse, ...] | None = None
    modules_from_defaults: bool = False


@dataclass
class Program:
    files: tuple[syntax.SourceFile, ...]
    providers: dict[str, ProviderDecl] = field(default_factory=dict)
    routes: list[RouteDecl] = field(default_factory=list)
    prices: dict[str, BlockValues] = field(default_factory=dict)
    defaults: BlockValues | None = None
    default_modules: tuple[ModuleUse, ...] | None = None
    # Blocks that could not be read (a syntax error, an unknown or misspelt block kind, a bad
    # label): kind -> the names they declare. Their problem is reported once; references to
    # them are not reported again as unknown, and checks that need them are skipped.
    unreadable: dict[str, set[str | None]] = field(default_factory=dict)

    def could_not_read(self, kind: str, name: str | None = None) -> bool:
        names = self.unreadable.get(kind)
        return names is not None and (name in names)

    def note_unreadable(self, kind: str, name: str | None) -> None:
        self.unreadable.setdefault(kind, set()).add(name)


@dataclass(frozen=True)
class CheckOptions:
    check_env: bool = True
    environ: Mapping[str, str] | None = None  # default: os.environ
    known_prices: Iterable[str] = ()  # model ids priced by the shipped table
    # The runtime's price matcher: (model, overrides) -> a price or None. When given, the
    # checker asks it whether a model is priced, so that check and gateway agree on which
    # ids match (prefixes at separators, case, `provider/` parts).
    price_lookup: Callable[[str, Mapping[str, Any]], object | None] | None = None


def check_sources(
    sources: Iterable[tuple[str, str]],
    registry: Mapping[str, ModuleSpec],
    kinds: Mapping[str, ProviderKind],
    options: CheckOptions = CheckOptions(),
) -> tuple[Program, list[Diagnostic]]:
    """Check ``(path, text)`` pairs. Returns what was read and every diagnostic, sorted."""
    from .route_checks import check_routes  # late: route_checks imports Program from here

    diagnostics: list[Diagnostic] = []
    files = []
    for path, text in sorted(sources):
        source, problems = parse(text, path)
        files.append(source)
        diagnostics += problems
    program = Program(tuple(files))
    for source in files:
        for broken in source.broken:
            program.note_unreadable(broken.kind, broken.name)
    _read_blocks(program, kinds, diagnostics)
    # Whether the modules routes inherit are known: not when the defaults block is unreadable
    # or its `modules` has an error (reported there; routes are not checked against a guess).
    defaults_ok = "defaults" not in program.unreadable
    if program.defaults is not None:
        modules_attr = program.defaults.get("modules")
        if modules_attr is not None:
            program.default_modules = resolve_modules(modules_attr.first, registry, diagnostics)
        if _has_attribute(program.defaults.block, "modules") and program.default_modules is None:
            defaults_ok = False
    # A declared provider has its name: a block without one is reported and not declared.
    provider_spans = {
        name: p.values.block.label.span
        for name, p in program.providers.items()
        if p.values.block.label is not None
    }
    unreadable_providers = {n for n in program.unreadable.get("provider", ()) if n}
    for route in program.routes:
        chain_attr = route.values.get("chain")
        if chain_attr is not None:
            route.chain = resolve_chain(
                chain_attr.first, provider_spans, diagnostics, unreadable_providers, kinds
            )
        modules_attr = route.values.get("modules")
        if modules_attr is not None:
            route.modules = resolve_modules(modules_attr.first, registry, diagnostics)
        elif _has_attribute(route.values.block, "modules") or not defaults_ok:
            route.modules = None  # written but invalid: already reported
        else:
            route.modules = program.default_modules or ()
            route.modules_from_defaults = program.default_modules is not None
    check_routes(program, options, diagnostics)
    _check_providers(program, diagnostics)
    _check_env(program, options, diagnostics)
    diagnostics.sort(key=Diagnostic.sort_key)
    return program, diagnostics


def _has_attribute(block: syntax.Block, name: str) -> bool:
    return block.has(name)


def _read_blocks(
    program: Program, kinds: Mapping[str, ProviderKind], diagnostics: list[Diagnostic]
) -> None:
    declared: dict[tuple[str, str], Span] = {}
    for source in program.files:
        for block in source.blocks:
            spec = BLOCKS.get(block.kind.name)
            if spec is None:
                guess = closest(block.kind.name, BLOCKS)
                diagnostics.append(
                    Diagnostic(
                        "SY101",
                        Severity.ERROR,
                        f"unknown block `{block.kind.name}`",
                        block.kind.span,
                        "not a kind of block",
                        notes=("blocks: " + ", ".join(f"`{b}`" for b in BLOCKS),),
                        help=f"did you mean `{guess}`?" if guess else None,
                    )
                )
                # Likely meant `guess`: do not report its name as undeclared elsewhere.
                program.note_unreadable(guess or block.kind.name, block.name)
                continue
            if not _label_ok(block, spec.label, diagnostics):
                program.note_unreadable(spec.kind, None)
                continue
            key = (spec.kind, (block.name if spec.label else None) or "")
            if key in declared:
                labelled = spec.label is not None and block.name
                what = f"{spec.kind} `{block.name}`" if labelled else f"`{spec.kind}` block"
                fix = f"merge them into one `{spec.kind}` block"
                if labelled and spec.label == "string":
                    fix = f"keep one `{spec.kind}` block for `{block.name}`"
                elif labelled:
                    fix = f"rename one, or merge them into one {spec.kind} block"
                diagnostics.append(
                    Diagnostic(
                        "SY205",
                        Severity.ERROR,
                        f"{what} is declared twice",
                        block.header,
                        "declared again here",
                        help=fix,
                        related=(Label(declared[key], "first declared here"),),
                    )
                )
                continue
            declared[key] = block.header
            extra, owner = {}, ""
            kind: ProviderKind | None = None
            if spec is PROVIDER:
                kind = _provider_kind(block, kinds, diagnostics)
                if kind is not None:
                    extra, owner = dict(kind.attributes), f"of kind `{kind.name}`"
                else:  # unknown kind: accept every kind's attributes rather than cascade
                    extra = {
                        n: replace(a, required=False)
                        for k in kinds.values()
                        for n, a in k.attributes.items()
                    }
            elsewhere: dict[str, str] = {}
            if kind is not None:
                for other in kinds.values():
                    for attribute in other.attributes:
                        if attribute not in extra:
                            elsewhere.setdefault(attribute, f"providers of kind `{other.name}`")
            values = read_block(block, spec, extra, owner, diagnostics, elsewhere)
            name = (block.name if spec.label else None) or ""
            if spec is PROVIDER:
                program.providers[name] = ProviderDecl(name, values, kind)
            elif spec is ROUTE:
                program.routes.append(RouteDecl(name, values))
            elif spec is PRICE:
                program.prices[name] = values
            elif spec is DEFAULTS:
                program.defaults = values


def _label_ok(block: syntax.Block, label: str | None, diagnostics: list[Diagnostic]) -> bool:
    """Report a missing or malformed label. True when the block can still be read: the intent
    is clear (`provider "openai"`, `price gpt-4o`, `defaults main`), so its contents are checked
    and its name is declared rather than cascading into "unknown provider" errors."""
    kind = block.kind.name
    spec = BLOCKS[kind]
    readable = True
    span = block.header
    if label is None and block.label is not None:
        problem, mark = f"`{kind}` blocks take no name", "remove this name"
        help_text = f"write `{kind} {{ … }}`"
        span = block.label.span
    elif label == "name" and block.label is None:
        problem, mark = f"`{kind}` needs a name", "no name"
        help_text = f"write {spec.label_words}"
        readable = False
    elif label == "name" and isinstance(block.label, syntax.Literal):
        problem, mark = f"{kind} names are bare words, not strings", "a string"
        span = block.label.span
        name = block.label.text
        if terminal_pattern("NAME").fullmatch(name):
            help_text = f"remove the quotes: write `{kind} {name} {{ … }}`"
        else:
            help_text = f"write {spec.label_words}"
            readable = False
    elif label == "string" and isinstance(block.label, syntax.Literal) and not block.label.text:
        problem, mark = f"`{kind}` needs a model id: the string is empty", "empty"
        help_text = f"write {spec.label_words}"
        readable = False
    elif label == "string" and block.label is None:
        problem, mark = f"`{kind}` needs a model id in quotes", "no model id"
        help_text = f"write {spec.label_words}"
        readable = False
    elif label == "string" and isinstance(block.label, syntax.Ident):
        problem, mark = f"`{kind}` needs a model id in quotes", "not in quotes"
        help_text = f'add quotes: write `{kind} "{block.label.name}" {{ … }}`'
        span = block.label.span
    else:
        return True
    diagnostics.append(Diagnostic("SY102", Severity.ERROR, problem, span, mark, help=help_text))
    return readable


def _provider_kind(
    block: syntax.Block, kinds: Mapping[str, ProviderKind], diagnostics: list[Diagnostic]
) -> ProviderKind | None:
    for attr in block.attributes:
        if attr.name.name != "kind" or len(attr.values) != 1:
            continue
        value = attr.values[0]
        name = (
            value.name
            if isinstance(value, syntax.Ident)
            else (
                value.text if isinstance(value, syntax.Literal) and value.kind == "string" else None
            )
        )
        if name is None:
            return None  # the type error is reported when the block is read
        if name in kinds:
            return kinds[name]
        diagnostics.append(
            Diagnostic(
                "SY109",
                Severity.ERROR,
                f"unknown provider kind `{name}`",
                value.span,
                "no such adapter",
                notes=("kinds: " + ", ".join(f"`{k}`" for k in kinds),),
                help=did_you_mean(name, kinds),
            )
        )
        return None
    return None


def _chain_names(program: Program) -> set[str]:
    """Every name a route mentions, read from the syntax: a chain with an error in it still
    uses the providers it names."""
    names: set[str] = set()

    def visit(value: syntax.Value, strings: bool) -> None:
        if isinstance(value, syntax.Ident):
            names.add(value.name)
        elif isinstance(value, syntax.Call):
            names.add(value.name.name)
        elif strings and isinstance(value, syntax.Literal) and value.kind == "string":
            names.add(value.text)  # `chain "openai"`: an error, but it means `openai`
        elif isinstance(value, syntax.Chain):
            for step in value.steps:
                visit(step, strings)
        elif isinstance(value, syntax.Tier):
            for member in value.members:
                visit(member, strings)

    for route in program.routes:
        # Every attribute, not just `chain`: a `chain` line swallowed by the line before it
        # (`models "a",`) still names its providers.
        for attr in route.values.block.attributes:
            for value in attr.values:
                visit(value, attr.name.name == "chain")
    # `chain opnai` is reported with "did you mean `openai`?"; `openai` is not unused.
    for name in names - program.providers.keys():
        guess = closest(name, program.providers)
        if guess is not None:
            names.add(guess)
    return names


def _check_providers(program: Program, diagnostics: list[Diagnostic]) -> None:
    used = _chain_names(program)
    # A route that could not be read may use any provider: do not call one unused.
    # A route with a line skipped for a syntax error, or a misspelt `chain`, may name any
    # provider: do not call one unused.
    routes_unreadable = "route" in program.unreadable or any(
        r.values.block.broken or "chain" in r.values.misspelt for r in program.routes
    )
    for name, provider in program.providers.items():
        values = provider.values
        header = values.block.header
        if (
            provider.kind is not None
            and provider.kind.needs_base_url
            and provider.kind.base_url is None
            and values.get("base_url") is None
            and not _has_attribute(values.block, "base_url")
        ):
            diagnostics.append(
                Diagnostic(
                    "SY104",
                    Severity.ERROR,
                    f"provider `{name}` of kind `{provider.kind.name}` needs a `base_url`",
                    header,
                    "no address",
                    notes=(f"kind `{provider.kind.name}` has no default address",),
                    help='add `base_url "https://…"`',
                )
            )
        key = values.get("api_key")
        if key is not None and isinstance(key.first, str) and key.first != PASSTHROUGH:
            diagnostics.append(
                Diagnostic(
                    "SY308",
                    Severity.WARNING,
                    "API key written into the pipeline file",
                    key.positional_spans[0],
                    "a secret in a file kept in git",
                    help=f'read it from the environment: `api_key env("{_key_env(provider)}")`',
                )
            )
        if program.routes and name not in used and not routes_unreadable:
            diagnostics.append(
                Diagnostic(
                    "SY311",
                    Severity.WARNING,
                    f"provider `{name}` is not used by any route",
                    values.block.label.span if values.block.label else header,
                    "unused",
                    help="add it to a route's `chain`, or remove it",
                )
            )
    if not program.routes and not program.unreadable and not any(d.is_error for d in diagnostics):
        first = next((b for f in program.files for b in f.blocks), None)
        if first is not None:
            span: Span | None = first.header
        elif program.files:
            span = Span(program.files[0].path, 1, 1, 1, 1)
        else:
            span = None
        diagnostics.append(
            Diagnostic(
                "SY312",
                Severity.WARNING,
                "no routes declared: every request would get 404",
                span,
                "no `route` block in any file checked" if first is not None else "nothing declared",
                help="add a `route NAME { path … chain … }` block",
            )
        )


def _key_env(provider: ProviderDecl) -> str:
    if provider.kind is not None and provider.kind.key_env:
        return provider.kind.key_env
    return provider.name.upper().replace("-", "_") + "_API_KEY"


def _check_env(program: Program, options: CheckOptions, diagnostics: list[Diagnostic]) -> None:
    if not options.check_env:
        return
    environ = os.environ if options.environ is None else options.environ
    unset: dict[str, list[EnvRef]] = {}
    for ref in _env_refs(program):
        if ref.name not in environ:
            unset.setdefault(ref.name, []).append(ref)
    for name, refs in unset.items():
        first, *others = refs
        diagnostics.append(
            Diagnostic(
                "SY304",
                Severity.WARNING,
                f"environment variable `{name}` is not set",
                first.span,
                "read here",
                notes=("the gateway reads it when the pipeline is loaded",),
                help=f"export {name}=… before starting, or run `stockyard check --no-env` "
                "where production secrets are absent",
                related=tuple(Label(r.span, "and here") for r in others if r.span is not None),
            )
        )


def _env_refs(program: Program) -> Iterable[EnvRef]:
    for source in program.files:
        for block in source.blocks:
            for attr in block.attributes:
                yield from _env_in(attr.values)


def _env_in(values: Iterable[syntax.Value]) -> Iterable[EnvRef]:
    for value in values:
        if isinstance(value, syntax.Call):
            if value.name.name == "env" and len(value.arguments) == 1:
                arg = value.arguments[0].value
                if isinstance(arg, syntax.Literal) and arg.kind == "string" and arg.text:
                    yield EnvRef(arg.text, value.span)
                continue
            yield from _env_in(a.value for a in value.arguments)
        elif isinstance(value, syntax.ListValue):
            yield from _env_in(value.items)
        elif isinstance(value, syntax.Chain):
            yield from _env_in(value.steps)
        elif isinstance(value, syntax.Tier):
            yield from _env_in(value.members)
