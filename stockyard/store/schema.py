"""The database schema, as numbered migrations. ``PRAGMA user_version`` records the last one
applied, so a fresh file and an older file both open correctly."""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE traces (
            id TEXT PRIMARY KEY,
            ts REAL NOT NULL,
            route TEXT NOT NULL,
            project TEXT NOT NULL,
            key_id TEXT,
            path TEXT NOT NULL,
            model TEXT NOT NULL,
            served_model TEXT,
            provider TEXT,
            status INTEGER NOT NULL,
            error TEXT,
            stream INTEGER NOT NULL,
            cache TEXT,
            prompt_tokens INTEGER NOT NULL DEFAULT 0,
            completion_tokens INTEGER NOT NULL DEFAULT 0,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            reasoning_tokens INTEGER NOT NULL DEFAULT 0,
            cost_pico INTEGER,            -- NULL: cost unknown (unpriced model)
            priced INTEGER NOT NULL,
            latency_ms REAL NOT NULL,
            ttft_ms REAL,
            overhead_ms REAL,
            attempts TEXT NOT NULL,       -- JSON list
            notes TEXT NOT NULL,          -- JSON object: module findings
            request_body TEXT,
            response_body TEXT
        );
        CREATE INDEX traces_route ON traces(route, id);
        CREATE INDEX traces_model ON traces(model, id);
        CREATE INDEX traces_project ON traces(project, id);

        CREATE TABLE spend_daily (
            day TEXT NOT NULL,
            project TEXT NOT NULL,
            key_id TEXT NOT NULL,
            route TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            requests INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            cost_pico INTEGER NOT NULL,   -- priced requests only
            unpriced INTEGER NOT NULL,    -- requests whose cost is unknown
            PRIMARY KEY (day, project, key_id, route, model, provider)
        );

        CREATE TABLE ledger (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            actor TEXT NOT NULL,
            resource TEXT NOT NULL,
            action TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        """,
    ),
)

LATEST = MIGRATIONS[-1][0]
