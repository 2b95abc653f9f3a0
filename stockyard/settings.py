"""Server settings: command-line flags, else ``STOCKYARD_*`` environment variables, else defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_MAX_BODY = 10 * 1024 * 1024
DEFAULT_GRACE = 10.0


def shipped_pipelines() -> Path:
    """The default pipeline inside the installed package, or ``pipelines/`` of a checkout."""
    packaged = Path(__file__).parent / "pipelines"
    if (packaged / "default.pipe").is_file():
        return packaged
    return Path(__file__).resolve().parents[1] / "pipelines"


def demo_pipelines() -> Path:
    """The offline demo (mock provider only), shipped in the package or in ``examples/offline``."""
    packaged = Path(__file__).parent / "demo"
    if (packaged / "offline.pipe").is_file():
        return packaged
    return Path(__file__).resolve().parents[1] / "examples" / "offline"


@dataclass(frozen=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pipelines: Path = field(default_factory=lambda: Path("pipelines"))
    db: Path = field(default_factory=lambda: Path("stockyard.db"))
    max_body: int = DEFAULT_MAX_BODY
    grace: float = DEFAULT_GRACE
    admin_key: str | None = None
    watch: bool = True

    @classmethod
    def from_env(
        cls,
        *,
        host: str | None = None,
        port: int | None = None,
        pipelines: Path | None = None,
        db: Path | None = None,
        max_body: int | None = None,
        watch: bool | None = None,
    ) -> Settings:
        """Each argument given (not None) wins over its ``STOCKYARD_*`` variable."""
        env = os.environ
        if pipelines is None and env.get("STOCKYARD_PIPELINES"):
            pipelines = Path(env["STOCKYARD_PIPELINES"])
        if pipelines is None:
            local = Path("pipelines")
            pipelines = local if local.is_dir() else shipped_pipelines()
        return cls(
            host=host if host is not None else env.get("STOCKYARD_HOST", DEFAULT_HOST),
            port=port if port is not None else int(env.get("STOCKYARD_PORT", DEFAULT_PORT)),
            pipelines=pipelines,
            db=db if db is not None else Path(env.get("STOCKYARD_DB", "stockyard.db")),
            max_body=max_body
            if max_body is not None
            else int(env.get("STOCKYARD_MAX_BODY", DEFAULT_MAX_BODY)),
            grace=float(env.get("STOCKYARD_GRACE", DEFAULT_GRACE)),
            admin_key=env.get("STOCKYARD_ADMIN_KEY") or None,
            watch=watch
            if watch is not None
            else env.get("STOCKYARD_WATCH", "1") not in ("0", "false", "no"),
        )
