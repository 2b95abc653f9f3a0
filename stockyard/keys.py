"""Gateway keys (``sk-sy-…``): 256 bits of randomness, owned by a project, optionally limited
to routes and models, with an expiry. Only a SHA-256 hash is stored; the key is shown once."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .store.ledger import append_sync

PREFIX = "sk-sy-"
_COLUMNS = "id, hash, prefix, project, name, routes, models, created_at, expires_at, revoked_at, created_by"


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    hash: str
    prefix: str
    project: str
    name: str
    routes: tuple[str, ...]
    models: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    created_by: str

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> ApiKey:
        return cls(
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            tuple(json.loads(row[5])),
            tuple(json.loads(row[6])),
            row[7],
            row[8],
            row[9],
            row[10],
        )

    def state(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            return "expired"
        return "active"

    def allows(self, route: str, model: str) -> str | None:
        """None if this key may call ``model`` on ``route``; otherwise why not."""
        if self.routes and route not in self.routes:
            return f"this key may not use route `{route}`"
        if self.models and not any(fnmatch.fnmatchcase(model, m) for m in self.models):
            return f"this key may not use model `{model}`"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "project": self.project,
            "name": self.name,
            "routes": list(self.routes),
            "models": list(self.models),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
            "created_by": self.created_by,
            "state": self.state(),
        }


def new_key_row(
    project: str,
    name: str,
    routes: Sequence[str],
    models: Sequence[str],
    expires_at: float | None,
    actor: str,
) -> tuple[str, ApiKey]:
    key = generate()
    record = ApiKey(
        id="key_" + secrets.token_hex(8),
        hash=key_hash(key),
        prefix=key[: len(PREFIX) + 4],
        project=project,
        name=name,
        routes=tuple(routes),
        models=tuple(models),
        created_at=time.time(),
        expires_at=expires_at,
        revoked_at=None,
        created_by=actor,
    )
    return key, record


def _row(record: ApiKey) -> tuple[Any, ...]:
    return (
        record.id,
        record.hash,
        record.prefix,
        record.project,
        record.name,
        json.dumps(list(record.routes)),
        json.dumps(list(record.models)),
        record.created_at,
        record.expires_at,
        record.revoked_at,
        record.created_by,
    )


_INSERT = f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join('?' * 11)})"
_BUMP = "UPDATE versions SET version = version + 1 WHERE name = 'api_keys'"


def created_event(record: ApiKey) -> dict[str, Any]:
    return {
        "key_id": record.id,
        "project": record.project,
        "name": record.name,
        "routes": list(record.routes),
        "models": list(record.models),
        "expires_at": record.expires_at,
    }


class KeyRing:
    """The keys in memory, by hash: the ``auth`` module's lookup is a dict access."""

    def __init__(self) -> None:
        self.by_hash: dict[str, ApiKey] = {}
        self.version = -1

    def find(self, key: str) -> ApiKey | None:
        return self.by_hash.get(key_hash(key))

    async def load(self, store: Any) -> bool:
        rows = await store.query("SELECT version FROM versions WHERE name = 'api_keys'")
        version = rows[0][0] if rows else 0
        if version == self.version:
            return False
        rows = await store.query(f"SELECT {_COLUMNS} FROM api_keys")
        self.by_hash = {r[1]: ApiKey.from_row(tuple(r)) for r in rows}
        self.version = version
        return True

    def all(self) -> list[ApiKey]:
        return sorted(self.by_hash.values(), key=lambda k: k.created_at)

    async def create(
        self,
        store: Any,
        project: str,
        name: str,
        routes: Sequence[str],
        models: Sequence[str],
        expires_at: float | None,
        actor: str,
    ) -> tuple[str, ApiKey]:
        key, record = new_key_row(project, name, routes, models, expires_at, actor)

        async def write(conn: Any) -> None:
            await conn.execute(_INSERT, _row(record))
            await conn.execute(_BUMP)

        await store.call(write)
        self.by_hash[record.hash] = record
        await store.add_event(
            "admin", actor, f"key:{record.id}", "key.create", created_event(record)
        )
        return key, record

    async def revoke(self, store: Any, key_id: str, actor: str) -> ApiKey | None:
        record = next((k for k in self.by_hash.values() if k.id == key_id), None)
        if record is None:
            return None
        if record.revoked_at is not None:
            return record
        now = time.time()

        async def write(conn: Any) -> None:
            await conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id))
            await conn.execute(_BUMP)

        await store.call(write)
        revoked = replace(record, revoked_at=now)
        self.by_hash[record.hash] = revoked
        await store.add_event(
            "admin",
            actor,
            f"key:{key_id}",
            "key.revoke",
            {"key_id": key_id, "project": record.project},
        )
        return revoked


# --- the same operations for the CLI, straight on the database file ------------------------


def create_sync(
    conn: sqlite3.Connection,
    project: str,
    name: str,
    routes: Sequence[str],
    models: Sequence[str],
    expires_at: float | None,
    actor: str,
) -> tuple[str, ApiKey]:
    key, record = new_key_row(project, name, routes, models, expires_at, actor)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_INSERT, _row(record))
    conn.execute(_BUMP)
    append_sync(conn, "admin", actor, f"key:{record.id}", "key.create", created_event(record))
    conn.commit()
    return key, record


def list_sync(conn: sqlite3.Connection) -> list[ApiKey]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
    return [ApiKey.from_row(r) for r in rows]


def revoke_sync(conn: sqlite3.Connection, key_id: str, actor: str) -> ApiKey | None:
    conn.execute("BEGIN IMMEDIATE")
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
    if row is None:
        conn.rollback()
        return None
    record = ApiKey.from_row(row)
    if record.revoked_at is None:
        now = time.time()
        conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (now, key_id))
        conn.execute(_BUMP)
        append_sync(
            conn,
            "admin",
            actor,
            f"key:{key_id}",
            "key.revoke",
            {"key_id": key_id, "project": record.project},
        )
        record = ApiKey.from_row(
            conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        )
    conn.commit()
    return record
