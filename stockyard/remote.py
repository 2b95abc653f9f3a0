"""CLI commands that talk to a running gateway through its admin API (over HTTP, with httpx):
``stockyard status``, ``reload``, ``toggles``, ``module NAME …`` and ``traces``.

They share ``--url`` (env ``STOCKYARD_URL``) and ``--admin-key`` (env ``STOCKYARD_ADMIN_KEY``,
sent as ``Authorization: Bearer``). Exit status: 0 done, 1 the gateway said no (a reload
rejected, a toggle refused, the gateway unhealthy), 2 the gateway could not be asked (not
reachable, no or wrong admin key, not a Stockyard gateway).

httpx is imported when a command runs, not when the parser is built, so that ``stockyard
check`` does not pay for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

DEFAULT_URL = "http://127.0.0.1:4200"
EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 1, 2
TRACE_PAGE = 500  # the admin API's largest page


class RemoteError(Exception):
    """A command cannot go on: ``message`` for stderr, ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int, detail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.detail = tuple(detail)


class AdminClient:
    """The admin API of one gateway: JSON in, JSON out, errors as :class:`RemoteError`."""

    def __init__(self, url: str, admin_key: str | None, timeout: float = 10.0) -> None:
        import httpx

        self.url = normalize_url(url)
        headers = {"authorization": f"Bearer {admin_key}"} if admin_key else {}
        self.has_key = bool(admin_key)
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | int] | None = None,
        accept: tuple[int, ...] = (),
    ) -> tuple[int, Any]:
        """(status, decoded JSON) of a 2xx answer, or of a status listed in ``accept``."""
        import httpx

        try:
            response = self.http.request(method, path, json=body, params=params)
        except httpx.TransportError as error:
            reason = str(error) or type(error).__name__
            raise RemoteError(
                f"cannot reach the gateway at {self.url} ({reason}); is it running? "
                "(--url or STOCKYARD_URL says where)",
                EXIT_UNREACHABLE,
            ) from None
        data = _json_or_none(response)
        answered = response.is_success or response.status_code in accept
        if data is None and (answered or response.status_code < 500):
            kind = response.headers.get("content-type", "no type")
            raise RemoteError(
                f"{self.url}{path} did not answer like a Stockyard gateway "
                f"({response.status_code}, {kind})",
                EXIT_UNREACHABLE,
            )
        if answered:
            return response.status_code, data
        raise self._refusal(response.status_code, data, response.text)

    def _refusal(self, status: int, data: Any, text: str) -> RemoteError:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        message = str(message or text.strip()[:200] or f"HTTP {status}")
        if status == 401:
            return RemoteError(
                "the gateway wants an admin key: pass --admin-key or set STOCKYARD_ADMIN_KEY",
                EXIT_UNREACHABLE,
            )
        if status == 403:
            hint = " (check --admin-key / STOCKYARD_ADMIN_KEY)" if self.has_key else ""
            return RemoteError(f"the gateway refused: {message}{hint}", EXIT_UNREACHABLE)
        detail = []
        if isinstance(data, dict):
            for problem in data.get("diagnostics") or ():
                if isinstance(problem, dict) and problem.get("help"):
                    detail.append(f"help: {problem['help']}")
        return RemoteError(message, EXIT_REFUSED, detail)


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def _json_or_none(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


# --- the parser ------------------------------------------------------------------------------


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the remote commands to the ``stockyard`` sub-parsers (``commands``)."""
    gateway = argparse.ArgumentParser(add_help=False)
    where = gateway.add_argument_group("gateway")
    where.add_argument(
        "--url",
        default=None,
        help=f"the gateway (env STOCKYARD_URL; default {DEFAULT_URL})",
    )
    where.add_argument(
        "--admin-key",
        default=None,
        metavar="KEY",
        help="the admin key, sent as Authorization: Bearer (env STOCKYARD_ADMIN_KEY)",
    )
    epilog = (
        "Exit status: 0 done, 1 the gateway said no, 2 it could not be asked "
        "(not reachable, no or wrong admin key)."
    )

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, parents=[gateway], help=help_text, description=description, epilog=epilog
        )

    def output(parser: argparse.ArgumentParser, json_help: str = "") -> None:
        parser.add_argument(
            "--format",
            choices=("text", "json"),
            default="text",
            help=f"output format (default: text){json_help}",
        )

    status = command(
        "status",
        "a running gateway's health, pipeline and last reload",
        "Ask a running gateway whether it serves, which pipeline (source hash, routes) and how "
        "its last reload went. Exit 1 when it is not serving or its last reload was rejected.",
    )
    output(status)
    status.set_defaults(run=_remote(_status))

    reload = command(
        "reload",
        "reload a running gateway's pipelines now",
        "Ask a running gateway to re-read its .pipe files (POST /api/proxy/reload). A reload "
        "with errors is rejected, the previous pipeline keeps serving, and the diagnostics are "
        "printed (exit 1).",
    )
    output(reload)
    reload.set_defaults(run=_remote(_reload))

    toggles = command(
        "toggles",
        "list runtime toggles: every declared module's state per route",
        "Every module a route declares, on each route: enabled or not, its parameters, and "
        "where that comes from (the .pipe files, or a runtime toggle for the route or for all "
        "routes). Toggles that name a route that no longer exists are listed as stale.",
    )
    output(toggles)
    toggles.set_defaults(run=_remote(_toggles))

    module = command(
        "module",
        "switch a module on or off, retune it, or reset it, at runtime",
        "Runtime toggles (PUT/DELETE /api/proxy/modules/NAME): `on` and `off` switch a module, "
        "`set` changes parameters (--param), `reset` removes the toggle (back to the .pipe "
        "files), `show` prints the state. Without --route a toggle applies to every route "
        "that declares the module. Every change is an event in the audit ledger.",
    )
    module.add_argument("name", metavar="NAME", help="the module, e.g. prompt_guard")
    module.add_argument(
        "action",
        choices=("show", "on", "off", "set", "reset"),
        nargs="?",
        default="show",
        metavar="ACTION",
        help="show (default), on, off, set or reset",
    )
    module.add_argument("--route", help="only this route (default: every route)")
    module.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter, with on or set (repeatable); VALUE is JSON if it parses "
        "(10, true, null), else text (flag, 10m, 60/min)",
    )
    output(module)
    module.set_defaults(run=_remote(_module))

    traces = command(
        "traces",
        "print recent traces; --tail follows new ones",
        "Print the latest traces, oldest first (GET /api/lookout/traces). With --tail, keep "
        "polling and print each new trace as its request ends (Ctrl-C stops).",
    )
    traces.add_argument("--limit", type=int, default=20, help="how many to start with (1-500)")
    traces.add_argument("--route", help="only this route")
    traces.add_argument("--model", help="only this requested model")
    traces.add_argument("--project", help="only this project")
    traces.add_argument("--status", help="a status code, `ok` or `error`")
    traces.add_argument("--tail", "-f", action="store_true", help="follow new traces")
    traces.add_argument(
        "--interval", type=float, default=1.0, metavar="SECONDS", help="--tail polls this often"
    )
    output(traces, "; json is one trace per line (JSON Lines)")
    traces.set_defaults(run=_remote(_traces))


def _remote(
    command: Callable[[AdminClient, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Run ``command`` with a client built from the shared options; print its error, if any."""

    def run(args: argparse.Namespace) -> int:
        url = args.url or os.environ.get("STOCKYARD_URL") or DEFAULT_URL
        key = args.admin_key or os.environ.get("STOCKYARD_ADMIN_KEY") or None
        client = AdminClient(url, key)
        try:
            return command(client, args)
        except RemoteError as error:
            sys.stdout.flush()
            print(f"stockyard: {error.message}", file=sys.stderr)
            for line in error.detail:
                print(f"  {line}", file=sys.stderr)
            return error.exit_code
        finally:
            client.close()

    return run


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _when(ts: float | None) -> str:
    if not ts:
        return "never"
    ago = max(0.0, time.time() - ts)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} ({_ago(ago)} ago)"


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


