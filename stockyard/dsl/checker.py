"""Check all ``.pipe`` files together: every problem in one run, never stopping at the first.

Pipeline: parse each file → read each block against its schema → resolve names across files
(providers, modules, prices) → route-level semantics (:mod:`.route_checks`). The result keeps
what was read (a :class:`Program`) so the compiler does not read anything twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from . import ast
from .blocks import BLOCKS, DEFAULTS, PRICE, PROVIDER, ROUTE
from .diagnostics import Diagnostic, Label, Severity
from .interpret import BlockValues, read_block
from .parser import parse
from .resolve import Hop, ModuleUse, resolve_chain, resolve_modules
from .schema import ModuleSpec, ProviderKind
from .span import Span
from .suggest import did_you_mean
from .types import EnvRef


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
    files: tuple[ast.SourceFile, ...]
    providers: dict[str, ProviderDecl] = field(default_factory=dict)
    routes: list[RouteDecl] = field(default_factory=list)
    prices: dict[str, BlockValues] = field(default_factory=dict)
    defaults: BlockValues | None = None
    default_modules: tuple[ModuleUse, ...] | None = None


@dataclass(frozen=True)
class CheckOptions:
    check_env: bool = True
    environ: Mapping[str, str] | None = None  # default: os.environ
    known_prices: Iterable[str] = ()  # model ids priced by the shipped table


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
    _read_blocks(program, kinds, diagnostics)
    if program.defaults is not None:
        modules_attr = program.defaults.get("modules")
        if modules_attr is not None:
            program.default_modules = resolve_modules(modules_attr.first, registry, diagnostics)
    provider_spans = {name: p.values.block.label.span for name, p in program.providers.items()}  # type: ignore[union-attr]
    for route in program.routes:
        chain_attr = route.values.get("chain")
        if chain_attr is not None:
            route.chain = resolve_chain(chain_attr.first, provider_spans, diagnostics)
        modules_attr = route.values.get("modules")
        if modules_attr is not None:
            route.modules = resolve_modules(modules_attr.first, registry, diagnostics)
        else:
            route.modules = program.default_modules or ()
            route.modules_from_defaults = program.default_modules is not None
    check_routes(program, options, diagnostics)
    _check_providers(program, diagnostics)
    _check_env(program, options, diagnostics)
    diagnostics.sort(key=Diagnostic.sort_key)
    return program, diagnostics


def _read_blocks(
    program: Program, kinds: Mapping[str, ProviderKind], diagnostics: list[Diagnostic]
) -> None:
    declared: dict[tuple[str, str], Span] = {}
    for source in program.files:
        for block in source.blocks:
            spec = BLOCKS.get(block.kind.name)
            if spec is None:
                diagnostics.append(
                    Diagnostic(
                        "SY101",
                        Severity.ERROR,
                        f"unknown block `{block.kind.name}`",
                        block.kind.span,
                        "not a kind of block",
                        notes=("blocks: " + ", ".join(f"`{b}`" for b in BLOCKS),),
                        help=did_you_mean(block.kind.name, BLOCKS),
                    )
                )
                continue
            if not _label_ok(block, spec.label, diagnostics):
                continue
            key = (spec.kind, block.name or "")
            if key in declared:
                what = f"{spec.kind} `{block.name}`" if block.name else f"`{spec.kind}` block"
                diagnostics.append(
                    Diagnostic(
                        "SY205",
                        Severity.ERROR,
                        f"{what} is declared twice",
                        block.header,
                        "declared again here",
                        help=f"rename one, or merge them into one {spec.kind} block",
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
                    extra = {n: a for k in kinds.values() for n, a in k.attributes.items()}
            values = read_block(block, spec, extra, owner, diagnostics)
            name = block.name or ""
            if spec is PROVIDER:
                program.providers[name] = ProviderDecl(name, values, kind)
            elif spec is ROUTE:
                program.routes.append(RouteDecl(name, values))
            elif spec is PRICE:
                program.prices[name] = values
            elif spec is DEFAULTS:
                program.defaults = values


def _label_ok(block: ast.Block, label: str | None, diagnostics: list[Diagnostic]) -> bool:
    spec = BLOCKS[block.kind.name]
    problem = None
    if label is None and block.label is not None:
        problem = f"`{block.kind.name}` blocks take no name"
    elif label == "name" and not isinstance(block.label, ast.Ident):
        problem = (
            f"`{block.kind.name}` needs a name"
            if block.label is None
            else (f"{block.kind.name} names are bare words, not strings")
        )
    elif label == "string" and not (isinstance(block.label, ast.Literal)):
        problem = f"`{block.kind.name}` needs a model id in quotes"
    if problem is None:
        return True
    diagnostics.append(
        Diagnostic(
            "SY102",
            Severity.ERROR,
            problem,
            block.header,
            "here",
            help=f"write {spec.label_words}",
        )
    )
    return False


def _provider_kind(
    block: ast.Block, kinds: Mapping[str, ProviderKind], diagnostics: list[Diagnostic]
) -> ProviderKind | None:
    for attr in block.attributes:
        if attr.name.name != "kind" or len(attr.values) != 1:
            continue
        value = attr.values[0]
        name = (
            value.name
            if isinstance(value, ast.Ident)
            else (value.text if isinstance(value, ast.Literal) and value.kind == "string" else None)
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


def _check_providers(program: Program, diagnostics: list[Diagnostic]) -> None:
    used = {hop.provider for r in program.routes if r.chain for tier in r.chain for hop in tier}
    for name, provider in program.providers.items():
        values = provider.values
        header = values.block.header
        if (
            provider.kind is not None
            and provider.kind.base_url is None
            and values.get("base_url") is None
        ):
            diagnostics.append(
                Diagnostic(
                    "SY104",
                    Severity.ERROR,
                    f"provider `{name}` of kind `{provider.kind.name}` needs a `base_url`",
                    header,
                    "no address",
                    help='add `base_url "https://…"`',
                )
            )
        key = values.get("api_key")
        if key is not None and isinstance(key.first, str) and key.first != "passthrough":
            diagnostics.append(
                Diagnostic(
                    "SY308",
                    Severity.WARNING,
                    "API key written into the pipeline file",
                    key.positional_spans[0],
                    "a secret in a file kept in git",
                    help=f'read it from the environment: api_key env("{_key_env(provider)}")',
                )
            )
        if program.routes and name not in used:
            diagnostics.append(
                Diagnostic(
                    "SY311",
                    Severity.WARNING,
                    f"provider `{name}` is not used by any route",
                    values.block.label.span if values.block.label else header,
                    "unused",  # type: ignore[union-attr]
                    help="add it to a route's `chain`, or remove it",
                )
            )
    if not program.routes and not any(d.is_error for d in diagnostics):
        first = program.files[0] if program.files else None
        diagnostics.append(
            Diagnostic(
                "SY312",
                Severity.WARNING,
                "no routes declared: every request would get 404",
                Span(first.path, 1, 1, 1, 2) if first else None,
                "",
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
    reported: set[str] = set()
    for ref in _env_refs(program):
        if ref.name in environ:
            continue
        first = ref.name not in reported
        reported.add(ref.name)
        diagnostics.append(
            Diagnostic(
                "SY304",
                Severity.WARNING,
                f"environment variable `{ref.name}` is not set",
                ref.span,
                "unset here" if first else "unset",
                notes=("the gateway reads it when the pipeline is loaded",),
                help=f"export {ref.name}=… before starting, or run `stockyard check --no-env` "
                "where production secrets are absent",
            )
        )


def _env_refs(program: Program) -> Iterable[EnvRef]:
    for source in program.files:
        for block in source.blocks:
            for attr in block.attributes:
                yield from _env_in(attr.values)


def _env_in(values: Iterable[ast.Value]) -> Iterable[EnvRef]:
    for value in values:
        if isinstance(value, ast.Call):
            if value.name.name == "env" and len(value.arguments) == 1:
                arg = value.arguments[0].value
                if isinstance(arg, ast.Literal) and arg.kind == "string" and arg.text:
                    yield EnvRef(arg.text, value.span)
                continue
            yield from _env_in(a.value for a in value.arguments)
        elif isinstance(value, ast.ListValue):
            yield from _env_in(value.items)
        elif isinstance(value, ast.Chain):
            yield from _env_in(value.steps)
        elif isinstance(value, ast.Tier):
            yield from _env_in(value.members)
