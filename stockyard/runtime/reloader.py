"""Load pipelines, keep the current generation, and hot-reload on change.

Reload = read all files → skip if the content hash is unchanged → parse, check, compile (in a
worker thread) → activate → atomic swap of ``current``. A failed reload keeps the old
generation serving and keeps the diagnostics for the API and the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..catalog import check
from ..dsl import CheckOptions, CheckResult, collect_files, read_sources, render_text
from ..dsl.compiler import source_hash
from ..dsl.diagnostics import Diagnostic, to_json
from ..exceptions import ConfigError
from .pipeline import ActiveGeneration, activate

log = logging.getLogger("stockyard.reload")


@dataclass
class ReloadStatus:
    ok: bool = True
    at: float = 0.0
    source_hash: str = ""
    message: str = ""
    diagnostics: tuple[Diagnostic, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    reloads: int = 0
    failures: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "at": self.at,
            "source_hash": self.source_hash,
            "message": self.message,
            "reloads": self.reloads,
            "failures": self.failures,
            "diagnostics": to_json(self.diagnostics, self.sources)["diagnostics"],
            "rendered": render_text(self.diagnostics, self.sources) if self.diagnostics else "",
        }


def _hidden(file: Path, root: Path) -> bool:
    """Whether ``file`` lies in a hidden directory below ``root``: a Kubernetes ConfigMap keeps
    the real files in ``..2024_…/`` and exposes them through symlinks, so reading both would
    declare everything twice; editors and tools keep their own copies in dot-directories."""
    try:
        parts = file.relative_to(root).parts[:-1]
    except ValueError:
        return False
    return any(part.startswith(".") for part in parts)


class Reloader:
    def __init__(
        self,
        path: Path,
        services: Any,
        on_event: Callable[[str, str, dict[str, Any]], Awaitable[None]] | None = None,
    ) -> None:
        self.path = path
        self.services = services
        self.current: ActiveGeneration | None = None
        self.status = ReloadStatus()
        self.on_event = on_event
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # message, diagnostics and sources of the generation that is serving
        self._serving: tuple[str, tuple[Diagnostic, ...], dict[str, str]] = ("", (), {})

    def _read(self) -> dict[str, str]:
        files = [f for f in collect_files([self.path]) if not _hidden(f, self.path)]
        sources, problems = read_sources(files)
        if problems:
            raise ConfigError("unreadable pipeline files", problems)
        return sources

    def _build(self, sources: dict[str, str]) -> tuple[CheckResult, ActiveGeneration | None]:
        result = check(sources, CheckOptions(check_env=True))
        if result.generation is None:
            return result, None
        return result, activate(result.generation, self.services)

    async def reload(
        self, *, force: bool = False, reason: str = "change", actor: str = "system"
    ) -> ReloadStatus:
        async with self._lock:
            status = self.status
            try:
                sources = await asyncio.to_thread(self._read)
            except (OSError, ConfigError) as error:
                return await self._failed(
                    f"cannot read pipelines: {error}", getattr(error, "diagnostics", ()), {}, actor
                )
            digest = source_hash(sources.items())
            if (
                not force
                and self.current is not None
                and digest == self.current.generation.source_hash
            ):
                if not status.ok:  # the files are back to what is serving: the failure is over
                    status.ok, status.at = True, time.time()
                    status.message, status.diagnostics, status.sources = self._serving
                    log.info("pipelines %s (%s): back to the serving version", reason, digest[:12])
                return status
            if not sources:
                return await self._failed(f"no .pipe files in {self.path}", (), {}, actor)
            try:
                result, active = await asyncio.to_thread(self._build, sources)
            except ConfigError as error:
                return await self._failed(str(error), error.diagnostics, sources, actor)
            if active is None:
                return await self._failed(
                    f"{len(result.errors)} error(s) in the pipelines",
                    result.diagnostics,
                    sources,
                    actor,
                )
            previous, self.current = self.current, active
            if previous is not None:
                self._reset_breakers(previous, active)
            status.ok, status.at, status.source_hash = True, time.time(), digest
            status.message = (
                f"loaded {len(active.generation.routes)} route(s) from {len(sources)} file(s)"
            )
            status.diagnostics, status.sources = result.diagnostics, sources
            self._serving = (status.message, status.diagnostics, status.sources)
            status.reloads += 1
            for warning in result.warnings:
                log.warning("%s", warning)
            log.info("pipelines %s (%s): %s", reason, digest[:12], status.message)
            await self._emit(
                "reload.applied",
                actor,
                {
                    "source_hash": digest,
                    "reason": reason,
                    "routes": len(active.generation.routes),
                    "files": sorted(sources),
                },
            )
            return status

    def _reset_breakers(self, previous: ActiveGeneration, active: ActiveGeneration) -> None:
        """A provider whose definition changed (say, its base_url was fixed) is a new provider:
        its breaker forgets the failures of the old definition."""
        breakers = self.services.breakers
        for name, spec in active.generation.providers.items():
            old = previous.generation.providers.get(name)
            if old is not None and replace(old, source="") != replace(spec, source=""):
                breakers.reset(name)

    async def _failed(
        self, message: str, diagnostics: Any, sources: dict[str, str], actor: str
    ) -> ReloadStatus:
        status = self.status
        status.ok, status.at, status.message = False, time.time(), message
        status.diagnostics, status.sources = tuple(diagnostics), sources
        status.failures += 1
        rendered = render_text(status.diagnostics, sources) if status.diagnostics else ""
        serving = "the previous pipelines keep serving" if self.current else "nothing is loaded"
        log.error("reload rejected: %s; %s\n%s", message, serving, rendered.rstrip())
        await self._emit(
            "reload.rejected",
            actor,
            {
                "message": message,
                "codes": sorted({d.code for d in status.diagnostics if d.is_error}),
            },
        )
        return status

    async def _emit(self, action: str, actor: str, detail: dict[str, Any]) -> None:
        if self.on_event is not None:
            await self.on_event(action, actor, detail)

    async def reactivate(self) -> None:
        """Rebuild the current generation's handlers (after a module toggle changed)."""
        async with self._lock:
            if self.current is not None:
                self.current = await asyncio.to_thread(
                    activate, self.current.generation, self.services
                )

    def start_watching(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        from watchfiles import awatch

        directory = self.path if self.path.is_dir() else self.path.parent
        try:
            async for _changes in awatch(
                directory, stop_event=self._stop, debounce=150, step=30, recursive=True
            ):
                try:
                    await self.reload(reason="change")
                except Exception:  # the watcher must never die
                    log.exception("reload failed unexpectedly")
        except Exception:
            log.exception("the pipeline watcher stopped")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 2)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
