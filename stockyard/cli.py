"""The ``stockyard`` command line."""

from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__, remote

if TYPE_CHECKING:  # the commands import what they use when they run: `check` starts fast
    from .dsl import CheckResult

DEFAULT_PIPELINES = "pipelines"

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stockyard",
        description="Stockyard: an LLM gateway configured by .pipe pipeline files.",
        epilog="Without a command, runs `stockyard serve`. status, reload, toggles, module and "
        "traces talk to a running gateway (--url or STOCKYARD_URL; --admin-key or "
        "STOCKYARD_ADMIN_KEY). Run `stockyard COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"stockyard {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="lint .pipe files and report every problem",
        description="Parse, check and compile .pipe files; report every problem in one run. "
        "Exit status: 0 clean, 1 errors (or warnings with --strict), 2 usage or I/O error.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"files or directories of .pipe files (default: {DEFAULT_PIPELINES}/)",
    )
    check.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format (default: text)"
    )
    check.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    check.add_argument(
        "--no-env",
        action="store_true",
        help="skip checks that depend on this machine's environment variables",
    )
    check.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the text output (default: auto, when writing to a terminal)",
    )
    check.set_defaults(run=_check, one_shot=True)

    serve = commands.add_parser(
        "serve",
        help="run the gateway (the default command)",
        description="Run the gateway: /v1 proxy, /api admin API and /health on one port. "
        "Flags override STOCKYARD_* environment variables.",
    )
    _serve_options(serve)
    serve.set_defaults(run=_serve)

    ledger = commands.add_parser(
        "ledger",
        help="verify the audit ledger or print its head",
        description="The audit ledger is a SHA-256 hash chain. `verify` walks it and names the "
        "first broken event; `head` prints the last sequence number and hash, to store "
        "elsewhere and pass back as --expect-head (which also detects a truncated tail).",
    )
    ledger_commands = ledger.add_subparsers(dest="ledger_command", metavar="ACTION", required=True)
    verify = ledger_commands.add_parser("verify", help="check every event's hash and link")
    verify.add_argument(
        "--db", default=None, help="database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    verify.add_argument(
        "--expect-head",
        metavar="HASH",
        help="a head hash exported earlier: fail if it is not in the chain",
    )
    verify.add_argument("--format", choices=("text", "json"), default="text")
    verify.set_defaults(run=_ledger_verify)
    head = ledger_commands.add_parser("head", help="print the head sequence number and hash")
    head.add_argument(
        "--db", default=None, help="database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    head.set_defaults(run=_ledger_head)

    keys = commands.add_parser(
        "keys",
        help="create, list and revoke gateway keys",
        description="Gateway keys (sk-sy-…) for the `auth` module. Only a hash is stored: a new "
        "key is printed once. Works on the database directly; a running gateway picks changes "
        "up within a second.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--project", required=True, help="the project the key spends for")
    create.add_argument("--name", help="a label (default: the project)")
    create.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="ROUTE",
        help="limit the key to this route (repeatable)",
    )
    create.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="GLOB",
        help="limit the key to models matching this pattern (repeatable)",
    )
    create.add_argument("--expires", metavar="DURATION", help="lifetime, e.g. 30d, 12h")
    create.add_argument(
        "--db", default=None, help="database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    create.set_defaults(run=_keys_create)
    listing = keys_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument(
        "--db", default=None, help="database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.set_defaults(run=_keys_list)
    revoke = keys_commands.add_parser("revoke", help="revoke a key by its id (key_…)")
    revoke.add_argument("key_id", metavar="KEY_ID")
    revoke.add_argument(
        "--db", default=None, help="database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    revoke.set_defaults(run=_keys_revoke)

    routes = commands.add_parser(
        "routes",
        help="print the compiled route table",
        description="Compile .pipe files and print the routes in match order.",
    )
    routes.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help=f"files or directories of .pipe files (default: {DEFAULT_PIPELINES}/)",
    )
    routes.add_argument("--format", choices=("text", "json"), default="text")
    routes.set_defaults(run=_routes, one_shot=True)

    remote.add_commands(commands)
    return parser


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to bind (env STOCKYARD_HOST; default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (env STOCKYARD_PORT; default 4200)")
    parser.add_argument(
        "--pipelines",
        metavar="PATH",
        help="directory or file of .pipe files (env STOCKYARD_PIPELINES; default "
        "./pipelines if present, else the shipped default pipeline)",
    )
    parser.add_argument(
        "--db", metavar="PATH", help="SQLite database (env STOCKYARD_DB; default ./stockyard.db)"
    )
    parser.add_argument(
        "--max-body",
        type=int,
        metavar="BYTES",
        help="largest request body accepted (env STOCKYARD_MAX_BODY; default 10 MiB)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="serve the offline demo pipeline: the built-in mock provider, no network, no keys",
    )
    parser.add_argument(
        "--no-watch",
        action="store_true",
        help="do not hot-reload pipelines on change (SIGHUP and the API still reload)",
    )


def main(argv: Sequence[str] | None = None, *, exit_when_done: bool = False) -> int:
    """Run one command; its exit code.

    `check` and `routes` (one-shot commands over a whole pipeline) run with the cyclic garbage
    collector paused: the syntax tree is acyclic, and the collector's passes would only re-scan
    it (about a tenth of a big check). With ``exit_when_done`` (the `stockyard` command itself)
    they also end the process as soon as their output is flushed, rather than have the
    interpreter free the tree object by object before the exit code is known."""
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("--") and argv[0] not in ("--help", "--version")):
        argv.insert(0, "serve")  # `stockyard [--port N …]` is `stockyard serve …`
    args = parser.parse_args(argv)
    one_shot = getattr(args, "one_shot", False)
    try:
        with _collector_paused() if one_shot else nullcontext():
            code = int(args.run(args))
    except BrokenPipeError:
        code = EXIT_OK
    except KeyboardInterrupt:
        return 130
    if exit_when_done and one_shot:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BrokenPipeError:
            pass
        os._exit(code)
    return code


def console() -> None:
    """The `stockyard` command."""
    raise SystemExit(main(exit_when_done=True))


def _serve(args: argparse.Namespace) -> int:
    from .server import run
    from .settings import Settings, demo_pipelines

    if args.demo and args.pipelines:
        print("stockyard: --demo and --pipelines exclude each other", file=sys.stderr)
        return EXIT_USAGE
    pipelines = (
        demo_pipelines() if args.demo else (Path(args.pipelines) if args.pipelines else None)
    )
    settings = Settings.from_env(
        host=args.host,
        port=args.port,
        pipelines=pipelines,
        db=Path(args.db) if args.db else None,
        max_body=args.max_body,
        watch=False if args.no_watch else None,
    )
    if not settings.pipelines.exists():
        print(f"stockyard: pipelines not found: {settings.pipelines}", file=sys.stderr)
        return EXIT_USAGE
    return run(settings)


def _db_path(args: argparse.Namespace) -> Path:
    return Path(args.db or os.environ.get("STOCKYARD_DB") or "stockyard.db")


def _ledger_verify(args: argparse.Namespace) -> int:
    from .store.verify import default_progress, verify

    try:
        result = verify(
            _db_path(args),
            args.expect_head,
            progress=default_progress() if args.format == "text" else None,
        )
    except (FileNotFoundError, sqlite3.Error) as error:
        print(f"stockyard: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.format == "json":
        print(json.dumps(result, indent=2))
    elif result["valid"]:
        print(
            f"ledger valid: {result['events_checked']} events, head {result['head_seq']} "
            f"{result['head_hash']}"
        )
    else:
        where = f" at event {result['broken_at']}" if result["broken_at"] else ""
        print(f"ledger BROKEN{where}: {result['reason']} ({result['events_checked']} events read)")
    return EXIT_OK if result["valid"] else EXIT_ERRORS


def _ledger_head(args: argparse.Namespace) -> int:
    from .store.verify import head

    try:
        found = head(_db_path(args))
    except (FileNotFoundError, sqlite3.Error) as error:
        print(f"stockyard: {error}", file=sys.stderr)
        return EXIT_USAGE
    if found is None:
        print("ledger empty")
        return EXIT_OK
    print(f"{found[0]} {found[1]}")
    return EXIT_OK


def _keys_db(args: argparse.Namespace) -> sqlite3.Connection:
    from .store.database import connect_sync

    return connect_sync(_db_path(args))


def _keys_create(args: argparse.Namespace) -> int:
    import getpass
    import time

    from .dsl.literals import duration_seconds
    from .keys import create_sync

    expires_at = None
    if args.expires:
        try:
            expires_at = time.time() + float(duration_seconds(args.expires))
        except (AssertionError, KeyError):
            print(
                f"stockyard: --expires takes a duration like 30d or 12h, not {args.expires!r}",
                file=sys.stderr,
            )
            return EXIT_USAGE
    actor = f"cli:{getpass.getuser()}"
    with _keys_db(args) as conn:
        key, record = create_sync(
            conn, args.project, args.name or args.project, args.route, args.model, expires_at, actor
        )
    print(key)
    print(f"id {record.id}  project {record.project}  (shown once: store it now)", file=sys.stderr)
    return EXIT_OK


def _keys_list(args: argparse.Namespace) -> int:
    from .keys import list_sync

    with _keys_db(args) as conn:
        records = list_sync(conn)
    if args.format == "json":
        print(json.dumps([r.to_json() for r in records], indent=2))
        return EXIT_OK
    for r in records:
        limits = ", ".join(filter(None, [",".join(r.routes), ",".join(r.models)])) or "-"
        print(f"{r.id}  {r.prefix}…  {r.project:<16} {r.state():<8} {r.name}  limits: {limits}")
    if not records:
        print("no keys")
    return EXIT_OK


def _keys_revoke(args: argparse.Namespace) -> int:
    import getpass

    from .keys import revoke_sync

    with _keys_db(args) as conn:
        record = revoke_sync(conn, args.key_id, f"cli:{getpass.getuser()}")
    if record is None:
        print(f"stockyard: no key {args.key_id}", file=sys.stderr)
        return EXIT_ERRORS
    print(f"{record.id} revoked")
    return EXIT_OK


def _paths(args: argparse.Namespace) -> list[str]:
    return list(args.paths) or [DEFAULT_PIPELINES]


def _use_color(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _load(args: argparse.Namespace, check_env: bool = True) -> CheckResult | None:
    from .catalog import check_paths
    from .dsl import CheckOptions, SourceError, collect_files

    try:
        paths = _paths(args)
        if not collect_files(paths):
            print(f"stockyard: no .pipe files in {', '.join(paths)}", file=sys.stderr)
            return None
        return check_paths(paths, CheckOptions(check_env=check_env))
    except SourceError as error:
        print(f"stockyard: {error}", file=sys.stderr)
        return None


@contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check(args: argparse.Namespace) -> int:
    from .dsl import render_text, summary, to_json

    result = _load(args, check_env=not args.no_env)
    if result is None:
        return EXIT_USAGE
    failed = bool(result.errors) or (args.strict and bool(result.warnings))
    if args.format == "json":
        document = to_json(result.diagnostics, result.sources)
        document["ok"] = not failed
        document["strict"] = args.strict
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        color = _use_color(args.color)
        sys.stdout.write(render_text(result.diagnostics, result.sources, color=color))
        print(summary(result.diagnostics, len(result.sources)))
    return EXIT_ERRORS if failed else EXIT_OK


def _routes(args: argparse.Namespace) -> int:
    from .dsl import render_text

    result = _load(args, check_env=False)
    if result is None:
        return EXIT_USAGE
    if result.generation is None:
        sys.stderr.write(render_text(result.errors, result.sources, color=_use_color("auto")))
        print(f"stockyard: {len(result.errors)} error(s); nothing compiled", file=sys.stderr)
        return EXIT_ERRORS
    generation = result.generation
    if args.format == "json":
        json.dump([r.to_json() for r in generation.routes], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return EXIT_OK
    rows = [("#", "ROUTE", "PATH", "MODELS", "CHAIN", "MODULES")]
    for index, route in enumerate(generation.routes, 1):
        rows.append(
            (
                str(index),
                route.name,
                ", ".join(route.paths),
                ", ".join(route.models) or "*",
                route.chain_text(),
                ", ".join(m.name for m in route.modules) or "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(
        f"\n{len(generation.routes)} route(s) from {len(generation.files)} file(s), "
        f"source {generation.source_hash[:12]}"
    )
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
