"""Runtime module toggles: overrides of the compiled defaults, kept in SQLite.

Effective state of a module on a route = the route-specific override if any, else the
all-routes override, else what the ``.pipe`` files say. Overrides are applied when handlers are
built, so the request path pays nothing; a change rebuilds the current generation's handlers.
Another process sharing the database notices a change by polling ``versions`` (< 1 s).
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


@dataclass(frozen=True)
class Override:
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

    ``base`` is what the override lands on (a route's compiled params); cross-parameter rules
    are checked on the result, so a partial override of a valid configuration is accepted."""
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
    def __init__(self, registry: Mapping[str, ModuleSpec]) -> None:
        self.registry = registry
        self.overrides: dict[tuple[str, str], Override] = {}
        self.version = -1
        # Reading (the poller) and writing (the API) take turns: a read that started before a
        # write would otherwise put back, when it finishes, what the write had just changed.
        self._turn = asyncio.Lock()

    async def load(self, store: Store) -> bool:
        """Re-read overrides if another writer changed them. True when something changed."""
        async with self._turn:
            return await self._load(store)

    async def _load(self, store: Store) -> bool:
        rows = await store.query("SELECT version FROM versions WHERE name = 'module_overrides'")
        version = rows[0][0] if rows else 0
        if version == self.version:
            return False
        rows = await store.query(
            "SELECT module, route, enabled, params, updated_at, actor FROM module_overrides"
        )
        self.overrides = {
            (r[0], r[1]): Override(
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

    def override_for(self, module: str, route: str) -> tuple[Override | None, str]:
        specific = self.overrides.get((module, route))
        if specific is not None:
            return specific, "override:route"
        general = self.overrides.get((module, ALL_ROUTES))
        if general is not None:
            return general, "override:all"
        return None, "pipeline"

    def effective(self, route: str, config: ModuleConfig) -> tuple[bool, dict[str, Any], str]:
        """(enabled, params, where it comes from) for one module of one route."""
        override, source = self.override_for(config.name, route)
        params = dict(config.params)
        enabled = True
        if override is not None:
            if override.enabled is not None:
                enabled = override.enabled
            if override.params:
                spec = self.registry[config.name]
                typed, problems = check_params(spec, override.params, config.params)
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
    ) -> Override:
        now = time.time()

        async def write(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO module_overrides (module, route, enabled, params, updated_at, actor) "
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
            await conn.execute(
                "UPDATE versions SET version = version + 1 WHERE name = 'module_overrides'"
            )

        async with self._turn:
            await store.call(write)
            override = Override(module, route, enabled, params, now, actor)
            self.overrides[(module, route)] = override
        return override

    async def delete(self, store: Store, module: str, route: str) -> Override | None:
        async def write(conn: Any) -> None:
            await conn.execute(
                "DELETE FROM module_overrides WHERE module = ? AND route = ?", (module, route)
            )
            await conn.execute(
                "UPDATE versions SET version = version + 1 WHERE name = 'module_overrides'"
            )

        async with self._turn:
            previous = self.overrides.pop((module, route), None)
            if previous is not None:
                await store.call(write)
        return previous
