"""Route-level semantics: caps, module order, timeouts, prices, and unreachable routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from ..core.span import Span
from .blocks import DEFAULT_MAX_BACKOFF
from .checker import CheckOptions, Program, RouteDecl
from .diagnostics import Diagnostic, Label, Severity
from .interpret import AttrValue
from .literals import format_money, format_seconds
from .resolve import ModuleUse
from .schema import AUTHENTICATES, RECORDS, REJECTS, SERVES

GLOB_CHARS = frozenset("*?")


def check_routes(program: Program, options: CheckOptions, diagnostics: list[Diagnostic]) -> None:
    if program.default_modules is not None:
        _check_order(program.default_modules, "the defaults", diagnostics)
    known_prices = set(options.known_prices) | set(program.prices)
    known_prices |= {n for n in program.unreadable.get("price", ()) if n}  # reported already
    overrides = {name: _ANY_PRICE for name in known_prices - set(options.known_prices)}

    def priced(model: str) -> bool:
        if options.price_lookup is not None:
            return options.price_lookup(model, overrides) is not None
        return _priced(model, known_prices)

    if program.defaults is not None:
        _check_backoff(program.defaults.get("retry"), diagnostics)
    for route in program.routes:
        if route.modules is not None and not route.modules_from_defaults:
            _check_order(route.modules, f"route `{route.name}`", diagnostics)
        _check_cap(route, diagnostics)
        _check_timeouts(route, program, diagnostics)
        _check_backoff(route.values.get("retry"), diagnostics)
        _check_prices(route, priced, diagnostics)
    _check_shadowing(program.routes, diagnostics)


def _check_cap(route: RouteDecl, diagnostics: list[Diagnostic]) -> None:
    """Caps against each other, and against the `cost_cap` module when the modules are known
    (a module list with an error of its own is not second-guessed)."""
    cap = route.values.get("cap")
    modules = {m.name: m for m in route.modules or ()}
    modules_known = route.modules is not None
    if cap is None:
        if route.values.block.has("cap"):
            return  # written but invalid: already reported
        if "cost_cap" in modules and route.modules_from_defaults:
            # Point at the route (the place to add a cap), once per route, not at `defaults`.
            diagnostics.append(
                Diagnostic(
                    "SY307",
                    Severity.WARNING,
                    f"`cost_cap` on route `{route.name}` has no `cap` to enforce",
                    route.values.block.header,
                    "no `cap` here",
                    help=f"add `cap daily $… monthly $…` to route `{route.name}`, or give it "
                    "its own `modules` without `cost_cap`",
                    related=(Label(modules["cost_cap"].span, "`cost_cap` comes from `defaults`"),),
                )
            )
        elif "cost_cap" in modules:
            diagnostics.append(
                Diagnostic(
                    "SY307",
                    Severity.WARNING,
                    f"`cost_cap` on route `{route.name}` has no `cap` to enforce",
                    modules["cost_cap"].span,
                    "does nothing here",
                    help="add `cap daily $… monthly $…` to the route, or remove `cost_cap`",
                )
            )
        return
    daily: Decimal | None = cap.clauses.get("daily")
    monthly: Decimal | None = cap.clauses.get("monthly")
    if daily is not None and monthly is not None and daily > monthly:
        diagnostics.append(
            Diagnostic(
                "SY302",
                Severity.ERROR,
                f"daily cap {format_money(daily)} is above the monthly cap {format_money(monthly)}",
                cap.clause_spans["daily"],
                "larger than the monthly cap",
                notes=("the monthly cap would always be reached first",),
                help="lower the daily cap or raise the monthly cap",
                related=(Label(cap.clause_spans["monthly"], "monthly cap"),),
            )
        )
    if daily is None and monthly is None:
        diagnostics.append(
            Diagnostic(
                "SY107",
                Severity.ERROR,
                "`cap` needs `daily` or `monthly`",
                cap.span,
                "no limit given",
                help="for example `cap daily $25 monthly $400 per project`",
            )
        )
    if not modules_known:
        return
    if "cost_cap" not in modules:
        modules_attr = route.values.get("modules")
        if modules_attr:
            fix = "add `cost_cap` to the route's modules"
        elif route.modules_from_defaults:
            fix = (
                "the route takes its modules from `defaults`: add `cost_cap` there, or give "
                "the route its own `modules [auth, cost_cap]`"
            )
        else:
            fix = "add `modules [auth, cost_cap]` to the route"
        diagnostics.append(
            Diagnostic(
                "SY303",
                Severity.ERROR,
                f"route `{route.name}` has a `cap` but no `cost_cap` module to enforce it",
                cap.node.name.span,
                "this cap would never be checked",
                help=fix,
                related=(Label(modules_attr.node.name.span, "modules here"),)
                if modules_attr
                else (),
            )
        )
    elif cap.clauses.get("per") == "key":
        _needs_auth_before(
            route.modules or (),
            modules["cost_cap"],
            "cap per key",
            f"route `{route.name}`",
            diagnostics,
        )


def _needs_auth_before(
    modules: tuple[ModuleUse, ...],
    user: ModuleUse,
    why: str,
    owner: str,
    diagnostics: list[Diagnostic],
) -> None:
    names = [m.name for m in modules]
    auth = [m for m in modules if AUTHENTICATES in m.spec.roles]
    if auth and names.index(auth[0].name) < names.index(user.name):
        return
    if auth:
        message = f"`{user.name}` ({why}) runs before `{auth[0].name}` in {owner}"
        fix = f"move `{auth[0].name}` before `{user.name}`"
        related: tuple[Label, ...] = (Label(auth[0].span, "the key is identified here"),)
    else:
        message = (
            f"`{user.name}` ({why}) needs the caller's key, but no module in {owner} identifies it"
        )
        fix = f"add `auth` before `{user.name}`"
        related = ()
    diagnostics.append(
        Diagnostic(
            "SY306",
            Severity.WARNING,
            message,
            user.span,
            "the caller's key is not known yet",
            help=fix,
            related=related,
        )
    )


def _may_reject(module: ModuleUse) -> bool:
    if REJECTS not in module.spec.roles:
        return False
    return module.spec.rejects_when is None or module.spec.rejects_when(module.params)


def _check_order(modules: tuple[ModuleUse, ...], owner: str, diagnostics: list[Diagnostic]) -> None:
    """Warn about orders that silently weaken a pipeline. The order is never changed."""
    for index, module in enumerate(modules):
        before = modules[:index]
        if AUTHENTICATES in module.spec.roles:
            for server in (m for m in before if SERVES in m.spec.roles):
                diagnostics.append(
                    Diagnostic(
                        "SY306",
                        Severity.WARNING,
                        f"`{server.name}` runs before `{module.name}` in {owner}",
                        server.span,
                        "answers before the caller is authenticated",
                        notes=(
                            f"cached answers would be served to callers `{module.name}` would refuse",
                        ),
                        help=f"move `{module.name}` before `{server.name}`",
                        related=(Label(module.span, "authentication happens here"),),
                    )
                )
        if RECORDS in module.spec.roles:
            for server in (m for m in before if SERVES in m.spec.roles):
                diagnostics.append(
                    Diagnostic(
                        "SY306",
                        Severity.WARNING,
                        f"`{module.name}` runs after `{server.name}` in {owner}: hits go unrecorded",
                        module.span,
                        f"never reached when `{server.name}` answers",
                        help=f"move `{module.name}` before `{server.name}`",
                        related=(Label(server.span, "answers here"),),
                    )
                )
            rejecting = [m for m in before if _may_reject(m)]
            if rejecting:
                names = ", ".join(f"`{m.name}`" for m in rejecting)
                diagnostics.append(
                    Diagnostic(
                        "SY306",
                        Severity.WARNING,
                        f"`{module.name}` runs after {names} in {owner}: rejected requests go unrecorded",
                        module.span,
                        "rejections never reach this",
                        help=f"put `{module.name}` first so that refusals are recorded too",
                        related=tuple(Label(m.span, "may reject here") for m in rejecting[:1]),
                    )
                )
        if module.spec.needs_key is not None and module.spec.needs_key(module.params):
            _needs_auth_before(modules, module, "per key", owner, diagnostics)


def _check_timeouts(route: RouteDecl, program: Program, diagnostics: list[Diagnostic]) -> None:
    timeout = route.values.get("timeout")
    if timeout is None:
        return
    total = timeout.first
    first_token = timeout.clauses.get("first_token")
    if total is not None and first_token is not None and first_token >= total:
        diagnostics.append(
            Diagnostic(
                "SY310",
                Severity.WARNING,
                "`first_token` timeout is not shorter than the total timeout",
                timeout.clause_spans["first_token"],
                "can never fire first",
                help="make `first_token` shorter than the total, or drop it",
                related=(Label(timeout.positional_spans[0], "total timeout"),),
            )
        )


def _check_backoff(retry: AttrValue | None, diagnostics: list[Diagnostic]) -> None:
    """Waits double from `backoff` up to `max_backoff`: a first wait above the cap never
    happens."""
    if retry is None or "backoff" not in retry.clauses:
        return
    backoff = retry.clauses["backoff"]
    ceiling = retry.clauses.get("max_backoff", DEFAULT_MAX_BACKOFF)
    if backoff <= ceiling:
        return
    if "max_backoff" in retry.clauses:
        related: tuple[Label, ...] = (Label(retry.clause_spans["max_backoff"], "the cap"),)
        help_text = "lower `backoff`, or raise `max_backoff` above it"
        cap = f"`max_backoff` {format_seconds(ceiling)}"
    else:
        related = ()
        help_text = f"lower `backoff`, or add `max_backoff {format_seconds(backoff)}`"
        cap = f"the default `max_backoff` of {format_seconds(ceiling)}"
    diagnostics.append(
        Diagnostic(
            "SY310",
            Severity.WARNING,
            f"`backoff` {format_seconds(backoff)} is above {cap}",
            retry.clause_spans["backoff"],
            f"the first wait is already capped at {format_seconds(ceiling)}",
            notes=(
                "a wait is `backoff` doubled per retry, capped at `max_backoff`, then jittered",
            ),
            help=help_text,
            related=related,
        )
    )


def _check_prices(
    route: RouteDecl, priced: Callable[[str], bool], diagnostics: list[Diagnostic]
) -> None:
    """Warn about each model named explicitly that would be sent upstream without a price.

    A requested model (`models "…"`) is sent as a module renames it (`model_alias`), unless
    every hop of the chain sends its own `model:`; a hop's `model:` is sent as written."""
    explicit: list[tuple[str, Span, str, str | None]] = []  # model, where, how, asked as
    renames: dict[str, str] = {}
    for module in route.modules or ():
        if module.spec.renames_models is not None:
            for asked, served in module.spec.renames_models(module.params).items():
                renames.setdefault(asked, served)
    hops = [hop for tier in route.chain or () for hop in tier]
    every_hop_rewrites = bool(hops) and all(hop.model is not None for hop in hops)
    models = route.values.get("models")
    # With an error in the module list, what is sent is not known: no guesses.
    if models is not None and not every_hop_rewrites and route.modules is not None:
        for model, span in zip(models.positional, models.positional_spans):
            if model is not None and not GLOB_CHARS & set(model):
                if model in renames:
                    explicit.append((renames[model], span, "served by", model))
                else:
                    explicit.append((model, span, "served by", None))
    for hop in hops:
        if hop.model is not None:
            explicit.append((hop.model, hop.model_span or hop.span, "sent upstream by", None))
    for sent, span, how, asked_as in explicit:
        if not priced(sent):
            message = f"model `{sent}` has no known price"
            if asked_as:
                message = f"model `{asked_as}` is sent as `{sent}`, which has no known price"
            diagnostics.append(
                Diagnostic(
                    "SY305",
                    Severity.WARNING,
                    message,
                    span,
                    "cost would be unknown",
                    notes=(
                        f"`{sent}` is {how} route `{route.name}`; its requests would be "
                        "recorded with an unknown cost",
                    ),
                    help=f'add `price "{sent}" {{ input $…/1M  output $…/1M }}`',
                )
            )


