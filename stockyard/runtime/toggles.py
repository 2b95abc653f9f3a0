"""Runtime toggles: a module switched on or off, or retuned, while the gateway runs.

A *toggle* is what ``PUT /api/proxy/modules/{name}`` stores (table ``toggles``): a module's
``enabled`` and/or ``params`` for one route or for every route. Effective state of a module on a
route = the route's toggle if any, else the all-routes toggle, else what the ``.pipe`` files
say. The admin API shows a toggle as the route's ``override`` (of the compiled default), with
``source`` ``override:route`` / ``override:all`` and ``stale_overrides``, and the ledger records
``module.override`` / ``module.reset``: those names are the published API and stay.

Toggles are applied when handlers are built, so the request path pays nothing; a change
rebuilds the current generation's handlers. Another process sharing the database notices a
change by polling ``versions`` (< 1 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..core.generation import ModuleConfig
from ..dsl.schema import ModuleSpec
from ..dsl.value_types import ValueProblem
from ..store.database import Store

ALL_ROUTES = ""
TABLE = "toggles"  # the table, and its row in ``versions``
_BUMP = f"UPDATE versions SET version = version + 1 WHERE name = '{TABLE}'"


@dataclass(frozen=True)
class Toggle:
    module: str
    route: str  # ALL_ROUTES for every route
    enabled: bool | None
    params: Mapping[str, Any] | None  # JSON values, as sent
    updated_at: float
    actor: str

    def to_json(self) -> dict[str, Any]:
        return {
            "route": self.route or None,
            "enabled": self.enabled,
            "params": dict(self.params) if self.params is not None else None,
            "updated_at": self.updated_at,
            "actor": self.actor,
        }


def check_params(
    spec: ModuleSpec, params: Mapping[str, Any], base: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate JSON params against the module's schema: (typed values, problems).

    ``base`` is what the toggle lands on (a route's compiled params); cross-parameter rules
    are checked on the result, so a toggle changing part of a valid configuration is accepted."""
    typed: dict[str, Any] = {}
    problems: list[dict[str, Any]] = []
    for name, value in params.items():
        param = spec.params.get(name)
        if param is None:
            from ..dsl.suggest import did_you_mean

            problems.append(
                {
                    "code": "SY203",
                    "param": name,
                    "message": f"unknown parameter `{name}` for module `{spec.name}`",
                    "help": did_you_mean(name, spec.params)
                    or f"parameters: {', '.join(spec.params) or 'none'}",
                }
            )
            continue
        try:
            typed[name] = param.type.from_json(value)
        except ValueProblem as problem:
            problems.append(
                {
                    "code": problem.code,
                    "param": name,
                    "message": f"`{name}`: {problem.message}",
                    "help": problem.help,
                }
            )
    if not problems and spec.validate is not None:
        defaults = {n: p.default for n, p in spec.params.items() if not p.required}
        merged = defaults | dict(base or {}) | typed
        for found in spec.validate(merged):
            problems.append(
                {"code": found.code, "param": None, "message": found.message, "help": found.help}
            )
    return typed, problems


class Toggles:
    """Every toggle, in memory, keyed by (module, route); written through to the database."""

    def __init__(self, registry: Mapping[str, ModuleSpec]) -> None:
        self.registry = registry
        self.stored: dict[tuple[str, str], Toggle] = {}
        self.version = -1
        # Reading (the poller) and writing (the API) take turns: a read that started before a
        # write would otherwise put back, when it finishes, what the write had just changed.
        self._turn = asyncio.Lock()

    async def load(self, store: Store) -> bool:
        """Re-read the toggles if another writer changed them. True when something changed."""
        async with self._turn:
            return await self._load(store)

    async def _load(self, store: Store) -> bool:
        rows = await store.query(f"SELECT version FROM versions WHERE name = '{TABLE}'")
        version = rows[0][0] if rows else 0
        if version == self.version:
            return False
        rows = await store.query(
            f"SELECT module, route, enabled, params, updated_at, actor FROM {TABLE}"
        )
        self.stored = {
            (r[0], r[1]): Toggle(
                r[0],
                r[1],
                None if r[2] is None else bool(r[2]),
                None if r[3] is None else json.loads(r[3]),
                r[4],
                r[5],
            )
            for r in rows
        }
        self.version = version
        return True

    def toggle_for(self, module: str, route: str) -> tuple[Toggle | None, str]:
        """The toggle that applies to ``module`` on ``route``, and the API's name for where the
        effective state comes from."""
        specific = self.stored.get((module, route))
        if specific is not None:
            return specific, "override:route"
        general = self.stored.get((module, ALL_ROUTES))
        if general is not None:
            return general, "override:all"
        return None, "pipeline"

    def effective(self, route: str, config: ModuleConfig) -> tuple[bool, dict[str, Any], str]:
        """(enabled, params, where it comes from) for one module of one route."""
        toggle, source = self.toggle_for(config.name, route)
        params = dict(config.params)
        enabled = True
        if toggle is not None:
            if toggle.enabled is not None:
                enabled = toggle.enabled
            if toggle.params:
                spec = self.registry[config.name]
                typed, problems = check_params(spec, toggle.params, config.params)
                if not problems:
                    params.update(typed)
        return enabled, params, source

    async def put(
        self,
        store: Store,
        module: str,
        route: str,
        enabled: bool | None,
        params: Mapping[str, Any] | None,
        actor: str,
    ) -> Toggle:
        now = time.time()

        async def write(conn: Any) -> None:
            await conn.execute(
                f"INSERT INTO {TABLE} (module, route, enabled, params, updated_at, actor) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (module, route) DO UPDATE SET "
                "enabled = excluded.enabled, params = excluded.params, "
                "updated_at = excluded.updated_at, actor = excluded.actor",
                (
                    module,
                    route,
                    None if enabled is None else int(enabled),
                    None if params is None else json.dumps(params, sort_keys=True),
                    now,
                    actor,
                ),
            )
            await conn.execute(_BUMP)

        async with self._turn:
            await store.call(write)
            toggle = Toggle(module, route, enabled, params, now, actor)
            self.stored[(module, route)] = toggle
        return toggle

    async def delete(self, store: Store, module: str, route: str) -> Toggle | None:
        async def write(conn: Any) -> None:
            await conn.execute(
                f"DELETE FROM {TABLE} WHERE module = ? AND route = ?", (module, route)
            )
            await conn.execute(_BUMP)

        async with self._turn:
            previous = self.stored.pop((module, route), None)
            if previous is not None:
                await store.call(write)
        return previous