# --- status and reload -----------------------------------------------------------------------


def _status(client: AdminClient, args: argparse.Namespace) -> int:
    _, health = client.call("GET", "/health")
    _, reload = client.call("GET", "/api/proxy/reload")
    serving = health.get("status") == "ok"
    healthy = serving and bool(reload.get("ok"))
    if args.format == "json":
        _print_json({"url": client.url, "ok": healthy, "health": health, "reload": reload})
        return EXIT_OK if healthy else EXIT_REFUSED
    source = health.get("source_hash") or ""
    print(f"gateway   {client.url}  {health.get('status')}")
    print(
        f"pipeline  {health.get('routes', 0)} route(s), source {source[:12] or '-'}"
        if serving
        else "pipeline  none loaded"
    )
    outcome = "ok" if reload.get("ok") else "REJECTED"
    print(f"reload    {outcome} {_when(reload.get('at'))}: {reload.get('message') or '-'}")
    print(f"          {reload.get('reloads', 0)} applied, {reload.get('failures', 0)} rejected")
    if not reload.get("ok") and reload.get("rendered"):
        sys.stdout.write("\n" + reload["rendered"])
    return EXIT_OK if healthy else EXIT_REFUSED


def _reload(client: AdminClient, args: argparse.Namespace) -> int:
    _, result = client.call("POST", "/api/proxy/reload", accept=(422,))
    if args.format == "json":
        _print_json(result)
    elif result.get("ok"):
        print(f"reloaded: {result.get('message')}, source {str(result.get('source_hash'))[:12]}")
        if result.get("rendered"):  # warnings
            sys.stdout.write(result["rendered"])
    else:
        sys.stdout.write(result.get("rendered") or "")
        print(f"reload rejected: {result.get('message')}; the previous pipeline keeps serving")
    return EXIT_OK if result.get("ok") else EXIT_REFUSED