@dataclass(frozen=True)
class _AnyPrice:
    """Stands for a `price` block's price when asking the matcher whether a model is priced."""

    input: Decimal = Decimal(0)
    output: Decimal = Decimal(0)
    cached: Decimal = Decimal(0)


_ANY_PRICE = _AnyPrice()


def _priced(model: str, known: set[str]) -> bool:
    """Without the runtime's matcher: the id, or a known id it starts with."""
    return model in known or any(model.startswith(p) for p in known)


def _covers(earlier: str, later: str) -> bool:
    """Whether every model matched by the pattern ``later`` is matched by ``earlier``."""
    if earlier == "*" or earlier == later:
        return True
    if not GLOB_CHARS & set(later):
        from fnmatch import fnmatchcase

        return fnmatchcase(later, earlier.replace("[", "[[]"))
    if earlier.endswith("*") and not GLOB_CHARS & set(earlier[:-1]):
        return later.startswith(earlier[:-1])
    return False


def _check_shadowing(routes: list[RouteDecl], diagnostics: list[Diagnostic]) -> None:
    seen: list[tuple[RouteDecl, frozenset[str], tuple[str, ...]]] = []
    # Only a route serving every path of a later one can shadow it: look among those serving
    # one of its paths, not at every earlier route (a thousand routes are half a million pairs).
    by_path: dict[str, list[tuple[RouteDecl, frozenset[str], tuple[str, ...]]]] = {}
    for route in routes:
        paths_attr = route.values.get("path")
        if paths_attr is None or {"path", "models"} & set(route.values.block.broken):
            continue  # what it matches is not known
        paths = frozenset(p for p in paths_attr.positional if p)
        models_attr = route.values.get("models")
        models = tuple(m for m in models_attr.positional if m) if models_attr else ("*",)
        candidates = by_path.get(next(iter(paths)), []) if paths else seen
        for earlier, earlier_paths, earlier_models in candidates:
            if paths <= earlier_paths and all(
                any(_covers(e, m) for e in earlier_models) for m in models
            ):
                diagnostics.append(
                    Diagnostic(
                        "SY301",
                        Severity.WARNING,
                        f"route `{route.name}` can never match: `{earlier.name}` comes first",
                        route.values.block.header,
                        "unreachable",
                        notes=(
                            "routes are tried in order (files by name, then top to bottom); "
                            "the first whose path and model patterns match wins",
                        ),
                        help=f"move `{route.name}` above `{earlier.name}`, or "
                        + (
                            f"narrow `{earlier.name}`'s models"
                            if earlier.values.get("models")
                            else f"give `{earlier.name}` a `models` pattern"
                        ),
                        related=(
                            Label(earlier.values.block.header, "matches everything it would"),
                        ),
                    )
                )
                break
        entry = (route, paths, models)
        seen.append(entry)
        for path in paths:
            by_path.setdefault(path, []).append(entry)