# --- toggles ---------------------------------------------------------------------------------


def _params_text(params: Mapping[str, Any] | None) -> str:
    if not params:
        return "-"
    return " ".join(f"{k}={json.dumps(v)}" for k, v in params.items())


def _changed(effective: Mapping[str, Any], compiled: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in effective.items() if compiled.get(k) != v}


def _module_rows(module: Mapping[str, Any]) -> Iterator[tuple[str, ...]]:
    for route in module.get("routes", ()):
        if not route.get("declared"):
            continue
        effective = route.get("effective", {})
        compiled = route.get("compiled", {})
        changed = _changed(effective.get("params") or {}, compiled.get("params") or {})
        toggle = route.get("override")
        yield (
            module["name"],
            route["route"],
            "on" if effective.get("enabled") else "off",
            route.get("source", ""),
            _params_text(changed),
            f"{toggle['actor']} {_when(toggle['updated_at'])}" if toggle else "",
        )


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


HEADER = ("MODULE", "ROUTE", "STATE", "SOURCE", "CHANGED PARAMS", "TOGGLED BY")


def _print_modules(modules: Sequence[Mapping[str, Any]]) -> None:
    rows = [row for module in modules for row in _module_rows(module)]
    if rows:
        _print_table([HEADER, *rows])
    else:
        print("no route declares these modules" if len(modules) == 1 else "no modules declared")
    for module in modules:
        for stale in module.get("stale_overrides", ()):
            print(f"stale toggle of {module['name']}: {stale.get('problem')}")


def _toggles(client: AdminClient, args: argparse.Namespace) -> int:
    _, data = client.call("GET", "/api/proxy/modules")
    if args.format == "json":
        _print_json(data)
        return EXIT_OK
    _print_modules(data.get("modules", []))
    return EXIT_OK


def parse_param(text: str) -> tuple[str, Any]:
    """``name=value``: the value as JSON when it parses (numbers, booleans, null, quoted
    strings), else the text itself, so ``action=flag`` and ``ttl=10m`` need no quotes."""
    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise RemoteError(f"--param takes NAME=VALUE, not {text!r}", EXIT_UNREACHABLE)
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _module(client: AdminClient, args: argparse.Namespace) -> int:
    name, action = args.name, args.action
    params = dict(parse_param(p) for p in args.param)
    if params and action not in ("on", "set"):
        raise RemoteError(f"--param goes with `on` or `set`, not `{action}`", EXIT_UNREACHABLE)
    if action == "set" and not params:
        raise RemoteError("`set` needs at least one --param NAME=VALUE", EXIT_UNREACHABLE)
    path = f"/api/proxy/modules/{name}"
    if action == "show":
        _, data = client.call("GET", path)
        module = data
    elif action == "reset":
        _, data = client.call("DELETE", path, params={"route": args.route} if args.route else {})
        module = data["module"]
    else:
        body: dict[str, Any] = {}
        if action in ("on", "off"):
            body["enabled"] = action == "on"
        if params:
            body["params"] = params
        if args.route:
            body["route"] = args.route
        _, data = client.call("PUT", path, body=body)
        module = data["module"]
    if args.format == "json":
        _print_json(data)
        return EXIT_OK
    if action == "reset":
        print(f"{name}: toggle removed for {_scope(args.route)}; the .pipe files decide again")
    elif action != "show":
        print(f"{name}: {action} for {_scope(args.route)}")
    _print_modules([module])
    return EXIT_OK


def _scope(route: str | None) -> str:
    return f"route {route}" if route else "every route"


# --- traces ----------------------------------------------------------------------------------


def _trace_filters(args: argparse.Namespace) -> dict[str, str]:
    return {
        name: value
        for name in ("route", "model", "project", "status")
        if (value := getattr(args, name))
    }


def _trace_line(trace: Mapping[str, Any]) -> str:
    ts = float(trace.get("ts") or 0)
    clock = time.strftime("%H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"
    model = str(trace.get("model"))
    served = trace.get("served_model")
    if served and served != model:
        model = f"{model}->{served}"
    parts = [
        clock,
        str(trace.get("id")),
        str(trace.get("route")),
        model,
        str(trace.get("provider") or "-"),
        str(trace.get("status")),
        f"{float(trace.get('latency_ms') or 0):.0f}ms",
        f"{trace.get('prompt_tokens', 0)}/{trace.get('completion_tokens', 0)}tok",
        f"${trace['cost']}" if trace.get("cost") is not None else "cost?",
    ]
    if trace.get("stream"):
        parts.append("stream")
    if trace.get("cache"):
        parts.append(f"cache:{trace['cache']}")
    if trace.get("error"):
        parts.append(f"error: {trace['error']}")
    return "  ".join(parts)


def _emit(traces: Sequence[Mapping[str, Any]], form: str) -> None:
    for trace in traces:
        print(json.dumps(trace) if form == "json" else _trace_line(trace))
    sys.stdout.flush()


def _traces(client: AdminClient, args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= TRACE_PAGE:
        raise RemoteError(f"--limit takes 1 to {TRACE_PAGE}", EXIT_UNREACHABLE)
    if args.interval <= 0:
        raise RemoteError("--interval takes a positive number of seconds", EXIT_UNREACHABLE)
    filters = _trace_filters(args)
    _, page = client.call("GET", "/api/lookout/traces", params={**filters, "limit": args.limit})
    first = list(reversed(page.get("traces", [])))
    _emit(first, args.format)
    if not args.tail:
        return EXIT_OK
    follower = TraceFollower(client, filters)
    try:
        follower.poll()  # what is there now has been shown, or is older than the --limit
        while True:
            time.sleep(args.interval)
            _emit(follower.poll(), args.format)
    except KeyboardInterrupt:
        return EXIT_OK


class TraceFollower:
    """New traces since the last poll, each once.

    A trace's id starts with the time its request *started*, but the row appears when the
    request *ends*: a long stream shows up after shorter requests that started later. So a
    poll does not stop at the newest id it printed; it reads back ``lookback`` seconds of ids
    (at most ``max_pages`` pages) and returns the ones it has not seen. Past the look-back, or
    past ``max_pages`` pages of traffic, a late trace is not caught: run ``traces`` without
    ``--tail`` (or filter) to see everything."""

    def __init__(
        self,
        client: AdminClient,
        filters: Mapping[str, str],
        lookback: float = 300.0,
        max_pages: int = 10,
    ) -> None:
        self.client = client
        self.filters = dict(filters)
        self.seen: set[str] = set()
        self.lookback = lookback
        self.max_pages = max_pages

    def poll(self) -> list[dict[str, Any]]:
        cutoff = f"{int((time.time() - self.lookback) * 1000):012x}"
        fresh: list[dict[str, Any]] = []
        before: str | None = None
        for _ in range(self.max_pages):
            params: dict[str, str | int] = {**self.filters, "limit": TRACE_PAGE}
            if before:
                params["before"] = before
            _, page = self.client.call("GET", "/api/lookout/traces", params=params)
            traces = page.get("traces", [])
            fresh += [t for t in traces if t["id"] >= cutoff and t["id"] not in self.seen]
            before = page.get("next")
            if not before or (traces and traces[-1]["id"] < cutoff):
                break
        self.seen.update(t["id"] for t in fresh)
        self.seen = {i for i in self.seen if i >= cutoff}  # older ones cannot appear again
        return sorted(fresh, key=lambda t: str(t["id"]))
